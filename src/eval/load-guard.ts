import type { EvalGuard, GuardKind } from './guard-shape.js';

/** A guard ready to evaluate, and how to let it go. */
export interface LoadedGuard {
  guard: EvalGuard;
  kind: GuardKind;
  dispose(): Promise<void>;
}

export interface GuardLoadOptions {
  /** Items evaluated at once: the guard gets as many sequences. */
  concurrency: number;
  threads?: number;
  /** Exact response-token probabilities (Stream), for the threshold sweep. */
  probabilities: boolean;
}

/**
 * Makes the guard of `--model <url>`: the client of a remote guard service. This build has none; the service's
 * client plugs in here (`runEval(args, { remoteGuard })` in src/cli/eval-command.ts), returning any guard of
 * the `EvalStreamGuard` or `EvalGenGuard` shape.
 */
export type RemoteGuardFactory = (url: string, options: GuardLoadOptions) => Promise<LoadedGuard>;

/** Loads a local GGUF as the guard its header says it is: Qwen3Guard-Gen or Qwen3Guard-Stream. */
export async function loadLocalGuard(modelPath: string, options: GuardLoadOptions): Promise<LoadedGuard> {
  // Imported here: node-llama-cpp takes a while to load, and argument and data errors need not wait for it.
  const { detectVariantOfFile } = await import('../gen/variant-file.js');
  const common = { modelPath, threads: options.threads, gpu: 'auto' as const, maxSessions: options.concurrency };
  // A file that cannot be read as a GGUF goes the Stream way, whose loader explains what is wrong with it.
  if ((await detectVariantOfFile(modelPath).catch(() => 'unknown')) === 'gen') {
    const { Qwen3GuardGen } = await import('../gen/classifier.js');
    const guard = await Qwen3GuardGen.load(common);
    return { guard, kind: 'gen', dispose: () => guard.dispose() };
  }
  const { LocalGuard } = await import('../engine/guard.js');
  const guard = await LocalGuard.load({ ...common, responseProbabilities: options.probabilities });
  return { guard, kind: 'stream', dispose: () => guard.dispose() };
}

/**
 * `--model <url>`: a `qwen3guard serve` (API key from QWEN3GUARD_API_KEY), evaluated through the remote client
 * it serves: its Stream model, or its Gen model when it serves Gen only. A served Stream model reports response
 * probabilities (for the threshold sweep) only when serve runs with --response-probabilities.
 */
export const loadRemoteGuard: RemoteGuardFactory = async (url, options) => {
  const { remoteGuardOptionsSchema } = await import('../remote/options.js');
  const { ServiceClient } = await import('../remote/service-client.js');
  const { infoSchema, PATHS } = await import('../protocol/wire.js');
  const { parseOptions } = await import('../shared/validation.js');
  const remote = parseOptions(remoteGuardOptionsSchema, { baseURL: url, apiKey: process.env.QWEN3GUARD_API_KEY || undefined, timeoutMs: 300_000 }, 'eval --model');
  const info = await new ServiceClient(remote).call({ method: 'GET', path: PATHS.info, schema: infoSchema, idempotent: true, what: 'what it serves (GET /v1/info)' });
  if (info.stream) {
    const { RemoteGuard } = await import('../remote/remote-guard.js');
    const guard = new RemoteGuard(remote);
    return { guard, kind: 'stream', dispose: () => guard.dispose() };
  }
  const { Qwen3GuardGen } = await import('../gen/classifier.js');
  const guard = Qwen3GuardGen.remote({ baseURL: `${remote.baseURL.replace(/\/+$/, '')}/v1`, model: info.gen!.model, apiKey: remote.apiKey, maxConcurrency: options.concurrency, timeoutMs: 300_000 });
  return { guard, kind: 'gen', dispose: () => guard.dispose() };
};
