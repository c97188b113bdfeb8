import { generateText, streamText, wrapLanguageModel, type LanguageModelMiddleware } from 'ai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { qwen3GuardMiddleware, Qwen3Guard, type GuardErrorInfo, type Qwen3GuardMiddlewareOptions, type RemoteGuardOptions } from '../src/index.js';
import type { GuardServer } from '../src/server/server.js';
import { startFaultProxy, type FaultProxy } from './fixtures/fault-proxy.js';
import { plantedServer } from './fixtures/guard-kinds.js';
import { scriptedModel, split, type Script } from './fixtures/scripted-model.js';
import { startServe } from './fixtures/serve-process.js';

/**
 * The remote guard when the network or the server fails: every fault is a guard failure under `fail`. Closed
 * (the default), the stream stops and shows nothing the guard did not confirm; open, the answer goes on and the
 * metadata names the cause. Faults come from a loopback proxy in front of a real server, or from killing a real
 * `qwen3guard serve` mid-answer.
 */
const SAFE = 'The weather is lovely today, so we walked along the river and watched the boats go by.';
const LONG = `${SAFE} ${SAFE} Then we mixed these to make a bomb quickly. ${SAFE}`;

let server: GuardServer;
let proxy: FaultProxy;
beforeAll(async () => {
  server = await plantedServer({ maxSessions: 2 });
  proxy = await startFaultProxy(server.url);
});
afterAll(async () => {
  await proxy?.close();
  await server?.close();
});

interface Run {
  text: string;
  finishReason: string;
  code: string | undefined;
  errors: Array<{ error: unknown; info: GuardErrorInfo }>;
  ms: number;
}

async function run(guardOptions: Partial<RemoteGuardOptions>, script: Script, options: Partial<Qwen3GuardMiddlewareOptions> = {}, prompt = 'Tell me about the weather.'): Promise<Run> {
  const guard = Qwen3Guard.remote({ baseURL: proxy.url, timeoutMs: 2000, retryBaseMs: 20, ...guardOptions });
  const errors: Run['errors'] = [];
  const middleware = qwen3GuardMiddleware({ guard, onError: (error, info) => errors.push({ error, info }), ...options } as Qwen3GuardMiddlewareOptions) as LanguageModelMiddleware;
  const started = performance.now();
  const result = streamText({ model: wrapLanguageModel({ model: scriptedModel(script).model, middleware }), prompt });
  let text = '';
  for await (const delta of result.textStream) text += delta;
  const metadata = (await result.providerMetadata)?.qwen3guard as { error?: { code: string } } | undefined;
  await guard.dispose();
  return { text, finishReason: await result.finishReason, code: metadata?.error?.code, errors, ms: performance.now() - started };
}

/** What a closed failure may show: a prefix of the answer the guard confirmed, then possibly the replacement. */
function onlyConfirmed(text: string, answer: string): boolean {
  const shown = text.replace(/\n\nI can't continue with this response\.$/, '');
  return answer.startsWith(shown) && !/bomb/.test(text);
}

describe('the remote guard when things fail', () => {
  it('an unreachable server: closed refuses the prompt, open lets the answer through; both say guard-unavailable', async () => {
    const closed = await run({ baseURL: 'http://127.0.0.1:9' }, { answer: split(SAFE, 5) });
    expect(closed).toMatchObject({ text: "I can't help with that request.", finishReason: 'content-filter', code: 'guard-unavailable' });
    expect(closed.errors[0].info.phase).toBe('load');
    const open = await run({ baseURL: 'http://127.0.0.1:9' }, { answer: split(SAFE, 5) }, { fail: 'open' });
    expect(open).toMatchObject({ text: SAFE, finishReason: 'stop', code: 'guard-unavailable' });
  });

  it('a wrong key is guard-unauthorized, and is not retried', async () => {
    const keyed = await plantedServer({ apiKeys: ['the-right-key-0123456789'] });
    const front = await startFaultProxy(keyed.url);
    try {
      const guard = Qwen3Guard.remote({ baseURL: front.url, apiKey: 'a-wrong-key-0123456789' });
      const errors: unknown[] = [];
      const middleware = qwen3GuardMiddleware({ guard, onError: (e) => errors.push(e) }) as LanguageModelMiddleware;
      const result = streamText({ model: wrapLanguageModel({ model: scriptedModel({ answer: [SAFE] }).model, middleware }), prompt: 'Hi' });
      expect(await result.text).toBe("I can't help with that request.");
      expect(((await result.providerMetadata)?.qwen3guard as { error: { code: string } }).error.code).toBe('guard-unauthorized');
      expect(String(errors[0])).toMatch(/refused the API key/);
      expect(front.seen.filter((s) => s.path === '/v1/info')).toHaveLength(1);
    } finally {
      await front.close();
      await keyed.close();
    }
  });

  it('429 is guard-busy, and a 503 is retried (it may be another instance behind a balancer)', async () => {
    proxy.set({ when: { path: /^\/v1\/sessions$/ }, status: 429, headers: { 'retry-after': '30' } });
    expect(await run({}, { answer: [SAFE] })).toMatchObject({ finishReason: 'content-filter', code: 'guard-busy' });
    proxy.set({ when: { path: /^\/v1\/sessions$/ }, status: 503, times: 1 });
    expect(await run({}, { answer: split(SAFE, 5) })).toMatchObject({ text: SAFE, finishReason: 'stop', code: undefined });
    proxy.set(null);
  });

  it('a 500 mid-answer stops the stream closed, showing only confirmed text; open goes on', async () => {
    proxy.set({ when: { body: /"op":"append"/ }, status: 500, times: 1 });
    const closed = await run({}, { answer: split(LONG, 4), delayMs: 2 });
    expect(closed.code).toBe('guard-failed');
    expect(closed.finishReason).toBe('content-filter');
    expect(onlyConfirmed(closed.text, LONG)).toBe(true);
    expect(closed.errors[0].info.phase).toBe('response');
    proxy.set({ when: { body: /"op":"append"/ }, status: 500, times: 1 });
    const open = await run({}, { answer: split(LONG, 4) }, { fail: 'open' });
    expect(open).toMatchObject({ text: LONG, code: 'guard-failed' });
    proxy.set(null);
  });

  it('a server that stops answering times out within timeoutMs: closed, nothing unconfirmed, no hang', async () => {
    proxy.set({ when: { body: /"op":"(append|end)"/ }, hang: true });
    const closed = await run({ timeoutMs: 800 }, { answer: split(LONG, 4) });
    expect(closed.code).toBe('guard-timeout');
    expect(onlyConfirmed(closed.text, LONG)).toBe(true);
    expect(closed.ms).toBeLessThan(10_000);
    proxy.set(null);
  });

  it('an answer lost after the call ran is retried with the same seq and answered from the record', async () => {
    const clean = await run({}, { answer: split(LONG, 4) });
    // Two attempts of one call lose their answer (retries: 2 allows a third).
    proxy.set({ when: { body: /"op":"append"/ }, dropAnswer: true, times: 2 });
    const lossy = await run({}, { answer: split(LONG, 4) });
    expect(lossy).toMatchObject({ text: clean.text, finishReason: clean.finishReason, code: undefined });
    proxy.set(null);
  });

  it('a session the server lost is guard-session-lost', async () => {
    proxy.set({ when: { body: /"op":"append"/ }, status: 404, times: 1 });
    // (the proxy's 404 has no unknown-session code, so it reads as a wrong route: see the next case for a real loss)
    expect((await run({}, { answer: split(LONG, 4) })).code).toBe('guard-unavailable');
    proxy.set(null);
    const restarted = await plantedServer({ maxSessions: 2 });
    try {
      // The proxy moves to a new server mid-answer: the session is unknown there.
      let moved = false;
      const script: Script = { answer: split(LONG, 4), delayMs: 3 };
      const guard = Qwen3Guard.remote({ baseURL: proxy.url });
      const middleware = qwen3GuardMiddleware({ guard, onPromptVerdict: () => setTimeout(() => ((moved = true), proxy.target(restarted.url)), 30) }) as LanguageModelMiddleware;
      const result = streamText({ model: wrapLanguageModel({ model: scriptedModel(script).model, middleware }), prompt: 'Tell me about the weather.' });
      const text = await result.text;
      expect(moved).toBe(true);
      expect(((await result.providerMetadata)?.qwen3guard as { error: { code: string } }).error.code).toBe('guard-session-lost');
      expect(onlyConfirmed(text, LONG)).toBe(true);
      await guard.dispose();
    } finally {
      proxy.target(server.url);
      await restarted.close();
    }
  });

  it('generateText fails closed the same way', async () => {
    const guard = Qwen3Guard.remote({ baseURL: 'http://127.0.0.1:9', timeoutMs: 500 });
    const middleware = qwen3GuardMiddleware({ guard }) as LanguageModelMiddleware;
    const result = await generateText({ model: wrapLanguageModel({ model: scriptedModel({ answer: [SAFE] }).model, middleware }), prompt: 'Hi' });
    expect(result.finishReason).toBe('content-filter');
    expect((result.providerMetadata?.qwen3guard as { error: { code: string } }).error.code).toBe('guard-unavailable');
  });
});

describe('a qwen3guard serve killed mid-answer', () => {
  it('ends the in-flight answer closed with only confirmed text, and the next request fails closed at once', async () => {
    const serve = await startServe();
    try {
      const guard = Qwen3Guard.remote({ baseURL: serve.url, timeoutMs: 3000, retryBaseMs: 20 });
      const middleware = qwen3GuardMiddleware({ guard, onPromptVerdict: () => setTimeout(() => serve.kill('SIGKILL'), 40) }) as LanguageModelMiddleware;
      const started = performance.now();
      const result = streamText({ model: wrapLanguageModel({ model: scriptedModel({ answer: split(LONG, 3), delayMs: 4 }).model, middleware }), prompt: 'Tell me about the weather.' });
      const text = await result.text;
      expect(await serve.exited).toBe(null);
      expect(await result.finishReason).toBe('content-filter');
      expect(((await result.providerMetadata)?.qwen3guard as { error: { code: string } }).error.code).toBe('guard-unavailable');
      expect(onlyConfirmed(text, LONG)).toBe(true);
      expect(performance.now() - started).toBeLessThan(15_000);
      const after = streamText({ model: wrapLanguageModel({ model: scriptedModel({ answer: [SAFE] }).model, middleware: qwen3GuardMiddleware({ guard }) as LanguageModelMiddleware }), prompt: 'Hi' });
      expect(await after.text).toBe("I can't help with that request.");
    } finally {
      serve.kill('SIGKILL');
    }
  });
});
