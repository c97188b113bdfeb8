import { z } from 'zod';
import { guardOptionsSchema } from '../guard/options.js';

/**
 * Options of `Qwen3GuardGen.load`: the Stream guard's model, backend and context options (same names, same
 * checks), plus how Controversial is reported.
 */
export const genOptionsSchema = guardOptionsSchema
  .pick({ modelPath: true, model: true, cacheDir: true, pull: true, threads: true, gpu: true, contextSize: true, maxSessions: true, maxWaiting: true, batchSize: true, kvCacheType: true, flashAttention: true, logLevel: true })
  .extend({
    /** Controversial as itself ('raw', the model's three-way answer), as Unsafe ('strict') or as Safe ('loose'). */
    mode: z.enum(['raw', 'strict', 'loose']).default('raw'),
    /** Most tokens generated for a category list (a list of all names is about 40). */
    maxCategoryTokens: z.number().int().min(8).max(512).default(64),
  })
  .strict();

export const genLoadSchema = genOptionsSchema
  .refine((o) => (o.modelPath === undefined) !== (o.model === undefined), {
    message: "give either modelPath (a Qwen3Guard-Gen .gguf file) or model (a pulled model such as 'qwen3guard-gen-0.6b'), exactly one",
    path: ['modelPath'],
  })
  .refine((o) => o.model !== undefined || (o.cacheDir === undefined && !o.pull), { message: 'cacheDir and pull apply only with model', path: ['cacheDir'] });

export type GenOptions = z.input<typeof genOptionsSchema>;
export type ResolvedGenOptions = Omit<z.output<typeof genOptionsSchema>, 'modelPath'> & { modelPath: string };
