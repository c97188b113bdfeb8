import type { Qwen3GuardGen } from '../gen/classifier.js';
import type { GenResponseVerdict } from '../gen/types.js';
import { isStreamGuard, type TokenCounts } from '../guard/stream-guard.js';
import type { PromptVerdict } from '../guard/types.js';
import type { Action } from '../policy/schema.js';
import { ATTR, COMPONENT } from '../telemetry/conventions.js';
import type { CheckEnd, CheckOutcome, Component } from '../telemetry/guardrail-check.js';
import { errorCode } from './failures.js';
import type { GuardLoader, ReadyGuard } from './guard-loader.js';

// What telemetry needs to know of the guards and of Gen's checks; the prompt and response checks' ends, which
// read the middleware's state, are in telemetry-hooks.ts.

/** The Stream guard as known now: loaded, given (a remote one is a CLIENT span), else to be loaded here. */
export function streamComponent(loader: GuardLoader | null, given: unknown): Component {
  const ready = loader?.loaded;
  const guard = ready?.guard ?? (isStreamGuard(given) ? given : null);
  return { family: COMPONENT.stream, model: ready?.info.model ?? guard?.info?.model ?? null, remote: guard !== null && guard.kind !== 'local' };
}

export const readyComponent = (ready: ReadyGuard): Component => ({ family: COMPONENT.stream, model: ready.info.model, remote: ready.guard.kind !== 'local' });

/** Gen as known now (a promise not resolved yet: assumed local). */
export function genComponent(gen: Qwen3GuardGen | null): Component {
  return { family: COMPONENT.gen, model: gen?.backend.modelName ?? null, remote: gen !== null && gen.backend.kind !== 'local' };
}

export const tokenAttributes = (counts: TokenCounts) => ({
  [ATTR.tokensEvaluated]: counts.evaluatedTokens,
  [ATTR.tokensReused]: counts.reusedTokens,
  [ATTR.tokensSpeculated]: counts.speculatedTokens,
  [ATTR.tokensDiscarded]: counts.discardedTokens,
  [ATTR.tokensScored]: counts.scoredTokens,
});

/** A verdict's score: its own level's probability, and the risk (1 - P(Safe)). */
export const scores = (verdict: Pick<PromptVerdict, 'riskLevel' | 'probabilities'> | null | undefined) =>
  verdict ? { probability: verdict.probabilities[verdict.riskLevel], riskScore: 1 - verdict.probabilities.Safe } : {};

/** Gen's check of a whole response: a verdict with the action taken, a failure, or null (the request was aborted). */
export function genCheckEnd(result: { verdict?: GenResponseVerdict; error?: Error; action: Action } | null, answer: string, model: string | null): CheckEnd {
  const outcome: CheckOutcome = result
    ? {
        riskLevel: result.verdict?.riskLevel ?? null,
        category: result.verdict?.category ?? null,
        ...scores(result.verdict),
        action: result.action,
        errorCode: result.error ? errorCode(result.error, false) : null,
        // A failed check that let the answer go (fail open, or 'report': it was already out).
        degraded: result.error !== undefined && result.action === 'allow',
        model,
      }
    : { riskLevel: null, category: null, action: 'allow', errorCode: null, degraded: false, cancelled: true, model };
  return { outcome, content: () => answer };
}
