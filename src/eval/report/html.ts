import { createHash } from 'node:crypto';
import { predictedUnsafe } from '../metrics.js';
import type { EvalSummary } from '../summary.js';
import type { EvalItem, ItemResult } from '../types.js';
import { categoryChart, confusionChart, detectionChart, sweepChart } from './charts.js';
import { escapeHtml as e, fmtRate } from './escape.js';

export interface ReportInput {
  /** One summary per model (two with `--compare`), shown side by side. */
  summaries: readonly EvalSummary[];
  items: readonly EvalItem[];
  /** Each model's results, in the order of `summaries`. */
  results: ReadonlyArray<readonly ItemResult[]>;
  /** Most misclassified items listed per model. */
  maxMisclassified?: number;
}

/** The page's only script: it filters the misclassified table. The CSP lets this script (by its hash) and nothing else run. */
const SCRIPT = `document.getElementById('filter').addEventListener('input', function (event) {
  var query = event.target.value.toLowerCase();
  document.querySelectorAll('#misclassified tbody tr').forEach(function (row) { row.hidden = query !== '' && row.textContent.toLowerCase().indexOf(query) < 0; });
});`;

const STYLE = `body{font:14px system-ui,sans-serif;margin:24px;color:#222}h1{font-size:20px}h2{font-size:16px;margin-top:24px}
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ddd;padding:3px 8px;text-align:right}th{background:#f5f5f5}
td.text{text-align:left;max-width:520px;white-space:pre-wrap;word-break:break-word;font-family:ui-monospace,monospace;font-size:12px}
.models{display:grid;gap:32px}.model{min-width:0}.note{color:#666;font-size:12px}`;

/** A number as shown, with its source in the summary for a reader (and the tests) to check. */
function metric(model: number, path: string, value: number, format: 'rate' | 'count' | 'fixed' = 'rate'): string {
  const shown = format === 'count' ? String(value) : format === 'fixed' ? value.toFixed(1) : fmtRate(value);
  return `<td data-model="${model}" data-metric="${e(path)}" data-format="${format}">${shown}</td>`;
}

function modelSection(s: EvalSummary, m: number): string {
  const ways = [
    ['controversialAsUnsafe', 'Controversial counted as unsafe', "eval_gen.py's \"Strict F1\"; eval_stream.py prints it as \"loose\""],
    ['controversialAsSafe', 'Controversial counted as safe', 'eval_stream.py prints it as "strict"'],
  ] as const;
  let html = `<section class="model"><h2>${e(s.model)} <span class="note">(${s.variant === 'gen' ? 'Qwen3Guard-Gen' : 'Qwen3Guard-Stream'})</span></h2>`;
  html += `<p class="note">${s.items.evaluated} items (${s.items.prompt} prompts, ${s.items.response} responses); ${s.items.skippedLines} bad lines skipped; ${s.items.failed} failed</p>`;
  html += '<table><tr><th>Unsafe class</th><th>precision</th><th>recall</th><th>F1</th><th>accuracy</th></tr>';
  for (const [key, name, official] of ways) {
    const b = s.unsafeClass[key];
    const path = `unsafeClass.${key}`;
    html += `<tr><th title="${e(official)}">${e(name)}</th>${metric(m, `${path}.precision`, b.precision)}${metric(m, `${path}.recall`, b.recall)}${metric(m, `${path}.f1`, b.f1)}${metric(m, `${path}.accuracy`, b.accuracy)}</tr>`;
  }
  html += '</table><p class="note">Official names: counted as unsafe = eval_gen.py "Strict F1" = eval_stream.py "(loose)"; counted as safe = eval_stream.py "(strict)".</p>';
  html += `<h3>Confusion matrix</h3>${confusionChart(s.confusion)}`;
  if (s.categories) {
    html += `<h3>Per category (Controversial counted as unsafe)</h3>${categoryChart(s.categories)}<table><tr><th>category</th><th>precision</th><th>recall</th><th>F1</th><th>support</th></tr>`;
    for (const [name, c] of Object.entries(s.categories)) {
      const path = `categories.${name}`;
      html += `<tr><th>${e(name)}</th>${metric(m, `${path}.precision`, c.precision)}${metric(m, `${path}.recall`, c.recall)}${metric(m, `${path}.f1`, c.f1)}${metric(m, `${path}.support`, c.support, 'count')}</tr>`;
    }
    html += '</table>';
  }
  if (s.detection) {
    const d = s.detection;
    html += `<h3>Detection position (${d.items} unsafe items with a span, tokens)</h3>${detectionChart(d)}<table><tr><th>exact hit rate</th>${metric(m, 'detection.exactHitRate', d.exactHitRate)}</tr>`;
    html += `<tr><th>first 128 tokens stop rate</th>${metric(m, 'detection.first128Rate', d.first128Rate)}</tr></table>`;
  }
  if (s.sweep) {
    html += `<h3>Threshold sweep (${s.sweep.items} items with probabilities)</h3>${sweepChart(s.sweep)}`;
    html += '<table><tr><th rowspan="2">threshold</th><th colspan="3">P(Unsafe)</th><th colspan="3">P(Unsafe) + P(Controversial)</th></tr><tr><th>P</th><th>R</th><th>F1</th><th>P</th><th>R</th><th>F1</th></tr>';
    s.sweep.unsafe.forEach((p, i) => {
      const q = s.sweep!.unsafeOrControversial[i];
      const cells = (key: string, x: typeof p) => ['precision', 'recall', 'f1'].map((k) => metric(m, `sweep.${key}.${i}.${k}`, x[k as 'f1'])).join('');
      html += `<tr><th>${p.threshold.toFixed(2)}</th>${cells('unsafe', p)}${cells('unsafeOrControversial', q)}</tr>`;
    });
    html += '</table>';
  }
  const t = s.timing;
  html += `<h3>Timing</h3><table><tr><th>latency p50 (ms)</th>${metric(m, 'timing.latencyMs.p50', t.latencyMs.p50, 'fixed')}</tr><tr><th>latency p95 (ms)</th>${metric(m, 'timing.latencyMs.p95', t.latencyMs.p95, 'fixed')}</tr>`;
  html += `<tr><th>items / s (this run)</th>${metric(m, 'timing.itemsPerSecond', t.itemsPerSecond, 'fixed')}</tr></table>`;
  return `${html}</section>`;
}

const TEXT_LIMIT = 600;

function misclassifiedRows(input: ReportInput): string {
  const byId = new Map(input.items.map((i) => [i.id, i]));
  const limit = input.maxMisclassified ?? 200;
  let rows = '';
  input.results.forEach((results, m) => {
    const wrong = results.filter((r) => predictedUnsafe(r.prediction, 'unsafe') !== (r.label === 'unsafe')).slice(0, limit);
    for (const r of wrong) {
      const item = byId.get(r.id);
      const last = item?.messages.at(-1);
      const shown = last ? (last.content.length > TEXT_LIMIT ? `${last.content.slice(0, TEXT_LIMIT)}…` : last.content) : '';
      const score = r.scores ? fmtRate(r.scores.unsafeOrControversial) : '';
      rows += `<tr><td>${e(input.summaries[m].model)}</td><td>${e(r.id)}</td><td>${e(r.task)}</td><td>${e(r.label)}</td><td>${e(r.prediction)}</td><td>${e(r.category ?? '')}</td><td>${score}</td><td class="text">${e(shown)}</td></tr>`;
    }
  });
  return rows;
}

/** The report: one self-contained HTML page, no network, inline style and script, SVG charts. */
export function renderReport(input: ReportInput): string {
  const hash = createHash('sha256').update(SCRIPT).digest('base64');
  const csp = `default-src 'none'; style-src 'unsafe-inline'; img-src data:; script-src 'sha256-${hash}'`;
  const title = `qwen3guard eval: ${input.summaries.map((s) => s.model).join(' vs ')}`;
  const data = input.summaries[0]?.data;
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta http-equiv="Content-Security-Policy" content="${e(csp)}">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>${e(title)}</title><style>${STYLE}</style></head>
<body><h1>${e(title)}</h1>${data ? `<p class="note">data: ${e(data)}</p>` : ''}
<div class="models" style="grid-template-columns:repeat(${input.summaries.length}, minmax(0, 1fr))">${input.summaries.map(modelSection).join('')}</div>
<h2>Misclassified items (Controversial counted as unsafe)</h2><p><input id="filter" type="search" placeholder="filter"></p>
<table id="misclassified"><thead><tr><th>model</th><th>id</th><th>task</th><th>label</th><th>prediction</th><th>category</th><th>P(U)+P(C)</th><th>last message</th></tr></thead>
<tbody>${misclassifiedRows(input)}</tbody></table>
<script>${SCRIPT}</script></body></html>
`;
}
