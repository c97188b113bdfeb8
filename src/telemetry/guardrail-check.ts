import { SpanStatusCode, trace, type Attributes, type Context, type Span } from '@opentelemetry/api';
import type { RiskLevel } from '../guard/types.js';
import type { ContentRecorder } from './content.js';
import { ACTION, ATTR, EVALUATION, type COMPONENT, type Target, VERDICT } from './conventions.js';
import { recordMs, type Instruments } from './metrics.js';

/** The policy's actions as telemetry reads them ('none': the response needed none). */
export type PolicyAction = 'none' | 'allow' | 'flag' | 'redact' | 'rewrite' | 'abort' | 'continue';

/** Which guard ran a check. */
export interface Component {
  family: (typeof COMPONENT)[keyof typeof COMPONENT];
  /** The exact model (`Qwen3Guard-Stream-0.6B`), once known. */
  model: string | null;
  /** In another process (a guard server, a serving engine): the span is a CLIENT span. */
  remote: boolean;
}

/** What a check decided and did, in the policy's terms. */
export interface CheckOutcome {
  /** null: no verdict (the guard failed, or the check was cancelled). */
  riskLevel: RiskLevel | null;
  category: string | null;
  /** The probability of `riskLevel`, when the guard gave one (the evaluation's score). */
  probability?: number;
  /** 1 - P(Safe), when known. */
  riskScore?: number;
  action: PolicyAction;
  /** The metadata's error code when something failed. */
  errorCode: string | null;
  /** Failed open: the content went on unchecked. */
  degraded: boolean;
  cancelled?: boolean;
  /** The model, when it became known during the check. */
  model?: string | null;
}

export interface CheckEnd {
  outcome: CheckOutcome;
  /** Span attributes beyond the outcome's; called only for a recording span. */
  attributes?: () => Attributes;
  /** The checked content, for `recordContent` and the HMAC; called only when one is on (null: none was read). */
  content?: () => unknown;
  /** Millisecond samples for the histograms. */
  samples?: { promptMs?: number; ttftAddedMs?: number; releaseLagMs?: readonly number[]; decodeMs?: readonly number[] };
}

/** The outcome's `gen_ai.guardrail.verdict.type`: the risk level's, or modify where a response was changed; none without a verdict. */
export function verdictType(target: Target, outcome: CheckOutcome): string | undefined {
  if (outcome.riskLevel === null) return undefined;
  if (target === 'output' && (outcome.action === 'rewrite' || outcome.action === 'redact' || outcome.action === 'continue')) return VERDICT.modify;
  return outcome.riskLevel === 'Safe' ? VERDICT.allow : outcome.riskLevel === 'Controversial' ? VERDICT.warn : VERDICT.deny;
}

/** `gen_ai.guardrail.action.type`: a refused prompt is blocked (its refusal replaces the answer, not the prompt). */
export function actionType(target: Target, action: PolicyAction): string {
  if (action === 'flag') return ACTION.audit;
  if (action === 'abort' || (action === 'rewrite' && target === 'input')) return ACTION.block;
  if (action === 'rewrite' || action === 'redact' || action === 'continue') return ACTION.modify;
  return ACTION.allow;
}

/** Only the attributes that have a value (the draft leaves absent what is unknown). */
export function defined(attributes: Record<string, string | number | boolean | undefined | null>): Attributes {
  const out: Attributes = {};
  for (const [key, value] of Object.entries(attributes)) if (value !== undefined && value !== null) out[key] = value;
  return out;
}

/**
 * One guardrail check: its span (a child of the model call's when the AI SDK's telemetry runs), its metrics and
 * its evaluation event on the model call's span. Attributes are computed only when a span records and metrics
 * only when a meter does, so with no SDK registered a check costs a non-recording span.
 */
export class GuardrailCheck {
  private ended = false;

  constructor(
    readonly target: Target,
    private readonly component: Component,
    private readonly span: Span | null,
    private readonly parent: Context,
    private readonly instruments: Instruments | null,
    private readonly content: ContentRecorder,
    private readonly evaluationName: string,
  ) {}

  /** Whether anything is recorded (callers skip work for telemetry otherwise). */
  get active(): boolean {
    return this.span !== null || this.instruments !== null;
  }

  end(end: CheckEnd): void {
    if (this.ended || !this.active) return;
    this.ended = true;
    const { outcome } = end;
    const model = outcome.model ?? this.component.model ?? this.component.family;
    const verdict = verdictType(this.target, outcome);
    const action = outcome.cancelled ? undefined : actionType(this.target, outcome.action);
    const nonSafe = outcome.riskLevel !== null && outcome.riskLevel !== 'Safe';
    // The draft's `content.modified` is set only when the content changed: a response rewritten, masked, cut.
    const modified = this.target === 'output' && (action === ACTION.modify || action === ACTION.block);
    const decision = defined({
      [ATTR.targetType]: this.target,
      [ATTR.componentName]: model,
      [ATTR.verdictType]: verdict,
      [ATTR.actionType]: action,
      [ATTR.riskCategory]: nonSafe ? outcome.category : undefined,
      [ATTR.errorType]: outcome.errorCode,
      [ATTR.degraded]: outcome.degraded || undefined,
    });
    if (this.instruments && !outcome.cancelled) this.record(this.instruments, decision, model, end.samples);
    const span = this.span;
    if (!span) return;
    span.setAttributes(decision);
    span.setAttributes(
      defined({ [ATTR.action]: outcome.action, [ATTR.riskScore]: outcome.riskScore, [ATTR.contentModified]: modified || undefined, [ATTR.cancelled]: outcome.cancelled || undefined }),
    );
    if (end.attributes) span.setAttributes(end.attributes());
    if (outcome.errorCode) span.setStatus({ code: SpanStatusCode.ERROR, message: outcome.errorCode });
    // The merged convention parents an evaluation to the evaluated operation: the model call, else this span.
    const evaluated = trace.getSpan(this.parent);
    const event = defined({
      [EVALUATION.name]: this.evaluationName,
      [EVALUATION.scoreLabel]: outcome.riskLevel,
      [EVALUATION.scoreValue]: outcome.probability,
      [ATTR.errorType]: outcome.errorCode,
    });
    // A check cancelled with its request evaluated nothing.
    if (!outcome.cancelled) (evaluated?.isRecording() ? evaluated : span).addEvent(EVALUATION.event, event);
    const content = this.content.wanted ? end.content?.() : undefined;
    if (content === undefined || content === null) return span.end();
    const endTime = performance.now();
    this.content.attributes(content).then(
      (attributes) => span.setAttributes(attributes),
      () => undefined, // a key Web Crypto refuses: the span goes without the hash
    ).finally(() => span.end(endTime));
  }

  private record(instruments: Instruments, decision: Attributes, model: string, samples: CheckEnd['samples'] = {}): void {
    instruments.checks.add(1, decision);
    const where = { [ATTR.targetType]: this.target, [ATTR.componentName]: model };
    if (samples.promptMs !== undefined) recordMs(instruments.promptDuration, [samples.promptMs], where);
    if (samples.ttftAddedMs !== undefined) recordMs(instruments.ttftAdded, [samples.ttftAddedMs], where);
    if (samples.releaseLagMs) recordMs(instruments.releaseLag, samples.releaseLagMs, where);
    if (samples.decodeMs) recordMs(instruments.decodeDuration, samples.decodeMs, where);
  }
}
