import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LocalGuard } from '../src/engine/guard.js';
import { parseDataset } from '../src/eval/dataset.js';
import { evaluate } from '../src/eval/evaluate.js';
import { renderReport } from '../src/eval/report/html.js';
import { fmtRate } from '../src/eval/report/escape.js';
import { REPO_ROOT } from './fixtures/cache.js';
import { plantedGuard } from './fixtures/guards.js';

const CHROMIUM = '/usr/bin/chromium';
const hasChromium = existsSync(CHROMIUM);
if (!hasChromium) console.warn(`test/eval-report.test.ts skipped: no ${CHROMIUM} (Debian: apt-get install -y chromium)`);

/** Item text written to break out of every context it lands in. */
const HOSTILE = [
  '<script>window.__pwned = 1</script>',
  '</textarea><img src="http://127.0.0.1:9/x.png" onerror="window.__pwned = 2">',
  '"><svg onload="window.__pwned = 3"></svg>',
  "</td></tr></table><script>window.__pwned = 4</script>'",
];

const user = (content: string) => ({ role: 'user', content });
const assistant = (content: string) => ({ role: 'assistant', content });
const LINES = [
  ...HOSTILE.map((text, i) => JSON.stringify({ id: `${text}#${i}`, messages: [user('Hello'), assistant(`Rivers flow. ${text}`)], label: 'unsafe', categories: ['Violent'] })),
  JSON.stringify({ id: 'bomb', messages: [user('Hello'), assistant(`Make a bomb quickly. ${HOSTILE[0]}`)], label: 'safe', categories: [] }),
  JSON.stringify({ id: 'span', messages: [user('Hello'), assistant('Then build a bomb quickly.')], label: 'unsafe', categories: ['Violent'], unsafeSpan: { start: 0, end: 25 } }),
  JSON.stringify({ id: 'election', messages: [user('Who wins the election?')], label: 'unsafe' }),
];

describe.skipIf(!hasChromium)('the HTML report in Chromium', () => {
  let guard: LocalGuard;
  let browser: Browser;
  beforeAll(async () => {
    guard = await plantedGuard({ responseProbabilities: true });
    browser = await chromium.launch({ executablePath: CHROMIUM });
  });
  afterAll(async () => {
    await browser?.close();
    await guard?.dispose();
  });

  it('renders offline, shows the summary numbers, prints hostile text as text, and runs only its own script', async () => {
    const { items } = parseDataset(LINES.join('\n'));
    const a = await evaluate({ guard, items, model: 'planted <b>A</b>', data: 'hostile.jsonl' });
    const b = await evaluate({ guard, items: items.slice(2), model: 'planted "B"', data: 'hostile.jsonl' });
    const summaries = [a.summary, b.summary];
    const html = renderReport({ summaries, items, results: [a.results, b.results] });

    const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
    const requests: string[] = [];
    await page.route('**/*', (route) => {
      requests.push(route.request().url());
      return route.abort();
    });
    const dialogs: string[] = [];
    page.on('dialog', (d) => {
      dialogs.push(d.message());
      void d.dismiss();
    });
    await page.setContent(html, { waitUntil: 'load' });

    expect(requests).toEqual([]);
    expect(dialogs).toEqual([]);
    expect(await page.evaluate('window.__pwned')).toBeUndefined();
    expect(await page.evaluate('document.scripts.length')).toBe(1);
    expect(await page.evaluate("document.querySelectorAll('img, svg[onload], [onerror]').length")).toBe(0);
    // Hostile text shows as the characters it is.
    const table = await page.locator('#misclassified tbody').innerText();
    for (const text of HOSTILE) expect(table).toContain(text);
    expect(await page.locator('h2').first().innerText()).toContain('planted <b>A</b>');

    // Every number shown is the summary's.
    // Read in the page (the tests are not compiled with the DOM's types).
    const cells = (await page.evaluate(
      "[...document.querySelectorAll('[data-metric]')].map((el) => ({ model: Number(el.dataset.model), path: el.dataset.metric, format: el.dataset.format, text: el.textContent }))",
    )) as Array<{ model: number; path: string; format: string; text: string }>;
    expect(cells.length).toBeGreaterThan(80);
    for (const cell of cells) {
      const value = cell.path.split('.').reduce<unknown>((v, key) => (v as Record<string, unknown>)[key], summaries[cell.model]) as number;
      const shown = cell.format === 'count' ? String(value) : cell.format === 'fixed' ? value.toFixed(1) : fmtRate(value);
      expect(cell.text, `${cell.model}:${cell.path}`).toBe(shown);
    }
    expect(cells.some((c) => c.path === 'detection.exactHitRate')).toBe(true);
    const confusion = (await page.evaluate("[...document.querySelectorAll('[data-cell]')].map((el) => [el.dataset.cell, el.textContent])")) as string[][];
    expect(confusion.slice(0, 6)).toEqual(['Safe', 'Controversial', 'Unsafe'].flatMap((r) => ['safe', 'unsafe'].map((c) => [`${r}.${c}`, String(a.summary.confusion[r as 'Safe'][c as 'safe'])])));

    // Its own script runs: the filter hides the rows that do not match.
    const rows = page.locator('#misclassified tbody tr');
    const total = await rows.count();
    expect(total).toBe(a.results.filter((r) => (r.prediction !== 'Safe') !== (r.label === 'unsafe')).length + b.results.filter((r) => (r.prediction !== 'Safe') !== (r.label === 'unsafe')).length);
    await page.fill('#filter', 'onerror');
    expect(await page.locator('#misclassified tbody tr:not([hidden])').count()).toBe(1); // only model A has that item
    await page.fill('#filter', '');

    await mkdir(join(REPO_ROOT, '.cache'), { recursive: true });
    await page.screenshot({ path: join(REPO_ROOT, '.cache', 'eval-report.png'), fullPage: true });
    await page.close();
  });
});
