import type { EvalProgress } from './evaluate.js';

function duration(seconds: number): string {
  if (!Number.isFinite(seconds)) return '?';
  const s = Math.round(seconds);
  return s >= 3600 ? `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m` : s >= 60 ? `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s` : `${s}s`;
}

/**
 * `[#####-----] 120/813 14.8%  3.2 items/s  ETA 3m36s`. The rate counts only items finished since `startDone`
 * (resumed items took no time of this run).
 */
export function progressText(p: EvalProgress, startDone: number, elapsedMs: number, bar = true): string {
  const fraction = p.total ? p.done / p.total : 1;
  const width = 20;
  const filled = Math.round(fraction * width);
  const rate = elapsedMs > 0 ? ((p.done - startDone) * 1000) / elapsedMs : 0;
  const eta = rate > 0 ? duration((p.total - p.done - p.failed) / rate) : '?';
  const failed = p.failed ? `, ${p.failed} failed` : '';
  return `${bar ? `[${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ` : ''}${p.done}/${p.total} ${(100 * fraction).toFixed(1)}%${failed}  ${rate.toFixed(1)} items/s  ETA ${eta}`;
}
