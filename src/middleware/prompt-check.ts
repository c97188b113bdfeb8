import type { StreamGuardSession } from '../guard/stream-guard.js';
import type { GuardMessage, PromptVerdict } from '../guard/types.js';
import { actionFor, type ResolvedPromptPolicy } from '../policy/resolve.js';
import { failClosedAction, STOP_ACTIONS, type Action } from '../policy/schema.js';
import { genPromptVerdict, type GenLoader } from './gen-check.js';
import { safeCall } from './callbacks.js';
import type { ReadyGuard } from './guard-loader.js';
import type { GuardErrorInfo, PromptVerdictInfo } from './options.js';
import { promptKey } from './prompt-messages.js';
import type { LruCache } from './verdict-cache.js';

export interface PromptCheck {
  /** The session holding the conversation, ready for the response (null when the guard failed). */
  session: StreamGuardSession | null;
  /** The Stream guard the session runs on (null with Gen alone, or when it failed). */
  guard: ReadyGuard | null;
  verdict: PromptVerdict | null;
  action: Action;
  cached: boolean;
  /** Which model gave (or was to give) the verdict. */
  decidedBy: 'stream' | 'gen';
  latencyMs: number;
  error?: unknown;
}

export interface PromptCheckContext {
  /** The Stream guard; null with Gen alone (no response stream moderation then). */
  guard: (() => Promise<ReadyGuard>) | null;
  /** Set when Gen gives the prompt verdict (`gen.prompt`). */
  gen?: GenLoader;
  policy: ResolvedPromptPolicy;
  fail: 'closed' | 'open';
  cache: LruCache<PromptVerdict>;
  onPromptVerdict?: (info: PromptVerdictInfo) => void;
  onError?: (error: unknown, info: GuardErrorInfo) => void;
  /** Telemetry's open-sessions count: the session as it will be used (its dispose counted). */
  trackSession?: (session: StreamGuardSession, guard: ReadyGuard) => StreamGuardSession;
}

/** Whether the prompt stops the request. */
export const blocksRequest = (check: PromptCheck) => STOP_ACTIONS.includes(check.action);

/**
 * Evaluates the conversation in a new session and decides the prompt's fate. A verdict cached for the same
 * conversation prefix is used at once (the session still brings its KV cache up to the conversation, behind
 * it, as context for the response). With `gen`, Gen gives the verdict and the session only reads the
 * conversation; with Gen alone there is no session. Never rejects: a guard failure comes back as `error`
 * with the fail mode's action.
 */
export async function checkPrompt(context: PromptCheckContext, messages: GuardMessage[], signal: AbortSignal, startedAt: number, conversationId?: string): Promise<PromptCheck> {
  let session: StreamGuardSession | null = null;
  let guard: ReadyGuard | null = null;
  let phase: GuardErrorInfo['phase'] = 'load';
  const decidedBy = context.gen ? 'gen' : 'stream';
  try {
    guard = context.guard ? await context.guard() : null;
    phase = 'prompt';
    const created = guard ? await guard.guard.createSession({ signal, conversationId }) : null;
    session = created && context.trackSession ? context.trackSession(created, guard!) : created;
    const key = promptKey(messages);
    const cachedVerdict = key === null ? undefined : context.cache.get(key);
    // A known verdict lets the session skip the verdict's token too: a retry or a tool-loop step evaluates only its new tokens.
    const evaluation = session?.checkPrompt(messages, { knownVerdict: cachedVerdict });
    let verdict: PromptVerdict;
    if (cachedVerdict) {
      verdict = cachedVerdict;
      evaluation?.catch(() => undefined); // a failure surfaces on the session's next call
    } else if (context.gen) {
      // The session's own verdict is not used; a failure of its evaluation surfaces on its next call.
      evaluation?.catch(() => undefined);
      try {
        verdict = await genPromptVerdict(context.gen, messages, signal);
      } catch (error) {
        // Failing open, the Stream guard still moderates the response in its session.
        if (!session || context.fail === 'closed' || signal.aborted) throw error;
        safeCall(context.onError, error, { phase, fail: context.fail });
        return { session, guard, verdict: null, action: 'allow', cached: false, decidedBy, latencyMs: performance.now() - startedAt, error };
      }
      if (key !== null) context.cache.set(key, verdict);
    } else if (evaluation) {
      verdict = await evaluation;
      if (key !== null) context.cache.set(key, verdict);
    } else {
      // Gen alone checks only the response: the prompt is not checked.
      return { session: null, guard: null, verdict: null, action: 'allow', cached: false, decidedBy, latencyMs: performance.now() - startedAt };
    }
    const result: PromptCheck = {
      session,
      guard,
      verdict,
      action: actionFor(context.policy, verdict.riskLevel, verdict.category),
      cached: cachedVerdict !== undefined,
      decidedBy,
      latencyMs: performance.now() - startedAt,
    };
    safeCall(context.onPromptVerdict, { verdict, action: result.action, cached: result.cached, decidedBy, latencyMs: result.latencyMs });
    // The answer's scaffold is evaluated now, while the upstream has not answered yet (its response headers may
    // come only with the first token): the first delta's verdicts then wait for its own tokens alone. A failed
    // decode marks the session broken, and its next call says so.
    if (session && !blocksRequest(result) && guard?.info.speculate) session.speculate('answer', '').catch(() => undefined);
    return result;
  } catch (error) {
    await session?.dispose().catch(() => undefined);
    if (signal.aborted) return { session: null, guard: null, verdict: null, action: 'allow', cached: false, decidedBy, latencyMs: performance.now() - startedAt, error };
    safeCall(context.onError, error, { phase, fail: context.fail });
    // Failing closed stops the request as an Unsafe prompt would (with a stop action even if Unsafe is allowed).
    const unsafe = context.policy.actions.Unsafe;
    const action: Action = context.fail === 'open' ? 'allow' : failClosedAction(unsafe);
    return { session: null, guard: null, verdict: null, action, cached: false, decidedBy, latencyMs: performance.now() - startedAt, error };
  }
}
