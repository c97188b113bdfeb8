import type { LanguageModelV4StreamPart, LanguageModelV4Usage } from '@ai-sdk/provider';
import type { FlagEvent } from '../policy/run-tracker.js';
import { STOP_ACTIONS, type Action } from '../policy/schema.js';
import { flagInfo, guardMetadata, verdictInfo } from './metadata.js';
import type { ModerationContext } from './options.js';
import { OutputQueue } from './output-queue.js';
import { blocksRequest, safeCall, type PromptCheck } from './prompt-check.js';
import { ResponseModeration } from './response-moderation.js';

type FinishPart = Extract<LanguageModelV4StreamPart, { type: 'finish' }>;

export const EMPTY_USAGE: LanguageModelV4Usage = {
  inputTokens: { total: undefined, noCache: undefined, cacheRead: undefined, cacheWrite: undefined },
  outputTokens: { total: undefined, text: undefined, reasoning: undefined },
};
const CONTENT_FILTER = { unified: 'content-filter', raw: 'qwen3guard' } as const;
const REWRITE_ID = 'qwen3guard-rewrite';

export interface GuardedStreamContext extends ModerationContext {
  refusal: (check: PromptCheck) => string;
}

/**
 * One moderated response stream. Upstream parts wait (in order) until the prompt verdict; then text goes to
 * the guard as it arrives and leaves as far as it is decided. A stop (rewrite, abort, prompt blocked, guard
 * failure when failing closed) cancels the upstream, closes open blocks, emits the replacement and a
 * `content-filter` finish: never an error part.
 */
export class GuardedStream {
  readonly stream: ReadableStream<LanguageModelV4StreamPart>;
  private controller!: ReadableStreamDefaultController<LanguageModelV4StreamPart>;
  private readonly reader: ReadableStreamDefaultReader<LanguageModelV4StreamPart>;
  private readonly queue: OutputQueue;
  private moderation: ResponseModeration | null = null;
  private check: PromptCheck | null = null;
  private readonly early: LanguageModelV4StreamPart[] = [];
  private upstreamFinish: FinishPart | null = null;
  private state: 'waiting' | 'streaming' | 'finishing' | 'closed' = 'waiting';
  private bypass = false;
  private leaked = 0;
  private failure: unknown;

  constructor(
    private readonly context: GuardedStreamContext,
    upstream: ReadableStream<LanguageModelV4StreamPart>,
    promptCheck: Promise<PromptCheck>,
    private readonly abortUpstream: (reason: unknown) => void,
  ) {
    this.reader = upstream.getReader();
    this.queue = new OutputQueue(() => this.moderation, (part) => this.controller.enqueue(part), context.policy.release === 'optimistic');
    this.stream = new ReadableStream<LanguageModelV4StreamPart>({
      start: (controller) => {
        this.controller = controller;
        void promptCheck.then((check) => this.onPromptChecked(check));
        void this.readUpstream();
      },
      cancel: (reason) => this.cancel(reason),
    });
  }

  private async readUpstream(): Promise<void> {
    let finished = false;
    const take = (part: LanguageModelV4StreamPart) => {
      finished ||= part.type === 'finish';
      // Before the prompt verdict every part queues, in order (the synthetic finish too).
      if (this.state === 'waiting') this.early.push(part);
      else this.route(part);
    };
    try {
      for (;;) {
        const { done, value } = await this.reader.read();
        if (done) break;
        if (this.state === 'closed') return;
        take(value);
      }
      // The upstream ended without a finish part: finish as "other".
      if (this.state !== 'closed' && !finished) take({ type: 'finish', usage: EMPTY_USAGE, finishReason: { unified: 'other', raw: undefined } });
    } catch (error) {
      if (this.state === 'closed') return;
      this.close();
      this.controller.error(error);
    }
  }

  private onPromptChecked(check: PromptCheck): void {
    if (this.state === 'closed') {
      void check.session?.dispose();
      return;
    }
    this.check = check;
    if (blocksRequest(check)) return this.stopForPrompt(check);
    if (!check.session) this.bypass = true; // failing open: the guard is unavailable for this request
    else {
      this.moderation = new ResponseModeration(check.session, this.context.policy, {
        onChange: () => this.onChange(),
        onFlag: (event) => this.onFlag(event),
        onError: (error) => this.onGuardError(error),
      });
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
      if (moderation) void moderation.finish().then(() => this.complete());
      else this.complete();
      return;
    }
    if (moderation && part.type === 'text-delta') {
      this.queue.push({ part, range: moderation.append('answer', part.delta) });
    } else if (moderation && part.type === 'reasoning-delta' && policy.reasoning) {
      this.queue.push({ part, range: moderation.append('reasoning', part.delta) });
    } else if (moderation && policy.toolInput && this.routeTool(moderation, part)) {
      // held whole until its input is confirmed
    } else {
      this.queue.push({ part });
    }
    this.queue.release();
  }

  /** Tool calls, when their input is moderated: the input joins the answer text after a line break. */
  private routeTool(moderation: ResponseModeration, part: LanguageModelV4StreamPart): boolean {
    const tool = this.queue.currentTool();
    if (part.type === 'tool-input-start') {
      const at = moderation.startToolInput();
      this.queue.openTool(part, { part: 'answer', start: at, end: at });
    } else if (part.type === 'tool-input-delta' && tool) {
      tool.parts.push(part);
      tool.range.end = moderation.append('answer', part.delta).end;
    } else if (part.type === 'tool-input-end' && tool) {
      tool.parts.push(part);
    } else if (part.type === 'tool-call') {
      if (tool && tool.parts[0].type === 'tool-input-start' && tool.parts[0].id === part.toolCallId) {
        tool.parts.push(part);
        tool.complete = true;
      } else {
        // A call without streamed input: moderate its input as a whole.
        const at = moderation.startToolInput();
        const range = moderation.append('answer', part.input);
        this.queue.openTool(part, { part: 'answer', start: at, end: range.end });
        this.queue.currentTool()!.complete = true;
      }
    } else return false;
    return true;
  }

  private onChange(): void {
    if (this.state === 'closed') return;
    this.queue.release();
    const stop = this.moderation?.stopped;
    if (stop && this.state !== 'waiting') this.stopResponse(stop.action, this.moderation!.span(stop));
  }

  private onFlag(event: FlagEvent): void {
    const moderation = this.moderation!;
    const start = moderation.tracker.tokens[event.runStart].verdict;
    // Characters of the flagged run that already left (optimistic release): the leak.
    const runEnd = moderation.tracker.tokens[event.tokenIndex].verdict.end ?? start.start ?? 0;
    const leaked = start.start === undefined ? 0 : Math.max(0, Math.min(this.queue.releasedUpTo[start.part], runEnd) - start.start);
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
    const unsafe = this.context.policy.actions.Unsafe;
    this.stopResponse(STOP_ACTIONS.includes(unsafe) ? unsafe : 'abort', null);
  }

  /** The response ended upstream and every verdict is in. */
  private complete(): void {
    if (this.state === 'closed') return;
    this.queue.completeTools();
    this.queue.release();
    if (this.moderation?.stopped) return; // stopResponse already finished the stream
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
    const reason = new Error(`qwen3guard: response stopped (${action})`);
    this.abortUpstream(reason);
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
    this.controller.enqueue({ type: 'text-start', id: REWRITE_ID });
    this.controller.enqueue({ type: 'text-delta', id: REWRITE_ID, delta: text });
    this.controller.enqueue({ type: 'text-end', id: REWRITE_ID });
  }

  private finishWith(finishReason: FinishPart['finishReason'], usage: LanguageModelV4Usage, providerMetadata: FinishPart['providerMetadata']): void {
    if (this.state === 'closed') return;
    const metadata = guardMetadata({ check: this.check, moderation: this.moderation, policy: this.context.policy, leakedChars: this.leaked, error: this.failure });
    this.controller.enqueue({ type: 'finish', finishReason, usage, providerMetadata: { ...providerMetadata, qwen3guard: metadata } });
    if (this.moderation) safeCall(this.context.onResponseVerdict, verdictInfo(this.moderation, this.context.startedAt));
    this.close();
    this.controller.close();
  }

  private cancel(reason: unknown): Promise<void> {
    this.abortUpstream(reason);
    this.close();
    return this.reader.cancel(reason).catch(() => undefined);
  }

  private close(): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    void (this.check?.session ?? null)?.dispose().catch(() => undefined);
  }
}
