import { z } from 'zod';
import { expected, listOf } from '../shared/validation.js';

export const GPU_CHOICES = ['auto', false, 'cuda', 'vulkan', 'metal'] as const;

/** Options of `Qwen3Guard.load`, validated when the guard is loaded. */
export const guardOptionsSchema = z
  .object({
    /** Path of a GGUF made by `qwen3guard convert`. */
    modelPath: z.string().min(1, 'modelPath must name a .gguf file made by `qwen3guard convert`').optional(),
    /** Or a model pulled into the cache by `qwen3guard pull`: 'qwen3guard-stream-0.6b' (-4b, -8b; '-f16' etc. picks a type, default q8_0). */
    model: z.string().min(1, "model must name a pulled model such as 'qwen3guard-stream-0.6b'").optional(),
    /** The model cache (default `$XDG_CACHE_HOME/qwen3guard`, else `~/.cache/qwen3guard`). */
    cacheDir: z.string().min(1).optional(),
    /** With `model`: download and convert a published model on first use when it is not cached. */
    pull: z.boolean().default(false),
    /** CPU threads for evaluation; defaults to the machine's math cores (node-llama-cpp's own default oversubscribes small machines). */
    threads: z.number().int().positive().optional(),
    /** 'auto' picks a GPU backend when one is usable, false forces the CPU. */
    gpu: z.union([z.literal('auto'), z.literal(false), z.enum(['cuda', 'vulkan', 'metal'])], { error: expected(listOf(GPU_CHOICES)) }).default('auto'),
    /** KV cells per conversation. Longer conversations drop their oldest tokens (never the first). */
    contextSize: z.number().int().min(64).max(131072).default(4096),
    /** Conversations classified at once; each holds `contextSize` KV cells. Further sessions wait for a free one. */
    maxSessions: z.number().int().min(1).max(256).default(2),
    /**
     * Sessions that may wait for a free sequence at once. Past it `createSession` fails at once with a
     * GuardBusyError (the middleware then fails the request by `fail`) instead of queueing without bound: under
     * overload a fast refusal beats an answer that waits minutes. Default: no limit.
     */
    maxWaiting: z.number().int().min(0).optional(),
    /**
     * Keep each conversation's KV cache when its session ends, so that the next turn (or a retry) evaluates only
     * its new tokens. false clears a sequence when its session ends (every turn re-reads the whole conversation).
     */
    reuseKv: z.boolean().default(true),
    /**
     * Evaluate the tail of a streamed text ahead, before the next delta shows whether it re-tokenizes (the
     * middleware speculates the text its aligner holds): verdicts are ready as soon as the text is final, at the
     * cost of re-evaluating the tokens a delta changes (a word split between deltas). false: evaluate final text only.
     */
    speculate: z.boolean().default(true),
    /** Tokens per decode when several sessions are batched (node-llama-cpp batch size). */
    batchSize: z.number().int().min(1).optional(),
    /** Exact probabilities for every response token (costs a top-k over guard_inner_size rows per token). */
    responseProbabilities: z.boolean().default(false),
    /**
     * KV cache precision: f16 (default); q8_0 keys (values stay f16) for less memory and faster long contexts
     * on CPU; f32 for parity with a float32/float64 reference.
     */
    kvCacheType: z.enum(['f16', 'q8_0', 'f32']).default('f16'),
    /**
     * Flash attention. Default: llama.cpp's choice on a GPU; off on the CPU, where its kernel is slower at long
     * contexts (per-token cost at 2048 tokens 2.5x that at 64, against 2x without) and rounds values through
     * f16 (about 1e-2 relative error), which would undo an f32 cache's precision.
     */
    flashAttention: z.boolean().optional(),
    /** Forwarded llama.cpp log lines at or above this level (default: errors only). */
    logLevel: z.enum(['error', 'warn', 'info', 'debug']).default('error'),
  })
  .strict();

/** `Qwen3Guard.load`'s options: the fields above, with exactly one of modelPath and model. */
export const guardLoadSchema = guardOptionsSchema
  .refine((o) => (o.modelPath === undefined) !== (o.model === undefined), {
    message: "give either modelPath (a .gguf file) or model (a pulled model such as 'qwen3guard-stream-0.6b'), exactly one",
    path: ['modelPath'],
  })
  .refine((o) => o.model !== undefined || (o.cacheDir === undefined && !o.pull), {
    message: 'cacheDir and pull apply only with model',
    path: ['cacheDir'],
  });

export type GuardOptions = z.input<typeof guardOptionsSchema>;
/** Resolved options: `modelPath` is the GGUF loaded, found from `model` when one was given. */
export type ResolvedGuardOptions = Omit<z.output<typeof guardOptionsSchema>, 'modelPath'> & { modelPath: string };
