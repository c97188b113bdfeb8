import type { LocalGuard } from './engine/guard.js';
import { localGuardLoader } from './guard/local-engine.js';
import type { GuardOptions } from './guard/options.js';
import type { StreamGuard } from './guard/stream-guard.js';
import type { RemoteGuardOptions } from './remote/options.js';
import { RemoteGuard } from './remote/remote-guard.js';
import { sglangGuardFactory } from './sglang/engine-provider.js';
import type { SglangGuardOptions } from './sglang/options.js';
import type { SglangGuard } from './sglang/sglang-guard.js';

/** A Qwen3Guard-Stream guard, wherever it runs: what `qwen3GuardMiddleware({ guard })` takes. */
export type Qwen3Guard = StreamGuard;

/**
 * Where the Stream guard runs: `load` in this process (node-llama-cpp, imported on first use), a guard served
 * elsewhere (`remote`), or a stock SGLang server with the heads applied here (`sglang`). Every middleware
 * feature works the same with each.
 */
export const Qwen3Guard = {
  /** Loads a GGUF made by `qwen3guard convert` (`modelPath`) or a model `qwen3guard pull` cached (`model`). Options are validated first. */
  async load(options: GuardOptions): Promise<LocalGuard> {
    const loader = await localGuardLoader('Qwen3Guard.load');
    return (await loader(options)) as LocalGuard;
  },

  /**
   * A guard served by `qwen3guard serve` (or several behind a load balancer), over HTTP: every middleware feature
   * works the same, and this process loads no model and no native code (the Edge runtime included). Options are
   * validated here; nothing is sent until the first request.
   */
  remote(options: RemoteGuardOptions): RemoteGuard {
    return new RemoteGuard(options);
  },

  /**
   * Qwen3Guard-Stream on a stock SGLang server (or several behind sgl-model-gateway): the backbone of an export
   * (`qwen3guard convert --for sglang`) runs there, `heads` (the export's `qwen3guard/` folder) runs here on the
   * hidden states `/generate` returns. Options are validated here; the files load on first use (or `ready()`).
   * Node.js only (it throws in the Edge build). See docs/sglang.md.
   */
  sglang(options: SglangGuardOptions): SglangGuard {
    return sglangGuardFactory('Qwen3Guard.sglang')(options);
  },
};
