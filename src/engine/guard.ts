import { getLlama, LlamaLogLevel, type Llama, type LlamaContext, type LlamaGpuType, type LlamaModel, type Token } from 'node-llama-cpp';
import { resolveModelPath } from '../download/resolve-model.js';
import type { GuardLayout } from '../format/guard-metadata.js';
import { parseOptions } from '../shared/validation.js';
import { GuardModelError } from '../guard/errors.js';
import { readGuardLayout } from './guard-layout.js';
import { checkGgufFile, printable, requireBackend } from './load-checks.js';
import { guardLoadSchema, type GuardOptions, type ResolvedGuardOptions } from '../guard/options.js';
import { computeLane } from './compute-lane.js';
import { SequencePool } from './sequence-pool.js';
import { GuardSession } from './session.js';
import { SPECIAL_MARKERS, type Piece } from '../format/template.js';
import { TokenBytes } from './token-bytes.js';

const llamas = new Map<string, Promise<Llama>>();

/** One Llama per backend choice and log level for the whole process: it owns the native backend. */
export function sharedLlama(options: Pick<ResolvedGuardOptions, 'gpu' | 'logLevel'>): Promise<Llama> {
  const key = `${String(options.gpu)}:${options.logLevel}`;
  let llama = llamas.get(key);
  if (!llama) {
    llama = getLlama({
      gpu: options.gpu,
      build: 'never',
      logLevel: options.logLevel as LlamaLogLevel,
    });
    llamas.set(key, llama);
    llama.catch(() => llamas.delete(key));
  }
  return llama;
}

export interface GuardStats {
  /** Tokens evaluated by the backbone (scaffold and background re-renders of finished turns included). */
  evaluatedTokens: number;
  /** Conversation tokens found in a kept sequence's KV cache instead of evaluated again. */
  reusedTokens: number;
  /** Response tokens evaluated ahead of their text's arrival being complete (`GuardSession.speculate`). */
  speculatedTokens: number;
  /** Speculated tokens that came out otherwise once the text was complete, and were erased. */
  discardedTokens: number;
  /** Response tokens scored. */
  scoredTokens: number;
  /** Evaluation calls of sessions (each one decode per batch; a long text is split to bound output memory). */
  evaluations: number;
  /** Tokens whose label came from a top-k that missed a pair (the value then reads 0); expected 0. */
  inexactTokens: number;
  /** Times a session's oldest tokens were dropped to fit the context. */
  contextShifts: number;
  /** KV cells moved by those shifts (a RoPE re-rotation of cached keys, not a re-evaluation). */
  shiftedTokens: number;
}

/**
 * A loaded Qwen3Guard-Stream model: one model and one context shared by every session, each session on its
 * own sequence so that concurrent conversations are evaluated in the same decode batches.
 */
export class Qwen3Guard {
  /** Which Qwen3Guard this is (Qwen3GuardGen.variant is 'gen'). */
  readonly variant = 'stream' as const;
  readonly stats: GuardStats = { evaluatedTokens: 0, reusedTokens: 0, speculatedTokens: 0, discardedTokens: 0, scoredTokens: 0, evaluations: 0, inexactTokens: 0, contextShifts: 0, shiftedTokens: 0 };
  /** @internal The sequences and the conversations their KV caches keep. */
  readonly pool: SequencePool;
  private readonly specialIds = new Map<string, number>();
  private disposed = false;
  /** Raw bytes of each vocabulary token, to map token spans to character offsets. */
  readonly tokenBytes: TokenBytes;

  private constructor(
    readonly options: ResolvedGuardOptions,
    readonly model: LlamaModel,
    readonly context: LlamaContext,
    readonly layout: GuardLayout,
    readonly threads: number,
  ) {
    this.pool = new SequencePool(context, options.maxSessions, options.reuseKv, options.maxWaiting, computeLane(model.llama));
    for (const marker of SPECIAL_MARKERS) {
      const ids = model.tokenize(marker, true);
      if (ids.length !== 1) throw new GuardModelError(`${options.modelPath}: the tokenizer has no single token for ${marker}`);
      this.specialIds.set(marker, ids[0]);
    }
    const tokens = (model.fileInfo.metadata as unknown as { tokenizer?: { ggml?: { tokens?: readonly string[] } } }).tokenizer?.ggml?.tokens;
    if (!tokens) throw new GuardModelError(`${options.modelPath}: the GGUF has no tokenizer.ggml.tokens`);
    this.tokenBytes = new TokenBytes(tokens);
  }

  /** Loads a GGUF made by `qwen3guard convert`, or a model `qwen3guard pull` cached. Options are validated first; see `GuardOptions`. */
  static async load(options: GuardOptions): Promise<Qwen3Guard> {
    const parsed = parseOptions(guardLoadSchema, options, 'guard');
    const modelPath = parsed.modelPath ?? (await resolveModelPath({ model: parsed.model!, cacheDir: parsed.cacheDir, pull: parsed.pull }));
    const resolved: ResolvedGuardOptions = { ...parsed, modelPath };
    checkGgufFile(resolved.modelPath);
    const llama = await requireBackend(resolved.gpu, sharedLlama(resolved));
    const threads = resolved.threads ?? llama.cpuMathCores;
    const model = await llama.loadModel({ modelPath: resolved.modelPath }).catch((error: unknown) => {
      throw new GuardModelError(`guard.modelPath: ${resolved.modelPath} could not be loaded as a GGUF (${printable(error)})`);
    });
    try {
      const layout = readGuardLayout(model.fileInfo.metadata, resolved.modelPath);
      const keys = resolved.kvCacheType === 'f32' ? 'F32' : resolved.kvCacheType === 'q8_0' ? 'Q8_0' : 'F16';
      // Quantized values need flash attention in llama.cpp: q8_0 applies to keys only.
      const values = resolved.kvCacheType === 'f32' ? 'F32' : 'F16';
      const context = await model.createContext({
        contextSize: resolved.contextSize,
        sequences: resolved.maxSessions,
        threads,
        batchSize: resolved.batchSize,
        experimentalKvCacheKeyType: keys,
        experimentalKvCacheValueType: values,
        flashAttention: resolved.flashAttention ?? (llama.gpu === false || resolved.kvCacheType === 'f32' ? false : 'auto'),
      });
      return new Qwen3Guard(resolved, model, context, layout, threads);
    } catch (error) {
      await model.dispose();
      throw error;
    }
  }

  /** The backend llama.cpp runs on: 'cuda', 'vulkan', 'metal', or false for the CPU. */
  get backend(): LlamaGpuType {
    return this.model.llama.gpu;
  }

  /**
   * Starts a session for one conversation; waits while all `maxSessions` sequences are in use (or throws a
   * GuardBusyError when `maxWaiting` sessions already wait). The session
   * takes, in `checkPrompt`, the sequence that kept the longest prefix of its conversation.
   */
  async createSession(options: { signal?: AbortSignal } = {}): Promise<GuardSession> {
    if (this.disposed) throw new Error('This Qwen3Guard was disposed');
    await this.pool.reserve(options.signal);
    return new GuardSession(this, this.pool);
  }

  /** Token ids of template pieces: markers as special tokens, text with special-token parsing off. */
  tokenizePieces(pieces: readonly Piece[]): number[] {
    const ids: number[] = [];
    for (const piece of pieces) {
      if ('special' in piece) ids.push(this.specialId(piece.special));
      else ids.push(...this.tokenizeText(piece.text));
    }
    return ids;
  }

  specialId(marker: string): number {
    const id = this.specialIds.get(marker);
    if (id === undefined) throw new Error(`No special token for ${marker}`);
    return id;
  }

  /** Plain text to token ids, markers included as text. The caller normalizes (NFC) where it must. */
  tokenizeText(text: string): number[] {
    return text ? this.model.tokenize(text, false) : [];
  }

  /** Text of a token for display (split UTF-8 characters show as U+FFFD). */
  tokenText(id: number): string {
    return this.model.detokenize([id as Token], false);
  }

  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    await this.pool.close();
    await this.context.dispose();
    await this.model.dispose();
  }
}
