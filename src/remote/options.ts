import { z } from 'zod';

/** Options of `Qwen3Guard.remote`: where the guard service is, and how patiently it is asked. */
export const remoteGuardOptionsSchema = z
  .object({
    /** The service's root, e.g. 'http://guard.internal:8080' (what `qwen3guard serve` prints, or the load balancer in front). */
    baseURL: z.string().refine((u) => /^https?:\/\//.test(u) && URL.canParse(u), {
      message: "baseURL must be an http(s) URL such as 'http://127.0.0.1:8080'",
    }),
    /** Sent as `Authorization: Bearer <apiKey>` (the server's QWEN3GUARD_API_KEY). */
    apiKey: z.string().min(1).optional(),
    /** Extra headers on every request (a gateway's own auth, tracing). */
    headers: z.record(z.string(), z.string()).default({}),
    /** Limit for one guard call, its retries and backoff included; past it the call fails as 'guard-timeout'. */
    timeoutMs: z.number().int().min(1).max(600_000).default(10_000),
    /** Further attempts after a network error, a 502/503/504, or a 429 whose Retry-After fits the time left. */
    retries: z.number().int().min(0).max(10).default(2),
    /** First backoff; doubled per attempt. */
    retryBaseMs: z.number().int().min(0).max(60_000).default(100),
    /** The fetch to use (a runtime's own, or one with a custom agent); default the global fetch. */
    fetch: z.custom<typeof fetch>((v) => typeof v === 'function', { message: 'fetch must be a function like the global fetch' }).optional(),
    /**
     * Key of the HMAC that names a conversation for the load balancer when the app gives no conversation id.
     * App instances that share a guard fleet must share it; default: derived from `apiKey` (so they do), else
     * random per process (then only one process keeps conversations together).
     */
    routingSecret: z.string().min(16, 'routingSecret must be at least 16 characters (it keys an HMAC)').optional(),
  })
  .strict();

export type RemoteGuardOptions = z.input<typeof remoteGuardOptionsSchema>;
export type ResolvedRemoteGuardOptions = z.output<typeof remoteGuardOptionsSchema>;
