/**
 * NFC normalization with a map back to the original text. Hugging Face's Qwen3 tokenizer normalizes to NFC
 * and llama.cpp's does not, so text is normalized before tokenizing, and offsets found in the normalized
 * text are mapped back to the caller's characters.
 */
export interface NormalizedText {
  text: string;
  /** `toOriginal[i]` is the original offset of normalized offset i (length text.length + 1). */
  toOriginal: Int32Array;
}

const segmenter = new Intl.Segmenter(undefined, { granularity: 'grapheme' });

export function normalizeNfc(original: string): NormalizedText {
  const text = original.normalize('NFC');
  if (text === original) {
    const toOriginal = new Int32Array(text.length + 1);
    for (let i = 0; i <= text.length; i++) toOriginal[i] = i;
    return { text, toOriginal };
  }
  // Composition never crosses a grapheme cluster (base + marks, Hangul L V T), so clusters normalize alone;
  // offsets inside a cluster that changed map to the cluster's start.
  const parts: string[] = [];
  const map: number[] = [];
  for (const { segment, index } of segmenter.segment(original)) {
    const normalized = segment.normalize('NFC');
    parts.push(normalized);
    if (normalized === segment) for (let k = 0; k < segment.length; k++) map.push(index + k);
    else for (let k = 0; k < normalized.length; k++) map.push(index);
  }
  map.push(original.length);
  return { text: parts.join(''), toOriginal: Int32Array.from(map) };
}
