import { defaultCacheDir, readCache } from '../download/cache-layout.js';
import { LIST_HELP, parseCommandLine } from './args.js';
import { megabytes } from './render.js';

/** `qwen3guard list`: the cached models, one a line (name, size, path). */
export async function runList(args: string[]): Promise<number> {
  const { values } = parseCommandLine({ args, strict: true, options: { cache: { type: 'string' }, help: { type: 'boolean', short: 'h' } } });
  if (values.help) {
    process.stdout.write(`${LIST_HELP}\n`);
    return 0;
  }
  const cacheDir = values.cache || defaultCacheDir();
  const cache = await readCache(cacheDir);
  if (cache.models.length === 0) process.stdout.write(`No models in ${cacheDir}: run 'npx qwen3guard pull 0.6B' to get one\n`);
  const width = Math.max(0, ...[...cache.models, ...cache.checkpoints].map((m) => m.name.length));
  for (const model of cache.models) process.stdout.write(`${model.name.padEnd(width)}  ${megabytes(model.bytes).padStart(10)}  ${model.path}\n`);
  for (const checkpoint of cache.checkpoints) process.stdout.write(`${checkpoint.name.padEnd(width)}  ${megabytes(checkpoint.bytes).padStart(10)}  ${checkpoint.path} (checkpoint)\n`);
  if (cache.partialBytes > 0) process.stdout.write(`Unfinished downloads: ${megabytes(cache.partialBytes)} in ${cacheDir}/.partial ('qwen3guard pull' resumes them; delete the folder to drop them)\n`);
  return 0;
}
