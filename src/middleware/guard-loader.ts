import { localGuardLoader } from '../guard/local-engine.js';
import { isStreamGuard, type GuardInfo, type StreamGuard } from '../guard/stream-guard.js';
import { checkCategories } from '../policy/categories.js';
import { describeValue, OptionsError } from '../shared/validation.js';
import { markLoadFailure } from './failures.js';
import type { ResolvedMiddlewareOptions } from './options.js';

/** When a failed load is tried again: base, doubled per failure, capped. Internal (tests move the clock). */
export interface RetryOptions {
  baseMs?: number;
  maxMs?: number;
  /** Milliseconds, monotonic. The backoff compares timestamps: no timer keeps the process alive. */
  now?: () => number;
}

/** A guard that can be used, with what it is. */
export interface ReadyGuard {
  guard: StreamGuard;
  info: GuardInfo;
}

const asError = (reason: unknown) => (reason instanceof Error ? reason : new Error(`the guard promise rejected with ${describeValue(reason)}`));

/**
 * The guard, once: given, awaited from a promise, or loaded from `modelPath` or `model` on first use; a remote
 * guard is asked what it is on first use. A failed load (or a server that did not answer) is retried with
 * backoff by a later request (requests meanwhile fail at once with the same error); a failure retrying cannot
 * fix (a rejected promise, category names the guard lacks) is kept. Without `onError`, each distinct cause is
 * logged once with console.warn.
 */
export class GuardLoader {
  private ready: ReadyGuard | null = null;
  /** A guard given (or resolved from a promise) that is not ready yet: a remote one to ask. */
  private given: StreamGuard | null = null;
  private loading: Promise<ReadyGuard> | null = null;
  private failure: { error: Error; retryAt: number } | null = null;
  private attempts = 0;
  private readonly warned = new Set<string>();
  private readonly baseMs: number;
  private readonly maxMs: number;
  private readonly now: () => number;

  constructor(
    private readonly options: ResolvedMiddlewareOptions,
    retry: RetryOptions = {},
  ) {
    this.baseMs = retry.baseMs ?? 1000;
    this.maxMs = retry.maxMs ?? 60_000;
    this.now = retry.now ?? (() => performance.now());
    const given = options.guard;
    if (isStreamGuard(given)) {
      this.given = given;
      // A local guard knows its labels now: bad category names throw at creation.
      if (given.info) this.ready = this.accept(given, given.info);
    } else if (given) {
      // A promise is handled now, so that its rejection is never unhandled before the first request.
      this.start(
        Promise.resolve(given).then((guard) => {
          if (!isStreamGuard(guard)) throw new OptionsError(`Invalid options: guard: the promise resolved to ${describeValue(guard)}, expected a Qwen3Guard (from Qwen3Guard.load or Qwen3Guard.remote)`);
          this.given = guard;
          return guard.info ? this.accept(guard, guard.info) : this.connect(guard);
        }),
        true,
      );
    }
  }

  /** The guard when it is usable. */
  get loaded(): ReadyGuard | null {
    return this.ready;
  }

  get(): Promise<ReadyGuard> {
    if (this.ready) return Promise.resolve(this.ready);
    if (this.loading) return this.loading;
    if (this.failure && this.now() < this.failure.retryAt) return Promise.reject(this.failure.error);
    if (this.given) return this.start(this.connect(this.given), false);
    const load = localGuardLoader('qwen3GuardMiddleware({ modelPath | model })').then((loader) => loader({ ...this.options.guardOptions, modelPath: this.options.modelPath, model: this.options.model }));
    // A guard loaded here that the policies cannot use (category names) is disposed again.
    const connected = load.then((guard) => this.connect(guard).catch(async (error: unknown) => Promise.reject(await guard.dispose().then(() => error, () => error))));
    return this.start(connected, false);
  }

  private async connect(guard: StreamGuard): Promise<ReadyGuard> {
    return this.accept(guard, await guard.ready());
  }

  /** `permanent`: a failure is kept (a rejected promise), not retried. */
  private start(load: Promise<ReadyGuard>, permanent: boolean): Promise<ReadyGuard> {
    const loading = load
      .then((ready) => {
        this.ready = ready;
        this.failure = null;
        this.loading = null;
        return ready;
      })
      .catch((reason: unknown) => {
        this.loading = null;
        throw this.failed(asError(reason), permanent);
      });
    this.loading = loading;
    loading.catch(() => undefined); // requests get the error; the warning reports it
    return loading;
  }

  /** A guard is usable when it knows every category the policies name. */
  private accept(guard: StreamGuard, info: GuardInfo): ReadyGuard {
    checkCategories(info, this.options, 'qwen3GuardMiddleware.');
    return { guard, info };
  }

  private failed(error: Error, permanent: boolean): Error {
    markLoadFailure(error);
    this.attempts++;
    const final = permanent || error instanceof OptionsError;
    const delay = Math.min(this.baseMs * 2 ** (this.attempts - 1), this.maxMs);
    this.failure = { error, retryAt: final ? Infinity : this.now() + delay };
    this.warn(error, final ? null : delay);
    return error;
  }

  /** `onError` hears of every failed request (phase 'load'); without it, one console line per cause. */
  private warn(error: Error, retryMs: number | null): void {
    if (this.options.onError) return;
    const cause = `${error.name}: ${error.message}`;
    if (this.warned.has(cause)) return;
    this.warned.add(cause);
    const effect =
      this.options.fail === 'closed' ? 'requests fail closed (every answer is refused)' : 'requests fail open (answers go out unmoderated)';
    const next = retryMs === null ? 'fix the options and restart' : `the next request after ${retryMs / 1000} s retries the load (backoff up to ${this.maxMs / 1000} s)`;
    console.warn(`qwen3guard: the guard could not be loaded, so ${effect}: ${cause}. ${next[0].toUpperCase()}${next.slice(1)}. Pass onError to handle this yourself.`);
  }
}
