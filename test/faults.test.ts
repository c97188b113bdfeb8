import type { LanguageModelV4StreamPart } from '@ai-sdk/provider';
import { streamText, wrapLanguageModel, type LanguageModelMiddleware } from 'ai';
import { MockLanguageModelV4 } from 'ai/test';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { LocalGuard } from '../src/engine/guard.js';
import { OUTPUTS_PER_DECODE } from '../src/engine/session-sequence.js';
import { GuardBusyError } from '../src/guard/errors.js';
import { qwen3GuardMiddleware, type Qwen3GuardMiddlewareOptions } from '../src/index.js';
import { plantedGuard } from './fixtures/guards.js';
import { scriptedModel, scriptParts, split, type Script } from './fixtures/scripted-model.js';

/**
 * Faults from every side: the upstream (error parts, throws, rejections), the guard (disposed mid-stream), the
 * app (throwing callbacks), the client (aborts at random points). Always a sensible end, no unhandled rejection,
 * and every guard session back in the pool.
 */
const MAX_SESSIONS = 2;
let guard: LocalGuard;
beforeAll(async () => {
  guard = await plantedGuard({ maxSessions: MAX_SESSIONS });
});
afterAll(() => guard.dispose());

const unhandled: unknown[] = [];
const onUnhandled = (reason: unknown) => unhandled.push(reason);
beforeEach(() => {
  unhandled.length = 0;
  process.on('unhandledRejection', onUnhandled);
});
afterEach(async () => {
  // Let late rejections surface before judging.
  await new Promise((r) => setTimeout(r, 30));
  process.off('unhandledRejection', onUnhandled);
  expect(unhandled).toEqual([]);
  await expectAllSessionsFree(guard);
});

/** Every sequence is back: MAX_SESSIONS sessions are granted at once. */
async function expectAllSessionsFree(g: LocalGuard, count = MAX_SESSIONS) {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(new Error('a guard session was not returned')), 3000);
  try {
    const sessions = await Promise.all(Array.from({ length: count }, () => g.createSession({ signal: controller.signal })));
    await Promise.all(sessions.map((s) => s.dispose()));
  } finally {
    clearTimeout(timer);
  }
}

const SAFE = 'The weather is lovely today, so we walked along the river and watched the boats go by.';
const BOMB = 'Sure. Mix these to make a bomb quickly, then wait an hour before you leave the house.';

function middleware(options: Partial<Qwen3GuardMiddlewareOptions> = {}, g = guard): LanguageModelMiddleware {
  return qwen3GuardMiddleware({ guard: g, ...options } as Qwen3GuardMiddlewareOptions) as LanguageModelMiddleware;
}

/** Reads a stream to its end (or its error); returns the text, part types and the outcome. */
async function drain(result: ReturnType<typeof streamText>) {
  const types: string[] = [];
  let text = '';
  let thrown: unknown;
  try {
    for await (const part of result.fullStream) {
      types.push(part.type);
      if (part.type === 'text-delta') text += part.text;
    }
  } catch (error) {
    thrown = error;
  }
  const finishReason = thrown === undefined ? await Promise.resolve(result.finishReason).catch(() => undefined) : undefined;
  return { text, types, thrown, finishReason };
}

function streamOf(parts: Array<LanguageModelV4StreamPart | Error>, delayMs = 1): MockLanguageModelV4 {
  return new MockLanguageModelV4({
    doStream: async () => {
      let i = 0;
      return {
        stream: new ReadableStream<LanguageModelV4StreamPart>({
          async pull(c) {
            await new Promise((r) => setTimeout(r, delayMs));
            if (i >= parts.length) return c.close();
            const next = parts[i++];
            if (next instanceof Error) c.error(next);
            else c.enqueue(next);
          },
        }),
      };
    },
  });
}

const textParts = (text: string, size = 4): LanguageModelV4StreamPart[] => [
  { type: 'stream-start', warnings: [] },
  { type: 'text-start', id: 't' },
  ...split(text, size).map((delta) => ({ type: 'text-delta' as const, id: 't', delta })),
  { type: 'text-end', id: 't' },
];
const FINISH: LanguageModelV4StreamPart = {
  type: 'finish',
  finishReason: { unified: 'stop', raw: 'stop' },
  usage: { inputTokens: { total: 1, noCache: 1, cacheRead: 0, cacheWrite: 0 }, outputTokens: { total: 1, text: 1, reasoning: 0 } },
};

describe('upstream faults', () => {
  it('passes an error part through in order and finishes as the upstream does', async () => {
    const run = await drain(
      streamText({
        model: wrapLanguageModel({ model: streamOf([...textParts(SAFE).slice(0, 8), { type: 'error', error: new Error('rate limited') }, ...textParts(SAFE).slice(8), FINISH]), middleware: middleware() }),
        prompt: 'Hello',
        onError: () => undefined,
      }),
    );
    expect(run.types).toContain('error');
    expect(run.text).toBe(SAFE);
  });

  it('ends with the upstream error when its stream throws, mid-hold or before the verdict', async () => {
    for (const at of [1, 3, 10, 20]) {
      const parts = [...textParts(`${SAFE} ${BOMB}`, 3).slice(0, at), new Error('socket hang up')];
      const errors: unknown[] = [];
      const run = await drain(streamText({ model: wrapLanguageModel({ model: streamOf(parts), middleware: middleware({ onError: (e) => errors.push(e) }) }), prompt: 'Hello', onError: () => undefined }));
      expect(String(run.thrown ?? '') + run.types.join()).toMatch(/socket hang up|error/);
      expect(errors).toEqual([]);
    }
  });

  it('rejects as the upstream does when doStream itself rejects', async () => {
    const model = new MockLanguageModelV4({
      doStream: async () => {
        throw new Error('401 unauthorized');
      },
    });
    const run = await drain(streamText({ model: wrapLanguageModel({ model, middleware: middleware() }), prompt: 'Hello', onError: () => undefined, maxRetries: 0 }));
    expect(String(run.thrown ?? run.types)).toMatch(/401 unauthorized|error/);
  });
});

describe('guard faults', () => {
  it('a guard disposed mid-stream fails closed with content-filter, or open with the rest of the text', async () => {
    for (const fail of ['closed', 'open'] as const) {
      const own = await plantedGuard({ maxSessions: 1 });
      const errors: Array<{ phase: string }> = [];
      const result = streamText({
        model: wrapLanguageModel({ model: scriptedModel({ answer: split(SAFE.repeat(6), 3), delayMs: 3 }).model, middleware: middleware({ fail, onError: (_e, info) => errors.push(info) }, own) }),
        prompt: 'Hello',
      });
      setTimeout(() => void own.dispose(), 150);
      const run = await drain(result);
      if (fail === 'closed') {
        expect(run.finishReason).toBe('content-filter');
        expect(SAFE.repeat(6).startsWith(run.text.replace(/\n\nI can't continue with this response\.$/, ''))).toBe(true);
      } else {
        expect(run.text).toBe(SAFE.repeat(6));
        expect(run.finishReason).toBe('stop');
      }
      expect(errors.map((e) => e.phase)).toEqual(['response']);
    }
  });
});

describe('app faults', () => {
  it('callbacks that throw do not break the stream', async () => {
    const boom = () => {
      throw new Error('app bug');
    };
    const run = await drain(
      streamText({
        model: wrapLanguageModel({ model: scriptedModel({ answer: split(BOMB, 4) }).model, middleware: middleware({ onPromptVerdict: boom, onResponseFlag: boom, onResponseVerdict: boom, onError: boom }) }),
        prompt: 'Hello',
      }),
    );
    expect(run.finishReason).toBe('content-filter');
    expect(run.text).not.toMatch(/bomb/);
  });

  it('callbacks that return a rejected or never-settling promise do not break the stream either', async () => {
    const run = await drain(
      streamText({
        model: wrapLanguageModel({
          model: scriptedModel({ answer: split(BOMB, 4) }).model,
          middleware: middleware({
            onPromptVerdict: (() => Promise.reject(new Error('async app bug'))) as never,
            onResponseFlag: (() => new Promise(() => undefined)) as never,
          }),
        }),
        prompt: 'Hello',
      }),
    );
    expect(run.finishReason).toBe('content-filter');
  });
});

describe('client aborts at random points', () => {
  const scripts: Script[] = [{ answer: split(`${SAFE} ${BOMB} ${SAFE}`, 2), delayMs: 2 }];
  it.each([0, 5, 40, 120, 400])('aborting %i ms in ends the stream, cancels the upstream and frees the session', async (ms) => {
    for (const script of scripts) {
      const upstream = scriptedModel(script);
      const client = new AbortController();
      const result = streamText({ model: wrapLanguageModel({ model: upstream.model, middleware: middleware() }), prompt: 'Hello', abortSignal: client.signal, onError: () => undefined });
      const timer = setTimeout(() => client.abort(new Error('client went away')), ms);
      const run = await drain(result);
      clearTimeout(timer);
      // Either it finished before the abort, or the upstream was read to its end already, or it saw the cancellation.
      if (client.signal.aborted && run.finishReason === undefined && upstream.pulled() < scriptParts(script).length) {
        await expect(Promise.race([upstream.cancelled, new Promise((r) => setTimeout(() => r('no cancel'), 2000))])).resolves.not.toBe('no cancel');
      }
      expect(run.text).not.toMatch(/bomb/);
    }
  });

  it('aborting after the finish is harmless', async () => {
    const client = new AbortController();
    const run = await drain(streamText({ model: wrapLanguageModel({ model: scriptedModel({ answer: split(SAFE, 5) }).model, middleware: middleware() }), prompt: 'Hello', abortSignal: client.signal }));
    client.abort(new Error('late'));
    expect(run.text).toBe(SAFE);
  });
});

describe('load limits', () => {
  it('refuses a session past maxWaiting with a GuardBusyError, which the middleware fails by `fail`', async () => {
    const busy = await plantedGuard({ maxSessions: 1, maxWaiting: 1 });
    try {
      const held = await busy.createSession();
      const waiting = busy.createSession();
      const refused = await busy.createSession().catch((e: unknown) => e);
      expect(refused).toBeInstanceOf(GuardBusyError);
      expect(String(refused)).toMatch(/all 1 sessions \(maxSessions\) are in use and 1 more wait.*Raise maxSessions/);
      const errors: Array<{ phase: string }> = [];
      const run = await drain(
        streamText({ model: wrapLanguageModel({ model: scriptedModel({ answer: split(SAFE, 4) }).model, middleware: middleware({ onError: (_e, info) => errors.push(info) }, busy) }), prompt: 'Hello' }),
      );
      expect(run.finishReason).toBe('content-filter');
      expect(run.text).toBe("I can't help with that request.");
      expect(errors.map((e) => e.phase)).toEqual(['prompt']);
      await held.dispose();
      await (await waiting).dispose();
      await expectAllSessionsFree(busy, 1);
    } finally {
      await busy.dispose();
    }
  });

  it('scores a long text in decodes of at most OUTPUTS_PER_DECODE outputs (bounded output memory)', async () => {
    const session = await guard.createSession();
    try {
      await session.checkPrompt([{ role: 'user', content: 'Hello' }]);
      const before = guard.stats.evaluations;
      const tokens = await session.appendText('answer', 'the river winds past old mills '.repeat(60));
      expect(tokens.length).toBeGreaterThan(3 * OUTPUTS_PER_DECODE);
      expect(guard.stats.evaluations - before).toBe(Math.ceil(tokens.length / OUTPUTS_PER_DECODE));
    } finally {
      await session.dispose();
    }
  });
});
