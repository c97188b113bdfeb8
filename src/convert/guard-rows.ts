import type { GgmlTypeName } from './ggml-types.js';
import type { HeadPath } from '../format/guard-metadata.js';

/** The four head tensors of one path, as float32 in PyTorch [out, in] layout. */
export interface HeadWeights {
  pre: Float32Array; // [G, H]
  norm: Float32Array; // [G]
  risk: Float32Array; // [nRisk, G]
  category: Float32Array; // [nCategory, G]
}

export const HEAD_TENSOR_NAMES: Record<HeadPath, Record<keyof HeadWeights, string>> = {
  response: {
    pre: 'risk_level_category_pre.weight',
    norm: 'risk_level_category_layernorm.weight',
    risk: 'risk_level_head.weight',
    category: 'category_head.weight',
  },
  query: {
    pre: 'query_risk_level_category_pre.weight',
    norm: 'query_risk_level_category_layernorm.weight',
    risk: 'query_risk_level_head.weight',
    category: 'query_category_head.weight',
  },
};

/**
 * `W_out diag(g) W_pre` in float64, rounded once to float32: a [rows x H] matrix whose product with the
 * post-norm hidden state is the head's logits times the (positive) RMSNorm scale, so its argmax is the label.
 */
export function foldHead(out: Float32Array, rows: number, heads: HeadWeights, innerSize: number, hiddenSize: number): Float32Array {
  const folded = new Float32Array(rows * hiddenSize);
  const acc = new Float64Array(hiddenSize);
  for (let r = 0; r < rows; r++) {
    acc.fill(0);
    for (let k = 0; k < innerSize; k++) {
      const coefficient = out[r * innerSize + k] * heads.norm[k];
      if (coefficient === 0) continue;
      const preRow = k * hiddenSize;
      for (let j = 0; j < hiddenSize; j++) acc[j] += coefficient * heads.pre[preRow + j];
    }
    folded.set(acc, r * hiddenSize);
  }
  return folded;
}

/** Rows appended to the vocabulary for one path, in the order the metadata records. */
export function guardRows(heads: HeadWeights, nRisk: number, nCategory: number, innerSize: number, hiddenSize: number) {
  return {
    pre: heads.pre,
    risk: foldHead(heads.risk, nRisk, heads, innerSize, hiddenSize),
    category: foldHead(heads.category, nCategory, heads, innerSize, hiddenSize),
  };
}

/**
 * Largest |entry| of a scaled row per storage type: f16 stays below 65504, and so does a block's f16 scale
 * (q8_0: max / 127; q4_0: max / 8).
 */
const ENTRY_CAP: Record<GgmlTypeName, number> = { F32: Infinity, F16: 2 ** 15, Q8_0: 2 ** 22, Q4_0: 2 ** 18 };
/**
 * Largest |row . h| of a scaled row. llama.cpp's top-k for k > 128 buckets logits through an `int` cast of
 * `6.4 * logit`, which overflows past about 3.3e8; 2^25 keeps a 10x margin.
 */
const LOGIT_CAP = 2 ** 25;

/**
 * Each folded row r is written as the pair (+2^e r, -2^e r). A power-of-two scale changes no rounding, in
 * f32, f16, q8_0 or q4_0 alike (q4_0's scale is signed: -r gets -d and the same nibbles), and makes one row of every pair non-negative and far above every real vocabulary
 * logit, so a top-k over the logits returns exactly the pairs' positive members: the engine reads
 * `r . h` exactly without scanning the vocabulary. `hiddenBound` bounds |h| (max |final norm weight| x sqrt(H)).
 */
export function scaledPairs(rows: Float32Array, width: number, type: GgmlTypeName, hiddenBound: number): { values: Float32Array; scaleLog2: Int32Array } {
  const count = rows.length / width;
  const values = new Float32Array(rows.length * 2);
  const scaleLog2 = new Int32Array(count);
  for (let r = 0; r < count; r++) {
    const row = rows.subarray(r * width, (r + 1) * width);
    let max = 0;
    let norm = 0;
    for (const v of row) {
      max = Math.max(max, Math.abs(v));
      norm += v * v;
    }
    norm = Math.sqrt(norm);
    const e = max > 0 ? Math.floor(Math.log2(Math.min(LOGIT_CAP / (norm * hiddenBound), ENTRY_CAP[type] / max))) : 0;
    scaleLog2[r] = e;
    const scale = 2 ** e;
    for (let j = 0; j < width; j++) {
      values[2 * r * width + j] = row[j] * scale;
      values[(2 * r + 1) * width + j] = -row[j] * scale;
    }
  }
  return { values, scaleLog2 };
}
