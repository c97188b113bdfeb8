import { Qwen3Guard } from '../engine/guard.js';
import { checkCategories } from '../policy/categories.js';
import { describeValue, OptionsError } from '../shared/validation.js';
import type { ResolvedMiddlewareOptions } from './options.js';

/** When a failed load is tried again: base, doubled per failure, capped. Internal (tests move the clock). */
export interface RetryOptions {
  baseMs?: number;
  maxMs?: number;
  /** Milliseconds, monotonic. The backoff compares timestamps: no timer keeps the process alive. */
  now?: () => number;
}

const loadFailures = new WeakSet<object>();

/** Whether `error` is why the guard could not be loaded (metadata gives it its own code). */
export const isLoadFailure = (error: unknown): boolean => typeof error === 'object' && error !== null && loadFailures.has(error);

const asError = (reason: unknown) => (reason instanceof Error ? reason : new Error(`the guard promise rejected with ${describeValue(reason)}`));

/**
 * The guard, once: given, awaited from a promise, or loaded from `modelPath` or `model` on first use. A failed load is
 * retried with backoff by a later request (requests meanwhile fail at once with the same error); a failure
 * retrying cannot fix (a rejected promise, category names the guard lacks) is kept. Without `onError`, each
 * distinct cause is logged once with console.warn.
 */
export class GuardLoader {
  private guard: Qwen3Guard | null = null;
  private loading: Promise<Qwen3Guard> | null = null;
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
    if (given instanceof Qwen3Guard) this.guard = this.accept(given);
    // A promise is handled now, so that its rejection is never unhandled before the first request.
    else if (given) this.start(Promise.resolve(given), false);
  }

  /** The guard when it is loaded and usable. */
  get loaded(): Qwen3Guard | null {
    return this.guard;
  }

  get(): Promise<Qwen3Guard> {
    if (this.guard) return Promise.resolve(this.guard);
    if (this.loading) return this.loading;
    if (this.failure && this.now() < this.failure.retryAt) return Promise.reject(this.failure.error);
    return this.start(Qwen3Guard.load({ ...this.options.guardOptions, modelPath: this.options.modelPath, model: this.options.model }), true);
  }

  private start(load: Promise<Qwen3Guard>, owned: boolean): Promise<Qwen3Guard> {
    const loading = load
      .then(async (guard) => {
        try {
          this.guard = this.accept(guard);
        } catch (error) {
          if (owned) await guard.dispose().catch(() => undefined);
          throw error;
        }
        this.failure = null;
        this.loading = null;
        return guard;
      })
      .catch((reason: unknown) => {
        this.loading = null;
        throw this.failed(asError(reason), !owned);
      });
    this.loading = loading;
    loading.catch(() => undefined); // requests get the error; the warning reports it
    return loading;
  }

  /** A guard is usable when it is one and knows every category the policies name. */
  private accept(guard: unknown): Qwen3Guard {
    if (!(guard instanceof Qwen3Guard)) throw new OptionsError(`Invalid options: guard: the promise resolved to ${describeValue(guard)}, expected a Qwen3Guard (from Qwen3Guard.load)`);
    checkCategories(guard.layout, this.options, 'qwen3GuardMiddleware.');
    return guard;
  }

  private failed(error: Error, permanent: boolean): Error {
    loadFailures.add(error);
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
