import type { LanguageModelV4Prompt, LanguageModelV4StreamPart, LanguageModelV4Usage } from '@ai-sdk/provider';
import type { ResponsePart } from '../guard/types.js';
import type { FlagEvent } from '../policy/run-tracker.js';
import { failClosedAction, type Action } from '../policy/schema.js';
import { ContinuationSplice, continuationPrompt } from './intervention.js';
import { leakedChars } from './flag-spans.js';
import { flagInfo, guardMetadata, verdictInfo } from './metadata.js';
import { InterventionRecord } from './intervention-record.js';
import type { ModerationContext } from './options.js';
import { OutputQueue } from './output-queue.js';
import { safeCall } from './callbacks.js';
import { blocksRequest, type PromptCheck } from './prompt-check.js';
import { ResponseModeration } from './response-moderation.js';
import { CONTENT_FILTER, EMPTY_USAGE, readParts, textBlock, type FinishPart } from './stream-parts.js';
import { ResponseTelemetry } from './telemetry-hooks.js';
import { routeToolPart } from './tool-input.js';

const REWRITE_ID = 'qwen3guard-rewrite';

export interface GuardedStreamContext extends ModerationContext {
  refusal: (check: PromptCheck) => string;
  /** The `continue` action: the request's prompt, and the wrapped model called again (signal: this attempt's). */
  continuation?: {
    prompt: LanguageModelV4Prompt;
    /** Aborts the first upstream call alone. */
    first: AbortController;
    call(prompt: LanguageModelV4Prompt, signal: AbortSignal): PromiseLike<{ stream: ReadableStream<LanguageModelV4StreamPart> }>;
  };
}

/**
 * One moderated response stream. Upstream parts wait (in order) until the prompt verdict; then text goes to
 * the guard as it arrives and leaves as far as it is decided. A stop (rewrite, abort, prompt blocked, guard
 * failure when failing closed) cancels the upstream, closes open blocks, emits the replacement and a
 * `content-filter` finish: never an error part. The `continue` action instead rolls back to the released text
 * and reads a continuation from a new upstream call into the same output, up to `attempts` times.
 */
export class GuardedStream {
  readonly stream: ReadableStream<LanguageModelV4StreamPart>;
  private controller!: ReadableStreamDefaultController<LanguageModelV4StreamPart>;
  private reader: ReadableStreamDefaultReader<LanguageModelV4StreamPart>;
  private readonly queue: OutputQueue;
  private moderation: ResponseModeration | null = null;
  private check: PromptCheck | null = null;
  private readonly early: LanguageModelV4StreamPart[] = [];
  private upstreamFinish: FinishPart | null = null;
  private state: 'waiting' | 'streaming' | 'finishing' | 'closed' = 'waiting';
  private bypass = false;
  private leaked = 0;
  private failure: unknown;
  /** Counts upstream readers: parts and finishes of an earlier one (before a rollback) are ignored. */
  private attempt = 0;
  private intervening = false;
  private finishing: Promise<void> | null = null;
  private attemptAbort: AbortController | null = null;
  private intervention: InterventionRecord | null = null;
  private readonly splices: ContinuationSplice[] = [];
  /** Text sent downstream, by part: the partial response a continuation goes on from. */
  private readonly shown: Record<ResponsePart, string> = { reasoning: '', answer: '' };
  private readonly telemetry: ResponseTelemetry | null;

  constructor(
    private readonly context: GuardedStreamContext,
    upstream: ReadableStream<LanguageModelV4StreamPart>,
    promptCheck: Promise<PromptCheck>,
    private readonly abortUpstream: (reason: unknown) => void,
  ) {
    this.reader = upstream.getReader();
    this.attemptAbort = context.continuation?.first ?? null;
    this.telemetry = context.telemetry ? new ResponseTelemetry(context.telemetry, context.policy, context.fail) : null;
    this.queue = new OutputQueue(() => this.moderation, (part) => this.emit(part), context.policy.release === 'optimistic');
    this.stream = new ReadableStream<LanguageModelV4StreamPart>({
      start: (controller) => {
        this.controller = controller;
        void promptCheck.then((check) => this.onPromptChecked(check));
        void this.readUpstream(this.reader, 0, null);
      },
      cancel: (reason) => this.cancel(reason),
    });
  }

  private async readUpstream(reader: ReadableStreamDefaultReader<LanguageModelV4StreamPart>, attempt: number, splice: ContinuationSplice | null): Promise<void> {
    const live = () => this.state !== 'closed' && attempt === this.attempt;
    // Before the prompt verdict every part queues, in order (the synthetic finish too).
    const take = (part: LanguageModelV4StreamPart) => {
      if (part.type === 'text-delta' || part.type === 'reasoning-delta') this.telemetry?.arrived();
      return this.state === 'waiting' ? this.early.push(part) : this.route(part);
    };
    try {
      await readParts(reader, live, (part) => (splice ? splice.map(part) : [part]), take);
    } catch (error) {
      if (!live()) return;
      this.close();
      this.controller.error(error);
    }
  }

  private onPromptChecked(check: PromptCheck): void {
    if (this.state === 'closed') return void check.session?.dispose();
    this.check = check;
    if (blocksRequest(check)) return this.stopForPrompt(check);
    this.telemetry?.start(check);
    if (!check.session) this.bypass = true; // failing open: the guard is unavailable for this request
    else {
      this.moderation = new ResponseModeration(
        check.session,
        this.context.policy,
        { onChange: () => this.onChange(), onFlag: (event) => this.onFlag(event), onError: (error) => this.onGuardError(error) },
        check.guard?.info.speculate ?? false,
      );
    }
    this.state = 'streaming';
    this.queue.openGate();
    for (const part of this.early.splice(0)) this.route(part);
  }

  /** Sends a part through moderation (text) or the queue (everything else, in order). */
  private route(part: LanguageModelV4StreamPart): void {
    if (this.state !== 'streaming') return;
    const moderation = this.bypass ? null : this.moderation;
    const { policy } = this.context;
    if (part.type === 'finish') {
      this.upstreamFinish = part;
      this.state = 'finishing';
      const attempt = this.attempt;
      if (moderation) {
        this.finishing = moderation.finish();
        void this.finishing.then(() => attempt === this.attempt && this.complete());
      } else this.complete();
      return;
    }
    if (moderation && part.type === 'text-delta') {
      this.queue.push({ part, range: moderation.append('answer', part.delta) });
    } else if (moderation && part.type === 'reasoning-delta' && policy.reasoning) {
      this.queue.push({ part, range: moderation.append('reasoning', part.delta) });
    } else if (moderation && policy.toolInput && routeToolPart(this.queue, moderation, part)) {
      // held whole until its input is confirmed
    } else {
      this.queue.push({ part });
    }
    this.queue.release();
  }

  private onChange(): void {
    if (this.state === 'closed') return;
    this.queue.release();
    const stop = this.moderation?.stopped;
    if (!stop || this.state === 'waiting') return;
    if (stop.action === 'continue') void this.intervene(stop);
    else this.stopResponse(stop.action, this.moderation!.span(stop));
  }

  /**
   * The `continue` action on a flag: stop this upstream, drop what is held (the flagged span, the held-back
   * lead-in), roll the guard back to the released text, and read a continuation of it from a new upstream call
   * into the blocks still open; once the attempts are spent, the fallback (a stop with or without replacement).
   */
  private async intervene(event: FlagEvent): Promise<void> {
    if (this.intervening || this.state === 'closed') return;
    const moderation = this.moderation!;
    const { policy, continuation } = this.context;
    const span = moderation.span(event);
    const info = (this.intervention ??= new InterventionRecord());
    const report = (next: 'continue' | 'rewrite' | 'abort', tokensDiscarded: number) =>
      safeCall(this.context.onIntervention, info.report(span, next, this.shown[span.part].length, tokensDiscarded, this.context.startedAt));
    if (!continuation || info.attempts >= policy.attempts) {
      info.fellBack(policy.fallback);
      report(policy.fallback, 0);
      return this.stopResponse(policy.fallback, span);
    }
    this.intervening = true;
    this.attempt++;
    info.stalled();
    const reason = new Error('qwen3guard: response rolled back (continue)');
    this.attemptAbort?.abort(reason);
    void this.reader.cancel(reason).catch(() => undefined);
    const keep = moderation.firstUnreleased(this.queue.releasedUpTo);
    this.queue.dropPending();
    try {
      await this.finishing;
      this.finishing = null;
      const dropped = await moderation.rollback(keep);
      info.rolledBack(dropped);
      report('continue', dropped);
    } catch (error) {
      // The guard could not roll back: a guard failure, stopped whatever `fail` says (the upstream is gone).
      this.intervening = false;
      if (this.isClosed()) return;
      this.failure = error;
      safeCall(this.context.onError, error, { phase: 'response', fail: this.context.fail });
      info.fellBack(policy.fallback);
      return this.stopResponse(policy.fallback, span);
    }
    if (this.isClosed()) return;
    const partial = { part: span.part, text: this.shown[span.part] };
    const abort = new AbortController();
    this.attemptAbort = abort;
    let stream: ReadableStream<LanguageModelV4StreamPart>;
    try {
      ({ stream } = await continuation.call(continuationPrompt(continuation.prompt, partial, policy.intervention(span), policy.continuation), abort.signal));
    } catch (error) {
      // As an upstream error of the first call: the stream errors.
      if (this.isClosed()) return;
      this.close();
      this.controller.error(error);
      return;
    }
    if (this.isClosed()) {
      void stream.cancel(reason).catch(() => undefined);
      return;
    }
    // A stripped repeat was waited for too: its tokens count as extra (the guard's tokenizer counts them).
    const onStripped = (text: string) => void moderation.countTokens(text).then((n) => (info.extraTokens += n), () => undefined);
    const splice = new ContinuationSplice({ attempt: info.attempts, open: this.queue.keepOpenBlocks(), repeat: policy.continuation === 'quote' ? partial : null, onStripped });
    this.splices.push(splice);
    this.reader = stream.getReader();
    this.upstreamFinish = null;
    this.state = 'streaming';
    this.intervening = false;
    void this.readUpstream(this.reader, this.attempt, splice);
  }

  /** Every part that goes downstream: what the client saw, and when the output moves again after a rollback. */
  private emit(part: LanguageModelV4StreamPart): void {
    const delta = part.type === 'text-delta' ? 'answer' : part.type === 'reasoning-delta' ? 'reasoning' : null;
    if (delta) {
      this.shown[delta] += (part as { delta: string }).delta;
      this.telemetry?.released();
      if (!this.intervening) this.intervention?.moved();
    }
    this.controller.enqueue(part);
  }

  private onFlag(event: FlagEvent): void {
    const moderation = this.moderation!;
    const leaked = leakedChars(moderation.tracker, event, this.queue.releasedUpTo);
    this.leaked += leaked;
    safeCall(this.context.onResponseFlag, flagInfo(moderation, event, leaked, this.context.startedAt));
  }

  private onGuardError(error: unknown): void {
    // Once the stream is closed (finished, cancelled by the client, failed upstream) the session is disposed
    // under the guard's feet: what fails then is not the guard's failure, and nobody reads the result.
    if (this.state === 'closed') return;
    this.failure = error;
    safeCall(this.context.onError, error, { phase: 'response', fail: this.context.fail });
    if (this.context.fail === 'open') {
      // The rest goes out unmoderated; what was held is released as is.
      this.bypass = true;
      this.queue.bypass();
      if (this.state === 'finishing') this.complete();
      return;
    }
    const { actions, fallback } = this.context.policy;
    // A broken guard cannot moderate a continuation: `continue` falls back.
    const unsafe = actions.Unsafe === 'continue' ? fallback : actions.Unsafe;
    this.stopResponse(failClosedAction(unsafe), null);
  }

  /** The response ended upstream and every verdict is in. */
  private complete(): void {
    if (this.state === 'closed' || this.intervening) return;
    this.queue.completeTools();
    this.queue.release();
    if (this.moderation?.stopped) return; // stopResponse already finished the stream, or a continuation is coming
    // Blocks left open for a continuation that did not go on in them.
    this.queue.closeBlocks(this.splices.flatMap((s) => s.unused));
    const finish = this.upstreamFinish!;
    this.finishWith(finish.finishReason, finish.usage, finish.providerMetadata);
  }

  private stopForPrompt(check: PromptCheck): void {
    const reason = new Error('qwen3guard: prompt blocked');
    this.abortUpstream(reason);
    void this.reader.cancel(reason).catch(() => undefined);
    // Stream metadata that came early is kept; content is not.
    for (const part of this.early) if (part.type === 'stream-start' || part.type === 'response-metadata') this.controller.enqueue(part);
    this.state = 'streaming';
    if (check.action === 'rewrite') this.emitText(this.context.refusal(check));
    this.finishWith(CONTENT_FILTER, EMPTY_USAGE, undefined);
  }

  private stopResponse(action: Action, span: ReturnType<ResponseModeration['span']> | null): void {
    if (this.state === 'closed' || this.state === 'waiting') return;
    this.intervening = false;
    this.intervention?.stoppedOtherwise();
    this.telemetry?.stopped(action);
    const reason = new Error(`qwen3guard: response stopped (${action})`);
    this.abortUpstream(reason);
    this.attemptAbort?.abort(reason);
    void this.reader.cancel(reason).catch(() => undefined);
    this.queue.release();
    const openText = this.queue.openTextBlock();
    if (action === 'rewrite') {
      // Without a span the guard failed (failing closed), which only a running moderation reports.
      const replacement = this.context.policy.replacement(span ?? this.moderation!.failureSpan());
      if (openText) this.controller.enqueue({ type: 'text-delta', id: openText, delta: replacement });
      this.queue.discard();
      if (!openText) this.emitText(replacement);
    } else this.queue.discard();
    const finish = this.upstreamFinish;
    this.finishWith(CONTENT_FILTER, finish?.usage ?? EMPTY_USAGE, finish?.providerMetadata);
  }

  private emitText(text: string): void {
    if (!text) return;
    for (const part of textBlock(REWRITE_ID, text)) this.controller.enqueue(part);
  }

  private finishWith(finishReason: FinishPart['finishReason'], usage: LanguageModelV4Usage, providerMetadata: FinishPart['providerMetadata']): void {
    if (this.state === 'closed') return;
    const metadata = this.metadata();
    // Before the finish goes out: the AI SDK ends the model call's span (the evaluation event's) on it.
    this.telemetry?.end({ metadata: () => metadata, moderation: this.moderation, failure: this.failure, upstreamFinished: this.upstreamFinish !== null, queue: this.queue });
    this.controller.enqueue({ type: 'finish', finishReason, usage, providerMetadata: { ...providerMetadata, qwen3guard: metadata } });
    if (this.moderation) safeCall(this.context.onResponseVerdict, verdictInfo(this.moderation, this.context.startedAt));
    this.close();
    this.controller.close();
  }

  private readonly metadata = () =>
    guardMetadata({ check: this.check, moderation: this.moderation, policy: this.context.policy, leakedChars: this.leaked, error: this.failure, intervention: this.intervention?.metadata() ?? null });

  private cancel(reason: unknown): Promise<void> {
    this.abortUpstream(reason);
    this.attemptAbort?.abort(reason);
    this.close();
    return this.reader.cancel(reason).catch(() => undefined);
  }

  /** (A method, so that the state is read again after an await.) */
  private isClosed(): boolean {
    return this.state === 'closed';
  }

  private close(): void {
    if (this.state === 'closed') return;
    // Without a finish (the client went away, the upstream failed); after one, this does nothing.
    this.telemetry?.end({ metadata: this.metadata, moderation: this.moderation, failure: this.failure, upstreamFinished: false, interrupted: true, queue: this.queue });
    this.state = 'closed';
    void (this.check?.session ?? null)?.dispose().catch(() => undefined);
  }
}
