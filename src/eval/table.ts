import { DETECTION_BINS } from './types.js';
import type { EvalSummary } from './summary.js';

const pct = (v: number) => `${(100 * v).toFixed(2)}%`;
const num = (v: number) => v.toFixed(4);

/** The summary as a plain-text table, one column per model. */
export function summaryTable(summaries: readonly EvalSummary[]): string {
  const rows: Array<[string, ...string[]]> = [['', ...summaries.map((s) => `${s.model} (${s.variant})`)]];
  const row = (name: string, value: (s: EvalSummary) => string) => rows.push([name, ...summaries.map(value)]);
  row('items (prompt / response)', (s) => `${s.items.evaluated} (${s.items.prompt} / ${s.items.response})`);
  row('bad lines skipped / failed', (s) => `${s.items.skippedLines} / ${s.items.failed}`);
  for (const [key, name] of [
    ['controversialAsUnsafe', 'Controversial counted as unsafe'],
    ['controversialAsSafe', 'Controversial counted as safe'],
  ] as const) {
    row(`${name}: P / R / F1`, (s) => `${num(s.unsafeClass[key].precision)} / ${num(s.unsafeClass[key].recall)} / ${num(s.unsafeClass[key].f1)}`);
    row(`${name}: accuracy`, (s) => num(s.unsafeClass[key].accuracy));
  }
  row('predicted Safe: labelled safe / unsafe', (s) => `${s.confusion.Safe.safe} / ${s.confusion.Safe.unsafe}`);
  row('predicted Controversial: safe / unsafe', (s) => `${s.confusion.Controversial.safe} / ${s.confusion.Controversial.unsafe}`);
  row('predicted Unsafe: safe / unsafe', (s) => `${s.confusion.Unsafe.safe} / ${s.confusion.Unsafe.unsafe}`);
  if (summaries.some((s) => s.detection)) {
    row('detection: exact hit / first 128 tokens', (s) => (s.detection ? `${pct(s.detection.exactHitRate)} / ${pct(s.detection.first128Rate)}` : '-'));
    row(`detection bins (${DETECTION_BINS.join(', ')})`, (s) => (s.detection ? DETECTION_BINS.map((b) => s.detection!.bins[b]).join(', ') : '-'));
  }
  if (summaries.some((s) => s.sweep)) {
    row('best F1 over P(Unsafe) thresholds', (s) => {
      if (!s.sweep) return '-';
      const best = s.sweep.unsafe.reduce((a, b) => (b.f1 > a.f1 ? b : a));
      return `${num(best.f1)} at ${best.threshold.toFixed(2)}`;
    });
  }
  row('latency p50 / p95 (ms)', (s) => `${s.timing.latencyMs.p50.toFixed(1)} / ${s.timing.latencyMs.p95.toFixed(1)}`);
  row('items / s (this run)', (s) => s.timing.itemsPerSecond.toFixed(2) + (s.timing.tokensPerSecond === null ? '' : `, ${s.timing.tokensPerSecond.toFixed(0)} tokens/s`));
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  return `${rows.map((r) => r.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]) : cell.padStart(widths[c]))).join('  ')).join('\n')}\n`;
}
