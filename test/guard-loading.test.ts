import { streamText, wrapLanguageModel, type LanguageModelMiddleware } from 'ai';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { LocalGuard } from '../src/engine/guard.js';
import { qwen3GuardMiddleware, type GuardErrorInfo, type Qwen3GuardMiddlewareOptions } from '../src/index.js';
import { scriptedModel, split } from './fixtures/scripted-model.js';

// A misconfigured guard: one clear warning, a retry with backoff instead of a load per request, and metadata
// that tells the browser what happened without server paths or raw error text.

const MISSING = '/srv/secret-models/missing-guard.gguf';
const BOMB = 'Sure. Mix these to make a bomb quickly, then wait an hour before you leave the house.';
const REFUSAL = "I can't help with that request.";

afterEach(() => vi.restoreAllMocks());

/** A clock the test moves: the backoff compares timestamps, it never sleeps. */
function clock() {
  let t = 1_000_000;
  return { now: () => t, advance: (ms: number) => void (t += ms) };
}

async function request(mw: LanguageModelMiddleware) {
  const result = streamText({ model: wrapLanguageModel({ model: scriptedModel({ answer: split(BOMB, 4) }).model, middleware: mw }), prompt: 'Hi' });
  const text = await result.text;
  return { text, finishReason: await result.finishReason, metadata: (await result.providerMetadata)?.qwen3guard as Record<string, any> };
}

function spies() {
  const warn = vi.spyOn(console, 'warn').mockImplementation(() => undefined);
  const load = vi.spyOn(LocalGuard, 'load');
  return { warn, load };
}

describe('a guard that cannot load', () => {
  it('fails closed: one load attempt and one warning for three requests, a code in the metadata and no path', async () => {
    const { warn, load } = spies();
    const time = clock();
    const mw = qwen3GuardMiddleware({ modelPath: MISSING }, { retry: { now: time.now } }) as LanguageModelMiddleware;
    const runs = [await request(mw), await request(mw), await request(mw)];
    for (const run of runs) {
      expect(run.text).toBe(REFUSAL);
      expect(run.finishReason).toBe('content-filter');
      expect(run.metadata.error).toEqual({ code: 'guard-load-failed' });
      expect(JSON.stringify(run.metadata)).not.toMatch(/secret-models|missing-guard|does not exist/);
    }
    expect(load).toHaveBeenCalledTimes(1);
    expect(warn).toHaveBeenCalledTimes(1);
    const message = String(warn.mock.calls[0][0]);
    expect(message).toMatch(/^qwen3guard: /);
    expect(message).toContain(MISSING); // the server log gets the whole story
    expect(message).toMatch(/does not exist/);
    expect(message).toMatch(/fail closed|refused/);
    expect(message).toMatch(/retr/i);
  });

  it('fails open: the answers pass, one warning', async () => {
    const { warn, load } = spies();
    const mw = qwen3GuardMiddleware({ modelPath: MISSING, fail: 'open' }, { retry: { now: clock().now } }) as LanguageModelMiddleware;
    for (let i = 0; i < 3; i++) {
      const run = await request(mw);
      expect(run.text).toBe(BOMB);
      expect(run.metadata.error).toEqual({ code: 'guard-load-failed' });
    }
    expect(load).toHaveBeenCalledTimes(1);
    expect(warn).toHaveBeenCalledTimes(1);
    expect(String(warn.mock.calls[0][0])).toMatch(/unmoderated|fail open/);
  });

  it('retries once the backoff has passed, doubling it, and warns again only for a new cause', async () => {
    const { warn, load } = spies();
    const time = clock();
    const mw = qwen3GuardMiddleware({ modelPath: MISSING }, { retry: { now: time.now, baseMs: 1000, maxMs: 3000 } }) as LanguageModelMiddleware;
    await request(mw);
    expect(load).toHaveBeenCalledTimes(1);
    time.advance(999);
    await request(mw);
    expect(load).toHaveBeenCalledTimes(1);
    time.advance(1);
    await request(mw);
    expect(load).toHaveBeenCalledTimes(2);
    // Second failure: the backoff doubles (2 s).
    time.advance(1999);
    await request(mw);
    expect(load).toHaveBeenCalledTimes(2);
    time.advance(1);
    await request(mw);
    expect(load).toHaveBeenCalledTimes(3);
    // Capped at maxMs (3 s, not 4 s).
    time.advance(3000);
    await request(mw);
    expect(load).toHaveBeenCalledTimes(4);
    expect(warn).toHaveBeenCalledTimes(1);
  });

  it('reports through onError (phase load) instead of console.warn when given', async () => {
    const { warn, load } = spies();
    const errors: Array<{ error: unknown; info: GuardErrorInfo }> = [];
    const options: Qwen3GuardMiddlewareOptions = { modelPath: MISSING, onError: (error, info) => void errors.push({ error, info }) };
    const mw = qwen3GuardMiddleware(options, { retry: { now: clock().now } }) as LanguageModelMiddleware;
    await request(mw);
    await request(mw);
    expect(load).toHaveBeenCalledTimes(1);
    expect(warn).not.toHaveBeenCalled();
    expect(errors.length).toBeGreaterThan(0);
    for (const { error, info } of errors) {
      expect(info).toEqual({ phase: 'load', fail: 'closed' });
      expect(String(error)).toContain(MISSING);
    }
  });
});
