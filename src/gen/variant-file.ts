import { GuardModelError } from '../guard/errors.js';
import { detectVariant, wrongVariantMessage, type GuardVariant } from '../format/variant.js';

/** The variant of a GGUF file, read from its header only (no weights are loaded). */
export async function detectVariantOfFile(path: string): Promise<GuardVariant> {
  // node-llama-cpp on demand: importing this package must not load native code.
  const { readGgufFileInfo } = await import('node-llama-cpp');
  const info = await readGgufFileInfo(path, { readTensorInfo: false });
  return detectVariant(info.metadata);
}

/** Throws a GuardModelError unless `path` holds `wanted`. */
export async function requireVariant(path: string, wanted: 'stream' | 'gen'): Promise<void> {
  const found = await detectVariantOfFile(path).catch(() => 'unknown' as const);
  if (found !== wanted) throw new GuardModelError(wrongVariantMessage(path, found, wanted));
}
