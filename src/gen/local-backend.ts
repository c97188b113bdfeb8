import { LlamaGrammarEvaluationState, type Llama, type LlamaContext, type LlamaContextSequence, type LlamaGrammar, type LlamaModel, type Token } from 'node-llama-cpp';
import { GuardBusyError, GuardModelError } from '../guard/errors.js';
import { computeLane, inLane, type ComputeLane } from '../engine/compute-lane.js';
import { Permits } from '../shared/permits.js';
import { sharedLlama } from '../engine/guard.js';
import { GuardInputError } from '../guard/input-validation.js';
import { checkGgufFile, printable, requireBackend } from '../engine/load-checks.js';
import { commonPrefix } from '../engine/sequence-pool.js';
import { modelName } from '../format/model-name.js';
import { END_THINK, IM_END, IM_START, THINK, type Piece } from '../format/template.js';
import type { GenBackend, GenSlot, GenStats } from './backend.js';
import type { ResolvedGenOptions } from './options.js';
import { requireVariant } from './variant-file.js';

const MARKERS = [IM_START, IM_END, THINK, END_THINK] as const;

/**
 * Qwen3Guard-Gen on node-llama-cpp: one model and context, `maxSessions` sequences. Each sequence keeps what it
 * last evaluated, so a check re-evaluates only from the first token that differs: the moderation instructions
 * before the conversation (about 200 tokens) are evaluated once per sequence, not once per check.
 */
export class LocalGenBackend implements GenBackend {
  readonly kind = 'local';
  readonly stats: GenStats = { evaluatedTokens: 0, reusedTokens: 0, generatedTokens: 0 };
  private readonly free: LlamaContextSequence[];
  /** One per free sequence; a check holds one from `open` to its slot's release. */
  private readonly permits: Permits;
  private readonly markerIds = new Map<string, number>();
  private readonly grammars = new Map<string, Promise<LlamaGrammar>>();
  private disposed = false;
  readonly lane: ComputeLane | null;
  readonly modelName: string;

  private constructor(
    readonly options: ResolvedGenOptions,
    readonly llama: Llama,
    readonly model: LlamaModel,
    readonly context: LlamaContext,
  ) {
    this.free = Array.from({ length: options.maxSessions }, () => context.getSequence());
    this.permits = new Permits(this.free.length);
    this.lane = computeLane(llama);
    this.modelName = modelName('Gen', model.embeddingVectorSize, (model.fileInfo.metadata as { general?: { name?: unknown } }).general?.name);
    for (const marker of MARKERS) {
      const ids = model.tokenize(marker, true);
      if (ids.length !== 1) throw new GuardModelError(`${options.modelPath}: the tokenizer has no single token for ${marker}`);
      this.markerIds.set(marker, ids[0]);
    }
  }

  static async load(options: ResolvedGenOptions): Promise<LocalGenBackend> {
    const { llama, model, context } = await loadGenModel(options);
    return new LocalGenBackend(options, llama, model, context);
  }

  async open(signal?: AbortSignal): Promise<GenSlot> {
    if (this.disposed) throw new Error('This Qwen3GuardGen was disposed');
    signal?.throwIfAborted();
    if (!this.permits.tryAcquire()) {
      const limit = this.options.maxWaiting;
      const waiting = this.permits.waitingCount;
      if (limit !== undefined && waiting >= limit) {
        throw new GuardBusyError(`The Gen guard is busy: all ${this.options.maxSessions} sequences (maxSessions) are in use and ${waiting} checks wait (maxWaiting ${limit})`);
      }
      await this.permits.wait(signal);
    }
    // A permit stands for a free sequence.
    return new LocalSlot(this, this.free.pop()!);
  }

  /** @internal */
  giveBack(sequence: LlamaContextSequence): void {
    this.free.push(sequence);
    this.permits.release();
  }

  /** Token ids of pieces: markers as special tokens, text with special-token parsing off. */
  tokenize(pieces: readonly Piece[]): number[] {
    return pieces.flatMap((p) => ('special' in p ? [this.markerIds.get(p.special)!] : p.text ? this.model.tokenize(p.text, false) : []));
  }

  /** @internal Grammars are compiled once per text. */
  grammar(text: string): Promise<LlamaGrammar> {
    let grammar = this.grammars.get(text);
    if (!grammar) {
      grammar = this.llama.createGrammar({ grammar: text });
      this.grammars.set(text, grammar);
    }
    return grammar;
  }

  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    this.permits.rejectWaiting(new Error('This Qwen3GuardGen was disposed'));
    await this.context.dispose();
    await this.model.dispose();
  }
}

class LocalSlot implements GenSlot {
  private released = false;

  constructor(
    private readonly backend: LocalGenBackend,
    private readonly sequence: LlamaContextSequence,
  ) {}

  /** Aligns the sequence with `ids`: keeps the longest common prefix, returns what is left to evaluate (never empty). */
  private async align(ids: number[], extra: number): Promise<Token[]> {
    const size = this.backend.context.contextSize;
    if (ids.length + extra > size) {
      throw new GuardInputError(
        `The rendered Gen template is ${ids.length} tokens, with ${extra} for the answer; the context holds ${size}: raise contextSize, or check a shorter conversation`,
      );
    }
    const held = this.sequence.contextTokens;
    const keep = Math.min(commonPrefix(held, ids), ids.length - 1);
    this.backend.stats.reusedTokens += keep;
    this.backend.stats.evaluatedTokens += ids.length - keep;
    if (keep < this.sequence.nextTokenIndex) {
      if (keep === 0) await this.sequence.clearHistory();
      else await this.sequence.eraseContextTokenRanges([{ start: keep, end: this.sequence.nextTokenIndex }]);
    }
    return ids.slice(keep) as Token[];
  }

  async nextScores(pieces: readonly Piece[], options: readonly string[]): Promise<number[]> {
    const firsts = options.map((o) => this.backend.model.tokenize(o, false)[0] as Token);
    if (new Set(firsts).size !== firsts.length) throw new Error(`Options ${JSON.stringify(options)} share a first token`);
    const rest = await this.align(this.backend.tokenize(pieces), 1);
    const last = rest.length - 1;
    const items = rest.map((id, i) => (i === last ? ([id, { generateNext: { logits: { filter: { tokens: firsts } } } }] as const) : id));
    const outputs = await this.decode(() => this.sequence.controlledEvaluate(items as Parameters<LlamaContextSequence['controlledEvaluate']>[0]));
    const logits = outputs[last]?.next.logits;
    if (!logits) throw new Error('node-llama-cpp returned no logits for the Gen verdict token');
    return firsts.map((id) => {
      const value = logits.get(id);
      if (value === undefined) throw new Error(`node-llama-cpp returned no logit for token ${id}`);
      return value;
    });
  }

  async generate(pieces: readonly Piece[], request: { grammar: string; maxTokens: number; stopAfter?: string }): Promise<string> {
    const { model } = this.backend;
    const rest = await this.align(this.backend.tokenize(pieces), request.maxTokens);
    const grammarEvaluationState = new LlamaGrammarEvaluationState({ model, grammar: await this.backend.grammar(request.grammar) });
    const generated: Token[] = [];
    let text = '';
    // Greedy (temperature 0) under the grammar; the last token yielded is not evaluated, the next call re-aligns.
    // The lane is held for the whole generation: a few tokens, each a decode.
    await this.decode(async () => {
      for await (const token of this.sequence.evaluate(rest, { temperature: 0, grammarEvaluationState })) {
        if (model.isEogToken(token)) break;
        generated.push(token);
        this.backend.stats.generatedTokens++;
        text = model.detokenize(generated, false);
        if ((request.stopAfter !== undefined && text.endsWith(request.stopAfter)) || generated.length >= request.maxTokens) break;
      }
    });
    return text;
  }

  /** A decode of this backend's context, in turn with other contexts' decodes on the CPU (compute-lane.ts). */
  private decode<T>(task: () => Promise<T>): Promise<T> {
    return inLane(this.backend.lane, this.backend.context, task);
  }

  release(): void {
    if (this.released) return;
    this.released = true;
    this.backend.giveBack(this.sequence);
  }
}

/**
 * A Gen GGUF loaded with `maxSessions` sequences: checked to be Gen first, on the backend asked for, with the
 * engine's thread default (node-llama-cpp's own oversubscribes small machines).
 */
export async function loadGenModel(options: ResolvedGenOptions): Promise<{ llama: Llama; model: LlamaModel; context: LlamaContext }> {
  checkGgufFile(options.modelPath);
  await requireVariant(options.modelPath, 'gen');
  const llama = await requireBackend(options.gpu, sharedLlama(options));
  const model = await llama.loadModel({ modelPath: options.modelPath }).catch((error: unknown) => {
    throw new GuardModelError(`guard.modelPath: ${options.modelPath} could not be loaded as a GGUF (${printable(error)})`);
  });
  try {
    const cache = options.kvCacheType === 'f32' ? 'F32' : options.kvCacheType === 'q8_0' ? 'Q8_0' : 'F16';
    const context = await model.createContext({
      contextSize: options.contextSize,
      sequences: options.maxSessions,
      threads: options.threads ?? llama.cpuMathCores,
      batchSize: options.batchSize,
      experimentalKvCacheKeyType: cache,
      experimentalKvCacheValueType: cache === 'Q8_0' ? 'F16' : cache,
      flashAttention: options.flashAttention ?? (llama.gpu === false || options.kvCacheType === 'f32' ? false : 'auto'),
    });
    return { llama, model, context };
  } catch (error) {
    await model.dispose();
    throw error;
  }
}
