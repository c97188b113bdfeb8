import { z } from 'zod';

/** Options of `Qwen3GuardGen.remote`: where Gen is served, and how patiently it is asked. */
export const remoteGenOptionsSchema = z
  .object({
    /** The OpenAI-compatible API root, e.g. 'http://gpu-box:8000/v1' (vLLM, SGLang) or 'http://host:8080/v1' (llama.cpp server). */
    baseURL: z.string().refine((u) => /^https?:\/\//.test(u) && URL.canParse(u), {
      message: "baseURL must be an http(s) URL such as 'http://localhost:8000/v1'",
    }),
    /** The served model's name ('Qwen/Qwen3Guard-Gen-0.6B' for `vllm serve Qwen/Qwen3Guard-Gen-0.6B`). */
    model: z.string().min(1),
    /** Sent as `Authorization: Bearer <apiKey>`. */
    apiKey: z.string().min(1).optional(),
    headers: z.record(z.string(), z.string()).default({}),
    /** Limit for one call (a verdict or a category list), all attempts and backoff included. */
    timeoutMs: z.number().int().min(1).max(600_000).default(10_000),
    /** Further attempts after a network error, a 429 or a 5xx (never after another 4xx), with exponential backoff. */
    retries: z.number().int().min(0).max(10).default(2),
    /** First backoff; doubled per attempt. */
    retryBaseMs: z.number().int().min(0).max(60_000).default(250),
    /** Checks in flight at once from this process; further checks wait. */
    maxConcurrency: z.number().int().min(1).max(1024).default(16),
    /** Top log-probabilities asked for the verdict token (vLLM allows 20 by default, OpenAI's legacy API 5). */
    topLogprobs: z.number().int().min(2).max(20).default(5),
    /**
     * How the category grammar is sent: llama.cpp's server reads `grammar` (GBNF), vLLM `guided_grammar`;
     * 'none' sends none (SGLang, Ollama). Either way the returned list is checked, so it parses or the check fails.
     */
    grammar: z.enum(['llama.cpp', 'vllm', 'none']).default('none'),
    /** The fetch to use (a runtime's own, one with a custom agent); default the global fetch. */
    fetch: z.custom<typeof fetch>((v) => typeof v === 'function', { message: 'fetch must be a function like the global fetch' }).optional(),
  })
  .strict();

export type RemoteGenOptions = z.input<typeof remoteGenOptionsSchema>;
export type ResolvedRemoteGenOptions = z.output<typeof remoteGenOptionsSchema>;
