import type { JSONObject, SharedV4ProviderMetadata, SharedV4ProviderOptions } from '@ai-sdk/provider';
import { streamText, wrapLanguageModel } from 'ai';
import { afterAll, beforeAll, describe, expect, expectTypeOf, it } from 'vitest';
import type { Meter, Tracer } from '@opentelemetry/api';
import { qwen3GuardMiddleware, type Qwen3Guard, type Qwen3GuardMetadata, type Qwen3GuardMiddlewareOptions, type Qwen3GuardRequestOptions, type TelemetryOptions } from '../src/index.js';
import { guardMetadata } from '../src/middleware/metadata.js';
import { plantedGuard } from './fixtures/guards.js';
import { scriptedModel, split } from './fixtures/scripted-model.js';

/**
 * The exported data types, checked by `tsc --noEmit -p .` (expectTypeOf is a no-op at run time) and tied to
 * what the middleware really sends through the real engine: the planted guard flags " bomb" as Unsafe/Violent.
 */

const BOMB = 'Sure. Mix these to make a bomb quickly, then wait an hour before you leave the house.';

/** Every key of the metadata type, required or not: `satisfies` fails to compile when the type gains or loses one. */
const METADATA_KEYS = {
  prompt: true,
  response: true,
  action: true,
  flags: true,
  tokens: true,
  guardLagMs: true,
  release: true,
  leakedChars: true,
  error: true,
  intervention: true,
  gen: true,
} as const satisfies Record<keyof Qwen3GuardMetadata, true>;

let guard: Qwen3Guard;
beforeAll(async () => {
  guard = await plantedGuard();
});
afterAll(() => guard?.dispose());

describe('exported types', () => {
  it('Qwen3GuardMetadata is the type guardMetadata returns, and JSON the AI SDK carries', () => {
    expectTypeOf(guardMetadata).returns.toEqualTypeOf<Qwen3GuardMetadata>();
    expectTypeOf<Qwen3GuardMetadata>().toExtend<JSONObject>();
    expectTypeOf<{ qwen3guard: Qwen3GuardMetadata }>().toExtend<SharedV4ProviderMetadata>();
    expectTypeOf<Qwen3GuardMetadata['error']>().toEqualTypeOf<{ code: 'guard-load-failed' | 'guard-busy' | 'guard-failed' | 'gen-failed' | 'policy-function-failed' | 'guard-unavailable' | 'guard-timeout' | 'guard-unauthorized' | 'guard-session-lost' | 'guard-rejected' } | undefined>();
  });

  it('telemetry takes the Tracer and Meter of the OpenTelemetry API', () => {
    expectTypeOf<{ tracer: Tracer; meter: Meter; contentHmacKey: Uint8Array }>().toExtend<TelemetryOptions>();
    expectTypeOf<NonNullable<Qwen3GuardMiddlewareOptions['telemetry']>>().toEqualTypeOf<TelemetryOptions>();
  });

  it('Qwen3GuardRequestOptions is JSON data: strings for the texts, no functions', () => {
    expectTypeOf<Qwen3GuardRequestOptions>().toExtend<JSONObject>();
    expectTypeOf<{ qwen3guard: Qwen3GuardRequestOptions }>().toExtend<SharedV4ProviderOptions>();
    expectTypeOf<NonNullable<Qwen3GuardRequestOptions['prompt']>['refusal']>().toEqualTypeOf<string | undefined>();
    expectTypeOf<NonNullable<Qwen3GuardRequestOptions['response']>['replacement']>().toEqualTypeOf<string | undefined>();
    expectTypeOf<NonNullable<Qwen3GuardRequestOptions['response']>['mask']>().toEqualTypeOf<string | undefined>();
    // @ts-expect-error a function is not a per-request value
    const withFunction: Qwen3GuardRequestOptions = { response: { replacement: () => 'x' } };
    void withFunction;
  });

  it('passes a typed request override to streamText without a cast, and the metadata has the typed keys', async () => {
    const options: Qwen3GuardRequestOptions = { response: { replacement: 'Stopped here.', categories: { Violent: 'rewrite' } }, prompt: { mode: 'strict' } };
    const upstream = scriptedModel({ answer: split(BOMB, 4) });
    const model = wrapLanguageModel({ model: upstream.model, middleware: qwen3GuardMiddleware({ guard }) });
    const result = streamText({ model, prompt: 'Hello there', providerOptions: { qwen3guard: options } });
    const text = await result.text;
    expect(text.endsWith('Stopped here.')).toBe(true);
    expect(text).not.toContain('bomb');
    const metadata = (await result.providerMetadata)?.qwen3guard as Qwen3GuardMetadata;
    const required = Object.keys(METADATA_KEYS).filter((k) => k !== 'error' && k !== 'intervention' && k !== 'gen');
    expect(Object.keys(metadata).sort()).toEqual(required.sort());
    expect(metadata).toMatchObject({ action: 'rewrite', response: { riskLevel: 'Unsafe', category: 'Violent' } });
    expect(metadata.flags[0]).toMatchObject({ action: 'rewrite', part: 'answer', riskLevel: 'Unsafe', category: 'Violent' });
  });

  it('refuses a function per request, saying it goes at construction', async () => {
    const errors: unknown[] = [];
    const upstream = scriptedModel({ answer: ['Hello.'] });
    const model = wrapLanguageModel({ model: upstream.model, middleware: qwen3GuardMiddleware({ guard }) });
    // Data from outside the type system (a plain JavaScript caller): the schema is what refuses it.
    const options = { response: { replacement: () => 'x' } } as unknown as Qwen3GuardRequestOptions;
    const result = streamText({ model, prompt: 'Hi', providerOptions: { qwen3guard: options }, onError: ({ error }) => void errors.push(error) });
    await result.consumeStream();
    expect(String(errors[0])).toContain('providerOptions.qwen3guard.response.replacement: a function cannot be passed per request');
    expect(String(errors[0])).toContain('qwen3GuardMiddleware({ response: { replacement } })');
    expect(upstream.model.doStreamCalls).toHaveLength(0);
  });
});
