import { GuardModelError } from '../guard/errors.js';
import type { GenBackend } from './backend.js';
import type { GenOptions, ResolvedGenOptions } from './options.js';

/** Loads Gen in this process (node-llama-cpp): the model found (a path or a pulled name) and its backend. */
export type LocalGenLoader = (options: GenOptions) => Promise<{ options: ResolvedGenOptions; backend: GenBackend }>;

let provider: (() => Promise<LocalGenLoader>) | null = null;

/** Called by the Node entry point with a dynamic import, so that node-llama-cpp loads only when a local Gen does. */
export function provideLocalGen(load: () => Promise<LocalGenLoader>): void {
  provider = load;
}

export async function localGenLoader(): Promise<LocalGenLoader> {
  if (!provider) {
    throw new GuardModelError(
      'Qwen3GuardGen.load runs Gen in this process, which needs Node.js and node-llama-cpp; this build of ai-sdk-qwen3guard (Edge, browser, workers) has no local engine. ' +
        "Serve Gen (`npx qwen3guard serve --model gen.gguf`, vLLM, SGLang) and use Qwen3GuardGen.remote({ baseURL, model }) instead.",
    );
  }
  return provider();
}
