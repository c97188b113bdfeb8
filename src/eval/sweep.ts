import { binaryScores, type BinaryScores } from './metrics.js';
import type { ItemResult, ItemScores } from './types.js';

/** 0.05, 0.10, ... 0.95. */
export const SWEEP_THRESHOLDS: readonly number[] = Array.from({ length: 19 }, (_, i) => (i + 1) / 20);

export interface SweepPoint extends BinaryScores {
  threshold: number;
}

export interface ThresholdSweep {
  /** Items with scores (a Stream guard without `responseProbabilities` gives none for responses). */
  items: number;
  /** Flagged when P(Unsafe) >= threshold (Stream responses: the pair score, see `pairScore`). */
  unsafe: SweepPoint[];
  /** Flagged when P(Unsafe) + P(Controversial) >= threshold. */
  unsafeOrControversial: SweepPoint[];
}

export function thresholdSweep(results: readonly ItemResult[], thresholds: readonly number[] = SWEEP_THRESHOLDS): ThresholdSweep | null {
  const scored = results.filter((r): r is ItemResult & { scores: ItemScores } => r.scores !== null);
  if (!scored.length) return null;
  const curve = (key: keyof ItemScores) => thresholds.map((threshold) => ({ threshold, ...binaryScores(scored.map((r) => ({ predicted: r.scores[key] >= threshold, label: r.label }))) }));
  return { items: scored.length, unsafe: curve('unsafe'), unsafeOrControversial: curve('unsafeOrControversial') };
}
