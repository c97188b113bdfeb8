import { provideLocalGen } from '../gen/local-engine.js';
import { provideLocalGuard } from '../guard/local-engine.js';

/**
 * Makes `Qwen3Guard.load` and `Qwen3GuardGen.load` (and the middleware's `modelPath` / `model`) load models in
 * this process. The loaders are imported on first use: node-llama-cpp loads only when a local model does.
 */
export function provideLocalEngines(): void {
  provideLocalGuard(async () => (await import('./load.js')).loadStreamGuard);
  provideLocalGen(async () => (await import('./load.js')).loadGen);
}
