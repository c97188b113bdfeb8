import type { ResponsePart } from '../guard/types.js';
import type { FlaggedSpan } from '../policy/resolve.js';
import type { FlagEvent, RunTracker, TrackedToken } from '../policy/run-tracker.js';

/** Span description of a flag event, for callbacks and replacement texts: where its run starts and the text it covers. */
export function flagSpan(tracker: RunTracker, text: Record<ResponsePart, string>, event: FlagEvent): FlaggedSpan {
  const first = tracker.tokens[event.runStart].verdict;
  const last = tracker.tokens[event.tokenIndex].verdict;
  const charOffset = first.start ?? text[event.part].length;
  const covered = first.part === last.part ? text[first.part].slice(charOffset, last.end ?? charOffset) : text[first.part].slice(charOffset);
  return { riskLevel: event.riskLevel, category: event.category, part: event.part, tokenIndex: event.tokenIndex, charOffset, text: covered };
}

/** The span used for a stop without a flag (the guard failed and the request fails closed). */
export function failureSpan(text: Record<ResponsePart, string>): FlaggedSpan {
  return { riskLevel: 'Unsafe', category: null, part: 'answer', tokenIndex: -1, charOffset: text.answer.length, text: '' };
}

/** Characters of a flagged run that already left (optimistic release), given how far each part was released: the leak. */
export function leakedChars(tracker: RunTracker, event: FlagEvent, releasedUpTo: Record<ResponsePart, number>): number {
  const start = tracker.tokens[event.runStart].verdict;
  const runEnd = tracker.tokens[event.tokenIndex].verdict.end ?? start.start ?? 0;
  return start.start === undefined ? 0 : Math.max(0, Math.min(releasedUpTo[start.part], runEnd) - start.start);
}

/** The flag event whose run starts at `token`, if one does. */
export function eventStartingAt(tracker: RunTracker, token: TrackedToken): FlagEvent | undefined {
  const index = token.verdict.index;
  const event = tracker.events.findLast((e) => e.runStart <= index);
  return event !== undefined && tracker.tokens[event.runStart] === token ? event : undefined;
}
