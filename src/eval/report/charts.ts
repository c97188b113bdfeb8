import type { CategoryScores, Confusion } from '../metrics.js';
import type { DetectionSummary } from '../detection.js';
import type { ThresholdSweep } from '../sweep.js';
import { escapeHtml, fmtRate } from './escape.js';

/*
 * Charts are SVG written here as strings, not drawn by a chart library: the report must open anywhere with no
 * network (no CDN script), stay one small self-contained file, and need no dependency. Four simple shapes
 * (a grid, bars, a histogram, lines) are a few lines each.
 */

const FONT = 'font-family="system-ui, sans-serif" font-size="12"';
const svg = (width: number, height: number, label: string, body: string) =>
  `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" role="img" aria-label="${escapeHtml(label)}" ${FONT}>${body}</svg>`;
const text = (x: number, y: number, value: string, extra = '') => `<text x="${x}" y="${y}" ${extra}>${escapeHtml(value)}</text>`;

/** Predicted Safe / Controversial / Unsafe (rows) against labelled safe / unsafe (columns), shaded by count. */
export function confusionChart(matrix: Confusion): string {
  const rows = ['Safe', 'Controversial', 'Unsafe'] as const;
  const cols = ['safe', 'unsafe'] as const;
  const max = Math.max(1, ...rows.flatMap((r) => cols.map((c) => matrix[r][c])));
  const [left, top, w, h] = [110, 34, 90, 40];
  let body = text(left + w, 14, 'labelled', 'text-anchor="middle" font-weight="600"');
  cols.forEach((c, j) => (body += text(left + j * w + w / 2, top - 6, c, 'text-anchor="middle"')));
  rows.forEach((r, i) => {
    body += text(left - 8, top + i * h + h / 2 + 4, r, 'text-anchor="end"');
    cols.forEach((c, j) => {
      const n = matrix[r][c];
      const good = (r === 'Safe') === (c === 'safe');
      const alpha = (0.12 + 0.78 * (n / max)).toFixed(3);
      body += `<rect x="${left + j * w}" y="${top + i * h}" width="${w - 2}" height="${h - 2}" fill="${good ? '#2e7d32' : '#c62828'}" fill-opacity="${alpha}"/>`;
      body += text(left + j * w + w / 2, top + i * h + h / 2 + 4, String(n), `text-anchor="middle" data-cell="${r}.${c}"`);
    });
  });
  return svg(left + 2 * w + 10, top + 3 * h + 10, 'confusion matrix', body);
}

/** F1 per labelled category, one horizontal bar each. */
export function categoryChart(categories: Record<string, CategoryScores>): string {
  const names = Object.keys(categories);
  const [left, barMax, rowH] = [200, 240, 22];
  let body = '';
  names.forEach((name, i) => {
    const s = categories[name];
    const y = 8 + i * rowH;
    body += text(left - 8, y + 14, name, 'text-anchor="end"');
    body += `<rect x="${left}" y="${y + 2}" width="${(barMax * s.f1).toFixed(1)}" height="${rowH - 6}" fill="#1565c0"/>`;
    body += text(left + barMax * s.f1 + 6, y + 14, `F1 ${fmtRate(s.f1)} (n=${s.support})`);
  });
  return svg(left + barMax + 130, 16 + names.length * rowH, 'F1 per category', body);
}

/** How many flags fell in each official detection bin. */
export function detectionChart(detection: DetectionSummary): string {
  const bins = Object.entries(detection.bins);
  const max = Math.max(1, ...bins.map(([, n]) => n));
  const [left, bottom, barW, height] = [10, 150, 54, 120];
  let body = '';
  bins.forEach(([bin, n], i) => {
    const h = (height * n) / max;
    const x = left + i * barW;
    body += `<rect x="${x + 4}" y="${(bottom - h).toFixed(1)}" width="${barW - 8}" height="${h.toFixed(1)}" fill="${bin === 'Hit' ? '#2e7d32' : bin === 'Safe' ? '#9e9e9e' : '#ef6c00'}"/>`;
    body += text(x + barW / 2, bottom - h - 4, String(n), 'text-anchor="middle"');
    body += text(x + barW / 2, bottom + 16, bin, 'text-anchor="middle"');
  });
  return svg(left * 2 + bins.length * barW, bottom + 26, 'detection position', body);
}

/** Precision, recall and F1 against the threshold on P(Unsafe) (solid) and P(Unsafe) + P(Controversial) (dashed). */
export function sweepChart(sweep: ThresholdSweep): string {
  const [left, top, w, h] = [40, 10, 360, 180];
  const x = (t: number) => left + w * t;
  const y = (v: number) => top + h * (1 - v);
  let body = `<rect x="${left}" y="${top}" width="${w}" height="${h}" fill="none" stroke="#bbb"/>`;
  for (const v of [0, 0.5, 1]) body += text(left - 6, y(v) + 4, v.toFixed(1), 'text-anchor="end"') + text(x(v), top + h + 16, v.toFixed(1), 'text-anchor="middle"');
  const series = [['precision', '#1565c0'], ['recall', '#ef6c00'], ['f1', '#2e7d32']] as const;
  for (const [curve, dash] of [[sweep.unsafe, ''], [sweep.unsafeOrControversial, ' stroke-dasharray="5 4"']] as const) {
    for (const [key, colour] of series) {
      const points = curve.map((p) => `${x(p.threshold).toFixed(1)},${y(p[key]).toFixed(1)}`).join(' ');
      body += `<polyline points="${points}" fill="none" stroke="${colour}" stroke-width="2"${dash}/>`;
    }
  }
  series.forEach(([key, colour], i) => (body += `<rect x="${left + w + 14}" y="${top + 10 + i * 18}" width="10" height="10" fill="${colour}"/>` + text(left + w + 30, top + 19 + i * 18, key)));
  body += text(left + w + 14, top + 80, 'solid: P(Unsafe)') + text(left + w + 14, top + 96, 'dashed: +P(Contr.)');
  return svg(left + w + 140, top + h + 26, 'threshold sweep', body);
}
