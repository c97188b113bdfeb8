import { getLlama, type Llama, type LlamaContext, type LlamaGpuType, type LlamaLogLevel, type LlamaModel } from 'node-llama-cpp';
import type { GuardLayout } from '../format/guard-metadata.js';
import { modelName } from '../format/model-name.js';
import type { Piece } from '../format/template.js';
import { GuardModelError } from '../guard/errors.js';
import { guardOptionsSchema, type GuardOptions, type ResolvedGuardOptions } from '../guard/options.js';
import { STREAM_GUARD, type GuardInfo, type SessionOptions, type StreamGuard } from '../guard/stream-guard.js';
import { parseOptions } from '../shared/validation.js';
import { computeLane } from './compute-lane.js';
import { GuardTokenizer } from './guard-tokenizer.js';
import { readGuardLayout } from './guard-layout.js';
import { checkGgufFile, printable, requireBackend } from './load-checks.js';
import { SequencePool } from './sequence-pool.js';
import { GuardSession } from './session.js';
import type { SessionHost } from './session-host.js';
import { zeroStats, type GuardStats } from './stats.js';
import type { TokenBytes } from './token-bytes.js';

const llamas = new Map<string, Promise<Llama>>();

/** One Llama per backend choice and log level for the whole process: it owns the native backend. */
export function sharedLlama(options: { gpu: ResolvedGuardOptions['gpu']; logLevel: ResolvedGuardOptions['logLevel'] | 'disabled' }): Promise<Llama> {
  const key = `${String(options.gpu)}:${options.logLevel}`;
  let llama = llamas.get(key);
  if (!llama) {
    llama = getLlama({ gpu: options.gpu, build: 'never', logLevel: options.logLevel as LlamaLogLevel });
    llamas.set(key, llama);
    llama.catch(() => llamas.delete(key));
  }
  return llama;
}

/**
 * A Qwen3Guard-Stream model in this process (`Qwen3Guard.load`): one model and one context shared by every
 * session, each session on its own sequence so that concurrent conversations are evaluated in the same decode
 * batches.
 */
export class LocalGuard implements StreamGuard, SessionHost {
  readonly [STREAM_GUARD] = true as const;
  readonly variant = 'stream' as const;
  readonly kind = 'local' as const;
  readonly stats: GuardStats = zeroStats();
  /** @internal The sequences and the conversations their KV caches keep. */
  readonly pool: SequencePool;
  /** The GGUF's tokenizer (shared with the SGLang backend, which loads the export's vocabulary-only GGUF). */
  readonly tokenizer: GuardTokenizer;
  readonly info: GuardInfo;
  private disposed = false;

  private constructor(
    readonly options: ResolvedGuardOptions,
    readonly model: LlamaModel,
    readonly context: LlamaContext,
    readonly layout: GuardLayout,
    readonly threads: number,
  ) {
    this.pool = new SequencePool(context, options.maxSessions, options.reuseKv, options.maxWaiting, computeLane(model.llama));
    this.tokenizer = new GuardTokenizer(model, options.modelPath);
    this.info = {
      model: modelName('Stream', model.embeddingVectorSize, this.tokenizer.generalName),
      prompt: { risk: [...layout.query.riskLabels], categories: [...layout.query.categoryLabels] },
      response: { risk: [...layout.response.riskLabels], categories: [...layout.response.categoryLabels] },
      speculate: options.speculate,
    };
  }

  /**
   * Loads a GGUF made by `qwen3guard convert` from `modelPath` (`Qwen3Guard.load` also finds pulled models by
   * name). Options are validated first; see `GuardOptions`.
   */
  static async load(options: GuardOptions & { modelPath: string }): Promise<LocalGuard> {
    const parsed = parseOptions(guardOptionsSchema, options, 'guard');
    const resolved: ResolvedGuardOptions = { ...parsed, modelPath: parsed.modelPath ?? options.modelPath };
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
      return new LocalGuard(resolved, model, context, layout, threads);
    } catch (error) {
      await model.dispose();
      throw error;
    }
  }

  /** The backend llama.cpp runs on: 'cuda', 'vulkan', 'metal', or false for the CPU. */
  get backend(): LlamaGpuType {
    return this.model.llama.gpu;
  }

  async ready(): Promise<GuardInfo> {
    return this.info;
  }

  /**
   * Starts a session for one conversation; waits while all `maxSessions` sequences are in use (or throws a
   * GuardBusyError when `maxWaiting` sessions already wait). The session
   * takes, in `checkPrompt`, the sequence that kept the longest prefix of its conversation.
   */
  async createSession(options: SessionOptions = {}): Promise<GuardSession> {
    if (this.disposed) throw new Error('This Qwen3Guard was disposed');
    await this.pool.reserve(options.signal);
    return new GuardSession(this, this.pool);
  }

  /** Raw bytes of each vocabulary token, to map token spans to character offsets. */
  get tokenBytes(): TokenBytes {
    return this.tokenizer.tokenBytes;
  }

  /** Token ids of template pieces: markers as special tokens, text with special-token parsing off. */
  tokenizePieces(pieces: readonly Piece[]): number[] {
    return this.tokenizer.tokenizePieces(pieces);
  }

  specialId(marker: string): number {
    return this.tokenizer.specialId(marker);
  }

  /** Plain text to token ids, markers included as text. The caller normalizes (NFC) where it must. */
  tokenizeText(text: string): number[] {
    return this.tokenizer.tokenizeText(text);
  }

  /** Text of a token for display (split UTF-8 characters show as U+FFFD). */
  tokenText(id: number): string {
    return this.tokenizer.tokenText(id);
  }

  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    await this.pool.close();
    await this.context.dispose();
    await this.model.dispose();
  }
}
