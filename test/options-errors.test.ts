import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { streamText, wrapLanguageModel, type LanguageModelMiddleware } from 'ai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LocalGuard } from '../src/engine/guard.js';
import {
  GuardModelError,
  OptionsError,
  PROMPT_CATEGORIES,
  qwen3GuardMiddleware,
  RESPONSE_CATEGORIES,
  type GuardErrorInfo,
  type PromptCategory,
  type Qwen3GuardMiddlewareOptions,
  type ResponseCategory,
} from '../src/index.js';
import { convertedModel, plantedCheckpoint } from './fixtures/cache.js';
import { plantedGuard, TEST_THREADS } from './fixtures/guards.js';
import { scriptedModel } from './fixtures/scripted-model.js';

let guard: LocalGuard;
let dir: string;
beforeAll(async () => {
  guard = await plantedGuard({ maxSessions: 1 });
  dir = await mkdtemp(join(tmpdir(), 'qwen3guard-options-'));
});
afterAll(async () => {
  await guard.dispose();
  await rm(dir, { recursive: true, force: true });
});

const SAFE = 'The weather is lovely today, so we walked along the river and watched the boats go by.';
const errorOf = (fn: () => unknown): Error => {
  try {
    fn();
  } catch (error) {
    return error as Error;
  }
  throw new Error('expected an error');
};
/** A message naming nothing: zod's bare "Invalid input" for a field. */
const BARE = /: Invalid input(;|$)/;

describe('every bad value gets a message naming the field and what is allowed', () => {
  const middlewareCases: Array<[string, Record<string, unknown>, RegExp]> = [
    ['guardOptions.gpu', { guardOptions: { gpu: true } }, /guardOptions\.gpu: expected 'auto', false, 'cuda', 'vulkan' or 'metal', got true/],
    ['guardOptions.gpu', { guardOptions: { gpu: 'rocm' } }, /guardOptions\.gpu: expected 'auto', false, 'cuda', 'vulkan' or 'metal', got 'rocm'/],
    ['guardOptions.kvCacheType', { guardOptions: { kvCacheType: 'q4' } }, /guardOptions\.kvCacheType:.*f16.*q8_0.*f32/],
    ['guardOptions.logLevel', { guardOptions: { logLevel: 'loud' } }, /guardOptions\.logLevel:.*error.*warn.*info.*debug/],
    ['guardOptions.threads', { guardOptions: { threads: 'many' } }, /guardOptions\.threads:.*number/],
    ['prompt.refusal', { prompt: { refusal: 42 } }, /prompt\.refusal: expected a string or a function returning a string, got 42/],
    ['response.mask', { response: { mask: {} } }, /response\.mask: expected a string or a function returning a string, got an object/],
    ['response.replacement', { response: { replacement: null } }, /response\.replacement: expected a string or a function returning a string, got null/],
    ['response.release', { response: { release: 'later' } }, /response\.release:.*hold.*optimistic/],
    ['response.mode', { response: { mode: 1 } }, /response\.mode:.*strict.*loose/],
    ['response.actions.Unsafe', { response: { actions: { Unsafe: 'block' } } }, /response\.actions\.Unsafe:.*allow.*flag.*redact.*rewrite.*abort/],
    ['prompt.actions.Controversial', { prompt: { actions: { Controversial: 7 } } }, /prompt\.actions\.Controversial:.*allow.*flag.*rewrite.*abort/],
    ['response.categories.PII', { response: { categories: { PII: 'hide' } } }, /response\.categories\.PII:.*redact/],
    ['prompt.categories', { prompt: { categories: { Jailbreak: 'redact' } } }, /prompt\.categories\.Jailbreak: "redact" applies to responses only/],
    ['fail', { fail: true }, /fail:.*closed.*open/],
    ['promptCacheSize', { promptCacheSize: 'big' }, /promptCacheSize:.*number/],
    ['onError', { onError: 1 }, /onError must be a function/],
    ['telemetry.enabled', { telemetry: { enabled: 'yes' } }, /telemetry\.enabled:.*boolean/],
    ['telemetry.contentHmacKey', { telemetry: { contentHmacKey: 'short' } }, /telemetry\.contentHmacKey: expected a secret of at least 16 bytes \(a string or a Uint8Array\), got 5 bytes/],
    ['telemetry.contentHmacKey', { telemetry: { contentHmacKey: 42 } }, /telemetry\.contentHmacKey: expected a secret .* got 42/],
    ['telemetry.tracer', { telemetry: { tracer: {} } }, /telemetry\.tracer: expected an OpenTelemetry Tracer \(trace\.getTracer\(\.\.\.\)\), got an object/],
    ['telemetry.meter', { telemetry: { meter: 'm' } }, /telemetry\.meter: expected an OpenTelemetry Meter .* got 'm'/],
    ['telemetry', { telemetry: { exporter: 'otlp' } }, /telemetry: Unrecognized key: "exporter"/],
  ];
  it.each(middlewareCases)('qwen3GuardMiddleware %s', (field, options, message) => {
    const error = errorOf(() => qwen3GuardMiddleware({ modelPath: '/x.gguf', ...options } as never));
    expect(error).toBeInstanceOf(OptionsError);
    expect(error.message).toContain(field);
    expect(error.message).toMatch(message);
    expect(error.message).not.toMatch(BARE);
  });

  const overrideCases: Array<[string, Record<string, unknown>, RegExp]> = [
    ['providerOptions.qwen3guard.fail', { fail: 'never' }, /closed.*open/],
    ['providerOptions.qwen3guard.enabled', { enabled: 'no' }, /boolean/],
    ['providerOptions.qwen3guard.response.mask', { response: { mask: 3 } }, /response\.mask: expected a string, got 3/],
  ];
  it.each(overrideCases)('request override %s', async (field, override, message) => {
    const errors: unknown[] = [];
    const result = streamText({
      model: wrapLanguageModel({ model: scriptedModel({ answer: [SAFE] }).model, middleware: qwen3GuardMiddleware({ guard }) as LanguageModelMiddleware }),
      prompt: 'Hi',
      providerOptions: { qwen3guard: override as never },
      onError: ({ error }) => void errors.push(error),
    });
    await result.consumeStream();
    const text = String(errors[0]);
    expect(text).toContain(field);
    expect(text).toMatch(message);
    expect(text).not.toMatch(BARE);
  });

  it.each([
    [{ gpu: true }, /guard\.gpu: expected 'auto', false, 'cuda', 'vulkan' or 'metal', got true/],
    [{ gpu: 'rocm' }, /guard\.gpu: expected .* got 'rocm'/],
    [{ contextSize: '4k' }, /guard\.contextSize:.*number/],
  ])('Qwen3Guard.load %j', async (options, message) => {
    const error = (await LocalGuard.load({ modelPath: '/x.gguf', ...options } as never).catch((e: unknown) => e)) as Error;
    expect(error).toBeInstanceOf(OptionsError);
    expect(error.message).toMatch(message);
    expect(error.message).not.toMatch(BARE);
  });
});

describe('category names', () => {
  it('exports the checkpoint names, in the official order', () => {
    expect(RESPONSE_CATEGORIES).toEqual(guard.layout.response.categoryLabels);
    expect(PROMPT_CATEGORIES).toEqual(guard.layout.query.categoryLabels);
    expect(PROMPT_CATEGORIES).toContain('Jailbreak');
    expect(RESPONSE_CATEGORIES).not.toContain('Jailbreak');
    // Types: the names autocomplete, other strings still type-check (and are checked at run time).
    const response: ResponseCategory = 'Violent';
    const prompt: PromptCategory = 'Jailbreak';
    const options: Qwen3GuardMiddlewareOptions = { guard, prompt: { categories: { [prompt]: 'abort', Custom: 'flag' } }, response: { categories: { [response]: 'abort' } } };
    expect(options).toBeTruthy();
  });

  it.each([
    [{ response: { categories: { Violence: 'abort' } } }, /response\.categories: unknown category 'Violence' \(did you mean 'Violent'\?\)/],
    [{ response: { categories: { violent: 'abort' } } }, /response\.categories: unknown category 'violent' \(did you mean 'Violent'\?\)/],
    [{ response: { categories: { 'non violent illegal acts': 'abort' } } }, /did you mean 'Non-violent Illegal Acts'\?/],
    [{ response: { categories: { Jailbreak: 'abort' } } }, /response\.categories: 'Jailbreak' is a prompt category.*prompt\.categories/],
    [{ prompt: { categories: { jailbreak: 'abort' } } }, /prompt\.categories: unknown category 'jailbreak' \(did you mean 'Jailbreak'\?\)/],
    [{ prompt: { categories: { Weapons: 'abort' } } }, /prompt\.categories: unknown category 'Weapons'/],
  ])('a loaded guard checks %j at construction', (options, message) => {
    const error = errorOf(() => qwen3GuardMiddleware({ guard, ...options } as never));
    expect(error).toBeInstanceOf(OptionsError);
    expect(error.message).toMatch(message);
    // The valid names are listed.
    const valid = (options as { prompt?: unknown }).prompt ? PROMPT_CATEGORIES : RESPONSE_CATEGORIES;
    for (const name of valid) expect(error.message).toContain(`'${name}'`);
  });

  it('accepts the checkpoint names', () => {
    expect(() => qwen3GuardMiddleware({ guard, prompt: { categories: { Jailbreak: 'abort', PII: 'flag' } }, response: { categories: { Violent: 'abort', PII: 'redact' } } })).not.toThrow();
  });

  it('checks a per-request override when the request starts', async () => {
    const errors: unknown[] = [];
    const upstream = scriptedModel({ answer: [SAFE] });
    const result = streamText({
      model: wrapLanguageModel({ model: upstream.model, middleware: qwen3GuardMiddleware({ guard }) as LanguageModelMiddleware }),
      prompt: 'Hi',
      providerOptions: { qwen3guard: { response: { categories: { Violence: 'abort' } } } },
      onError: ({ error }) => void errors.push(error),
    });
    await result.consumeStream();
    expect(String(errors[0])).toMatch(/providerOptions\.qwen3guard\.response\.categories: unknown category 'Violence' \(did you mean 'Violent'\?\)/);
    expect(upstream.model.doStreamCalls).toHaveLength(0);
  });

  async function failedRequest(options: Partial<Qwen3GuardMiddlewareOptions>) {
    const errors: Array<{ error: unknown; info: GuardErrorInfo }> = [];
    const mw = qwen3GuardMiddleware({ ...options, onError: (error, info) => void errors.push({ error, info }) } as Qwen3GuardMiddlewareOptions);
    const result = streamText({ model: wrapLanguageModel({ model: scriptedModel({ answer: [SAFE] }).model, middleware: mw as LanguageModelMiddleware }), prompt: 'Hi' });
    return { text: await result.text, finishReason: await result.finishReason, metadata: (await result.providerMetadata)?.qwen3guard as Record<string, any>, errors };
  }

  it('checks them when a guard promise resolves: the guard is unusable, as if it failed to load', async () => {
    const out = await failedRequest({ guard: Promise.resolve(guard), response: { categories: { Violence: 'abort' } } });
    expect(out.text).toBe("I can't help with that request.");
    expect(out.finishReason).toBe('content-filter');
    expect(out.metadata.error).toEqual({ code: 'guard-load-failed' });
    expect(out.errors).toHaveLength(1);
    expect(out.errors[0].info.phase).toBe('load');
    expect(out.errors[0].error).toBeInstanceOf(OptionsError);
    expect(String(out.errors[0].error)).toMatch(/did you mean 'Violent'/);
  });

  it('checks them when modelPath is loaded', async () => {
    const modelPath = await convertedModel(await plantedCheckpoint(), 'q8_0');
    const out = await failedRequest({ modelPath, guardOptions: { gpu: false, threads: TEST_THREADS, contextSize: 256 }, response: { categories: { Jailbreak: 'abort' } } });
    expect(out.text).toBe("I can't help with that request.");
    expect(out.metadata.error).toEqual({ code: 'guard-load-failed' });
    expect(out.errors[0].error).toBeInstanceOf(OptionsError);
    expect(String(out.errors[0].error)).toMatch(/'Jailbreak' is a prompt category/);
  });
});

describe('load errors', () => {
  /** Control characters, or the replacement character that raw bytes decode to. */
  const BINARY = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f\ufffd]/;

  it.each([
    ['a PNG', Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), randomBytes(4096)])],
    ['random bytes', randomBytes(8192)],
    ['a text file', Buffer.from('model: qwen3guard\nthis is not a model\n'.repeat(40))],
    ['an empty file', Buffer.alloc(0)],
  ])('%s as modelPath: "not a GGUF", no raw bytes', async (name, bytes) => {
    const modelPath = join(dir, `${name.replace(/\W/g, '-')}.gguf`);
    await writeFile(modelPath, bytes);
    const error = (await LocalGuard.load({ modelPath, gpu: false }).catch((e: unknown) => e)) as Error;
    expect(error).toBeInstanceOf(GuardModelError);
    expect(error.message).toMatch(/is not a GGUF file/);
    expect(error.message).toContain('qwen3guard convert');
    expect(error.message).not.toMatch(BINARY);
  });

  it('a directory as modelPath', async () => {
    const error = (await LocalGuard.load({ modelPath: dir, gpu: false }).catch((e: unknown) => e)) as Error;
    expect(error).toBeInstanceOf(GuardModelError);
    expect(error.message).toMatch(/is a directory/);
  });

  it("gpu: 'cuda' without CUDA says the backend is unavailable and what to do", async (context) => {
    const modelPath = await convertedModel(await plantedCheckpoint(), 'q8_0');
    const outcome = await LocalGuard.load({ modelPath, gpu: 'cuda', threads: TEST_THREADS, contextSize: 256 }).then(
      (loaded) => loaded.dispose().then(() => null),
      (error: unknown) => error as Error,
    );
    if (outcome === null) return context.skip(); // this machine has CUDA
    expect(outcome).toBeInstanceOf(GuardModelError);
    expect(outcome.message).toMatch(/guard\.gpu: the 'cuda' backend is not available on this machine/);
    expect(outcome.message).toMatch(/gpu: 'auto'/);
    expect(outcome.message).toMatch(/@node-llama-cpp\/\S+-cuda/);
  });

  it('a guard promise that rejects is not an unhandled rejection; requests fail closed', async () => {
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown) => void unhandled.push(reason);
    process.on('unhandledRejection', onUnhandled);
    try {
      const errors: unknown[] = [];
      const mw = qwen3GuardMiddleware({ guard: Promise.reject(new Error('download failed')), onError: (e) => errors.push(e) });
      await new Promise((r) => setTimeout(r, 50));
      expect(unhandled).toEqual([]);
      const result = streamText({ model: wrapLanguageModel({ model: scriptedModel({ answer: [SAFE] }).model, middleware: mw as LanguageModelMiddleware }), prompt: 'Hi' });
      expect(await result.text).toBe("I can't help with that request.");
      expect(((await result.providerMetadata)?.qwen3guard as Record<string, any>).error).toEqual({ code: 'guard-load-failed' });
      expect(String(errors[0])).toMatch(/download failed/);
      await new Promise((r) => setTimeout(r, 50));
      expect(unhandled).toEqual([]);
    } finally {
      process.off('unhandledRejection', onUnhandled);
    }
  });
});
