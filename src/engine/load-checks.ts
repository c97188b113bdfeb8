import { closeSync, existsSync, openSync, readSync, statSync } from 'node:fs';
import type { Llama } from 'node-llama-cpp';
import { GuardModelError } from '../guard/errors.js';
import type { ResolvedGuardOptions } from '../guard/options.js';

// Checks made before and around node-llama-cpp's load, whose own errors are bare (NoBinaryFoundError) or echo
// a file's bytes.

const CONVERT_HINT = 'Convert a checkpoint with: qwen3guard convert <checkpoint-dir> -o model.gguf';

/** An error's message fit for a log line: no control characters or raw bytes from a file. */
export const printable = (error: unknown) => String(error instanceof Error ? error.message : error).replace(/[^\P{C}\t\n]|\uFFFD/gu, '?').slice(0, 300);

/** Fails early, with a message naming the problem, for what node-llama-cpp would misread or echo raw. */
export function checkGgufFile(modelPath: string): void {
  if (!existsSync(modelPath)) throw new GuardModelError(`guard.modelPath: ${modelPath} does not exist. ${CONVERT_HINT}`);
  if (statSync(modelPath).isDirectory()) throw new GuardModelError(`guard.modelPath: ${modelPath} is a directory, expected a .gguf file. ${CONVERT_HINT}`);
  const magic = Buffer.alloc(4);
  try {
    const fd = openSync(modelPath, 'r');
    try {
      readSync(fd, magic, 0, 4, 0);
    } finally {
      closeSync(fd);
    }
  } catch (error) {
    throw new GuardModelError(`guard.modelPath: ${modelPath} cannot be read (${printable(error)})`);
  }
  if (magic.toString('latin1') !== 'GGUF') throw new GuardModelError(`guard.modelPath: ${modelPath} is not a GGUF file (it does not start with "GGUF"). ${CONVERT_HINT}`);
}

const PLATFORMS: Partial<Record<NodeJS.Platform, string>> = { linux: 'linux', darwin: 'mac', win32: 'win' };

/** The Llama for `wanted`; a GPU backend asked for by name that this machine cannot run says so, and what to do. */
export async function requireBackend(wanted: ResolvedGuardOptions['gpu'], loading: Promise<Llama>): Promise<Llama> {
  const unavailable = (why: string) => {
    const pkg = `@node-llama-cpp/${PLATFORMS[process.platform] ?? process.platform}-${process.arch}-${wanted}`;
    return new GuardModelError(
      `guard.gpu: the '${wanted}' backend is not available on this machine (${why}). Use gpu: 'auto' (a usable GPU, else the CPU) or gpu: false (the CPU), ` +
        `or install ${pkg} and the ${wanted} driver/runtime.`,
    );
  };
  const llama = await loading.catch((error: unknown) => {
    if (wanted === 'auto' || wanted === false) throw error;
    throw unavailable((error as Error)?.name === 'NoBinaryFoundError' ? 'node-llama-cpp found no prebuilt binary for it that runs here' : printable(error));
  });
  // node-llama-cpp may quietly fall back to the CPU (metal on Linux): a backend asked for by name must be that one.
  if (wanted !== 'auto' && wanted !== false && llama.gpu !== wanted) throw unavailable(`node-llama-cpp runs on ${llama.gpu === false ? 'the CPU' : llama.gpu} instead`);
  return llama;
}
