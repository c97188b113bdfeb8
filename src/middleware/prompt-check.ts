import type { Qwen3Guard } from '../engine/guard.js';
import type { GuardSession } from '../engine/session.js';
import type { GuardMessage, PromptVerdict } from '../engine/types.js';
import { actionFor, type ResolvedPromptPolicy } from '../policy/resolve.js';
import { STOP_ACTIONS, type Action } from '../policy/schema.js';
import type { GuardErrorInfo, PromptVerdictInfo } from './options.js';
import { promptKey } from './prompt-messages.js';
import type { LruCache } from './verdict-cache.js';

export interface PromptCheck {
  /** The session holding the conversation, ready for the response (null when the guard failed). */
  session: GuardSession | null;
  verdict: PromptVerdict | null;
  action: Action;
  cached: boolean;
  latencyMs: number;
  error?: unknown;
}

export interface PromptCheckContext {
  guard: () => Promise<Qwen3Guard>;
  policy: ResolvedPromptPolicy;
  fail: 'closed' | 'open';
  cache: LruCache<PromptVerdict>;
  onPromptVerdict?: (info: PromptVerdictInfo) => void;
  onError?: (error: unknown, info: GuardErrorInfo) => void;
}

/** Whether the prompt stops the request. */
export const blocksRequest = (check: PromptCheck) => STOP_ACTIONS.includes(check.action);

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

/**
 * Evaluates the conversation in a new session and decides the prompt's fate. A verdict cached for the same
 * conversation prefix is used at once (the session still brings its KV cache up to the conversation, behind
 * it, as context for the response). Never rejects: a guard failure comes back as `error` with the fail mode's action.
 */
export async function checkPrompt(context: PromptCheckContext, messages: GuardMessage[], signal: AbortSignal, startedAt: number): Promise<PromptCheck> {
  let session: GuardSession | null = null;
  let phase: GuardErrorInfo['phase'] = 'load';
  try {
    const guard = await context.guard();
    phase = 'prompt';
    session = await guard.createSession({ signal });
    const key = promptKey(messages);
    const cachedVerdict = key === null ? undefined : context.cache.get(key);
    // A known verdict lets the session skip the verdict's token too: a retry or a tool-loop step evaluates only its new tokens.
    const evaluation = session.checkPrompt(messages, { knownVerdict: cachedVerdict });
    let verdict: PromptVerdict;
    if (cachedVerdict) {
      verdict = cachedVerdict;
      evaluation.catch(() => undefined); // a failure surfaces on the session's next call
    } else {
      verdict = await evaluation;
      if (key !== null) context.cache.set(key, verdict);
    }
    const result: PromptCheck = {
      session,
      verdict,
      action: actionFor(context.policy, verdict.riskLevel, verdict.category),
      cached: cachedVerdict !== undefined,
      latencyMs: performance.now() - startedAt,
    };
    safeCall(context.onPromptVerdict, { verdict, action: result.action, cached: result.cached, latencyMs: result.latencyMs });
    return result;
  } catch (error) {
    await session?.dispose().catch(() => undefined);
    if (signal.aborted) return { session: null, verdict: null, action: 'allow', cached: false, latencyMs: performance.now() - startedAt, error };
    safeCall(context.onError, error, { phase, fail: context.fail });
    // Failing closed stops the request as an Unsafe prompt would (with a stop action even if Unsafe is allowed).
    const unsafe = context.policy.actions.Unsafe;
    const action: Action = context.fail === 'open' ? 'allow' : STOP_ACTIONS.includes(unsafe) ? unsafe : 'abort';
    return { session: null, verdict: null, action, cached: false, latencyMs: performance.now() - startedAt, error };
  }
}
