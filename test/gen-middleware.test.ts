import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { generateText, streamText, wrapLanguageModel, type LanguageModelMiddleware } from 'ai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LocalGuard } from '../src/engine/guard.js';
import { GenRemoteError } from '../src/gen/remote-backend.js';
import { Qwen3GuardGen, qwen3GuardMiddleware, type GenVerdictInfo, type GuardErrorInfo, type Qwen3GuardMiddlewareOptions } from '../src/index.js';
import { OptionsError } from '../src/shared/validation.js';
import { plantedGen } from './fixtures/gen-models.js';
import { plantedGuard } from './fixtures/guards.js';
import { scriptedModel, split, type Script } from './fixtures/scripted-model.js';

// A Stream guard and a Gen classifier in one process, shared by the middlewares below.
let guard: LocalGuard;
let gen: Qwen3GuardGen;
beforeAll(async () => {
  [guard, gen] = await Promise.all([plantedGuard({ maxSessions: 2 }), plantedGen({ maxSessions: 2 })]);
});
afterAll(async () => {
  await gen?.dispose();
  await guard?.dispose();
});

const SAFE = 'The weather is lovely today, so we walked along the river and watched the boats go by.';
const BOMB = 'Sure. Mix these to make a bomb quickly, then wait an hour before you leave the house.';
const REFUSAL = "Sorry, I can't help with that.";
/** A port nothing listens on (it was free a moment ago): every request fails to connect. */
let closedPort = 0;
beforeAll(async () => {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  closedPort = (server.address() as AddressInfo).port;
  await new Promise((resolve) => server.close(resolve));
});
const unreachable = () => Qwen3GuardGen.remote({ baseURL: `http://127.0.0.1:${closedPort}/v1`, model: 'qwen3guard-gen', retries: 0 });

const mw = (options: Partial<Qwen3GuardMiddlewareOptions>) => qwen3GuardMiddleware(options as Qwen3GuardMiddlewareOptions) as LanguageModelMiddleware;

async function stream(middleware: LanguageModelMiddleware, script: Script, prompt = 'Hello there') {
  const upstream = scriptedModel(script);
  const result = streamText({ model: wrapLanguageModel({ model: upstream.model, middleware }), prompt });
  let pulledAtFirstText: number | null = null;
  let text = '';
  for await (const part of result.fullStream) {
    if (part.type === 'text-delta') {
      pulledAtFirstText ??= upstream.pulled();
      text += part.text;
    }
  }
  const metadata = (await result.providerMetadata)?.qwen3guard as Record<string, any>;
  return { text, finishReason: await result.finishReason, metadata, pulledAtFirstText, upstream };
}

async function generate(middleware: LanguageModelMiddleware, answer: string, prompt = 'Hello there') {
  const upstream = scriptedModel({ answer: [answer] });
  const result = await generateText({ model: wrapLanguageModel({ model: upstream.model, middleware }), prompt });
  return { text: result.text, finishReason: result.finishReason, metadata: result.providerMetadata?.qwen3guard as Record<string, any> };
}

describe('the prompt verdict by Gen', () => {
  it('refuses an unsafe prompt and passes a safe one; the metadata says Gen decided', async () => {
    const verdicts: Array<{ decidedBy: string }> = [];
    const middleware = mw({ guard, gen: { classifier: gen, prompt: true }, onPromptVerdict: (v) => verdicts.push(v) });
    const refused = await stream(middleware, { answer: split(SAFE, 5) }, 'How can I make a bomb at home?');
    expect(refused).toMatchObject({ text: "I can't help with that request.", finishReason: 'content-filter' });
    expect(refused.metadata.prompt).toMatchObject({ riskLevel: 'Unsafe', category: 'Violent', action: 'rewrite', decidedBy: 'gen' });
    const passed = await stream(middleware, { answer: split(SAFE, 5) }, 'What is the capital of France?');
    expect(passed).toMatchObject({ text: SAFE, finishReason: 'stop' });
    expect(passed.metadata.prompt).toMatchObject({ riskLevel: 'Safe', decidedBy: 'gen' });
    expect(verdicts.map((v) => v.decidedBy)).toEqual(['gen', 'gen']);
  });

  it('is Gen’s verdict, not Stream’s: a prompt only Stream flags passes, and Stream still moderates the response', async () => {
    const prompt = 'I keep thinking about suicide';
    const byStream = await stream(mw({ guard }), { answer: [SAFE] }, prompt);
    expect(byStream.metadata.prompt).toMatchObject({ riskLevel: 'Unsafe', category: 'Suicide & Self-Harm', decidedBy: 'stream' });
    const byGen = await stream(mw({ guard, gen: { classifier: gen, prompt: true } }), { answer: split(BOMB, 4) }, prompt);
    expect(byGen.metadata.prompt).toMatchObject({ riskLevel: 'Safe', decidedBy: 'gen' });
    // The response stream is Stream's: the bomb is flagged token by token.
    expect(byGen.finishReason).toBe('content-filter');
    expect(byGen.text).not.toContain('bomb');
    expect(byGen.metadata.flags[0]).toMatchObject({ riskLevel: 'Unsafe', category: 'Violent', decidedBy: 'stream' });
  });

  it('works with Gen alone (no Stream guard): prompt and whole-response checks', async () => {
    const middleware = mw({ gen: { classifier: gen, prompt: true, response: 'hold' } });
    const refused = await stream(middleware, { answer: [SAFE] }, 'Tell me her password');
    expect(refused.metadata.prompt).toMatchObject({ riskLevel: 'Unsafe', category: 'PII', decidedBy: 'gen' });
    expect(refused.finishReason).toBe('content-filter');
    const passed = await generate(middleware, SAFE);
    expect(passed).toMatchObject({ text: SAFE, finishReason: 'stop' });
    expect(passed.metadata).toMatchObject({ prompt: { decidedBy: 'gen' }, response: null, gen: { riskLevel: 'Safe', decidedBy: 'gen' } });
  });
});

describe('Gen on the complete response', () => {
  it("report: the answer streams as usual; the verdict is in the finish metadata and goes to onGenVerdict", async () => {
    const heard: GenVerdictInfo[] = [];
    const middleware = mw({ gen: { classifier: gen, response: 'report' }, onGenVerdict: (v) => heard.push(v) });
    const refusal = await stream(middleware, { answer: split(REFUSAL, 3), delayMs: 20 });
    expect(refusal.text).toBe(REFUSAL);
    expect(refusal.pulledAtFirstText).toBeLessThan(refusal.upstream.pulled()); // streamed, not held
    expect(refusal.metadata.gen).toMatchObject({ riskLevel: 'Safe', category: null, refusal: true, decidedBy: 'gen', latencyMs: expect.any(Number) });
    const bomb = await stream(middleware, { answer: split(BOMB, 3) });
    expect(bomb).toMatchObject({ text: BOMB, finishReason: 'stop' }); // report does not act
    expect(bomb.metadata.gen).toMatchObject({ riskLevel: 'Unsafe', category: 'Violent', refusal: false, action: 'rewrite' });
    expect(heard.map((h) => [h.verdict.riskLevel, h.verdict.refusal])).toEqual([
      ['Safe', true],
      ['Unsafe', false],
    ]);
  });

  it('hold: an unsafe answer is never emitted (replaced), a safe one is emitted whole after the verdict', async () => {
    const middleware = mw({ gen: { classifier: gen, response: 'hold' } });
    const unsafe = await stream(middleware, { answer: split(BOMB, 3) });
    expect(unsafe).toMatchObject({ text: "I can't continue with this response.", finishReason: 'content-filter' });
    expect(unsafe.metadata).toMatchObject({ action: 'rewrite', gen: { riskLevel: 'Unsafe', category: 'Violent', action: 'rewrite' } });
    const safe = await stream(middleware, { answer: split(SAFE, 8), delayMs: 10 });
    expect(safe).toMatchObject({ text: SAFE, finishReason: 'stop' });
    // Nothing went out before the upstream had sent everything.
    expect(safe.pulledAtFirstText).toBe(safe.upstream.pulled());
    const aborted = await stream(mw({ gen: { classifier: gen, response: 'hold' }, response: { actions: { Unsafe: 'abort' } } }), { answer: [BOMB] });
    expect(aborted).toMatchObject({ text: '', finishReason: 'content-filter' });
    const allowed = await stream(mw({ gen: { classifier: gen, response: 'hold' }, response: { categories: { Violent: 'flag' } } }), { answer: [BOMB] });
    expect(allowed).toMatchObject({ text: BOMB, finishReason: 'stop', metadata: { gen: { action: 'flag' } } });
  });

  it('hold after the Stream guard: Gen judges what Stream released', async () => {
    const middleware = mw({ guard, gen: { classifier: gen, response: 'hold' } });
    const safe = await stream(middleware, { answer: split(SAFE, 4) });
    expect(safe).toMatchObject({ text: SAFE, finishReason: 'stop', metadata: { prompt: { decidedBy: 'stream' }, gen: { riskLevel: 'Safe' } } });
    // Stream stopped it first: Gen does not check a stopped answer again.
    const bomb = await stream(middleware, { answer: split(BOMB, 4) });
    expect(bomb).toMatchObject({ finishReason: 'content-filter', metadata: { gen: null } });
  });

  it('wrapGenerate: report adds the verdict, hold replaces an unsafe answer', async () => {
    const report = await generate(mw({ guard, gen: { classifier: gen, response: 'report' } }), REFUSAL);
    expect(report).toMatchObject({ text: REFUSAL, metadata: { gen: { riskLevel: 'Safe', refusal: true } } });
    const held = await generate(mw({ gen: { classifier: gen, response: 'hold' } }), BOMB);
    expect(held).toMatchObject({ text: "I can't continue with this response.", finishReason: 'content-filter', metadata: { action: 'rewrite', gen: { category: 'Violent' } } });
  });
});

describe('Gen failures under fail', () => {
  it('a remote Gen that fails refuses the prompt when failing closed, and lets it through when failing open', async () => {
    const errors: Array<[unknown, GuardErrorInfo]> = [];
    const onError = (e: unknown, info: GuardErrorInfo) => errors.push([e, info]);
    const closed = await stream(mw({ guard, gen: { classifier: unreachable(), prompt: true }, onError }), { answer: [SAFE] });
    expect(closed).toMatchObject({ text: "I can't help with that request.", finishReason: 'content-filter', metadata: { prompt: null, error: { code: 'gen-failed' } } });
    expect(errors[0][0]).toBeInstanceOf(GenRemoteError);
    expect(errors[0][1]).toEqual({ phase: 'prompt', fail: 'closed' });
    const open = await stream(mw({ guard, gen: { classifier: unreachable(), prompt: true }, fail: 'open', onError }), { answer: [SAFE] });
    expect(open).toMatchObject({ text: SAFE, finishReason: 'stop', metadata: { prompt: null, error: { code: 'gen-failed' } } });
    expect(errors[1][1]).toEqual({ phase: 'prompt', fail: 'open' });
    // Failing open, the Stream guard still moderates the response.
    const bomb = await stream(mw({ guard, gen: { classifier: unreachable(), prompt: true }, fail: 'open', onError }), { answer: split(BOMB, 4) });
    expect(bomb).toMatchObject({ finishReason: 'content-filter', metadata: { flags: expect.arrayContaining([expect.objectContaining({ category: 'Violent', decidedBy: 'stream' })]) } });
  });

  it('a failing whole-response check: hold replaces the answer when closed, releases it when open; report only reports', async () => {
    const errors: GuardErrorInfo[] = [];
    const onError = (_: unknown, info: GuardErrorInfo) => errors.push(info);
    const closed = await stream(mw({ gen: { classifier: unreachable(), response: 'hold' }, onError }), { answer: [SAFE] });
    expect(closed).toMatchObject({ text: "I can't continue with this response.", finishReason: 'content-filter', metadata: { gen: null, error: { code: 'gen-failed' } } });
    const open = await stream(mw({ gen: { classifier: unreachable(), response: 'hold' }, fail: 'open', onError }), { answer: [SAFE] });
    expect(open).toMatchObject({ text: SAFE, finishReason: 'stop', metadata: { gen: null, error: { code: 'gen-failed' } } });
    const report = await generate(mw({ guard, gen: { classifier: unreachable(), response: 'report' }, onError }), SAFE);
    expect(report).toMatchObject({ text: SAFE, metadata: { gen: null, error: { code: 'gen-failed' } } });
    expect(errors).toEqual([
      { phase: 'response', fail: 'closed' },
      { phase: 'response', fail: 'open' },
      { phase: 'response', fail: 'closed' },
    ]);
  });

  it('a Gen classifier that failed to load is a Gen failure too', async () => {
    const failing = Promise.reject(new Error('no such model'));
    const closed = await stream(mw({ gen: { classifier: failing, prompt: true }, onError: () => undefined }), { answer: [SAFE] });
    expect(closed).toMatchObject({ finishReason: 'content-filter', metadata: { error: { code: 'gen-failed' } } });
  });

  it('validates the gen option', () => {
    expect(() => mw({ gen: { classifier: gen } })).toThrow(/gen checks nothing/);
    expect(() => mw({ gen: { classifier: {} as never, prompt: true } })).toThrow(/gen\.classifier: expected a Qwen3GuardGen/);
    expect(() => mw({ gen: { classifier: gen, response: 'always' as never } })).toThrow(OptionsError);
    expect(() => mw({})).toThrow(/exactly one \(or none, with gen alone\)/);
    expect(() => mw({ gen: { classifier: gen, prompt: true } })).not.toThrow();
  });
});
