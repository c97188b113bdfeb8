import { GuardModelError } from '../guard/errors.js';
import type { SglangGuardOptions } from './options.js';
import type { SglangGuard } from './sglang-guard.js';

let factory: ((options: SglangGuardOptions) => SglangGuard) | null = null;

/**
 * Called by the Node entry point (src/local/provide.ts): the SGLang backend reads the export's files and loads
 * its tokenizer with node-llama-cpp, so the Edge build, which never calls this, has none.
 */
export function provideSglangGuard(make: (options: SglangGuardOptions) => SglangGuard): void {
  factory = make;
}

/** The SGLang guard's constructor, or an error saying that this runtime has none and what to use instead. */
export function sglangGuardFactory(what: string): (options: SglangGuardOptions) => SglangGuard {
  if (!factory) {
    throw new GuardModelError(
      `${what} reads the export's heads and tokenizer files and tokenizes with node-llama-cpp in this process, which needs Node.js; this build of ai-sdk-qwen3guard (Edge, browser, workers) has no such backend. ` +
        "Use it from a Node.js process, or run the guard as a service (`npx qwen3guard serve`) and use Qwen3Guard.remote({ baseURL: 'https://guard.example' }) here.",
    );
  }
  return factory;
}
