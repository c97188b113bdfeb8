import { resolveModelPath } from '../download/resolve-model.js';
import { LocalGuard } from '../engine/guard.js';
import { LocalGenBackend } from '../gen/local-backend.js';
import type { LocalGenLoader } from '../gen/local-engine.js';
import { genLoadSchema, type GenOptions, type ResolvedGenOptions } from '../gen/options.js';
import { guardLoadSchema, type GuardOptions } from '../guard/options.js';
import { parseOptions } from '../shared/validation.js';

/**
 * The in-process loaders: a model name is found in the cache (or pulled), then the Stream engine or the Gen
 * backend loads the GGUF. The Node entry point imports this module on first use, so node-llama-cpp loads only
 * with a local model.
 */
export async function loadStreamGuard(options: GuardOptions): Promise<LocalGuard> {
  const { model, cacheDir, pull, ...rest } = parseOptions(guardLoadSchema, options, 'guard');
  const modelPath = rest.modelPath ?? (await resolveModelPath({ model: model!, cacheDir, pull }));
  return LocalGuard.load({ ...rest, modelPath });
}

export const loadGen: LocalGenLoader = async (options: GenOptions) => {
  const parsed = parseOptions(genLoadSchema, options, 'guard');
  const modelPath = parsed.modelPath ?? (await resolveModelPath({ model: parsed.model!, cacheDir: parsed.cacheDir, pull: parsed.pull }));
  const resolved: ResolvedGenOptions = { ...parsed, modelPath };
  return { options: resolved, backend: await LocalGenBackend.load(resolved) };
};
