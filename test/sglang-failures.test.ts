import { join } from 'node:path';
import { streamText, wrapLanguageModel, type LanguageModelMiddleware } from 'ai';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { GUARD_SUBDIR } from '../src/convert/sglang-heads-format.js';
import { STREAM_GUARD } from '../src/guard/stream-guard.js';
import { qwen3GuardMiddleware, Qwen3Guard, RemoteGuardError, type GuardErrorCode, type SglangGuardOptions, type StreamGuard, type StreamGuardSession, type TokenVerdict } from '../src/index.js';
import { plantedSglang } from './fixtures/guard-kinds.js';
import { scriptedModel, split } from './fixtures/scripted-model.js';
import type { SglangServer, SglangServerKnobs } from './fixtures/sglang-server.js';

/**
 * The SGLang guard failing through the middleware: a 500, a server that hangs (the deadline), one that closes
 * the connection, a short answer (a chunked prefill), a refusal, a body that is not JSON. The stream closes
 * (content-filter, the guard's error code in the metadata), and no text goes out that the guard did not score.
 */
let planted: Awaited<ReturnType<typeof plantedSglang>>;
let server: SglangServer;
beforeAll(async () => {
  planted = await plantedSglang();
  server = planted.server;
});
afterAll(() => planted?.remove());
afterEach(() => server.set({}));

const SAFE = 'The weather is lovely today, so we walked along the river and watched the boats go by.';
const ANSWER = SAFE.repeat(3);
const REPLACEMENT = /(\n\n)?I can't continue with this response\.$/;

/**
 * A ready SGLang guard whose server starts failing (`knobs`) once `okRequests` requests were answered (the prompt
 * check is the first), or from the first request of more than `okIds` ids, and that records every verdict it
 * returned.
 */
async function failingGuard(knobs: SglangServerKnobs, okRequests: number, options: Partial<SglangGuardOptions> = {}, okIds = Infinity) {
  let sent = 0;
  let failing = false;
  const inner = Qwen3Guard.sglang({
    baseURL: server.url,
    heads: join(planted.served, GUARD_SUBDIR),
    timeoutMs: 5_000,
    retries: 1,
    retryBaseMs: 5,
    fetch: (input, init) => {
      const ids = (JSON.parse(String(init?.body)) as { input_ids: number[] }).input_ids.length;
      if (!failing && (++sent > okRequests || ids > okIds)) {
        failing = true;
        server.set(knobs);
      }
      return fetch(input, init);
    },
    ...options,
  });
  // Loaded first (the tokenizer takes a second), so that the answer streams while the guard answers.
  await inner.ready();
  const verdicts: TokenVerdict[] = [];
  const record = (v: TokenVerdict[]) => (verdicts.push(...v), v);
  const guard: StreamGuard = {
    [STREAM_GUARD]: true,
    variant: 'stream',
    kind: inner.kind,
    get info() {
      return inner.info;
    },
    ready: () => inner.ready(),
    get stats() {
      return inner.stats;
    },
    dispose: () => inner.dispose(),
    async createSession(o) {
      const s = await inner.createSession(o);
      const session: StreamGuardSession = {
        checkPrompt: (m, k) => s.checkPrompt(m, k),
        appendText: async (p, t, k) => record(await s.appendText(p, t, k)),
        speculate: (p, t) => s.speculate(p, t),
        end: async () => record(await s.end()),
        rollbackTo: (l) => s.rollbackTo(l),
        countTokens: (t) => s.countTokens(t),
        dispose: () => s.dispose(),
        get counts() {
          return s.counts;
        },
      };
      return session;
    },
  };
  return { guard, verdicts, sent: () => sent };
}

async function stream(guard: StreamGuard, options: { fail?: 'closed' | 'open'; prompt?: string; delayMs?: number } = {}) {
  const errors: unknown[] = [];
  const mw = qwen3GuardMiddleware({ guard, fail: options.fail, onError: (error) => errors.push(error) }) as LanguageModelMiddleware;
  const result = streamText({ model: wrapLanguageModel({ model: scriptedModel({ answer: split(ANSWER, 3), delayMs: options.delayMs ?? 4 }).model, middleware: mw }), prompt: options.prompt ?? 'Hello there' });
  let text = '';
  for await (const part of result.fullStream) if (part.type === 'text-delta') text += part.text;
  const metadata = (await result.providerMetadata)?.qwen3guard as { error?: { code: GuardErrorCode } } | undefined;
  return { text, finishReason: await result.finishReason, metadata, errors };
}

/** The answer text the guard scored (and so may have gone out): up to the last verdict's end. */
const scoredText = (verdicts: TokenVerdict[]) => ANSWER.slice(0, Math.max(0, ...verdicts.filter((v) => v.part === 'answer' && v.end !== undefined).map((v) => v.end!)));

describe('the SGLang guard failing mid-response closes the stream, showing only scored text', () => {
  it.each<[string, SglangServerKnobs, GuardErrorCode, RegExp, Partial<SglangGuardOptions>?, number?]>([
    ['a 500', { fail: { status: 500 } }, 'guard-failed', /The guard failed on (an append|the end of the response) on the server \(HTTP 500: injected failure 500\)/],
    ['a hang past timeoutMs', { hang: true }, 'guard-timeout', /The SGLang server did not answer (an append|the end of the response) within 800 ms/, { timeoutMs: 800 }],
    ['a closed connection (retried once)', { close: true }, 'guard-unavailable', /The SGLang server at .* could not be reached for (an append|the end of the response)/],
    // From the first append on: its answer has several rows, one of them missing (later appends recompute one each).
    ['a short answer', { shortBy: 1 }, 'guard-unavailable', /cannot be used: the answer has .* prefill states, but the server recomputed .*--chunked-prefill-size/, {}, 1],
    ['a refusal', { fail: { status: 400 } }, 'guard-rejected', /The SGLang server refused (an append|the end of the response) \(HTTP 400: injected failure 400\)/],
    ['a body that is not JSON', { malformed: true }, 'guard-unavailable', /not JSON .*--enable-return-hidden-states/],
  ])('%s', async (name, knobs, code, message, options, okRequests = 2) => {
    // The prompt check and the first chunk are answered; the server fails from the next request on.
    const { guard, verdicts, sent } = await failingGuard(knobs, okRequests, options);
    // A conversation of its own: nothing of it is in the server's cache yet.
    const run = await stream(guard, { prompt: `Hello there, ${name}` });
    expect(run.finishReason).toBe('content-filter');
    expect(run.metadata?.error).toEqual({ code });
    expect(run.errors).toHaveLength(1);
    expect(run.errors[0]).toBeInstanceOf(RemoteGuardError);
    expect((run.errors[0] as RemoteGuardError).code).toBe(code);
    expect((run.errors[0] as Error).message).toMatch(message);
    expect(run.text).toMatch(REPLACEMENT);
    const released = run.text.replace(REPLACEMENT, '');
    // What went out is the answer's start, and the guard had scored all of it before it failed.
    expect(ANSWER.startsWith(released)).toBe(true);
    expect(released.length).toBeLessThanOrEqual(scoredText(verdicts).length);
    expect(sent()).toBeGreaterThan(okRequests);
    await guard.dispose();
  });

  it('a 500 late in the answer: what the guard scored before went out, nothing after', async () => {
    // Text that comes slower than the guard answers; the server fails from the first request past 55 ids (of about 80).
    const { guard, verdicts } = await failingGuard({ fail: { status: 500 } }, Infinity, {}, 55);
    const run = await stream(guard, { delayMs: 15 });
    expect(run.finishReason).toBe('content-filter');
    expect(run.metadata?.error).toEqual({ code: 'guard-failed' });
    const released = run.text.replace(REPLACEMENT, '');
    expect(released.length).toBeGreaterThan(20);
    expect(ANSWER.startsWith(released)).toBe(true);
    expect(released.length).toBeLessThanOrEqual(scoredText(verdicts).length);
    expect(scoredText(verdicts).length).toBeLessThan(ANSWER.length);
    await guard.dispose();
  });

  it('fails open when asked to: the rest of the text goes out, the error is reported', async () => {
    const { guard } = await failingGuard({ fail: { status: 500 } }, 3);
    const run = await stream(guard, { fail: 'open' });
    expect(run.text).toBe(ANSWER);
    expect(run.finishReason).toBe('stop');
    expect(run.metadata?.error).toEqual({ code: 'guard-failed' });
    await guard.dispose();
  });

  it('a prompt check that fails refuses the request; a 503 once is retried and changes nothing', async () => {
    const refused = await failingGuard({ fail: { status: 500 } }, 0);
    const blocked = await stream(refused.guard);
    expect(blocked.text).toBe("I can't help with that request.");
    expect(blocked.finishReason).toBe('content-filter');
    expect(blocked.metadata?.error).toEqual({ code: 'guard-failed' });
    await refused.guard.dispose();
    server.set({});

    const retried = await failingGuard({ fail: { status: 503, times: 1 } }, 2);
    const run = await stream(retried.guard);
    expect(run.text).toBe(ANSWER);
    expect(run.finishReason).toBe('stop');
    expect(run.errors).toEqual([]);
    expect(server.requests.filter((r) => r.status === 503)).toHaveLength(1);
    await retried.guard.dispose();
  });
});
