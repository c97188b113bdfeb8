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
 * next word), cut back further to a grapheme boundary so that NFC normalization never composes across it
 * (a combining mark may still arrive for the last character).
 */
export function stablePrefixLength(text: string): number {
  const starts = pieceStarts(text);
  if (starts.length < 2) return 0;
  const boundaries = new Set<number>();
  for (const { index } of segmenter.segment(text)) boundaries.add(index);
  for (let i = starts.length - 1; i >= 1; i--) {
    if (boundaries.has(starts[i])) return starts[i];
  }
  return 0;
}
