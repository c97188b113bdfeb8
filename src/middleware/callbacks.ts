/** A callback's own failure must not break the stream it reports on. */
export function safeCall<A extends unknown[]>(fn: ((...args: A) => unknown) | undefined, ...args: A): void {
  try {
    const result = fn?.(...args);
    // An async callback's rejection would be unhandled (a default Node process exits on one).
    if (result && typeof (result as PromiseLike<unknown>).then === 'function') (result as PromiseLike<unknown>).then(undefined, () => undefined);
  } catch {
    // reported nowhere on purpose: the app's callback, not the guard, failed
  }
}
