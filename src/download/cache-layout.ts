import { readdir, stat } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';

/**
 * Where pulled models live: `$XDG_CACHE_HOME/qwen3guard`, else `~/.cache/qwen3guard`.
 *
 *   <cache>/<name>-<type>.gguf       converted models, only ever renamed in once complete
 *   <cache>/.partial/                downloads in progress (kept to resume) and conversions being written
 *   <cache>/checkpoints/<name>/      raw checkpoints kept with --keep-checkpoint
 */
export function defaultCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  const xdg = env.XDG_CACHE_HOME;
  return join(xdg ? resolve(xdg) : join(homedir(), '.cache'), 'qwen3guard');
}

export const PARTIAL_DIR = '.partial';
export const CHECKPOINTS_DIR = 'checkpoints';

export interface CachedModel {
  /** `qwen3guard-stream-0.6b-q8_0` */
  name: string;
  path: string;
  bytes: number;
}

export interface CacheContents {
  models: CachedModel[];
  /** Raw checkpoints kept with --keep-checkpoint. */
  checkpoints: CachedModel[];
  /** Bytes of unfinished downloads (resumable). */
  partialBytes: number;
}

async function entries(dir: string): Promise<string[]> {
  try {
    return (await readdir(dir)).sort();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw error;
  }
}

async function treeBytes(path: string): Promise<number> {
  const info = await stat(path).catch(() => null);
  if (!info) return 0;
  if (!info.isDirectory()) return info.size;
  let total = 0;
  for (const name of await entries(path)) total += await treeBytes(join(path, name));
  return total;
}

/** What the cache holds; an absent cache is an empty one. */
export async function readCache(cacheDir: string): Promise<CacheContents> {
  const models: CachedModel[] = [];
  for (const file of await entries(cacheDir)) {
    if (!file.endsWith('.gguf')) continue;
    const path = join(cacheDir, file);
    models.push({ name: file.slice(0, -'.gguf'.length), path, bytes: (await stat(path)).size });
  }
  const checkpoints: CachedModel[] = [];
  for (const name of await entries(join(cacheDir, CHECKPOINTS_DIR))) {
    const path = join(cacheDir, CHECKPOINTS_DIR, name);
    checkpoints.push({ name, path, bytes: await treeBytes(path) });
  }
  return { models, checkpoints, partialBytes: await treeBytes(join(cacheDir, PARTIAL_DIR)) };
}
