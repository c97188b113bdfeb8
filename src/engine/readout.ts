import type { ControlledEvaluateIndexOutput, ControlledEvaluateInputItem, Token } from 'node-llama-cpp';
import type { HeadLayout, RowBlock } from '../format/guard-metadata.js';
import { headFromPre, labelsFromFolded, pairIds, readPairs, readRows, type HeadResult } from './heads.js';

/**
 * How a scored token's head values are read from its logits.
 * - folded: the folded rows' (+, -) pairs through a top-k. Every pair has a member far above the vocabulary's
 *   logits, so k holds all pairs of both paths plus spare slots (a pair is missed only if its value is below
 *   the 64th largest vocabulary logit: it then reads 0, counted in `inexactTokens`). k stays <= 128, where
 *   llama.cpp partially sorts in place instead of bucketing the whole vocabulary.
 * - pre: the G plain `W_pre` rows through the logits filter (a scan of the vocabulary per token, so only where
 *   exact probabilities are asked for: the prompt, and responses with `responseProbabilities`).
 */
export type Readout = { kind: 'folded'; blocks: [RowBlock, RowBlock]; filter: number[]; topK: number } | { kind: 'pre'; start: number; count: number; filter: number[] };

const SPARE_SLOTS = 64;

export function foldedReadout(head: HeadLayout, foldedRows: number): Readout {
  const blocks: [RowBlock, RowBlock] = [head.risk, head.category];
  return { kind: 'folded', blocks, filter: blocks.flatMap(pairIds), topK: foldedRows + SPARE_SLOTS };
}

export function preReadout(head: HeadLayout, innerSize: number): Readout {
  return { kind: 'pre', start: head.preRow, count: innerSize, filter: Array.from({ length: innerSize }, (_, i) => head.preRow + i) };
}

/** The evaluation item of a token whose head values are wanted. */
export function readItem(id: number, read: Readout): ControlledEvaluateInputItem {
  const filter = { tokens: read.filter as Token[] };
  const options = read.kind === 'folded' ? { temperature: 1, topK: read.topK, topP: 1, minP: 0, seed: 0 } : undefined;
  return [id as Token, { generateNext: { logits: { filter }, options } }];
}

/** The head values of a scored token: folded label rows, or z = W_pre h. `onInexact` hears of a missed pair. */
export function readValues(output: ControlledEvaluateIndexOutput | undefined, read: Readout, onInexact: () => void): Float64Array[] {
  const logits = output?.next.logits;
  if (!logits) throw new Error('The guard returned no logits for a scored token');
  if (read.kind === 'pre') return [readRows(logits, read.start, read.count)];
  return read.blocks.map((block) => {
    const result = readPairs(logits, block);
    if (!result.exact) onInexact();
    return result.values;
  });
}

/** A token's head result (label, category, and probabilities with the pre readout). */
export function readHead(layout: HeadLayout, output: ControlledEvaluateIndexOutput | undefined, read: Readout, epsilon: number, onInexact: () => void): HeadResult {
  const values = readValues(output, read, onInexact);
  if (read.kind === 'pre') return headFromPre(layout, values[0], epsilon);
  return labelsFromFolded(layout, values[0], values[1]);
}
