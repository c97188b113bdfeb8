import { z } from 'zod';
import { guardOptionsSchema } from '../guard/options.js';

/** Options of `startServer` (and `qwen3guard serve`): the models, the address, and the limits that keep it up under load. */
export const serveOptionsSchema = z
  .object({
    /** A Qwen3Guard-Stream GGUF (the guard service), or a Gen GGUF alone (completions only). */
    modelPath: z.string().min(1).optional(),
    /** A Gen GGUF served beside the Stream model at /v1/completions. */
    genModelPath: z.string().min(1).optional(),
    host: z.string().min(1).default('127.0.0.1'),
    /** 0 picks a free port (the listening line says which). */
    port: z.number().int().min(0).max(65535).default(8080),
    threads: guardOptionsSchema.shape.threads,
    gpu: guardOptionsSchema.shape.gpu,
    /** Conversations moderated at once (each holds `contextSize` KV cells); further ones wait, up to `maxWaiting`. */
    maxSessions: z.number().int().min(1).max(256).default(4),
    contextSize: guardOptionsSchema.shape.contextSize,
    kvCacheType: guardOptionsSchema.shape.kvCacheType,
    /** Exact probabilities for every response token (for `qwen3guard eval`'s threshold sweep through the server). */
    responseProbabilities: guardOptionsSchema.shape.responseProbabilities,
    /** Session creations that may wait for a free one; past it 429 with Retry-After. Default 4 x maxSessions. */
    maxWaiting: z.number().int().min(0).optional(),
    /** Longest wait for a free session before 429. */
    queueTimeoutMs: z.number().int().min(1).default(10_000),
    /** A session no request touched for this long is freed (its client went away). */
    idleTimeoutMs: z.number().int().min(100).default(30_000),
    /** API keys accepted as `Authorization: Bearer <key>` (empty: no auth, loopback only). */
    apiKeys: z.array(z.string().min(16, 'an API key must be at least 16 characters')).default([]),
    maxBodyBytes: z.number().int().min(1024).default(1_048_576),
    /** Longest text in one call (append, speculate, count). */
    maxTextChars: z.number().int().min(1).default(65_536),
    maxMessages: z.number().int().min(1).default(1_000),
    /** A client must send its headers within this (slowloris). */
    headersTimeoutMs: z.number().int().min(100).default(10_000),
    /** ... and its whole request within this. */
    requestTimeoutMs: z.number().int().min(100).default(30_000),
    /** Idle keep-alive connections stay open this long (above common load balancers' 60 s). */
    keepAliveTimeoutMs: z.number().int().min(100).default(65_000),
    /** On shutdown: how long open sessions may finish before they are cut. */
    drainTimeoutMs: z.number().int().min(0).default(30_000),
    /** `/get_reward` (with a Gen model): the scheme and H, as `safetyReward` takes them. */
    reward: z
      .object({
        scheme: z.enum(['hybrid', 'guard-only']).default('hybrid'),
        /** A helpfulness reward model's URL (see safetyReward); without one H is 0. */
        helpfulnessUrl: z.string().url().optional(),
      })
      .strict()
      .default({ scheme: 'hybrid' }),
    /** One line per request (method, route, status, ms; never text). */
    log: z.custom<(line: string) => void>((v) => typeof v === 'function').optional(),
  })
  .strict()
  .refine((o) => o.modelPath !== undefined || o.genModelPath !== undefined, { message: 'give modelPath (a Stream or Gen GGUF) and/or genModelPath', path: ['modelPath'] });

export type ServeOptions = z.input<typeof serveOptionsSchema>;
export type ResolvedServeOptions = z.output<typeof serveOptionsSchema>;
