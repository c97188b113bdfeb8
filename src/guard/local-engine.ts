import { GuardModelError } from './errors.js';
import type { GuardOptions } from './options.js';
import type { StreamGuard } from './stream-guard.js';

/** Loads an in-process Stream guard (node-llama-cpp): the Node entry point provides it, the Edge build does not. */
export type LocalGuardLoader = (options: GuardOptions) => Promise<StreamGuard>;

let provider: (() => Promise<LocalGuardLoader>) | null = null;

/** Called by the Node entry point with a dynamic import, so that node-llama-cpp loads only when a local guard does. */
export function provideLocalGuard(load: () => Promise<LocalGuardLoader>): void {
  provider = load;
}

/** The local loader, or an error saying that this runtime has none and what to use instead. */
export async function localGuardLoader(what: string): Promise<LocalGuardLoader> {
  if (!provider) {
    throw new GuardModelError(
      `${what} runs the guard in this process, which needs Node.js and node-llama-cpp; this build of ai-sdk-qwen3guard (Edge, browser, workers) has no local engine. ` +
        "Run the guard as a service (`npx qwen3guard serve`) and use Qwen3Guard.remote({ baseURL: 'https://guard.example' }) instead.",
    );
  }
  return provider();
}
