import { diag, DiagLogLevel, metrics, trace } from '@opentelemetry/api';
import { streamText, wrapLanguageModel, type LanguageModelMiddleware } from 'ai';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { LocalGuard } from '../src/engine/guard.js';
import { qwen3GuardMiddleware, type Qwen3GuardMiddlewareOptions } from '../src/index.js';
import { METRIC } from '../src/telemetry/conventions.js';
import { plantedGuard } from './fixtures/guards.js';
import { inMemoryMeter } from './fixtures/otel.js';
import { scriptedModel, split } from './fixtures/scripted-model.js';

/** No OpenTelemetry SDK registered (the default for an app): nothing recorded, said once, nothing changed. */
let guard: LocalGuard;
const logged: string[] = [];
beforeAll(async () => {
  guard = await plantedGuard({ maxSessions: 1 });
  const log = (message: string) => void logged.push(message);
  diag.setLogger({ error: log, warn: log, info: log, debug: log, verbose: log }, DiagLogLevel.INFO);
});
afterAll(() => guard.dispose());

const BOMB = 'Sure. Mix these to make a bomb quickly, then wait an hour before you leave the house.';
const mw = (options: Partial<Qwen3GuardMiddlewareOptions> = {}) => qwen3GuardMiddleware({ guard, ...options } as Qwen3GuardMiddlewareOptions) as LanguageModelMiddleware;

async function run(middleware: LanguageModelMiddleware) {
  const result = streamText({ model: wrapLanguageModel({ model: scriptedModel({ answer: split(BOMB, 4) }).model, middleware }), prompt: 'Hello there' });
  const text = await result.text;
  const { prompt, guardLagMs, ...metadata } = (await result.providerMetadata)?.qwen3guard as Record<string, any>;
  return { text, metadata: { ...metadata, prompt: { ...prompt, latencyMs: 0 } } };
}

it('says once that no MeterProvider is registered, records nothing, and answers as with telemetry off', async () => {
  expect(trace.getTracerProvider().getTracer('x').startSpan('probe').isRecording()).toBe(false);
  const on = mw();
  const first = await run(on);
  const second = await run(on);
  const off = await run(mw({ telemetry: { enabled: false } }));
  expect(first).toEqual(off);
  // The same conversation again: its prompt verdict comes from the cache.
  expect(second).toEqual({ ...off, metadata: { ...off.metadata, prompt: { ...off.metadata.prompt, cached: true } } });
  expect(logged.filter((m) => m.includes('no OpenTelemetry MeterProvider is registered'))).toHaveLength(1);
});

it('uses a MeterProvider registered after the middleware was made', async () => {
  const on = mw();
  await run(on);
  const meters = inMemoryMeter();
  metrics.setGlobalMeterProvider(meters.provider);
  await run(on);
  const checks = (await meters.collect()).get(METRIC.checks.name)!;
  expect(checks.dataPoints.reduce((n, p) => n + (p.value as number), 0)).toBe(2);
});
