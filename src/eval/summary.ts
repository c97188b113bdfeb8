import { summarizeDetections, type DetectionSummary } from './detection.js';
import type { GuardKind } from './guard-shape.js';
import { categoryMetrics, confusion, unsafeClassMetrics, type CategoryScores, type Confusion, type UnsafeClassMetrics } from './metrics.js';
import { thresholdSweep, type ThresholdSweep } from './sweep.js';
import type { Detection, EvalItem, ItemResult } from './types.js';

export interface EvalTiming {
  /** Per item, from its start to its verdict (waiting for a free guard sequence included). */
  latencyMs: { p50: number; p95: number };
  /** Items finished by this run (not those resumed from `--out`), per second of its wall time. */
  itemsPerSecond: number;
  /** Stream response tokens scored per second by this run; null for Gen. */
  tokensPerSecond: number | null;
  itemsThisRun: number;
  wallMs: number;
}

/** Everything `--summary` writes for one model. All but `timing` depends only on the items and their verdicts. */
export interface EvalSummary {
  model: string;
  variant: GuardKind;
  data?: string;
  items: { evaluated: number; prompt: number; response: number; skippedLines: number; failed: number };
  unsafeClass: UnsafeClassMetrics;
  confusion: Confusion;
  categories: Record<string, CategoryScores> | null;
  detection: DetectionSummary | null;
  sweep: ThresholdSweep | null;
  timing: EvalTiming;
}

/** Nearest-rank percentile. */
export function percentile(values: readonly number[], p: number): number {
  if (!values.length) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.max(0, Math.ceil((p / 100) * sorted.length) - 1)];
}

export interface SummaryInput {
  model: string;
  variant: GuardKind;
  data?: string;
  items: readonly EvalItem[];
  results: readonly ItemResult[];
  /** Results finished by this run, and its wall time. */
  thisRun: readonly ItemResult[];
  wallMs: number;
  skippedLines: number;
  failed: number;
}

export function summarize(input: SummaryInput): EvalSummary {
  const { results } = input;
  const labelled = new Map(input.items.filter((i) => i.categories).map((i) => [i.id, i.categories!]));
  const detections = results.map((r) => r.detection).filter((d): d is Detection => d !== undefined);
  const seconds = input.wallMs / 1000;
  const tokens = input.thisRun.reduce((n, r) => n + (r.tokens ?? 0), 0);
  const summary: EvalSummary = {
    model: input.model,
    variant: input.variant,
    items: {
      evaluated: results.length,
      prompt: results.filter((r) => r.task === 'prompt').length,
      response: results.filter((r) => r.task === 'response').length,
      skippedLines: input.skippedLines,
      failed: input.failed,
    },
    unsafeClass: unsafeClassMetrics(results),
    confusion: confusion(results),
    categories: categoryMetrics(results, labelled),
    detection: summarizeDetections(detections),
    sweep: thresholdSweep(results),
    timing: {
      latencyMs: { p50: percentile(results.map((r) => r.latencyMs), 50), p95: percentile(results.map((r) => r.latencyMs), 95) },
      itemsPerSecond: seconds > 0 ? input.thisRun.length / seconds : 0,
      tokensPerSecond: input.variant === 'stream' && seconds > 0 ? tokens / seconds : null,
      itemsThisRun: input.thisRun.length,
      wallMs: input.wallMs,
    },
  };
  if (input.data !== undefined) summary.data = input.data;
  return summary;
}
