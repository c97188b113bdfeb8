import type { z } from 'zod';
import { RemoteGuardError, type RemoteFailureCode } from '../guard/errors.js';
import { errorBodySchema } from '../protocol/wire.js';
import { linkSignals, sleep } from '../shared/abort.js';
import type { ResolvedRemoteGuardOptions } from './options.js';

export interface ServiceCall<T> {
  method: 'GET' | 'POST' | 'DELETE';
  path: string;
  body?: unknown;
  headers?: Record<string, string>;
  /** The answer's shape; null for a body-less answer (204). */
  schema: z.ZodType<T> | null;
  /** Whether a retry is safe: the call is idempotent (a session call's seq, an idempotency key). */
  idempotent: boolean;
  /** The caller's abort: it ends the call at once with its reason (not a guard failure). */
  signal?: AbortSignal;
  /** For messages: what the call does ('the prompt check'). */
  what: string;
  /**
   * When the guard call this request serves began (performance.now()): the deadline is `timeoutMs` from then,
   * so that a guard call made of several requests still ends within it. Default: now.
   */
  startedAt?: number;
}

/** What the options give the client: where the server is, its key, and how patiently it is asked. */
export type ServiceClientOptions = Pick<ResolvedRemoteGuardOptions, 'baseURL' | 'apiKey' | 'headers' | 'timeoutMs' | 'retries' | 'retryBaseMs' | 'fetch'>;

/** How messages name the server, what to check when it answers off the protocol, and where its API key is set. */
export interface ServiceLabels {
  server: string;
  hint: string;
  apiKey: string;
}

export const GUARD_SERVICE: ServiceLabels = { server: 'The guard service', hint: 'is baseURL a qwen3guard serve of this version?', apiKey: "the server's QWEN3GUARD_API_KEY" };

const RETRY_STATUS = new Set([502, 503, 504]);

/** A failure worth another attempt, with the wait the server asked for (429's Retry-After). */
class Retryable extends Error {
  constructor(
    readonly failure: RemoteGuardError,
    readonly waitMs: number | null = null,
  ) {
    super(failure.message);
  }
}

/**
 * HTTP calls to a guard service (or a serving engine, named by `labels`): a deadline per call (`timeoutMs`,
 * retries and backoff included), retries only where they are safe, and every failure a RemoteGuardError whose
 * code says how it failed.
 */
export class ServiceClient {
  private readonly fetch: typeof fetch;
  readonly root: string;

  constructor(
    private readonly options: ServiceClientOptions,
    private readonly labels: ServiceLabels = GUARD_SERVICE,
  ) {
    this.fetch = options.fetch ?? ((input, init) => globalThis.fetch(input, init));
    this.root = options.baseURL.replace(/\/+$/, '');
  }

  async call<T>(call: ServiceCall<T>): Promise<T> {
    const started = call.startedAt ?? performance.now();
    const budget = this.options.timeoutMs - (performance.now() - started);
    if (budget <= 0) throw this.timedOut(call);
    const deadline = AbortSignal.timeout(Math.ceil(budget));
    const { signal, release } = linkSignals(call.signal, deadline);
    try {
      return await this.attempts(call, signal, deadline, started);
    } finally {
      release();
    }
  }

  private timedOut(call: ServiceCall<unknown>): RemoteGuardError {
    return new RemoteGuardError(`${this.labels.server} did not answer ${call.what} within ${this.options.timeoutMs} ms (timeoutMs, ${this.root})`, 'guard-timeout');
  }

  private async attempts<T>(call: ServiceCall<T>, signal: AbortSignal, deadline: AbortSignal, started: number): Promise<T> {
    const { timeoutMs, retries, retryBaseMs } = this.options;
    const timedOut = () => this.timedOut(call);
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.attempt(call, signal);
      } catch (error) {
        if (call.signal?.aborted) throw call.signal.reason;
        if (deadline.aborted) throw timedOut();
        if (!(error instanceof Retryable)) throw error;
        const left = timeoutMs - (performance.now() - started);
        const wait = error.waitMs ?? retryBaseMs * 2 ** attempt;
        if (!call.idempotent || attempt >= retries || wait >= left) throw error.failure;
        await sleep(wait, signal).catch(() => undefined);
        if (call.signal?.aborted) throw call.signal.reason;
        if (deadline.aborted) throw timedOut();
      }
    }
  }

  private async attempt<T>(call: ServiceCall<T>, signal: AbortSignal): Promise<T> {
    const headers: Record<string, string> = { accept: 'application/json', ...this.options.headers, ...call.headers };
    if (this.options.apiKey) headers.authorization = `Bearer ${this.options.apiKey}`;
    if (call.body !== undefined) headers['content-type'] = 'application/json';
    let response: Response;
    try {
      response = await this.fetch(`${this.root}${call.path}`, { method: call.method, headers, body: call.body === undefined ? undefined : JSON.stringify(call.body), signal });
    } catch (error) {
      if (signal.aborted) throw error;
      throw new Retryable(new RemoteGuardError(`${this.labels.server} at ${this.root} could not be reached for ${call.what} (${describe(error)})`, 'guard-unavailable'));
    }
    let text: string;
    try {
      text = await response.text();
    } catch (error) {
      if (signal.aborted) throw error;
      // The connection broke mid-answer (the server died).
      throw new Retryable(new RemoteGuardError(`${this.labels.server} at ${this.root} broke off its answer to ${call.what} (${describe(error)})`, 'guard-unavailable', response.status));
    }
    if (response.ok) return this.parse(call, response.status, text);
    throw this.failure(call, response, text);
  }

  private parse<T>(call: ServiceCall<T>, status: number, text: string): T {
    if (!call.schema) return undefined as T;
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      throw new RemoteGuardError(`${this.labels.server} at ${this.root} answered ${call.what} with a body that is not JSON (status ${status}): ${this.labels.hint}`, 'guard-unavailable', status);
    }
    const parsed = call.schema.safeParse(json);
    if (!parsed.success) {
      throw new RemoteGuardError(`${this.labels.server} at ${this.root} answered ${call.what} with a body that is not the protocol's (${parsed.error.issues[0]?.message ?? 'invalid'}): ${this.labels.hint}`, 'guard-unavailable', status);
    }
    return parsed.data;
  }

  private failure(call: ServiceCall<unknown>, response: Response, text: string): Error {
    const { status } = response;
    const json = safeJson(text);
    const body = errorBodySchema.safeParse(json);
    const code = body.success ? body.data.error.code : null;
    const message = errorMessage(json);
    const said = message === null ? '' : `: ${message}`;
    const fail = (kind: RemoteFailureCode, message: string) => new RemoteGuardError(`${message} (HTTP ${status}${said})`, kind, status);
    if (status === 401 || status === 403) return fail('guard-unauthorized', `${this.labels.server} at ${this.root} refused the API key for ${call.what}: set apiKey to ${this.labels.apiKey}`);
    if (code === 'unknown-session' || code === 'out-of-order') return fail('guard-session-lost', `${this.labels.server} no longer knows this session (it restarted, timed it out, or another instance answered) during ${call.what}`);
    if (status === 429) {
      const wait = Number(response.headers.get('retry-after'));
      return new Retryable(fail('guard-busy', `${this.labels.server} is busy and refused ${call.what}`), Number.isFinite(wait) && wait >= 0 ? wait * 1000 : null);
    }
    if (status === 400 || status === 413) return fail('guard-rejected', `${this.labels.server} refused ${call.what}`);
    if (RETRY_STATUS.has(status)) return new Retryable(fail('guard-unavailable', `${this.labels.server} at ${this.root} is unavailable for ${call.what}`));
    if (status === 500) return fail('guard-failed', `The guard failed on ${call.what} on the server`);
    return fail('guard-unavailable', `${this.labels.server} at ${this.root} answered ${call.what} with an unexpected status: ${this.labels.hint}`);
  }
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

/** The message of an error body: the protocol's `{ error: { message } }` (SGLang's too), or a top-level `message` or `detail`. */
function errorMessage(json: unknown): string | null {
  if (typeof json !== 'object' || json === null) return null;
  const { error, message, detail } = json as { error?: { message?: unknown }; message?: unknown; detail?: unknown };
  const found = [error?.message, message, detail].find((m) => typeof m === 'string');
  return typeof found === 'string' ? found.slice(0, 500) : null;
}

function describe(error: unknown): string {
  const cause = (error as { cause?: { code?: string; message?: string } })?.cause;
  return cause?.code ?? cause?.message ?? (error instanceof Error ? error.message : String(error));
}
