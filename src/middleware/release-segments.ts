import type { TokenStatus, TrackedToken } from '../policy/run-tracker.js';

/** A stretch of a part's text with one fate. */
export interface TextSegment {
  start: number;
  end: number;
  /** pass: release as is; masked: release `mask` instead (set on the span's first segment only). */
  status: Exclude<TokenStatus, 'held' | 'stopped'>;
  mask?: string;
}

/** What deciding a part's text needs to know of its moderation. */
export interface ReleaseView {
  /** The part's scored tokens, in text order. */
  tokens: readonly TrackedToken[];
  /** A token kept back by `holdBack` (its text waits although decided). */
  heldBack(token: TrackedToken): boolean;
  /** The mask of a redacted span that starts at `token`, or undefined when no span starts there. */
  spanMask(token: TrackedToken): string | undefined;
  /** The response finished unstopped and unfailed: text after the last token (stripped newlines) is decided. */
  settled: boolean;
}

/** Binary search: index of the first token whose text ends at or after `offset` (tokens are in text order). */
function firstTokenEndingAtOrAfter(tokens: readonly TrackedToken[], offset: number): number {
  let lo = 0;
  let hi = tokens.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if ((tokens[mid].verdict.end ?? Infinity) < offset) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * The decided stretches of a part's text in [from, to): released text is contiguous from the start, so this
 * stops at the first held or stopped token, or at text the guard has not labelled yet. A token with an empty
 * span (the first byte tokens of a character split over several) gates the character that its last byte token
 * releases: held or stopped, it stops the release there; masked, the character goes with its mask.
 */
export function decidedSegments(view: ReleaseView, from: number, to: number): TextSegment[] {
  const out: TextSegment[] = [];
  let at = from;
  /** A masked empty-span token before the next character: that character is part of its span. */
  let maskedCarry: TrackedToken | null = null;
  const { tokens } = view;
  for (let i = firstTokenEndingAtOrAfter(tokens, from); i < tokens.length; i++) {
    const token = tokens[i];
    const { start = 0, end = 0 } = token.verdict;
    if (at >= to) break;
    const empty = start === end;
    // Text already behind `at` was released with its tokens; an empty span at `at` still gates what follows.
    if (end < at || (end === at && !empty)) continue;
    if (token.status === 'held' || token.status === 'stopped' || view.heldBack(token)) return out;
    if (empty) {
      if (token.status === 'masked') maskedCarry ??= token;
      continue;
    }
    // Text between tokens (newlines the template strips) goes with the token after it.
    const segEnd = Math.min(end, to);
    if (token.status === 'masked' || maskedCarry) {
      // Spans are contiguous, so a carried empty span starts where this token does.
      const mask = start >= at ? view.spanMask(maskedCarry ?? token) : undefined;
      out.push({ start: at, end: segEnd, status: 'masked', ...(mask !== undefined ? { mask } : {}) });
    } else out.push({ start: at, end: segEnd, status: 'pass' });
    maskedCarry = null;
    at = segEnd;
  }
  if (at < to && view.settled) out.push({ start: at, end: to, status: 'pass' });
  return out;
}
