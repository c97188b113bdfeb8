import { provideLocalGen } from '../gen/local-engine.js';
import { provideLocalGuard } from '../guard/local-engine.js';
import { provideSglangGuard } from '../sglang/engine-provider.js';
import { SglangGuard } from '../sglang/sglang-guard.js';

/**
 * Makes `Qwen3Guard.load` and `Qwen3GuardGen.load` (and the middleware's `modelPath` / `model`) load models in
 * this process, and `Qwen3Guard.sglang` read its files here. The loaders are imported on first use:
 * node-llama-cpp loads only when a local model (or the SGLang guard's tokenizer) does.
 */
export function provideLocalEngines(): void {
  provideLocalGuard(async () => (await import('./load.js')).loadStreamGuard);
  provideLocalGen(async () => (await import('./load.js')).loadGen);
  provideSglangGuard((options) => new SglangGuard(options));
}
