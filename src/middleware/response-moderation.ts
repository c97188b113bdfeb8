import { TextAligner, type AlignedChunk } from '../align/text-aligner.js';
import type { StreamGuardSession } from '../guard/stream-guard.js';
import type { ResponsePart, TokenVerdict } from '../guard/types.js';
import { RESPONSE_TEMPLATE } from '../format/template.js';
import { actionFor, type FlaggedSpan, type ResolvedResponsePolicy } from '../policy/resolve.js';
import { RunTracker, type FlagEvent, type TrackedToken } from '../policy/run-tracker.js';
import { eventStartingAt, failureSpan, flagSpan } from './flag-spans.js';
import { decidedSegments, type ReleaseView, type TextSegment } from './release-segments.js';

interface Chunk {
  part: ResponsePart;
  text: string;
  final: boolean;
  /** Ends at the aligner's forced cut: not to be tokenized together with the next chunk. */
  cut: boolean;
  at: number;
}

export interface ModerationHooks {
  /** Something became releasable, or the response was stopped. */
  onChange(): void;
  onFlag?(event: FlagEvent, span: FlaggedSpan): void;
  onError(error: unknown): void;
}

const now = () => performance.now();

/**
 * Moderates the text of one response through a guard session, independent of how it is delivered: text
 * arrives per part (reasoning, answer), the aligner passes final text to the guard in the background (one
 * call in flight, later text batched into the next call), and the run tracker decides each token's fate.
 * Callers ask which part of the text is decided (`segments`) and release it.
 */
export class ResponseModeration {
  readonly text: Record<ResponsePart, string> = { reasoning: '', answer: '' };
  readonly tracker: RunTracker;
  /** Guard lag of each evaluation: from the arrival of the text that completed a chunk to its verdicts (ms). */
  readonly lags: number[] = [];
  /** Duration of each guard call scoring or evaluating the response (ms). */
  readonly decodeMs: number[] = [];
  heldTokensMax = 0;
  private readonly aligners: Record<ResponsePart, TextAligner> = {
    reasoning: new TextAligner(RESPONSE_TEMPLATE.reasoningPrefix),
    answer: new TextAligner(RESPONSE_TEMPLATE.answerPrefix),
  };
  private readonly partTokens: Record<ResponsePart, TrackedToken[]> = { reasoning: [], answer: [] };
  private readonly queue: Chunk[] = [];
  private pumping: Promise<void> | null = null;
  /** `kick` was called while a pump ran. */
  private kicked = false;
  private answerStarted = false;
  private reasoningClosed = false;
  private finished = false;
  /** `finish` was called: no more text comes, nothing is worth evaluating ahead. */
  private finishing = false;
  /** The held tail last evaluated ahead (see `pump`). */
  private speculated: { part: ResponsePart; text: string } | null = null;
  private failure: { error: unknown } | null = null;

  constructor(
    private readonly session: StreamGuardSession,
    private readonly policy: ResolvedResponsePolicy,
    private readonly hooks: ModerationHooks,
    /** Whether the guard evaluates text ahead (`GuardInfo.speculate`). */
    private readonly speculates: boolean,
  ) {
    this.tracker = new RunTracker(policy.debounce, (risk, category) => actionFor(policy, risk, category));
    // The answer's scaffold (an empty thinking block) is evaluated before the first delta; the middleware's
    // prompt check has usually started it already, and then this finds it done.
    this.kick();
  }

  get stopped(): FlagEvent | null {
    return this.tracker.stopped;
  }

  /** Whether all text is decided: the response finished and its last verdicts are in. */
  get complete(): boolean {
    return this.finished;
  }

  /**
   * Adds streamed text. Reasoning goes in the thinking position until the answer starts; reasoning that comes
   * after is moderated as answer text. Returns where the text sits in its guard part.
   */
  append(kind: ResponsePart, delta: string): { part: ResponsePart; start: number; end: number } {
    const part: ResponsePart = kind === 'reasoning' && !this.answerStarted ? 'reasoning' : 'answer';
    if (part === 'answer' && !this.answerStarted) {
      this.answerStarted = true;
      this.closeReasoning();
    }
    const start = this.text[part].length;
    this.text[part] += delta;
    this.commitChunks(part, this.aligners[part].push(delta), false);
    this.kick();
    return { part, start, end: start + delta.length };
  }

  /** Ends the response: flushes the held tails, scores the closing token, resolves open runs. */
  async finish(): Promise<void> {
    this.finishing = true;
    this.closeReasoning();
    this.commitChunks('answer', this.aligners.answer.flush(), false);
    await this.drain();
    if (!this.failure && !this.stopped) {
      try {
        this.record(await this.timed(() => this.session.end()), now());
      } catch (error) {
        this.fail(error);
      }
    }
    this.tracker.end();
    this.finished = true;
    this.hooks.onChange();
  }

  /** Waits until every committed chunk has its verdicts. */
  async drain(): Promise<void> {
    while (this.pumping) await this.pumping;
  }

  /** The decided stretches of `part` in [from, to) (see `decidedSegments`). */
  segments(part: ResponsePart, from: number, to: number): TextSegment[] {
    const view: ReleaseView = {
      tokens: this.partTokens[part],
      heldBack: (token) => this.heldBack(token),
      spanMask: (token) => {
        const event = eventStartingAt(this.tracker, token);
        return event && this.policy.mask(this.span(event));
      },
      settled: this.finished && !this.stopped && !this.failure,
    };
    return decidedSegments(view, from, to);
  }

  /**
   * The decided text of `source`, which is the part's text [start, start + source.length), from offset `from`:
   * passed characters as they are, a redacted span as its mask. `upTo` is how far it is decided.
   */
  render(part: ResponsePart, start: number, from: number, source: string): { text: string; upTo: number } {
    let text = '';
    let upTo = from;
    for (const segment of this.segments(part, from, start + source.length)) {
      text += segment.status === 'pass' ? source.slice(segment.start - start, segment.end - start) : (segment.mask ?? '');
      upTo = segment.end;
    }
    return { text, upTo };
  }

  /**
   * `holdBack`: a token goes out only once that many tokens were scored after it, or the response ended
   * unstopped, so that a rollback can still take back the lead-in to a flagged span.
   */
  private heldBack(token: TrackedToken): boolean {
    const { holdBack } = this.policy;
    const stop = this.stopped;
    if (holdBack === 0 || (this.finished && !stop)) return false;
    // Tokens scored after a stop (in its batch, or in flight) do not count: they are not released either.
    return (stop ? stop.tokenIndex : this.tracker.tokens.length - 1) - token.verdict.index < holdBack;
  }

  /** Index of the first token whose text did not all go out, given how far each part's text was released. */
  firstUnreleased(releasedUpTo: Record<ResponsePart, number>): number {
    const tokens = this.tracker.tokens;
    let i = 0;
    for (; i < tokens.length; i++) {
      const { part, start, end, closing } = tokens[i].verdict;
      // An empty span gates the character after it: out only once that character is.
      if (closing || start === undefined || end === undefined || (start === end ? end >= releasedUpTo[part] : end > releasedUpTo[part])) break;
    }
    return i;
  }

  /**
   * Takes the response back to its first `keep` tokens (the released text), for a continuation to be appended:
   * the guard session erases the rest from its KV cache (the conversation is not evaluated again), and the
   * text, aligners and tokens here are cut to match. Call once no `finish` is pending. Returns how many
   * tokens were dropped.
   */
  async rollback(keep: number): Promise<number> {
    await this.drain();
    this.queue.length = 0;
    const tokens = this.tracker.tokens;
    const dropped = tokens.length - keep;
    await this.session.rollbackTo(keep > 0 ? tokens[keep - 1].verdict : null);
    this.tracker.rollback(keep);
    for (const part of ['reasoning', 'answer'] as const) {
      const list = this.partTokens[part];
      while (list.length > 0 && list[list.length - 1].verdict.index >= keep) list.pop();
      const kept = this.text[part].slice(0, list.at(-1)?.verdict.end ?? 0);
      this.text[part] = kept;
      // The template prefix is tokenized with the part's first text: only a part still without text needs it.
      const prefix = part === 'reasoning' ? RESPONSE_TEMPLATE.reasoningPrefix : RESPONSE_TEMPLATE.answerPrefix;
      this.aligners[part] = new TextAligner(/[^\n]/.test(kept) ? '' : prefix);
    }
    this.answerStarted = this.partTokens.answer.length > 0;
    this.reasoningClosed = this.answerStarted;
    this.finished = false;
    this.finishing = false;
    this.speculated = null;
    return dropped;
  }

  /**
   * Starts a tool call's input in the answer text (after a line break, as the template sets tool calls apart);
   * returns where the input starts. Its text then comes through `append('answer', ...)`.
   */
  startToolInput(): number {
    return this.append('answer', '\n').end;
  }

  /** Tokens the guard makes of `text` (what a stripped repeat cost). */
  countTokens(text: string): Promise<number> {
    return this.session.countTokens(text);
  }

  /** Span description of a flag event, for callbacks and replacement texts. */
  span(event: FlagEvent): FlaggedSpan {
    return flagSpan(this.tracker, this.text, event);
  }

  /** The span used for a stop without a flag (the guard failed and the request fails closed). */
  failureSpan(): FlaggedSpan {
    return failureSpan(this.text);
  }

  private closeReasoning(): void {
    if (this.reasoningClosed) return;
    this.reasoningClosed = true;
    if (this.text.reasoning) this.commitChunks('reasoning', this.aligners.reasoning.flush(), true);
  }

  /** `final` goes with the last chunk, or alone when there is none (the part's text was all released). */
  private commitChunks(part: ResponsePart, chunks: AlignedChunk[], final: boolean): void {
    if (final && chunks.length === 0) this.commit(part, '', true, false);
    chunks.forEach((chunk, i) => this.commit(part, chunk.text, final && i === chunks.length - 1, chunk.cut));
  }

  private commit(part: ResponsePart, text: string, final: boolean, cut: boolean): void {
    if (!text && !final) return;
    this.queue.push({ part, text, final, cut, at: now() });
    this.kick();
  }

  private kick(): void {
    // A pump that already found nothing to do may not have settled yet: what came meanwhile (all the text, when
    // it came during the prompt check and the guard does not speculate) gets a pump of its own after it.
    if (this.pumping) {
      this.kicked = true;
      return;
    }
    this.pumping = this.pump().finally(() => {
      this.pumping = null;
      if (!this.kicked) return;
      this.kicked = false;
      this.kick();
    });
  }

  /**
   * One guard call at a time; chunks queued meanwhile go together in the next call (one decode). With nothing
   * queued, the tail the aligner holds is evaluated ahead (`GuardSession.speculate`): when the next delta makes
   * it final, its verdicts are there at once, unless that delta re-tokenized it. Verdicts, and so releases,
   * still come only from final text.
   */
  private async pump(): Promise<void> {
    while (!this.failure && !this.stopped) {
      if (this.queue.length === 0) {
        const tail = this.tailAhead();
        if (!tail) return;
        this.speculated = tail;
        try {
          await this.timed(() => this.session.speculate(tail.part, tail.text));
        } catch (error) {
          this.fail(error);
        }
        continue;
      }
      const first = this.queue[0];
      // Queued text starts where the speculated text does. Chunks it covers go alone: their verdicts need no
      // decode, so they do not wait for the decode of the chunks after them.
      const covered = this.speculated?.part === first.part ? this.speculated.text : '';
      const isCovered = (t: string) => covered.length > 0 && covered.startsWith(t);
      // Until the first verdict, the first chunk goes alone: text that piled up during a long prompt check then
      // starts flowing after one small decode instead of after all of it.
      const firstOnly = this.tracker.tokens.length === 0;
      let count = 0;
      let text = '';
      let final = false;
      let cut = false;
      while (count < this.queue.length && this.queue[count].part === first.part && !final && !cut) {
        if (count > 0 && (firstOnly || (isCovered(text) && !isCovered(text + this.queue[count].text)))) break;
        ({ final, cut } = this.queue[count]);
        text += this.queue[count].text;
        count++;
      }
      this.queue.splice(0, count);
      // With nothing else queued, the held tail goes in the same call (in the same decode when one is needed).
      const tail = this.queue.length === 0 && !final && !cut ? this.tailAhead() : null;
      const ahead = tail?.part === first.part ? tail.text : undefined;
      if (ahead !== undefined) this.speculated = tail;
      try {
        this.record(await this.timed(() => this.session.appendText(first.part, text, { final, ahead })), first.at);
      } catch (error) {
        this.fail(error);
      }
    }
  }

  /** The held tail of the part being streamed, when it was not evaluated ahead yet. */
  private tailAhead(): { part: ResponsePart; text: string } | null {
    if (this.finishing || !this.speculates) return null;
    const part: ResponsePart = this.answerStarted || !this.text.reasoning ? 'answer' : 'reasoning';
    const text = this.aligners[part].pendingText;
    if (part === 'reasoning' && !text) return null;
    if (this.speculated?.part === part && this.speculated.text === text) return null;
    return { part, text };
  }

  /** A guard call, its duration kept (telemetry's decode histogram). */
  private timed<T>(call: () => Promise<T>): Promise<T> {
    const start = now();
    return call().finally(() => this.decodeMs.push(now() - start));
  }

  private record(verdicts: TokenVerdict[], since: number): void {
    if (verdicts.length === 0) return;
    this.lags.push(now() - since);
    const start = this.tracker.tokens.length;
    const events = this.tracker.push(verdicts);
    for (const token of this.tracker.tokens.slice(start)) this.partTokens[token.verdict.part].push(token);
    this.heldTokensMax = Math.max(this.heldTokensMax, this.tracker.heldCount);
    for (const event of events) this.hooks.onFlag?.(event, this.span(event));
    this.hooks.onChange();
  }

  private fail(error: unknown): void {
    if (this.failure) return;
    this.failure = { error };
    this.hooks.onError(error);
  }
}
