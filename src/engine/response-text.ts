import { END_THINK, RESPONSE_TEMPLATE, type Piece } from '../format/template.js';
import type { ResponsePart, RiskLevel, RiskProbabilities, TokenVerdict } from '../guard/types.js';
import { normalizeNfc } from '../shared/nfc.js';
import type { TokenizerHost } from './guard-tokenizer.js';

/** A token to evaluate; `scored` ones get a verdict. */
export interface Item {
  id: number;
  scored: boolean;
  part?: ResponsePart;
  start?: number;
  end?: number;
  /** One of the closing `<|im_end|>\n` tokens (no text). */
  closing?: true;
}

/** Per-part text state: the template's prefix goes in front of the part's first text. */
export interface PartText {
  started: boolean;
  /** Characters of the part's text consumed so far (offsets of later chunks start here). */
  consumed: number;
  closed: boolean;
}

export const freshPart = (): PartText => ({ started: false, consumed: 0, closed: false });

/** Template tokens (never scored). */
export function scaffold(host: TokenizerHost, pieces: Piece[]): Item[] {
  return host.tokenizePieces(pieces).map((id) => ({ id, scored: false }));
}

/** `\n</think>` after reasoning, or the empty block's `\n\n</think>`. */
export function reasoningClosing(host: TokenizerHost, empty: boolean): Item[] {
  const text = empty ? RESPONSE_TEMPLATE.reasoningPrefix + RESPONSE_TEMPLATE.reasoningSuffix : RESPONSE_TEMPLATE.reasoningSuffix;
  return scaffold(host, [{ text }, { special: END_THINK }]);
}

/**
 * The tokens of `text` appended to `part` whose state is `before` (NFC-normalized, the template's prefix before
 * the part's first text, the closing newline and `</think>` after final reasoning), and the part's state after.
 */
export function textItems(host: TokenizerHost, before: PartText, part: ResponsePart, text: string, final: boolean): { items: Item[]; state: PartText } {
  const state = { ...before };
  const items: Item[] = [];
  let raw = text;
  if (!state.started) {
    // The template drops leading newlines of both parts (and trailing ones of the reasoning).
    const stripped = raw.replace(/^\n+/, '');
    state.consumed += raw.length - stripped.length;
    raw = stripped;
  }
  if (final && part === 'reasoning') raw = raw.replace(/\n+$/, '');
  const { text: content, toOriginal } = normalizeNfc(raw);
  const prefix = state.started || !content ? '' : part === 'reasoning' ? RESPONSE_TEMPLATE.reasoningPrefix : RESPONSE_TEMPLATE.answerPrefix;
  const suffix = final && part === 'reasoning' ? RESPONSE_TEMPLATE.reasoningSuffix : '';
  if (content) state.started = true;
  const segment = prefix + content + suffix;
  const ids = host.tokenizeText(segment);
  const spans = host.tokenBytes.spans(segment, ids);
  // Bytes, not characters, decide what is scored: every byte token of a split character is content,
  // wherever the chunk ends (prefix and suffix are ASCII, one byte per character).
  const contentBytes = [prefix.length, prefix.length + Buffer.byteLength(content, 'utf8')];
  const consumed = state.consumed;
  ids.forEach((id, k) => {
    const { byteStart, byteEnd, start, end } = spans[k];
    // Tokens made only of template text are scaffold; a token straddling into the content is scored.
    const scored = byteEnd > contentBytes[0] && byteStart < contentBytes[1];
    const toPart = (x: number) => consumed + toOriginal[Math.min(content.length, Math.max(0, x - prefix.length))];
    items.push(scored ? { id, scored, part, start: toPart(start), end: toPart(end) } : { id, scored });
  });
  state.consumed += raw.length;
  if (final && part === 'reasoning') {
    state.closed = true;
    // With content, its segment already ends in the closing newline; otherwise add it (or the empty block).
    items.push(...(content ? scaffold(host, [{ special: END_THINK }]) : reasoningClosing(host, !state.started)));
  }
  return { items, state };
}

/** The verdict of a scored item, the `index`-th scored token at `position`: its head's labels, its text offsets, its closing mark. */
export function itemVerdict(item: Item, index: number, position: number, head: { riskLevel: RiskLevel; category: string | null; probabilities?: RiskProbabilities }): TokenVerdict {
  const verdict: TokenVerdict = { index, position, id: item.id, part: item.part!, riskLevel: head.riskLevel, category: head.riskLevel === 'Safe' ? null : head.category };
  if (head.probabilities) verdict.probabilities = head.probabilities;
  if (item.start !== undefined) Object.assign(verdict, { start: item.start, end: item.end });
  if (item.closing) verdict.closing = true;
  return verdict;
}
