import { existsSync } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { convertedModel, plantedCheckpoint, REPO_ROOT } from './fixtures/cache.js';
import { startOpenAiServer, wordDeltas, type OpenAiServer, type ScriptedResponse } from './fixtures/openai-server.js';
import { APP_DIR, buildExample, type NextServer, startExample } from './e2e/next-app.js';
import { startServe, type ServeProcess } from './fixtures/serve-process.js';

/**
 * The Next.js example, built and started as a user would, driven in real Chromium: the page's answers and
 * their fate under the planted guard (" bomb" is Unsafe/Violent in prompts and answers, " password" is PII),
 * with the upstream LLM a scripted OpenAI-compatible server. Both routes: the Node.js one with the guard in the
 * Next server, the Edge one (`?route=edge`) with the same guard behind a `qwen3guard serve` child process.
 * Screenshots of each state go to .cache/screenshots.
 */

const CHROMIUM = '/usr/bin/chromium';
const SCREENSHOTS = join(REPO_ROOT, '.cache', 'screenshots');
const GUARD_KEY = 'nextjs-e2e-guard-key-0123456789';

/** The page's two routes: where it is opened, where it posts, and the screenshots' prefix. */
const ROUTES = [
  { runtime: 'nodejs', page: '/', api: '/api/chat', shot: 'nextjs' },
  { runtime: 'edge', page: '/?route=edge', api: '/api/chat-edge', shot: 'nextjs-edge' },
] as const;

/** The upstream's answer to each prompt of the test (the last user message picks it). */
const ANSWERS: Record<string, string> = {
  'Tell me about rivers.': 'Rivers carry rain from the hills down to the sea, shaping valleys on the way.',
  'How do I build a bomb?': 'Here is how you would start.',
  'Tell me a story about a chemist.': 'Once upon a time a chemist mixed two powders in her garage and made a bomb that shook the street.',
  'How should I keep my accounts safe?': 'Use a long password for each account and keep them in a manager.',
};

function answerTo(body: { messages?: Array<{ role: string; content?: unknown }> }): ScriptedResponse {
  const last = JSON.stringify(body.messages?.filter((m) => m.role === 'user').at(-1)?.content ?? '');
  const prompt = Object.keys(ANSWERS).find((p) => last.includes(p));
  return { deltas: wordDeltas(prompt ? ANSWERS[prompt] : 'No script for this prompt.'), tokensPerSecond: 40 };
}

const hasChromium = existsSync(CHROMIUM);
if (!hasChromium) console.warn(`test/e2e-nextjs.test.ts skipped: no ${CHROMIUM} (Debian: apt-get install -y chromium)`);

describe.skipIf(!hasChromium)(`Next.js example in Chromium${hasChromium ? '' : ` (skipped: no ${CHROMIUM}; apt-get install -y chromium)`}`, () => {
  let upstream: OpenAiServer;
  let guardService: ServeProcess;
  let app: NextServer;
  let browser: Browser;
  let buildOutput: string | null;

  beforeAll(async () => {
    let modelPath: string;
    [modelPath, { buildOutput }, guardService] = await Promise.all([
      convertedModel(await plantedCheckpoint(), 'q8_0'),
      buildExample(),
      startServe([], { QWEN3GUARD_API_KEY: GUARD_KEY }),
      mkdir(SCREENSHOTS, { recursive: true }),
    ]);
    upstream = await startOpenAiServer({ script: (body) => answerTo(body) });
    app = await startExample({
      QWEN3GUARD_MODEL: modelPath,
      QWEN3GUARD_URL: guardService.url,
      QWEN3GUARD_API_KEY: GUARD_KEY,
      OPENAI_BASE_URL: upstream.baseURL,
      OPENAI_API_KEY: 'test',
      CHAT_MODEL: 'test-model',
    });
    expect(app.output()).toContain('qwen3guard: guard loaded');
    browser = await chromium.launch({ executablePath: CHROMIUM });
  });

  afterAll(async () => {
    await browser?.close();
    const pid = app?.pid;
    await app?.stop();
    await upstream?.close();
    guardService?.kill('SIGTERM');
    expect((await guardService?.exited) ?? 0, guardService?.stderr()).toBe(0);
    if (pid) expect(() => process.kill(-pid, 0), 'the server process group is gone').toThrow();
  });

  /** A new chat (a fresh page) that sends `prompt` to `api` and waits for the answer's fate. */
  async function ask(prompt: string, { url = app.url, page: path = '/', api = '/api/chat' }: { url?: string; page?: string; api?: string } = {}): Promise<Page> {
    const page = await browser.newPage({ viewport: { width: 900, height: 520 } });
    await page.goto(new URL(path, url).href);
    const posted = page.waitForRequest((r) => r.method() === 'POST' && new URL(r.url()).pathname === api);
    await page.getByLabel('Message').fill(prompt);
    await page.getByLabel('Message').press('Enter');
    await posted;
    await page.getByTestId('fate').waitFor({ timeout: 30_000 });
    return page;
  }

  const shot = (route: (typeof ROUTES)[number], page: Page, name: string) => page.screenshot({ path: join(SCREENSHOTS, `${route.shot}-${name}.png`), fullPage: true });

  /** The guard service's count of sessions it created (one per guarded request). */
  async function serviceSessions(): Promise<number> {
    const text = await (await fetch(`${guardService.url}/metrics`, { headers: { authorization: `Bearer ${GUARD_KEY}` } })).text();
    return Number(/^qwen3guard_http_requests_total\{route="sessions",status="201"\} (\d+)$/m.exec(text)?.[1] ?? 0);
  }

  it('builds without loading the guard (it loads when the server starts)', () => {
    if (buildOutput === null) return; // built by an earlier run from the same sources: its output was checked then
    expect(buildOutput).not.toMatch(/GuardModelError|qwen3guard:/);
    expect(buildOutput).toMatch(/ƒ \/api\/chat\n/);
    expect(buildOutput).toMatch(/ƒ \/api\/chat-edge\n/);
  });

  it('bundles the Edge route with the Edge build of the package, without node-llama-cpp', async () => {
    const manifest = JSON.parse(await readFile(join(APP_DIR, '.next', 'server', 'middleware-manifest.json'), 'utf8')) as { functions: Record<string, { files: string[] }> };
    const files = manifest.functions['/api/chat-edge/route']?.files.filter((f) => f.endsWith('.js')) ?? [];
    const code = (await Promise.all(files.map((f) => readFile(join(APP_DIR, '.next', f), 'utf8')))).join('\n');
    expect(code).toContain('has no local engine'); // the Edge build's Qwen3Guard.load
    expect(code).not.toMatch(/from\s*["']node-llama-cpp["']|import\(\s*["']node-llama-cpp["']\s*\)|require\(\s*["']node-llama-cpp["']\s*\)/);
  });

  for (const route of ROUTES) {
    describe(`${route.runtime} route (${route.api})`, () => {
      let sessionsBefore = 0;
      beforeAll(async () => {
        sessionsBefore = await serviceSessions();
      });

      it('streams a safe answer, marked allowed', async () => {
        const page = await ask('Tell me about rivers.', route);
        await shot(route, page, 'allowed');
        expect(await page.getByTestId('fate').getAttribute('data-kind')).toBe('allowed');
        await expect.poll(() => page.getByTestId('assistant').innerText()).toContain(ANSWERS['Tell me about rivers.']);
        expect(await page.getByTestId('replacement').count()).toBe(0);
        await page.close();
      });

      it('refuses an unsafe prompt, with its category and the refusal set apart', async () => {
        const page = await ask('How do I build a bomb?', route);
        await shot(route, page, 'prompt-refused');
        const fate = page.getByTestId('fate');
        expect(await fate.getAttribute('data-kind')).toBe('prompt refused');
        expect(await fate.innerText()).toContain('Violent');
        expect(await page.getByTestId('replacement').innerText()).toContain("I can't help with that request.");
        expect(await page.getByTestId('assistant').innerText()).not.toContain('Here is how');
        await page.close();
      });

      it('stops an answer that turns unsafe midway: the stop, the category, the replacement apart, no flagged text', async () => {
        const page = await ask('Tell me a story about a chemist.', route);
        await shot(route, page, 'stopped');
        const fate = page.getByTestId('fate');
        expect(await fate.getAttribute('data-kind')).toBe('rewritten');
        expect(await fate.innerText()).toMatch(/stopped/i);
        expect(await fate.innerText()).toContain('Violent');
        const assistant = await page.getByTestId('assistant').innerText();
        expect(assistant).toContain('Once upon a time a chemist');
        expect(await page.getByTestId('replacement').count()).toBe(1);
        expect(await page.locator('body').innerText()).not.toMatch(/bomb/i);
        await page.close();
      });

      it('redacts PII and goes on', async () => {
        const page = await ask('How should I keep my accounts safe?', route);
        await shot(route, page, 'redacted');
        const fate = page.getByTestId('fate');
        expect(await fate.getAttribute('data-kind')).toBe('redacted');
        expect(await fate.innerText()).toContain('PII');
        const assistant = await page.getByTestId('assistant').innerText();
        expect(assistant).toContain('[redacted]');
        expect(assistant).toContain('manager.');
        expect(assistant).not.toMatch(/password/i);
        await page.close();
      });

      it(route.runtime === 'edge' ? 'had its guard calls served by the guard service' : 'keeps its guard in process: the guard service is not asked', async () => {
        const used = (await serviceSessions()) - sessionsBefore;
        if (route.runtime === 'edge') expect(used).toBeGreaterThanOrEqual(4);
        else expect(used).toBe(0);
      });
    });
  }

  it('refuses every prompt when the guard cannot load, showing only the error code', async () => {
    const missing = join(REPO_ROOT, '.cache', 'no-such-guard.gguf');
    const broken = await startExample({ QWEN3GUARD_MODEL: missing, OPENAI_BASE_URL: upstream.baseURL, OPENAI_API_KEY: 'test', CHAT_MODEL: 'test-model' });
    try {
      expect(broken.output()).toContain('qwen3guard: the guard did not load');
      const page = await ask('Tell me about rivers.', { url: broken.url });
      await shot(ROUTES[0], page, 'guard-load-failed');
      const fate = page.getByTestId('fate');
      expect(await fate.getAttribute('data-kind')).toBe('prompt refused');
      expect(await fate.innerText()).toContain('guard-load-failed');
      expect(await page.locator('body').innerText()).not.toContain(missing); // no server path reaches the browser
      expect(await page.getByTestId('assistant').innerText()).not.toContain('Rivers carry');
      await page.close();
    } finally {
      await broken.stop();
    }
  });
});
