import { createHmac } from 'node:crypto';
import { SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import type { ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { generateText, streamText, wrapLanguageModel, type LanguageModelMiddleware } from 'ai';
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import type { LocalGuard } from '../src/engine/guard.js';
import { qwen3GuardMiddleware, type Qwen3GuardMiddlewareOptions } from '../src/index.js';
import { ATTR, EVALUATION, METRIC } from '../src/telemetry/conventions.js';
import { plantedGuard } from './fixtures/guards.js';
import { guardSpans, inMemoryMeter, registerOtel, spanTree, type Point } from './fixtures/otel.js';
import { scriptedCalls, scriptedModel, split, type Script } from './fixtures/scripted-model.js';

/**
 * Guardrail spans, events and metrics through real streamText/generateText with @ai-sdk/otel registered and
 * the OpenTelemetry SDK's in-memory exporters: one planted guard for the file.
 */
const otel = registerOtel();
let guard: LocalGuard;
beforeAll(async () => {
  guard = await plantedGuard({ maxSessions: 2, responseProbabilities: true });
});
afterAll(() => guard.dispose());
beforeEach(() => otel.spans.reset());

const SAFE = 'The weather is lovely today, so we walked along the river and watched the boats go by.';
const BOMB = 'Sure. Mix these to make a bomb quickly, then wait an hour before you leave the house.';
const ELECTION = 'People argue about the election every year, but the debate stays civil.';
const SORRY = "...oh, I'm sorry, I just realized I shouldn't explain that. Let's bake a cake instead.";

const mw = (options: Partial<Qwen3GuardMiddlewareOptions> = {}) => qwen3GuardMiddleware({ guard, ...options } as Qwen3GuardMiddlewareOptions) as LanguageModelMiddleware;

const isRoot = (s: ReadableSpan) => s.name.startsWith('invoke_agent') || s.name === 'app';

/** The spans of the last call, once the AI SDK's root span ended (our output span ends before the model call's). */
async function settled(): Promise<ReadableSpan[]> {
  await vi.waitFor(() => expect(otel.spans.getFinishedSpans().some(isRoot)).toBe(true), { timeout: 5000 });
  const spans = otel.spans.getFinishedSpans();
  const trace = spans.filter(isRoot).at(-1)!.spanContext().traceId;
  return spans.filter((s) => s.spanContext().traceId === trace);
}

async function stream(middleware: LanguageModelMiddleware, script: Script, prompt = 'Hello there', extra: Record<string, unknown> = {}) {
  const upstream = scriptedModel(script);
  const result = streamText({ model: wrapLanguageModel({ model: upstream.model, middleware }), prompt, ...extra });
  let text = '';
  for await (const part of result.fullStream) if (part.type === 'text-delta') text += part.text;
  const metadata = (await result.providerMetadata)?.qwen3guard as Record<string, any>;
  const run = await tree();
  otel.spans.reset();
  return { text, metadata, ...run };
}

/** The guard spans of the call (input first), and the model call's span they hang under. */
async function tree() {
  const spans = await settled();
  const chat = spans.find((s) => s.name.startsWith('chat '))!;
  const [input, output, ...more] = guardSpans(spans).sort((a, b) => (a.attributes[ATTR.targetType] === 'input' ? -1 : b.attributes[ATTR.targetType] === 'input' ? 1 : 0));
  return { spans, chat, input, output, more, events: chat.events.filter((e) => e.name === EVALUATION.event).map((e) => e.attributes ?? {}) };
}

const attrs = (span: ReadableSpan) => span.attributes;

describe('the span tree', () => {
  it('puts both checks under the model call span, in its trace, with every attribute of a Safe answer', async () => {
    const run = await stream(mw(), { answer: split(SAFE, 4) }, 'Hello there', { providerOptions: { qwen3guard: { conversationId: 'chat-42' } } });
    expect(run.text).toBe(SAFE);
    for (const span of [run.input, run.output]) {
      expect(span.name).toBe('run_guardrail Qwen3Guard-Stream');
      expect(span.kind).toBe(SpanKind.INTERNAL);
      expect(span.parentSpanContext?.spanId, spanTree(run.spans)).toBe(run.chat.spanContext().spanId);
      expect(span.spanContext().traceId).toBe(run.chat.spanContext().traceId);
      expect(span.status.code).toBe(SpanStatusCode.UNSET);
      expect(attrs(span)).toMatchObject({
        [ATTR.operationName]: 'run_guardrail',
        [ATTR.targetSubtype]: 'llm',
        [ATTR.verdictType]: 'allow',
        [ATTR.actionType]: 'allow',
        [ATTR.componentName]: guard.info.model,
        [ATTR.conversationId]: 'chat-42',
      });
      expect(attrs(span)).not.toHaveProperty(ATTR.riskCategory);
      expect(attrs(span)).not.toHaveProperty(ATTR.degraded);
    }
    expect(attrs(run.input)).toMatchObject({ [ATTR.targetType]: 'input', [ATTR.action]: 'allow', [ATTR.promptCached]: false });
    expect(attrs(run.input)[ATTR.riskScore]).toBeCloseTo(1 - run.metadata.prompt.probabilities.Safe, 6);
    expect(attrs(run.input)[ATTR.tokensEvaluated]).toBeGreaterThan(0);
    const output = attrs(run.output);
    expect(output).toMatchObject({
      [ATTR.targetType]: 'output',
      [ATTR.action]: 'none',
      [ATTR.release]: 'hold',
      [ATTR.debounce]: 2,
      [ATTR.debounceDecision]: 'clean',
      [ATTR.flags]: 0,
      [ATTR.charsReceived]: SAFE.length,
      [ATTR.charsReleased]: SAFE.length,
      [ATTR.charsWithheld]: 0,
      [ATTR.leakedChars]: 0,
      [ATTR.tokensScored]: run.metadata.tokens.scored,
      [ATTR.upstreamCancelled]: false,
    });
    expect(output[ATTR.releaseLagP50]).toBeCloseTo(run.metadata.guardLagMs.p50 / 1000, 6);
    expect(output[ATTR.releaseLagMax]).toBeCloseTo(run.metadata.guardLagMs.max / 1000, 6);
    expect(output[ATTR.ttftAdded]).toBeGreaterThan(0);
    expect(output[ATTR.charsHeldMax]).toBeGreaterThan(0);
    expect(output[ATTR.tokensSpeculated]).toBeGreaterThan(0);
    // The merged evaluation events, on the model call's span.
    expect(run.events).toEqual([
      { [EVALUATION.name]: 'qwen3guard.prompt', [EVALUATION.scoreLabel]: 'Safe', [EVALUATION.scoreValue]: run.metadata.prompt.probabilities.Safe },
      { [EVALUATION.name]: 'qwen3guard.response', [EVALUATION.scoreLabel]: 'Safe' },
    ]);
  });

  it('without the AI SDK telemetry, hangs the checks under the active span', async () => {
    const tracer = trace.getTracer('app');
    await tracer.startActiveSpan('app', async (app) => {
      const upstream = scriptedModel({ answer: [SAFE] });
      const result = streamText({ model: wrapLanguageModel({ model: upstream.model, middleware: mw() }), prompt: 'Hello there', telemetry: { isEnabled: false } });
      await result.text;
      app.end();
    });
    const spans = await settled();
    const app = spans.find((s) => s.name === 'app')!;
    expect(spans.filter((s) => s.name.startsWith('chat '))).toEqual([]);
    expect(guardSpans(spans).map((s) => s.parentSpanContext?.spanId)).toEqual([app.spanContext().spanId, app.spanContext().spanId]);
    expect(app.events.map((e) => e.attributes?.[EVALUATION.name])).toEqual(['qwen3guard.prompt', 'qwen3guard.response']);
  });
});

describe('what a check did', () => {
  it('a Controversial flag: warn, audit, its category and score, the first flag and the debounce', async () => {
    const run = await stream(mw({ response: { actions: { Controversial: 'flag' } } }), { answer: split(ELECTION, 3) });
    expect(run.text).toBe(ELECTION);
    const [flag] = run.metadata.flags;
    expect(attrs(run.output)).toMatchObject({
      [ATTR.verdictType]: 'warn',
      [ATTR.actionType]: 'audit',
      [ATTR.action]: 'flag',
      [ATTR.riskCategory]: 'Politically Sensitive Topics',
      [ATTR.debounceDecision]: 'flagged',
      [ATTR.flags]: 1,
      [ATTR.firstFlagTokenIndex]: flag.tokenIndex,
      [ATTR.firstFlagCharOffset]: flag.charOffset,
    });
    expect(attrs(run.output)).not.toHaveProperty(ATTR.contentModified);
    expect(attrs(run.output)[ATTR.riskScore]).toBeGreaterThan(0.5);
    expect(run.events[1]).toMatchObject({ [EVALUATION.name]: 'qwen3guard.response', [EVALUATION.scoreLabel]: 'Controversial' });
    expect(run.events[1][EVALUATION.scoreValue]).toBeGreaterThan(0.5);
  });

  it('an Unsafe abort: deny, block, the upstream cancelled, the text withheld', async () => {
    const run = await stream(mw({ response: { actions: { Unsafe: 'abort' } } }), { answer: split(BOMB + SAFE.repeat(10), 4), delayMs: 2 });
    expect(run.text).toBe('Sure. Mix these to make a');
    expect(attrs(run.output)).toMatchObject({
      [ATTR.verdictType]: 'deny',
      [ATTR.actionType]: 'block',
      [ATTR.action]: 'abort',
      [ATTR.riskCategory]: 'Violent',
      [ATTR.contentModified]: true,
      [ATTR.upstreamCancelled]: true,
      [ATTR.charsReleased]: run.text.length,
    });
    expect(attrs(run.output)[ATTR.charsWithheld]).toBeGreaterThan(0);
    expect(run.events[1]).toMatchObject({ [EVALUATION.scoreLabel]: 'Unsafe' });
  });

  it('a rewrite: modify, modify', async () => {
    const run = await stream(mw(), { answer: split(BOMB, 4) });
    expect(run.text).toMatch(/I can't continue with this response\.$/);
    expect(attrs(run.output)).toMatchObject({ [ATTR.verdictType]: 'modify', [ATTR.actionType]: 'modify', [ATTR.action]: 'rewrite', [ATTR.riskCategory]: 'Violent', [ATTR.contentModified]: true });
  });

  it('a continue: the intervention attempts and outcome', async () => {
    const upstream = scriptedCalls([{ answer: split(BOMB, 4), delayMs: 5 }, { answer: split(SORRY, 4) }]);
    const result = streamText({ model: wrapLanguageModel({ model: upstream.model, middleware: mw({ response: { actions: { Unsafe: 'continue' } } }) }), prompt: 'Hello there' });
    await result.text;
    const run = await tree();
    expect(attrs(run.output)).toMatchObject({
      [ATTR.verdictType]: 'modify',
      [ATTR.actionType]: 'modify',
      [ATTR.action]: 'continue',
      [ATTR.interventionAttempts]: 1,
      [ATTR.interventionOutcome]: 'continued',
      [ATTR.upstreamCancelled]: false,
    });
    expect(attrs(run.output)[ATTR.interventionTokensDiscarded]).toBeGreaterThan(0);
  });

  it('a refused prompt: deny and block on the input, no output check', async () => {
    const run = await stream(mw(), { answer: split(SAFE, 3), delayMs: 5 }, 'How do I build a bomb?');
    expect(run.text).toBe("I can't help with that request.");
    expect(run.output).toBeUndefined();
    expect(attrs(run.input)).toMatchObject({ [ATTR.verdictType]: 'deny', [ATTR.actionType]: 'block', [ATTR.action]: 'rewrite', [ATTR.riskCategory]: 'Violent' });
    expect(run.events).toEqual([expect.objectContaining({ [EVALUATION.name]: 'qwen3guard.prompt', [EVALUATION.scoreLabel]: 'Unsafe' })]);
  });

  it('generateText: the same two checks', async () => {
    const upstream = scriptedModel({ answer: [BOMB] });
    const result = await generateText({ model: wrapLanguageModel({ model: upstream.model, middleware: mw() }), prompt: 'Hello there' });
    expect(result.finishReason).toBe('content-filter');
    const run = await tree();
    expect(run.input.parentSpanContext?.spanId).toBe(run.chat.spanContext().spanId);
    expect(attrs(run.input)[ATTR.verdictType]).toBe('allow');
    expect(attrs(run.output)).toMatchObject({ [ATTR.verdictType]: 'modify', [ATTR.action]: 'rewrite', [ATTR.riskCategory]: 'Violent' });
  });
});

describe('failures', () => {
  const missing = (fail: 'closed' | 'open') => qwen3GuardMiddleware({ modelPath: '/nonexistent/guard.gguf', fail, onError: () => undefined }) as LanguageModelMiddleware;

  it("fail: 'closed': ERROR with the metadata's code, no verdict, the request blocked", async () => {
    const run = await stream(missing('closed'), { answer: [SAFE] });
    expect(run.metadata.error).toEqual({ code: 'guard-load-failed' });
    expect(run.output).toBeUndefined();
    expect(run.input.status.code).toBe(SpanStatusCode.ERROR);
    expect(attrs(run.input)).toMatchObject({ [ATTR.errorType]: 'guard-load-failed', [ATTR.actionType]: 'block', [ATTR.componentName]: 'Qwen3Guard-Stream' });
    expect(attrs(run.input)).not.toHaveProperty(ATTR.verdictType);
    expect(attrs(run.input)).not.toHaveProperty(ATTR.degraded);
  });

  it("fail: 'open': degraded and ERROR, never a verdict of allow, on the prompt and on the unchecked answer", async () => {
    const run = await stream(missing('open'), { answer: split(BOMB, 4) });
    expect(run.text).toBe(BOMB);
    for (const span of [run.input, run.output]) {
      expect(span.status.code).toBe(SpanStatusCode.ERROR);
      expect(attrs(span)).toMatchObject({ [ATTR.degraded]: true, [ATTR.errorType]: 'guard-load-failed', [ATTR.actionType]: 'allow' });
      expect(attrs(span)).not.toHaveProperty(ATTR.verdictType);
    }
    expect(run.events.map((e) => [e[EVALUATION.scoreLabel], e[ATTR.errorType]])).toEqual([
      [undefined, 'guard-load-failed'],
      [undefined, 'guard-load-failed'],
    ]);
  });

  it('a guard that fails mid-answer, failing closed: the output check is an ERROR without a verdict', async () => {
    const own = await plantedGuard({ maxSessions: 1 });
    const upstream = scriptedModel({ answer: split(SAFE.repeat(6), 3), delayMs: 3 });
    const result = streamText({ model: wrapLanguageModel({ model: upstream.model, middleware: mw({ guard: own, onError: () => undefined }) }), prompt: 'Hello' });
    setTimeout(() => void own.dispose(), 150);
    expect(await result.finishReason).toBe('content-filter');
    const run = await tree();
    expect(run.output.status.code).toBe(SpanStatusCode.ERROR);
    expect(attrs(run.output)).toMatchObject({ [ATTR.errorType]: 'guard-failed', [ATTR.actionType]: 'modify', [ATTR.action]: 'rewrite' });
    expect(attrs(run.output)).not.toHaveProperty(ATTR.verdictType);
  });
});

describe('privacy', () => {
  const WORDS = ['weather', 'bomb', 'password', 'Hello', 'hunter2'];
  const everything = (spans: ReadableSpan[]) =>
    JSON.stringify(spans.map((s) => ({ name: s.name, attributes: s.attributes, events: s.events.map((e) => [e.name, e.attributes]) })));

  it('no prompt or answer text in any span, attribute or event by default', async () => {
    const answer = `${SAFE} Your password is hunter2. ${BOMB}`;
    const upstream = scriptedModel({ answer: split(answer, 5) });
    const result = streamText({
      model: wrapLanguageModel({ model: upstream.model, middleware: mw({ response: { categories: { PII: 'redact' } } }) }),
      prompt: 'Hello there, what is the weather like?',
      // The AI SDK's own spans record the messages unless told not to; ours never do by default.
      telemetry: { recordInputs: false, recordOutputs: false },
    });
    await result.text;
    const spans = await settled();
    expect(guardSpans(spans)).toHaveLength(2);
    const dump = everything(spans);
    for (const word of WORDS) expect(dump).not.toContain(word);
    expect(dump).not.toContain(ATTR.contentInputValue);
    expect(dump).not.toContain(ATTR.contentInputHash);
  });

  it('recordContent adds the text; contentHmacKey an HMAC-SHA256 a collector can recompute', async () => {
    const key = 'a secret of more than sixteen bytes';
    const upstream = scriptedModel({ answer: split(SAFE, 4) });
    await streamText({ model: wrapLanguageModel({ model: upstream.model, middleware: mw({ telemetry: { recordContent: true, contentHmacKey: key } }) }), prompt: 'Hello there' }).text;
    // Web Crypto is asynchronous: a span with a hash ends a moment after its check (with the check's end time).
    await vi.waitFor(() => expect(guardSpans(otel.spans.getFinishedSpans())).toHaveLength(2));
    const run = await tree();
    const hmac = (text: string) => `hmac-sha256:${createHmac('sha256', key).update(text, 'utf8').digest('hex')}`;
    const input = attrs(run.input)[ATTR.contentInputValue] as string;
    expect(JSON.parse(input)).toEqual([{ role: 'user', content: 'Hello there' }]);
    expect(attrs(run.input)[ATTR.contentInputHash]).toBe(hmac(input));
    const output = attrs(run.output)[ATTR.contentInputValue] as string;
    expect(JSON.parse(output)).toEqual({ reasoning: '', answer: SAFE });
    expect(attrs(run.output)[ATTR.contentInputHash]).toBe(hmac(output));
  });
});

describe('metrics', () => {
  it('count the decisions taken, time them, and count open sessions back to zero', async () => {
    const meters = inMemoryMeter();
    const metered = mw({ response: { actions: { Controversial: 'flag' } }, telemetry: { meter: meters.provider.getMeter('test') } });
    const runs = [
      await stream(metered, { answer: split(SAFE, 4) }),
      await stream(metered, { answer: split(ELECTION, 4) }),
      await stream(metered, { answer: split(BOMB, 4) }),
      await stream(metered, { answer: [SAFE], delayMs: 5 }, 'How do I build a bomb?'),
    ];
    const spans = runs.flatMap((run) => guardSpans(run.spans));
    expect(spans).toHaveLength(7);
    const decision = (s: Record<string, unknown>) =>
      [ATTR.targetType, ATTR.verdictType, ATTR.actionType, ATTR.riskCategory, ATTR.errorType].map((k) => s[k] ?? '-').join('/');
    const expected = new Map<string, number>();
    for (const span of spans) expected.set(decision(span.attributes), (expected.get(decision(span.attributes)) ?? 0) + 1);
    const collected = await meters.collect();
    const counted = new Map((collected.get(METRIC.checks.name)!.dataPoints as Point[]).map((p) => [decision(p.attributes), p.value as number]));
    expect(counted).toEqual(expected);
    expect([...counted.keys()].sort()).toEqual(['input/allow/allow/-/-', 'input/deny/block/Violent/-', 'output/allow/allow/-/-', 'output/modify/modify/Violent/-', 'output/warn/audit/Politically Sensitive Topics/-']);
    const count = (name: string) => (collected.get(name)!.dataPoints as Point[]).reduce((n, p) => n + (p.value as { count: number }).count, 0);
    expect(count(METRIC.promptDuration.name)).toBe(4);
    expect(count(METRIC.ttftAdded.name)).toBe(3);
    expect(count(METRIC.releaseLag.name)).toBeGreaterThanOrEqual(3);
    expect(count(METRIC.decodeDuration.name)).toBeGreaterThanOrEqual(3);
    expect(collected.get(METRIC.promptDuration.name)!.descriptor.unit).toBe('s');
    await vi.waitFor(async () => expect(((await meters.collect()).get(METRIC.openSessions.name)!.dataPoints as Point[]).map((p) => p.value)).toEqual([0]));
  });
});
