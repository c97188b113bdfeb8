import { randomBytes } from 'node:crypto';
import type { LocalGuard } from '../engine/guard.js';
import type { GuardSession } from '../engine/session.js';
import { GuardBusyError, GuardStateError } from '../guard/errors.js';
import { GuardInputError } from '../guard/input-validation.js';
import type { TokenCounts } from '../guard/stream-guard.js';
import type { TokenVerdict } from '../guard/types.js';
import { decideResponse } from '../policy/decision.js';
import type { SessionAnswer, SessionCall } from '../protocol/wire.js';
import type { createSessionSchema } from '../protocol/wire.js';
import type { z } from 'zod';
import { HttpError } from './http-error.js';
import type { ServerMetrics } from './metrics.js';
import type { ResolvedServeOptions } from './options.js';

/** A session as the server keeps it: the engine's session, the verdicts it returned, and its last call for replays. */
interface Served {
  session: GuardSession;
  verdicts: TokenVerdict[];
  lastSeq: number;
  last: Promise<SessionAnswer> | null;
  lastUsed: number;
  busy: number;
}

type Created = { session: string; verdict: Awaited<ReturnType<GuardSession['checkPrompt']>>; counts: TokenCounts };

/** A creation in progress or done, with the requests waiting for it (retries share one by idempotency key). */
interface Creation {
  at: number;
  result: Promise<Created>;
  claims: number;
  /** Aborted once every request for it went away: no one will learn the session's id. */
  abandoned: AbortController;
}

/** A request's hold on a creation: its result, and what to call if its client leaves before the answer. */
export interface CreationClaim {
  result: Promise<Created>;
  abandon(): void;
}

/** How long an idempotency key answers a repeated creation with the same session. */
const IDEMPOTENCY_MS = 60_000;

const snapshot = (counts: TokenCounts): TokenCounts => ({ ...counts });

/**
 * The Stream guard's sessions behind the protocol: unguessable ids, calls run in `seq` order (a repeated seq is
 * answered from the record, any other refused), idle sessions freed, creation bounded (429 past the queue).
 */
export class StreamSessions {
  private readonly sessions = new Map<string, Served>();
  private readonly creations = new Map<string, Creation>();
  private draining = false;

  constructor(
    private readonly guard: LocalGuard,
    private readonly options: ResolvedServeOptions,
    private readonly metrics: ServerMetrics,
  ) {}

  get size(): number {
    return this.sessions.size;
  }

  /**
   * Creates a session and checks its conversation; a repeated idempotency key gets the first answer again. A
   * creation every requester abandoned (its clients left before the answer) stops waiting, or is freed at once.
   */
  create(body: z.output<typeof createSessionSchema>, idempotencyKey: string | undefined): CreationClaim {
    if (this.draining) throw new HttpError('draining', 'The server is shutting down: open a session on another instance', { 'retry-after': '1' });
    if (body.messages.length > this.options.maxMessages) throw new HttpError('too-large', `messages has ${body.messages.length} entries, more than the server's limit of ${this.options.maxMessages}`);
    let creation = idempotencyKey ? this.creations.get(idempotencyKey) : undefined;
    if (!creation) {
      const abandoned = new AbortController();
      creation = { at: performance.now(), result: this.open(body, abandoned.signal), claims: 0, abandoned };
      if (idempotencyKey) {
        this.creations.set(idempotencyKey, creation);
        creation.result.catch(() => this.creations.delete(idempotencyKey));
      }
    }
    const held = creation;
    held.claims++;
    let abandoned = false;
    return {
      result: held.result,
      abandon: () => {
        if (abandoned || --held.claims > 0) return;
        abandoned = true;
        held.abandoned.abort();
        if (idempotencyKey) this.creations.delete(idempotencyKey);
        held.result.then((created) => this.remove(created.session), () => undefined);
      },
    };
  }

  private async open(body: z.output<typeof createSessionSchema>, abandoned: AbortSignal): Promise<Created> {
    const waited = performance.now();
    let session: GuardSession;
    try {
      session = await this.guard.createSession({ signal: AbortSignal.any([AbortSignal.timeout(this.options.queueTimeoutMs), abandoned]) });
    } catch (error) {
      if (abandoned.aborted) throw new HttpError('bad-request', 'The client went away before its session was created');
      this.metrics.rejected.inc({ reason: 'busy' });
      const why = error instanceof GuardBusyError ? 'every session is in use and the queue is full' : `no session became free within ${this.options.queueTimeoutMs} ms`;
      throw new HttpError('busy', `The guard is busy: ${why}. Retry later, or add instances`, { 'retry-after': '1' });
    }
    this.metrics.queueWait.observe((performance.now() - waited) / 1000);
    const stop = this.metrics.decode.startTimer({ call: 'prompt' });
    try {
      const verdict = await session.checkPrompt(body.messages, { knownVerdict: body.knownVerdict });
      stop();
      const id = randomBytes(24).toString('base64url');
      this.sessions.set(id, { session, verdicts: [], lastSeq: 0, last: null, lastUsed: performance.now(), busy: 0 });
      this.metrics.sessionsOpen.set(this.sessions.size);
      this.metrics.countTokens({ evaluatedTokens: 0, reusedTokens: 0, speculatedTokens: 0, discardedTokens: 0, scoredTokens: 0 }, session.counts);
      if (!body.knownVerdict) this.metrics.verdict('prompt', verdict.riskLevel, verdict.category);
      return { session: id, verdict, counts: snapshot(session.counts) };
    } catch (error) {
      await session.dispose().catch(() => undefined);
      throw failure(error, 'the prompt check');
    }
  }

  /** One call on a session, in `seq` order. */
  async call(id: string, call: SessionCall): Promise<SessionAnswer> {
    const served = this.sessions.get(id);
    if (!served) throw new HttpError('unknown-session', 'No such session: it ended, timed out, or lives on another instance. Start a new one');
    served.lastUsed = performance.now();
    served.busy++;
    try {
      if (call.seq === served.lastSeq && served.last) return await served.last;
      if (call.seq !== served.lastSeq + 1) throw new HttpError('out-of-order', `Call seq ${call.seq} out of order: the session's last call was ${served.lastSeq}`);
      const text = 'text' in call ? call.text.length + ('ahead' in call ? (call.ahead?.length ?? 0) : 0) : 0;
      if (text > this.options.maxTextChars) throw new HttpError('too-large', `The call carries ${text} characters, more than the server's limit of ${this.options.maxTextChars}: send the text in smaller pieces`);
      served.lastSeq = call.seq;
      served.last = this.run(served, call);
      return await served.last;
    } finally {
      served.busy--;
      served.lastUsed = performance.now();
    }
  }

  private async run(served: Served, call: SessionCall): Promise<SessionAnswer> {
    const { session } = served;
    const before = snapshot(session.counts);
    const stop = this.metrics.decode.startTimer({ call: call.op });
    try {
      const answer: SessionAnswer = { seq: call.seq, counts: before };
      if (call.op === 'append') {
        answer.verdicts = await session.appendText(call.part, call.text, { final: call.final, ahead: call.ahead });
        served.verdicts.push(...answer.verdicts);
      } else if (call.op === 'speculate') {
        await session.speculate(call.part, call.text);
      } else if (call.op === 'end') {
        answer.verdicts = await session.end();
        served.verdicts.push(...answer.verdicts);
        const decision = decideResponse(served.verdicts);
        this.metrics.verdict('response', decision.riskLevel, decision.category);
      } else if (call.op === 'rollback') {
        const last = call.to === null ? null : served.verdicts[call.to];
        if (last === undefined) throw new HttpError('bad-request', `rollback: token ${call.to} is not a scored token of this response (it has ${served.verdicts.length})`);
        await session.rollbackTo(last);
        served.verdicts.length = call.to === null ? 0 : call.to + 1;
      } else {
        answer.count = await session.countTokens(call.text);
      }
      answer.counts = snapshot(session.counts);
      this.metrics.countTokens(before, answer.counts);
      return answer;
    } catch (error) {
      throw failure(error, `the ${call.op} call`);
    } finally {
      stop();
    }
  }

  /** Ends a session (idempotent: an unknown id is already ended). */
  async remove(id: string): Promise<void> {
    const served = this.sessions.get(id);
    if (!served) return;
    this.sessions.delete(id);
    this.metrics.sessionsOpen.set(this.sessions.size);
    await served.session.dispose().catch(() => undefined);
  }

  /** Frees sessions idle past the timeout, and forgets old idempotency keys. */
  sweep(now = performance.now()): void {
    for (const [id, served] of this.sessions) {
      if (served.busy === 0 && now - served.lastUsed > this.options.idleTimeoutMs) {
        this.metrics.sessionsExpired.inc();
        void this.remove(id);
      }
    }
    for (const [key, entry] of this.creations) if (now - entry.at > IDEMPOTENCY_MS) this.creations.delete(key);
  }

  /** No new sessions from now on; open ones go on. */
  startDraining(): void {
    this.draining = true;
  }

  async closeAll(): Promise<void> {
    await Promise.all([...this.sessions.keys()].map((id) => this.remove(id)));
  }
}

/** An engine error as the client should see it: its input refused (400), or the guard failed (500). */
function failure(error: unknown, what: string): HttpError {
  if (error instanceof HttpError) return error;
  // Bad arguments and calls out of turn are the client's; anything else is the guard's failure.
  if (error instanceof GuardInputError || error instanceof GuardStateError) return new HttpError('bad-request', error.message);
  return new HttpError('internal', `The guard failed on ${what}: ${error instanceof Error ? error.message : String(error)}`);
}
