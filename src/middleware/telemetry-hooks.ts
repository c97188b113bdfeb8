import type { StreamGuardSession, TokenCounts } from '../guard/stream-guard.js';
import type { GuardMessage } from '../guard/types.js';
import type { ResolvedResponsePolicy } from '../policy/resolve.js';
import type { Action } from '../policy/schema.js';
import { ATTR } from '../telemetry/conventions.js';
import { defined, type CheckEnd, type CheckOutcome, type GuardrailCheck } from '../telemetry/guardrail-check.js';
import { errorCode } from './failures.js';
import type { Qwen3GuardMetadata } from './metadata-types.js';
import type { RequestHooks } from './options.js';
import type { PromptCheck } from './prompt-check.js';
import type { ResponseModeration } from './response-moderation.js';
import { readyComponent, scores, tokenAttributes } from './telemetry-checks.js';

/** The prompt check's end: its verdict and action; a failure (never a verdict) by its code; a client gone is no failure. */
export function promptCheckEnd(check: PromptCheck, aborted: boolean, fail: 'closed' | 'open', messages: GuardMessage[], model: string | null): CheckEnd {
  const failed = check.error !== undefined && !aborted;
  const counts = check.decidedBy === 'stream' ? check.session?.counts : undefined;
  const outcome: CheckOutcome = {
    riskLevel: check.verdict?.riskLevel ?? null,
    category: check.verdict?.category ?? null,
    ...scores(check.verdict),
    action: check.action,
    errorCode: failed ? errorCode(check.error, false) : null,
    degraded: failed && fail === 'open',
    cancelled: check.error !== undefined && aborted,
    model,
  };
  return {
    outcome,
    attributes: () => ({ [ATTR.promptCached]: check.cached, ...(counts && tokenAttributes(counts)) }),
    content: () => messages,
    samples: { promptMs: check.latencyMs },
  };
}

export interface ResponseEnd {
  /** Asked for only when the check records something. */
  metadata: () => Qwen3GuardMetadata;
  moderation: ResponseModeration | null;
  /** The guard's failure on this response. */
  failure: unknown;
  /** The response ended before its check did: the client went away, or the upstream failed. */
  interrupted?: boolean;
  /** The (last) upstream call sent its finish: false when the guard or the client cut it short. */
  upstreamFinished?: boolean;
  queue?: { receivedChars: number; releasedChars: number; heldCharsMax: number; withheldChars: number };
}

/**
 * The Stream guard's check of one response, fed by the stream as it goes (the first text's arrival and
 * release, the stop taken). Its span starts when the prompt passed and ends once.
 */
export class ResponseTelemetry {
  private check: GuardrailCheck | null = null;
  private prompt: PromptCheck | null = null;
  private startCounts: TokenCounts | null = null;
  private stop: Action | null = null;
  private firstTextAt: number | null = null;
  private firstReleaseAt: number | null = null;

  constructor(
    private readonly hooks: RequestHooks,
    private readonly policy: ResolvedResponsePolicy,
    private readonly fail: 'closed' | 'open',
  ) {}

  /** No response check without a Stream session (Gen alone); a prompt check that failed open gives a degraded one. */
  start(prompt: PromptCheck): void {
    if (!prompt.session && prompt.error === undefined) return;
    const check = this.hooks.telemetry.check('output', prompt.guard ? readyComponent(prompt.guard) : this.hooks.stream());
    if (!check.active) return;
    this.check = check;
    this.prompt = prompt;
    this.startCounts = prompt.session ? { ...prompt.session.counts } : null;
  }

  arrived(): void {
    this.firstTextAt ??= performance.now();
  }

  released(): void {
    this.firstReleaseAt ??= performance.now();
  }

  stopped(action: Action): void {
    this.stop = action;
  }

  end(end: ResponseEnd): void {
    const { check, prompt } = this;
    if (!check || !prompt) return;
    this.check = null;
    const { moderation } = end;
    const metadata = end.metadata();
    // A prompt check that failed open left no session: the response went out unchecked.
    const failure = end.failure ?? (prompt.session ? undefined : prompt.error);
    const failed = failure !== undefined;
    const decision = metadata.response;
    const flagged = decision?.tokenIndex == null ? undefined : moderation?.tracker.tokens[decision.tokenIndex]?.verdict;
    const final = !failed && !end.interrupted && decision !== null;
    const ttftAddedMs = this.firstTextAt !== null && this.firstReleaseAt !== null ? this.firstReleaseAt - this.firstTextAt : undefined;
    check.end({
      outcome: {
        riskLevel: final ? decision.riskLevel : null,
        category: decision?.category ?? null,
        ...(flagged?.probabilities && scores({ riskLevel: flagged.riskLevel, probabilities: flagged.probabilities })),
        action: this.stop ?? metadata.action,
        errorCode: errorCode(failure, this.policy.failures.failed),
        degraded: failed && this.fail === 'open',
        cancelled: end.interrupted && !failed,
      },
      attributes: () => this.attributes(end, metadata, prompt.session, ttftAddedMs),
      content: () => moderation && { reasoning: moderation.text.reasoning, answer: moderation.text.answer },
      samples: { ttftAddedMs, releaseLagMs: moderation?.lags, decodeMs: moderation?.decodeMs },
    });
  }

  private attributes({ moderation, queue, upstreamFinished }: ResponseEnd, metadata: Qwen3GuardMetadata, session: StreamGuardSession | null, ttftAddedMs: number | undefined) {
    const [first] = metadata.flags;
    const lag = metadata.guardLagMs;
    const nonSafe = moderation?.tracker.tokens.some((t) => t.verdict.riskLevel !== 'Safe');
    const start = this.startCounts;
    return defined({
      [ATTR.release]: metadata.release,
      [ATTR.debounce]: this.policy.debounce,
      [ATTR.debounceDecision]: moderation ? (first ? 'flagged' : nonSafe ? 'dismissed' : 'clean') : undefined,
      [ATTR.flags]: metadata.flags.length,
      [ATTR.firstFlagTokenIndex]: first?.tokenIndex,
      [ATTR.firstFlagCharOffset]: first?.charOffset,
      [ATTR.tokensHeldMax]: metadata.tokens.heldMax,
      // Without a stream (generateText) the text received is the text moderated.
      [ATTR.charsReceived]: queue?.receivedChars ?? (moderation && moderation.text.reasoning.length + moderation.text.answer.length),
      [ATTR.charsReleased]: queue?.releasedChars,
      [ATTR.charsHeldMax]: queue?.heldCharsMax,
      [ATTR.charsWithheld]: queue?.withheldChars,
      [ATTR.leakedChars]: metadata.leakedChars,
      [ATTR.releaseLagP50]: lag && lag.p50 / 1000,
      [ATTR.releaseLagMax]: lag && lag.max / 1000,
      [ATTR.ttftAdded]: ttftAddedMs === undefined ? undefined : ttftAddedMs / 1000,
      [ATTR.upstreamCancelled]: upstreamFinished === undefined ? undefined : !upstreamFinished,
      [ATTR.interventionAttempts]: metadata.intervention?.attempts,
      [ATTR.interventionTokensDiscarded]: metadata.intervention?.tokensDiscarded,
      [ATTR.interventionOutcome]: metadata.intervention?.outcome,
      // This response's share of the session's work (the prompt span has the conversation's).
      ...(session && start && tokenAttributes(difference(session.counts, start))),
    });
  }
}

function difference(a: TokenCounts, b: TokenCounts): TokenCounts {
  return {
    evaluatedTokens: a.evaluatedTokens - b.evaluatedTokens,
    reusedTokens: a.reusedTokens - b.reusedTokens,
    speculatedTokens: a.speculatedTokens - b.speculatedTokens,
    discardedTokens: a.discardedTokens - b.discardedTokens,
    scoredTokens: a.scoredTokens - b.scoredTokens,
  };
}
