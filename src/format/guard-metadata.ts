/**
 * What a converted GGUF carries for the guard heads, shared by the converter (writes) and the engine (reads).
 *
 * llama.cpp refuses tensors it does not expect, so the heads travel in two forms:
 * - rows appended to `token_embd` (the tied output matrix), so that the logits include `row . h` for the
 *   post-norm hidden state `h`: the pre-projection `W_pre` (G rows per path, giving `z = W_pre h` exactly)
 *   and the folded rows `W_risk diag(g) W_pre` and `W_cat diag(g) W_pre`, whose argmax equals the head's
 *   label because the RMSNorm scale is positive. Each folded row is stored as a pair (+2^e row, -2^e row)
 *   (see convert/guard-rows.ts): a top-k sampler then returns the pairs' positive members, exactly, without
 *   a scan of the vocabulary. `W_pre` rows are plain: read only for exact probabilities (the prompt), through
 *   the logits filter, they stay out of the response tokens' top-k (k <= 128 keeps llama.cpp's fast path);
 * - metadata arrays with the small matrices needed to finish the maths from `z` in float64.
 */
export const GUARD_FORMAT_VERSION = 2;

export type HeadPath = 'response' | 'query';
export const HEAD_PATHS: readonly HeadPath[] = ['response', 'query'];

export const GuardKeys = {
  formatVersion: 'qwen3guard.format_version',
  vocabSize: 'qwen3guard.vocab_size',
  innerSize: 'qwen3guard.guard_inner_size',
  epsilon: 'qwen3guard.norm_epsilon',
  /** Per path: */
  riskLabels: (p: HeadPath) => `qwen3guard.${p}.risk_labels`,
  categoryLabels: (p: HeadPath) => `qwen3guard.${p}.category_labels`,
  preRow: (p: HeadPath) => `qwen3guard.${p}.pre_row`,
  riskRow: (p: HeadPath) => `qwen3guard.${p}.risk_row`,
  categoryRow: (p: HeadPath) => `qwen3guard.${p}.category_row`,
  riskScale: (p: HeadPath) => `qwen3guard.${p}.risk_scale_log2`,
  categoryScale: (p: HeadPath) => `qwen3guard.${p}.category_scale_log2`,
  normWeight: (p: HeadPath) => `qwen3guard.${p}.norm_weight`,
  riskHead: (p: HeadPath) => `qwen3guard.${p}.risk_head`,
  categoryHead: (p: HeadPath) => `qwen3guard.${p}.category_head`,
} as const;

/** A block of logical rows stored as scaled (+, -) pairs from vocabulary id `start`. */
export interface RowBlock {
  start: number;
  /** log2 of each logical row's scale. */
  scaleLog2: Int32Array;
}

/** One head path as the engine uses it. */
export interface HeadLayout {
  riskLabels: string[];
  categoryLabels: string[];
  /** First vocabulary row of `W_pre` (G plain rows). */
  preRow: number;
  /** Folded risk rows (one per risk label). */
  risk: RowBlock;
  /** Folded category rows (one per category). */
  category: RowBlock;
  /** RMSNorm weight g [G]. */
  normWeight: Float64Array;
  /** Risk head [riskLabels x G], row-major. */
  riskHead: Float64Array;
  /** Category head [categories x G], row-major. */
  categoryHead: Float64Array;
}

export interface GuardLayout {
  formatVersion: number;
  /** Rows of the real vocabulary; guard rows follow. */
  vocabSize: number;
  innerSize: number;
  epsilon: number;
  response: HeadLayout;
  query: HeadLayout;
}
