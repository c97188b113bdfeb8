import { normalizeNfc } from '../shared/nfc.js';

/**
 * The Qwen2/Qwen3 pre-tokenizer split (tokenizer.json, also llama.cpp's `qwen2` pre-tokenizer). BPE merges never
 * cross its pieces, so a token is final as soon as its piece is.
 */
const PIECES = /(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+/gu;

/** Start offsets of the pieces of `text`, in order (the first is 0 when text is not empty). */
export function pieceStarts(text: string): number[] {
  const starts: number[] = [];
  PIECES.lastIndex = 0;
  for (const match of text.matchAll(PIECES)) starts.push(match.index);
  return starts;
}

const segmenter = new Intl.Segmenter(undefined, { granularity: 'grapheme' });

/**
 * A position where the text can be cut without changing its tokens. An anchor is one right after a character
 * that is not whitespace: it is known as soon as the code point at it has arrived, whatever follows (after
 * whitespace, a later newline can regroup the whole run).
 */
export interface Boundary {
  at: number;
  anchor: boolean;
}

/**
 * How the last piece can grow without the answer changing: a word (not a possible contraction) takes more
 * letters, a symbol run more symbols, and neither adds a piece start.
 */
export type TailRun = 'letters' | 'symbols';

const TAIL_EXTENDS: Record<TailRun, { piece: RegExp; more: RegExp }> = {
  letters: { piece: /^[^\r\n\p{L}\p{N}']?\p{L}+$/u, more: /^\p{L}+$/u },
  symbols: { piece: /^ ?[^\s\p{L}\p{N}]+$/u, more: /^[^\s\p{L}\p{N}]+$/u },
};

/** Whether appending `more` to text whose last piece is a `tail` run leaves its boundaries as they were. */
export function extendsTail(tail: TailRun | null, more: string): boolean {
  return tail !== null && TAIL_EXTENDS[tail].more.test(more);
}

export interface Scan {
  /** Every cut that no text appended later can re-tokenize, in order (offsets in the original text). */
  boundaries: Boundary[];
  tail: TailRun | null;
}

/**
 * The cuts of `text` that no text appended later can re-tokenize: piece starts before the last piece (which
 * can still grow or regroup: a word gets more letters, trailing spaces join the next word) and before the
 * trailing whitespace (a newline arriving later turns the whole run, across pieces, into one `\s*[\r\n]+`
 * piece), at grapheme boundaries so that NFC normalization never composes across them (a combining mark may
 * still arrive for the last character), and never right after a space.
 */
export function scanPieces(text: string): Scan {
  // Pieces are those of the text the tokenizer sees: NFC (a decomposed "é" followed by "'s" is "é" + "'s",
  // not "e" + "\u0301'" + "s").
  const { text: normalized, toOriginal } = normalizeNfc(text);
  const starts = pieceStarts(normalized);
  const last = normalized.slice(starts.at(-1) ?? 0);
  const tail = (Object.keys(TAIL_EXTENDS) as TailRun[]).find((run) => TAIL_EXTENDS[run].piece.test(last)) ?? null;
  const boundaries: Boundary[] = [];
  if (starts.length < 2) return { boundaries, tail };
  const limit = Math.min(starts.at(-1)!, normalized.length - /\s*$/u.exec(normalized)![0].length);
  const graphemes = new Set<number>();
  for (const { index } of segmenter.segment(normalized)) graphemes.add(index);
  for (let i = 1; i < starts.length && starts[i] <= limit; i++) {
    const at = starts[i];
    const before = normalized[at - 1];
    // A chunk must not end in spaces either: alone, its trailing `\s+(?!\S)` would take every space left,
    // where the whole text leaves the last one to the piece after it.
    if (graphemes.has(at) && !/[^\S\r\n]/u.test(before)) boundaries.push({ at: toOriginal[at], anchor: !/\s/u.test(before) });
  }
  return { boundaries, tail };
}

/** Length of the prefix of `text` that no text appended later can re-tokenize (its last stable cut). */
export function stablePrefixLength(text: string): number {
  return scanPieces(text).boundaries.at(-1)?.at ?? 0;
}

/**
 * Where to cut an overlong run: the last grapheme boundary in (after, target] of `text` (whose offset 0 is a
 * boundary), or `target` itself, moved off a surrogate pair, when one grapheme spans the whole window. Only
 * the code point at `target` and what precedes it decide the answer: grapheme breaks look back, never ahead.
 */
export function forcedCut(text: string, after: number, target: number): number {
  let cut = -1;
  for (const { index } of segmenter.segment(text.slice(0, target + 2))) {
    if (index > target) break;
    if (index > after) cut = index;
  }
  if (cut >= 0) return cut;
  return isHighSurrogate(text.charCodeAt(target - 1)) && isLowSurrogate(text.charCodeAt(target)) ? target - 1 : target;
}

export function isHighSurrogate(code: number): boolean {
  return code >= 0xd800 && code <= 0xdbff;
}

function isLowSurrogate(code: number): boolean {
  return code >= 0xdc00 && code <= 0xdfff;
}
