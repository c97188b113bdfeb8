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
