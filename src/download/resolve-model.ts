import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { GuardModelError } from '../guard/errors.js';
import { defaultCacheDir } from './cache-layout.js';
import { parseModelName, publishedRepo } from './models.js';
import { pullModel } from './pull.js';

export interface ModelRequest {
  /** `qwen3guard-stream-0.6b`, `-4b`, `-8b`, `qwen3guard-gen-0.6b` etc., optionally with `-q8_0` / `-f16` / `-f32`; or another cached name. */
  model: string;
  cacheDir?: string;
  /** Download and convert a published model that is not cached yet. */
  pull?: boolean;
}

/** The cached GGUF a model name stands for; absent, it is pulled (with `pull`) or the error gives the command to run. */
export async function resolveModelPath(request: ModelRequest): Promise<string> {
  const name = parseModelName(request.model);
  if (!name) throw new GuardModelError(`guard.model: '${request.model}' is not a model name such as 'qwen3guard-stream-0.6b' (a .gguf path goes in modelPath)`);
  const cacheDir = request.cacheDir ?? defaultCacheDir();
  const path = join(cacheDir, `${name.base}-${name.type}.gguf`);
  if (existsSync(path)) return path;
  if (request.pull && name.size && name.variant) {
    return (await pullModel({ repo: publishedRepo(name.variant, name.size), type: name.type, cacheDir })).output;
  }
  const flags = `${name.type === 'q8_0' ? '' : ` --type ${name.type}`}${request.cacheDir ? ` --cache ${request.cacheDir}` : ''}`;
  const fix = name.size
    ? `run \`npx qwen3guard pull ${name.variant === 'gen' ? 'gen-' : ''}${name.size}${flags}\` once (or pass pull: true to download it on first use)`
    : `pull it with \`npx qwen3guard pull <owner/repo>${flags}\`; \`npx qwen3guard list${request.cacheDir ? ` --cache ${request.cacheDir}` : ''}\` shows what is cached`;
  throw new GuardModelError(`guard.model: ${request.model} is not in the model cache (no ${path}): ${fix}`);
}
