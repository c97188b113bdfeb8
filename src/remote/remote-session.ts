import { GuardStateError } from '../guard/errors.js';
import { validateMessages, validatePart, validateText } from '../guard/input-validation.js';
import { zeroCounts, type SessionOptions, type StreamGuardSession, type TokenCounts } from '../guard/stream-guard.js';
import type { GuardMessage, PromptVerdict, ResponsePart, TokenVerdict } from '../guard/types.js';
import { HEADERS, PATHS, sessionAnswerSchema, sessionCreatedSchema, type SessionAnswer, type SessionCall } from '../protocol/wire.js';
import { anySignal } from '../shared/abort.js';
import type { ConversationKeys } from './conversation-key.js';
import type { ServiceClient } from './service-client.js';

type Call = SessionCall extends infer C ? (C extends SessionCall ? Omit<C, 'seq'> : never) : never;

/** What a session needs of its guard. */
export interface SessionService {
  client: ServiceClient;
  keys: ConversationKeys;
  /** Adds a session's new token counts to the guard's. */
  counted(delta: TokenCounts): void;
  closed(session: RemoteSession): void;
}

/**
 * One conversation on a guard service: the prompt check creates the session on the server (one request), each
 * later call is one request numbered by `seq`, so that a retry after a lost answer is answered from the
 * server's record instead of running twice. Calls are serialized, as a local session's are.
 */
export class RemoteSession implements StreamGuardSession {
  readonly counts: TokenCounts = zeroCounts();
  private id: string | null = null;
  private seq = 0;
  private queue: Promise<unknown> = Promise.resolve();
  private readonly headers: Record<string, string> = {};
  /** Aborts calls in flight when the session is disposed. */
  private readonly abort = new AbortController();
  private readonly signal: AbortSignal;
  private disposed = false;

  constructor(
    private readonly service: SessionService,
    private readonly options: SessionOptions,
  ) {
    this.signal = anySignal(options.signal, this.abort.signal);
  }

  checkPrompt(messages: readonly GuardMessage[], options: { knownVerdict?: PromptVerdict } = {}): Promise<PromptVerdict> {
    return this.serial(async () => {
      validateMessages(messages);
      if (this.id) throw new GuardStateError('checkPrompt: this session already checked its conversation');
      this.headers[HEADERS.conversation] = await this.service.keys.of(messages, this.options.conversationId);
      const created = await this.service.client.call({
        method: 'POST',
        path: PATHS.sessions,
        body: { messages: messages.map(({ role, content, reasoning }) => ({ role, content, ...(reasoning !== undefined ? { reasoning } : {}) })), knownVerdict: options.knownVerdict },
        headers: { ...this.headers, [HEADERS.idempotency]: crypto.randomUUID() },
        schema: sessionCreatedSchema,
        idempotent: true,
        signal: this.signal,
        what: 'the prompt check',
      });
      this.id = created.session;
      this.count(created.counts);
      if (this.disposed) this.release();
      return created.verdict;
    });
  }

  appendText(part: ResponsePart, text: string, options: { final?: boolean; ahead?: string } = {}): Promise<TokenVerdict[]> {
    validatePart(part, 'appendText');
    validateText(text, 'appendText');
    if (options.ahead !== undefined) validateText(options.ahead, 'appendText (ahead)');
    return this.op({ op: 'append', part, text, final: options.final, ahead: options.ahead }, 'an append').then((a) => a.verdicts ?? []);
  }

  speculate(part: ResponsePart, text: string): Promise<void> {
    validatePart(part, 'speculate');
    validateText(text, 'speculate');
    return this.op({ op: 'speculate', part, text }, 'a speculation').then(() => undefined);
  }

  end(): Promise<TokenVerdict[]> {
    return this.op({ op: 'end' }, 'the end of the response').then((a) => a.verdicts ?? []);
  }

  rollbackTo(last: TokenVerdict | null): Promise<void> {
    return this.op({ op: 'rollback', to: last?.index ?? null }, 'a rollback').then(() => undefined);
  }

  countTokens(text: string): Promise<number> {
    validateText(text, 'countTokens');
    return this.op({ op: 'count', text }, 'a token count').then((a) => a.count ?? 0);
  }

  /** Ends the session on the server (its conversation stays cached there); calls in flight are abandoned. */
  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    this.abort.abort(new Error('This GuardSession was disposed'));
    this.service.closed(this);
    await this.release();
  }

  private async release(): Promise<void> {
    const id = this.id;
    if (!id) return;
    this.id = null;
    // Best effort: a session the server cannot be told about times out there (its idle timeout).
    await this.service.client
      .call({ method: 'DELETE', path: `${PATHS.sessions}/${encodeURIComponent(id)}`, headers: this.headers, schema: null, idempotent: true, what: 'the end of the session' })
      .catch(() => undefined);
  }

  private op(call: Call, what: string): Promise<SessionAnswer> {
    return this.serial(async () => {
      if (this.disposed) throw new GuardStateError(`${what}: this GuardSession was disposed`);
      if (!this.id) throw new GuardStateError(`${what}: call checkPrompt(messages) first`);
      const seq = ++this.seq;
      const answer = await this.service.client.call({
        method: 'POST',
        path: `${PATHS.sessions}/${encodeURIComponent(this.id)}`,
        body: { ...call, seq },
        headers: this.headers,
        schema: sessionAnswerSchema,
        idempotent: true,
        signal: this.signal,
        what,
      });
      this.count(answer.counts);
      return answer;
    });
  }

  /** The server's cumulative counts for this session: the guard's stats get what is new. */
  private count(counts: TokenCounts): void {
    const delta = zeroCounts();
    for (const key of Object.keys(delta) as Array<keyof TokenCounts>) {
      delta[key] = Math.max(0, counts[key] - this.counts[key]);
      this.counts[key] = counts[key];
    }
    this.service.counted(delta);
  }

  private serial<T>(task: () => Promise<T>): Promise<T> {
    const run = this.queue.then(task);
    this.queue = run.catch(() => undefined);
    return run;
  }
}
