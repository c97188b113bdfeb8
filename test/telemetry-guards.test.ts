import { SpanKind } from '@opentelemetry/api';
import type { ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { streamText, wrapLanguageModel, type LanguageModelMiddleware } from 'ai';
import { afterAll, beforeAll, expect, it, vi } from 'vitest';
import type { LocalGuard } from '../src/engine/guard.js';
import { qwen3GuardMiddleware, type Qwen3GuardGen, type Qwen3GuardMiddlewareOptions } from '../src/index.js';
import { ATTR, EVALUATION } from '../src/telemetry/conventions.js';
import { plantedGen } from './fixtures/gen-models.js';
import { plantedGuardOf, type GuardUnderTest } from './fixtures/guard-kinds.js';
import { plantedGuard } from './fixtures/guards.js';
import { guardSpans, registerOtel } from './fixtures/otel.js';
import { scriptedModel, split } from './fixtures/scripted-model.js';

/** The other components: Gen's checks, and a Stream guard behind `qwen3guard serve` (a CLIENT span). */
const otel = registerOtel();
let guard: LocalGuard;
let gen: Qwen3GuardGen;
let remote: GuardUnderTest;
beforeAll(async () => {
  [guard, gen, remote] = await Promise.all([plantedGuard(), plantedGen(), plantedGuardOf('remote')]);
});
afterAll(async () => {
  await Promise.all([gen?.dispose(), guard?.dispose(), remote?.close()]);
});

const BOMB = 'Sure. Mix these to make a bomb quickly, then wait an hour before you leave the house.';
const SAFE = 'The weather is lovely today, so we walked along the river and watched the boats go by.';

async function run(options: Partial<Qwen3GuardMiddlewareOptions>, answer: string, prompt = 'Hello there') {
  otel.spans.reset();
  const middleware = qwen3GuardMiddleware(options as Qwen3GuardMiddlewareOptions) as LanguageModelMiddleware;
  const result = streamText({ model: wrapLanguageModel({ model: scriptedModel({ answer: split(answer, 4) }).model, middleware }), prompt });
  await result.text;
  await vi.waitFor(() => expect(otel.spans.getFinishedSpans().some((s) => s.name.startsWith('invoke_agent'))).toBe(true));
  const spans = otel.spans.getFinishedSpans();
  const chat = spans.find((s) => s.name.startsWith('chat '))!;
  return { spans: guardSpans(spans), chat, events: chat.events.map((e) => e.attributes ?? {}) };
}

const byTarget = (spans: ReadableSpan[], target: string) => spans.filter((s) => s.attributes[ATTR.targetType] === target);

it('Gen checks get the same spans, with Qwen3Guard-Gen as the component', async () => {
  const { spans, chat, events } = await run({ guard, gen: { classifier: gen, prompt: true, response: 'report' } }, BOMB);
  expect(gen.backend.modelName).toMatch(/^Qwen3Guard-Gen/);
  const [input] = byTarget(spans, 'input');
  expect(input.name).toBe('run_guardrail Qwen3Guard-Gen');
  expect(input.kind).toBe(SpanKind.INTERNAL);
  expect(input.parentSpanContext?.spanId).toBe(chat.spanContext().spanId);
  expect(input.attributes).toMatchObject({ [ATTR.componentName]: gen.backend.modelName, [ATTR.verdictType]: 'allow', [ATTR.actionType]: 'allow' });
  // The Stream guard still moderated the answer; Gen then checked it whole ('report': not acted on).
  const outputs = byTarget(spans, 'output');
  expect(outputs.map((s) => [s.name, s.attributes[ATTR.componentName], s.attributes[ATTR.verdictType], s.attributes[ATTR.actionType]])).toEqual([
    ['run_guardrail Qwen3Guard-Stream', guard.info.model, 'modify', 'modify'],
  ]);
  // An answer the Stream guard stopped is not checked again by Gen: a Safe one is.
  const safe = await run({ guard, gen: { classifier: gen, prompt: true, response: 'report' } }, SAFE);
  const genOutput = byTarget(safe.spans, 'output').find((s) => s.name === 'run_guardrail Qwen3Guard-Gen')!;
  expect(genOutput.attributes).toMatchObject({ [ATTR.componentName]: gen.backend.modelName, [ATTR.verdictType]: 'allow', [ATTR.actionType]: 'allow' });
  expect(safe.events.map((e) => e[EVALUATION.name])).toEqual(['qwen3guard.prompt', 'qwen3guard.response', 'qwen3guard.gen.response']);
  expect(events[0]).toMatchObject({ [EVALUATION.name]: 'qwen3guard.prompt', [EVALUATION.scoreLabel]: 'Safe' });
  expect(events[0][EVALUATION.scoreValue]).toBeGreaterThan(0.5);
});

it('a Stream guard in another process is a CLIENT span with the served model as the component', async () => {
  const { spans } = await run({ guard: remote.guard }, SAFE);
  const { model } = await remote.guard.ready();
  expect(spans.map((s) => [s.name, s.kind, s.attributes[ATTR.componentName]])).toEqual([
    ['run_guardrail Qwen3Guard-Stream', SpanKind.CLIENT, model],
    ['run_guardrail Qwen3Guard-Stream', SpanKind.CLIENT, model],
  ]);
});
