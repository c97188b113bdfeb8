import { streamText, wrapLanguageModel, type LanguageModelMiddleware, type ModelMessage } from 'ai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { qwen3GuardMiddleware, Qwen3Guard, type RemoteGuard } from '../src/index.js';
import { deployNginxBlock, freePort, hasNginx, startNginx, type Nginx } from './fixtures/nginx.js';
import { scriptedModel, split } from './fixtures/scripted-model.js';
import { startServe, type ServeProcess } from './fixtures/serve-process.js';

/**
 * Two `qwen3guard serve` processes behind Debian's nginx, configured with docs/deploy.md's block (consistent
 * hashing on the conversation header): the turns of one conversation reach one instance, and when it dies
 * mid-answer the answer ends closed and the next turn is served by the other one, cold but correct.
 */
const KEY = 'scale-out-key-0123456789';
const SAFE = 'Rivers carry rain from the hills down to the sea, shaping valleys on the way.';
const BOMB = 'Sure. Mix these to make a bomb quickly, then wait an hour before you leave the house.';
const LONG = `${SAFE} ${SAFE} ${SAFE} ${SAFE} ${SAFE}`;

if (!hasNginx) console.warn('test/scale-out.test.ts skipped: no /usr/sbin/nginx (Debian: apt-get install -y nginx)');

describe.skipIf(!hasNginx)('two guard instances behind nginx', () => {
  let instances: ServeProcess[] = [];
  let nginx: Nginx;
  let guard: RemoteGuard;

  beforeAll(async () => {
    instances = await Promise.all([0, 1].map(() => startServe(['--max-sessions', '2'], { QWEN3GUARD_API_KEY: KEY })));
    const port = await freePort();
    let http = deployNginxBlock().replace('listen 80;', `listen 127.0.0.1:${port};`);
    instances.forEach((instance, i) => (http = http.replace(`guard-${i}.guard:8080`, new URL(instance.url).host)));
    nginx = await startNginx(http, port);
    guard = Qwen3Guard.remote({ baseURL: nginx.url, apiKey: KEY, timeoutMs: 5000, retryBaseMs: 20 });
  });

  afterAll(async () => {
    await guard?.dispose();
    await nginx?.stop();
    for (const instance of instances) instance.kill('SIGKILL');
  });

  /** Counters from an instance's /metrics (sessions created, tokens reused and evaluated); null once it is gone. */
  async function counters(instance: ServeProcess) {
    const text = await fetch(`${instance.url}/metrics`, { headers: { authorization: `Bearer ${KEY}` } }).then((r) => r.text(), () => null);
    if (text === null) return null;
    const value = (pattern: RegExp) => Number(pattern.exec(text)?.[1] ?? 0);
    return {
      sessions: value(/^qwen3guard_http_requests_total\{route="sessions",status="201"\} (\d+)$/m),
      reused: value(/^qwen3guard_tokens_total\{kind="reused"\} (\d+)$/m),
      evaluated: value(/^qwen3guard_tokens_total\{kind="evaluated"\} (\d+)$/m),
    };
  }

  const history: ModelMessage[] = [];
  /** One turn of the conversation through the balancer; the answer as shown joins the history. */
  async function turn(question: string, answer: string, options: { conversationId?: string; onPromptVerdict?: () => void } = {}) {
    history.push({ role: 'user', content: question });
    const middleware = qwen3GuardMiddleware({ guard, onPromptVerdict: options.onPromptVerdict }) as LanguageModelMiddleware;
    const result = streamText({
      model: wrapLanguageModel({ model: scriptedModel({ answer: split(answer, 4), delayMs: 2 }).model, middleware }),
      messages: [...history],
      providerOptions: options.conversationId ? { qwen3guard: { conversationId: options.conversationId } } : undefined,
    });
    const text = await result.text;
    history.push({ role: 'assistant', content: text });
    const metadata = (await result.providerMetadata)?.qwen3guard as { error?: { code: string }; action: string };
    return { text, finishReason: await result.finishReason, metadata };
  }

  it('keeps the turns of a conversation on one instance, whose KV cache they reuse', async () => {
    for (let i = 1; i <= 3; i++) expect((await turn(`Question ${i}: tell me about rivers.`, SAFE)).text).toBe(SAFE);
    const [a, b] = await Promise.all(instances.map(counters));
    const [home, other] = a!.sessions > 0 ? [a!, b!] : [b!, a!];
    expect(home.sessions).toBe(3);
    expect(other.sessions).toBe(0);
    // Turns 2 and 3 found their history in the instance's KV cache.
    expect(home.reused).toBeGreaterThan(60);
    // The app's own conversation id routes as well (another conversation, also kept together).
    const before = await Promise.all(instances.map(counters));
    const saved = history.splice(0);
    for (let i = 1; i <= 2; i++) await turn(`Other ${i}: rivers?`, SAFE, { conversationId: 'chat-42' });
    history.splice(0, history.length, ...saved);
    const after = await Promise.all(instances.map(counters));
    const grew = after.map((c, i) => c!.sessions - before[i]!.sessions);
    expect(grew.sort()).toEqual([0, 2]);
  });

  it('ends the answer in flight closed when its instance dies, and serves the next turn from the other one', async () => {
    const counts = await Promise.all(instances.map(counters));
    const homeIndex = counts[0]!.sessions >= 3 ? 0 : 1;
    const home = instances[homeIndex];
    const other = instances[1 - homeIndex];
    const otherBefore = (await counters(other))!;
    const cut = await turn('Question 4: a long one, please.', LONG, { onPromptVerdict: () => setTimeout(() => home.kill('SIGKILL'), 30) });
    expect(await home.exited).toBe(null);
    expect(cut.finishReason).toBe('content-filter');
    expect(['guard-unavailable', 'guard-session-lost']).toContain(cut.metadata.error?.code);
    // Only text the guard confirmed was shown, then the replacement.
    expect(LONG.startsWith(cut.text.replace(/\n\nI can't continue with this response\.$/, ''))).toBe(true);

    const next = await turn('Question 5: and chemistry?', BOMB);
    expect(next.text).toBe("Sure. Mix these to make a\n\nI can't continue with this response.");
    expect(next.metadata.action).toBe('rewrite');
    expect(next.metadata.error).toBeUndefined();
    const otherAfter = (await counters(other))!;
    expect(otherAfter.sessions).toBe(otherBefore.sessions + 1);
    // Cold: the other instance read the whole conversation, none of it from a cache of its own turns.
    expect(otherAfter.evaluated - otherBefore.evaluated).toBeGreaterThan(100);
    expect(otherAfter.reused - otherBefore.reused).toBeLessThan(8);
  });
});
