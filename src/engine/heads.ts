import type { HeadLayout, RowBlock } from '../format/guard-metadata.js';
import { isRiskLevel, type RiskLevel } from '../format/labels.js';
import type { RiskProbabilities } from '../guard/types.js';

/** Vocabulary ids of a block's pairs, as the logits filter wants them. */
export function pairIds(block: RowBlock): number[] {
  return Array.from({ length: block.scaleLog2.length * 2 }, (_, i) => block.start + i);
}

/**
 * Recovers the logical rows' values `row . h` from a top-k of the logits. Each row is a pair (+s row, -s row):
 * whichever member came back gives the value exactly (power-of-two scale). A pair with neither member in
 * the top-k has |value| below the smallest value returned; it reads as 0 and `exact` turns false.
 */
export function readPairs(logits: ReadonlyMap<number, number>, block: RowBlock): { values: Float64Array; exact: boolean } {
  const n = block.scaleLog2.length;
  const values = new Float64Array(n);
  let exact = true;
  for (let r = 0; r < n; r++) {
    const scale = 2 ** -block.scaleLog2[r];
    const plus = logits.get(block.start + 2 * r);
    const minus = logits.get(block.start + 2 * r + 1);
    if (plus !== undefined && plus >= 0) values[r] = plus * scale;
    else if (minus !== undefined && minus >= 0) values[r] = -minus * scale;
    else exact = false;
  }
  return { values, exact };
}

/** Values of `count` plain rows from `start`, as returned by the logits filter. */
export function readRows(logits: ReadonlyMap<number, number>, start: number, count: number): Float64Array {
  const values = new Float64Array(count);
  for (let r = 0; r < count; r++) {
    const value = logits.get(start + r);
    if (value === undefined) throw new Error(`The logits filter returned no value for guard row ${start + r}`);
    values[r] = value;
  }
  return values;
}

function argmax(values: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < values.length; i++) if (values[i] > values[best]) best = i;
  return best;
}

function softmax(values: ArrayLike<number>): Float64Array {
  let max = -Infinity;
  for (let i = 0; i < values.length; i++) max = Math.max(max, values[i]);
  const out = new Float64Array(values.length);
  let sum = 0;
  for (let i = 0; i < values.length; i++) sum += out[i] = Math.exp(values[i] - max);
  for (let i = 0; i < out.length; i++) out[i] /= sum;
  return out;
}

export interface HeadResult {
  riskLevel: RiskLevel;
  /** Category label of the argmax (meaningful only where the risk level is not Safe). */
  category: string;
  probabilities?: RiskProbabilities;
  categoryProbabilities?: Record<string, number>;
}

function riskLevelOf(head: HeadLayout, index: number): RiskLevel {
  const label = head.riskLabels[index];
  if (!isRiskLevel(label)) throw new Error(`Unexpected risk label ${label}`);
  return label;
}

/** Labels from the folded rows: argmax is unchanged by the positive RMSNorm scale. */
export function labelsFromFolded(head: HeadLayout, risk: ArrayLike<number>, category: ArrayLike<number>): HeadResult {
  return { riskLevel: riskLevelOf(head, argmax(risk)), category: head.categoryLabels[argmax(category)] };
}

/** The head in float64 from `z = W_pre h`: RMSNorm (weight only), then both linear heads and softmax. */
export function headFromPre(head: HeadLayout, z: Float64Array, epsilon: number): Required<HeadResult> {
  const G = z.length;
  let ss = 0;
  for (let i = 0; i < G; i++) ss += z[i] * z[i];
  const inv = 1 / Math.sqrt(ss / G + epsilon);
  const u = new Float64Array(G);
  for (let i = 0; i < G; i++) u[i] = head.normWeight[i] * z[i] * inv;
  const project = (matrix: Float64Array, rows: number) => {
    const out = new Float64Array(rows);
    for (let r = 0; r < rows; r++) {
      let acc = 0;
      for (let i = 0; i < G; i++) acc += matrix[r * G + i] * u[i];
      out[r] = acc;
    }
    return out;
  };
  const riskLogits = project(head.riskHead, head.riskLabels.length);
  const categoryLogits = project(head.categoryHead, head.categoryLabels.length);
  const riskP = softmax(riskLogits);
  const categoryP = softmax(categoryLogits);
  const probabilities = { Safe: 0, Unsafe: 0, Controversial: 0 } as RiskProbabilities;
  head.riskLabels.forEach((label, i) => (probabilities[riskLevelOf(head, i)] = riskP[i]));
  return {
    riskLevel: riskLevelOf(head, argmax(riskLogits)),
    category: head.categoryLabels[argmax(categoryLogits)],
    probabilities,
    categoryProbabilities: Object.fromEntries(head.categoryLabels.map((label, i) => [label, categoryP[i]])),
  };
}
