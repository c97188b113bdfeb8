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
 * Length of the prefix of `text` that no text appended later can re-tokenize: everything before the last
 * pre-tokenizer piece (which can still grow or regroup: a word gets more letters, trailing spaces join the
 * next word) and before the trailing whitespace (a newline arriving later turns the whole run, across
 * pieces, into one `\s*[\r\n]+` piece), cut back to a grapheme boundary so that NFC normalization never
 * composes across it (a combining mark may still arrive for the last character), and never right after a
 * space.
 */
export function stablePrefixLength(text: string): number {
  // Pieces are those of the text the tokenizer sees: NFC (a decomposed "é" followed by "'s" is "é" + "'s",
  // not "e" + "\u0301'" + "s").
  const { text: normalized, toOriginal } = normalizeNfc(text);
  const starts = pieceStarts(normalized);
  if (starts.length < 2) return 0;
  const limit = Math.min(starts.at(-1)!, normalized.length - /\s*$/u.exec(normalized)![0].length);
  const boundaries = new Set<number>();
  for (const { index } of segmenter.segment(normalized)) boundaries.add(index);
  for (let i = starts.length - 1; i >= 1; i--) {
    const at = starts[i];
    // A chunk must not end in spaces either: alone, its trailing `\s+(?!\S)` would take every space left,
    // where the whole text leaves the last one to the piece after it.
    if (at <= limit && boundaries.has(at) && !/[^\S\r\n]/u.test(normalized[at - 1])) return toOriginal[at];
  }
  return 0;
}
