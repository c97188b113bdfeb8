import { decideResponse, type ResponseDecision } from '../policy/decision.js';
import type { ResolvedResponsePolicy } from '../policy/resolve.js';
import type { Action } from '../policy/schema.js';
import { errorCode } from './failures.js';
import type { FlagEvent } from '../policy/run-tracker.js';
import type { Qwen3GuardInterventionMetadata, Qwen3GuardMetadata } from './metadata-types.js';
import type { ResponseFlagInfo, ResponseVerdictInfo } from './options.js';
import type { PromptCheck } from './prompt-check.js';
import type { ResponseModeration } from './response-moderation.js';

export interface ResponseSummary {
  decision: ResponseDecision;
  /** The strongest action taken on the response. */
  action: Action | 'none';
}

/** The `onResponseFlag` payload of a flag event. */
export function flagInfo(moderation: ResponseModeration, event: FlagEvent, leakedChars: number, startedAt: number): ResponseFlagInfo {
  return {
    riskLevel: event.riskLevel,
    category: event.category,
    action: event.action,
    part: event.part,
    tokenIndex: event.tokenIndex,
    charOffset: moderation.tracker.tokens[event.runStart].verdict.start ?? null,
    leakedChars,
    latencyMs: performance.now() - startedAt,
  };
}

/** The `onResponseVerdict` payload at the end of a response. */
export function verdictInfo(moderation: ResponseModeration, startedAt: number): ResponseVerdictInfo {
  const { decision, action } = summarize(moderation);
  return { decision, action, scoredTokens: moderation.tracker.tokens.length, latencyMs: performance.now() - startedAt };
}

const ORDER: Array<Action | 'none'> = ['none', 'allow', 'flag', 'redact', 'continue', 'rewrite', 'abort'];

/** The official decision over all scored tokens, and the strongest action the flags led to. */
export function summarize(moderation: ResponseModeration | null): ResponseSummary {
  if (!moderation) return { decision: { riskLevel: 'Safe', tokenIndex: null, category: null }, action: 'none' };
  const decision = decideResponse(moderation.tracker.tokens.map((t) => t.verdict));
  const action = moderation.tracker.events.reduce<Action | 'none'>((a, e) => (ORDER.indexOf(e.action) > ORDER.indexOf(a) ? e.action : a), 'none');
  return { decision, action };
}

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];
}

const round = (x: number) => Math.round(x * 10) / 10;

export interface MetadataInput {
  check: PromptCheck | null;
  moderation: ResponseModeration | null;
  policy: Pick<ResolvedResponsePolicy, 'release' | 'failures'>;
  leakedChars: number;
  error?: unknown;
  intervention?: Qwen3GuardInterventionMetadata | null;
}

/** `providerMetadata.qwen3guard` of the finish part: what the guard decided and did, JSON only. */
export function guardMetadata({ check, moderation, policy, leakedChars, error, intervention }: MetadataInput): Qwen3GuardMetadata {
  const summary = summarize(moderation);
  const { decision } = summary;
  // A rollback forgets its flag; the response was still continued (or, once the attempts ran out, stopped).
  const fallback = intervention?.outcome === 'fallback-rewrite' ? 'rewrite' : intervention?.outcome === 'fallback-abort' ? 'abort' : 'continue';
  const action = intervention && ORDER.indexOf(fallback) > ORDER.indexOf(summary.action) ? fallback : summary.action;
  const verdict = check?.verdict;
  const tokens = moderation?.tracker.tokens ?? [];
  const flagged = decision.tokenIndex === null ? null : tokens[decision.tokenIndex].verdict;
  const lags = moderation?.lags ?? [];
  const promptStopped = check !== null && (check.action === 'rewrite' || check.action === 'abort');
  const failure = error ?? check?.error;
  const metadata: Qwen3GuardMetadata = {
    prompt: verdict
      ? {
          riskLevel: verdict.riskLevel,
          category: verdict.category,
          probabilities: { ...verdict.probabilities },
          action: check.action,
          cached: check.cached,
          decidedBy: check.decidedBy,
          latencyMs: round(check.latencyMs),
        }
      : null,
    response: moderation
      ? {
          riskLevel: decision.riskLevel,
          category: decision.category,
          tokenIndex: decision.tokenIndex,
          charOffset: flagged?.start ?? null,
          part: flagged?.part ?? null,
        }
      : null,
    action: promptStopped ? check.action : action,
    flags: (moderation?.tracker.events ?? []).map((e) => ({
      tokenIndex: e.tokenIndex,
      charOffset: tokens[e.runStart].verdict.start ?? null,
      part: e.part,
      riskLevel: e.riskLevel,
      category: e.category,
      action: e.action,
      decidedBy: 'stream' as const,
    })),
    tokens: { scored: tokens.length, heldMax: moderation?.heldTokensMax ?? 0 },
    guardLagMs: lags.length ? { p50: round(percentile(lags, 0.5)), p95: round(percentile(lags, 0.95)), max: round(Math.max(...lags)) } : null,
    release: policy.release,
    leakedChars,
  };
  if (intervention) metadata.intervention = { ...intervention, extraMs: round(intervention.extraMs) };
  const code = errorCode(failure, policy.failures.failed);
  if (code) metadata.error = { code };
  return metadata;
}
