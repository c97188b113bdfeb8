import { z } from 'zod';
import { remoteGuardOptionsSchema } from '../remote/options.js';

const path = z.string().min(1, 'must be a path');

/** Options of `Qwen3Guard.sglang`: the SGLang server (or the gateway in front), the export's guard files, and how patiently it is asked. */
export const sglangGuardOptionsSchema = remoteGuardOptionsSchema
  .pick({ apiKey: true, headers: true, retries: true, retryBaseMs: true, fetch: true, routingSecret: true })
  .extend({
    /** The server's root, e.g. 'http://gpu1:30000' (`python -m sglang.launch_server --port 30000`), or sgl-model-gateway's. */
    baseURL: z.string().refine((u) => /^https?:\/\//.test(u) && URL.canParse(u), {
      message: "baseURL must be an http(s) URL such as 'http://127.0.0.1:30000'",
    }),
    /**
     * The export's guard files (`qwen3guard convert --for sglang <checkpoint> <dir>`): its `qwen3guard/` folder
     * (or the export folder that holds it), or both files by path.
     */
    heads: z.union([path, z.object({ heads: path, tokenizer: path }).strict()], {
      error: "heads must be the export's qwen3guard/ folder, or { heads: '.../heads.safetensors', tokenizer: '.../tokenizer.gguf' }",
    }),
    /**
     * Limit for one guard call (its retries included); past it the call fails as 'guard-timeout'. No default: a
     * first prompt of some thousand tokens answers megabytes of hidden states, so the right limit depends on
     * the model, the server and the network.
     */
    timeoutMs: z.number({ error: 'timeoutMs must be given: the limit in ms for one guard call (e.g. 10000)' }).int().min(1).max(600_000),
  })
  .strict();

export type SglangGuardOptions = z.input<typeof sglangGuardOptionsSchema>;
export type ResolvedSglangGuardOptions = z.output<typeof sglangGuardOptionsSchema>;
