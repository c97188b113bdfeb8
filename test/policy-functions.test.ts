import { generateText, streamText, wrapLanguageModel, type LanguageModelMiddleware } from 'ai';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { LocalGuard } from '../src/engine/guard.js';
import { qwen3GuardMiddleware, type GuardErrorInfo, type Qwen3GuardMiddlewareOptions } from '../src/index.js';
import { plantedGuard } from './fixtures/guards.js';
import { scriptedModel, split } from './fixtures/scripted-model.js';

// The app's replacement, mask and refusal functions are its code, not ours: whatever they do, the stream ends
// with content-filter, the default text stands in, and onError says which function failed (once).

let guard: LocalGuard;
const unhandled: unknown[] = [];
const onUnhandled = (reason: unknown) => void unhandled.push(reason);
beforeAll(async () => {
  guard = await plantedGuard({ maxSessions: 2 });
  process.on('unhandledRejection', onUnhandled);
});
afterAll(async () => {
  process.off('unhandledRejection', onUnhandled);
  await guard.dispose();
});
afterEach(async () => {
  // Rejections are reported as unhandled after the microtask queue drains.
  await new Promise((r) => setTimeout(r, 50));
  expect(unhandled).toEqual([]);
});

const BOMB = 'Sure. Mix these to make a bomb quickly, then wait an hour before you leave the house.';
const SAFE = 'The weather is lovely today, so we walked along the river and watched the boats go by.';
const PII = 'Your password is hunter2 and the sky is blue, have a nice day.';
const REPLACEMENT = "I can't continue with this response.";
const REFUSAL = "I can't help with that request.";

function withErrors(options: Partial<Qwen3GuardMiddlewareOptions>) {
  const errors: Array<{ error: unknown; info: GuardErrorInfo }> = [];
  const mw = qwen3GuardMiddleware({ guard, ...options, onError: (error, info) => void errors.push({ error, info }) } as Qwen3GuardMiddlewareOptions);
  return { mw: mw as LanguageModelMiddleware, errors };
}

const within = <T>(promise: PromiseLike<T>, what: string) =>
  Promise.race([promise, new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`${what} never ended`)), 20_000))]);

async function stream(mw: LanguageModelMiddleware, answer: string, prompt = 'Hello there') {
  const result = streamText({ model: wrapLanguageModel({ model: scriptedModel({ answer: split(answer, 4) }).model, middleware: mw }), prompt });
  const parts: Array<{ type: string; [k: string]: unknown }> = [];
  await within(
    (async () => {
      for await (const part of result.fullStream) parts.push(part as never);
    })(),
    'the stream',
  );
  const text = parts.filter((p) => p.type === 'text-delta').map((p) => p.text as string).join('');
  return { text, parts, finishReason: await result.finishReason, metadata: (await result.providerMetadata)?.qwen3guard as Record<string, any> };
}

async function generate(mw: LanguageModelMiddleware, answer: string, prompt = 'Hello there') {
  const result = await within(generateText({ model: wrapLanguageModel({ model: scriptedModel({ answer: [answer] }).model, middleware: mw }), prompt }), 'generateText');
  return { text: result.text, finishReason: result.finishReason, metadata: result.providerMetadata?.qwen3guard as Record<string, any> };
}

const boom = () => {
  throw new Error('the app failed');
};

describe('replacement', () => {
  it.each([
    ['throws', boom],
    ['returns undefined', () => undefined],
    ['returns an object', () => ({ text: 'nope' })],
    ['returns a promise', async () => 'too late'],
  ])('that %s: default replacement, content-filter, one onError (stream and generate)', async (_, replacement) => {
    for (const run of [stream, generate]) {
      const { mw, errors } = withErrors({ response: { replacement: replacement as never } });
      const out = await run(mw, BOMB);
      expect(out.text).toBe(`Sure. Mix these to make a\n\n${REPLACEMENT}`);
      expect(out.finishReason).toBe('content-filter');
      expect(out.metadata.action).toBe('rewrite');
      expect(out.metadata.error).toEqual({ code: 'policy-function-failed' });
      expect(errors.map((e) => e.info)).toEqual([{ phase: 'policy', function: 'replacement', fail: 'closed' }]);
      if (replacement !== boom) expect(String(errors[0].error)).toMatch(/response\.replacement returned .*, expected a string/);
    }
  });

  it('a working function is used as is', async () => {
    const { mw, errors } = withErrors({ response: { replacement: (span) => `[${span.category}]` } });
    expect((await stream(mw, BOMB)).text).toBe('Sure. Mix these to make a[Violent]');
    expect(errors).toEqual([]);
  });
});

describe('mask', () => {
  it.each([
    ['throws', boom],
    ['returns an object', () => ({ text: 'nope' })],
    ['returns a number', () => 42],
  ])('that %s: the default mask, the stream ends, one onError', async (_, mask) => {
    for (const run of [stream, generate]) {
      const { mw, errors } = withErrors({ response: { categories: { PII: 'redact' }, mask: mask as never } });
      const out = await run(mw, PII);
      expect(out.text).toBe('Your [redacted] hunter2 and the sky is blue, have a nice day.');
      expect(out.text).not.toContain('[object Object]');
      expect(out.metadata.error).toEqual({ code: 'policy-function-failed' });
      expect(errors.map((e) => e.info)).toEqual([{ phase: 'policy', function: 'mask', fail: 'closed' }]);
    }
  });

  it('a failing mask on a response that is then rewritten still ends with content-filter', async () => {
    const { mw, errors } = withErrors({ response: { categories: { PII: 'redact' }, mask: boom } });
    const out = await stream(mw, `${PII} ${BOMB}`);
    expect(out.finishReason).toBe('content-filter');
    expect(out.text).toContain('[redacted]');
    expect(out.text.endsWith(REPLACEMENT)).toBe(true);
    expect(errors.map((e) => e.info.function)).toEqual(['mask']);
  });
});

describe('refusal', () => {
  it.each([
    ['throws', boom],
    ['returns null', () => null],
  ])('that %s: the default refusal, content-filter, one onError (stream and generate)', async (_, refusal) => {
    for (const run of [stream, generate]) {
      const { mw, errors } = withErrors({ prompt: { refusal: refusal as never } });
      const out = await run(mw, SAFE, 'How do I build a bomb?');
      expect(out.text).toBe(REFUSAL);
      expect(out.finishReason).toBe('content-filter');
      expect(out.metadata.error).toEqual({ code: 'policy-function-failed' });
      expect(errors.map((e) => e.info)).toEqual([{ phase: 'policy', function: 'refusal', fail: 'closed' }]);
    }
  });

  it('a refusal function per request is refused at the request start: functions go at construction', async () => {
    const { mw } = withErrors({});
    const seen: unknown[] = [];
    const result = streamText({
      model: wrapLanguageModel({ model: scriptedModel({ answer: [SAFE] }).model, middleware: mw }),
      prompt: 'How do I build a bomb?',
      providerOptions: { qwen3guard: { prompt: { refusal: boom } } as never },
      onError: ({ error }) => void seen.push(error),
    });
    await within(result.consumeStream(), 'the stream');
    expect(String(seen[0])).toMatch(/providerOptions\.qwen3guard\.prompt\.refusal.*construction/);
  });
});
