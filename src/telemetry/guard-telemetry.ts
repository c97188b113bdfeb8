import { context, SpanKind, trace, type Attributes, type Context, type Tracer } from '@opentelemetry/api';
import type { StreamGuardSession } from '../guard/stream-guard.js';
import { ContentRecorder } from './content.js';
import { ATTR, EVALUATION_NAME, RUN_GUARDRAIL, SCOPE, TARGET_SUBTYPE_LLM, type Target } from './conventions.js';
import { GuardrailCheck, type Component } from './guardrail-check.js';
import { GuardMetrics, type Instruments } from './metrics.js';
import type { ResolvedTelemetryOptions } from './options.js';

/**
 * The middleware's telemetry: spans and metrics through the OpenTelemetry API only (no SDK, no exporter: the
 * app's SDK decides what is kept and where it goes). One per middleware; `request` per model call.
 */
export class GuardTelemetry {
  private readonly tracer: Tracer;
  private readonly metrics: GuardMetrics;
  private readonly content: ContentRecorder;

  constructor(options: ResolvedTelemetryOptions) {
    // The API's global tracer is a proxy: a TracerProvider registered later is used.
    this.tracer = options.tracer ?? trace.getTracer(SCOPE);
    this.metrics = new GuardMetrics(options.meter);
    this.content = new ContentRecorder(options.recordContent, options.contentHmacKey);
  }

  /**
   * Call when `wrapStream`/`wrapGenerate` starts: the AI SDK runs the model call inside its span's context, and
   * the stream's later callbacks run outside it, so the context is captured now for every check of the request.
   */
  request(conversationId: string | undefined): RequestTelemetry {
    return new RequestTelemetry(this.tracer, this.metrics.current(), this.content, context.active(), conversationId);
  }
}

/** The checks of one model call, all children of the span that was active when it started. */
export class RequestTelemetry {
  constructor(
    private readonly tracer: Tracer,
    private readonly instruments: Instruments | null,
    private readonly content: ContentRecorder,
    private readonly parent: Context,
    private readonly conversationId: string | undefined,
  ) {}

  /** Starts a check's span now; `gen` names Gen's whole-response check apart from the Stream guard's. */
  check(target: Target, component: Component, options: { gen?: boolean } = {}): GuardrailCheck {
    const attributes: Attributes = {
      [ATTR.operationName]: RUN_GUARDRAIL,
      [ATTR.targetType]: target,
      [ATTR.targetSubtype]: TARGET_SUBTYPE_LLM,
      [ATTR.componentName]: component.model ?? component.family,
    };
    if (this.conversationId !== undefined) attributes[ATTR.conversationId] = this.conversationId;
    const kind = component.remote ? SpanKind.CLIENT : SpanKind.INTERNAL;
    const span = this.tracer.startSpan(`${RUN_GUARDRAIL} ${component.family}`, { kind, attributes }, this.parent);
    const name = target === 'input' ? EVALUATION_NAME.prompt : options.gen ? EVALUATION_NAME.genResponse : EVALUATION_NAME.response;
    return new GuardrailCheck(target, component, span.isRecording() ? span : null, this.parent, this.instruments, this.content, name);
  }

  /** The session, counted in the open-sessions gauge until disposed (as is, when no meter records). */
  trackSession(session: StreamGuardSession, model: string): StreamGuardSession {
    const gauge = this.instruments?.openSessions;
    if (!gauge) return session;
    const attributes = { [ATTR.componentName]: model };
    gauge.add(1, attributes);
    return new CountedSession(session, () => gauge.add(-1, attributes));
  }
}

/** A session that reports its dispose (once). */
class CountedSession implements StreamGuardSession {
  private open = true;

  constructor(
    private readonly inner: StreamGuardSession,
    private readonly closed: () => void,
  ) {}

  checkPrompt: StreamGuardSession['checkPrompt'] = (messages, options) => this.inner.checkPrompt(messages, options);
  appendText: StreamGuardSession['appendText'] = (part, text, options) => this.inner.appendText(part, text, options);
  speculate: StreamGuardSession['speculate'] = (part, text) => this.inner.speculate(part, text);
  end: StreamGuardSession['end'] = () => this.inner.end();
  rollbackTo: StreamGuardSession['rollbackTo'] = (last) => this.inner.rollbackTo(last);
  countTokens: StreamGuardSession['countTokens'] = (text) => this.inner.countTokens(text);

  get counts() {
    return this.inner.counts;
  }

  dispose(): Promise<void> {
    if (this.open) {
      this.open = false;
      this.closed();
    }
    return this.inner.dispose();
  }
}
