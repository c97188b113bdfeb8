/**
 * One signal that aborts when any of `signals` does, with its reason (`AbortSignal.any`; absent ones are skipped).
 * Vercel's Edge runtime has `AbortSignal.timeout` but no `AbortSignal.any` (edge-runtime 4's primitives): there the
 * listeners are added by hand and taken off once any input aborts, or by `release` when the work ends first, so
 * that short calls under a long-lived signal (a session's) do not pile listeners onto it.
 */
export function linkSignals(...signals: Array<AbortSignal | undefined>): { signal: AbortSignal; release(): void } {
  const inputs = signals.filter((s): s is AbortSignal => s !== undefined);
  const release = () => undefined;
  if (inputs.length === 1) return { signal: inputs[0], release };
  if (typeof AbortSignal.any === 'function') return { signal: AbortSignal.any(inputs), release };
  const controller = new AbortController();
  const aborted = inputs.find((s) => s.aborted);
  if (aborted) {
    controller.abort(aborted.reason);
    return { signal: controller.signal, release };
  }
  const unlink = () => inputs.forEach((s, i) => s.removeEventListener('abort', listeners[i]));
  const listeners = inputs.map((input) => {
    const listener = () => {
      unlink();
      controller.abort(input.reason);
    };
    input.addEventListener('abort', listener);
    return listener;
  });
  return { signal: controller.signal, release: unlink };
}

/** `linkSignals` for signals that live as long as the work they guard (one request). */
export function anySignal(...signals: Array<AbortSignal | undefined>): AbortSignal {
  return linkSignals(...signals).signal;
}

/** Waits `ms`, or rejects with the signal's reason as soon as it aborts (backoff between retries). */
export function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    signal.addEventListener('abort', onAbort, { once: true });
  });
}
