/**
 * The guard's OpenTelemetry spans next to the AI SDK's own, printed by the SDK's console exporters:
 * `node examples/telemetry.ts [guard.gguf | pulled name] [prompt]` (Node 22.18+ runs TypeScript as is). The
 * test suite's planted guard works too: `node examples/telemetry.ts .cache/fixtures/gguf-planted-v1-q8_0-format2/model.gguf`
 * (it flags " bomb"). With OPENAI_BASE_URL or OPENAI_API_KEY (and CHAT_MODEL) the answer comes from that server;
 * without, from a canned answer, so the example runs offline.
 *
 * This package sends nothing anywhere: spans and metrics go through @opentelemetry/api to the SDK the app
 * registers. In production, register an OTLP exporter instead of the console ones (see the README).
 */
import { createOpenAI } from '@ai-sdk/openai';
import { OpenTelemetry } from '@ai-sdk/otel';
import type { LanguageModelV4StreamPart } from '@ai-sdk/provider';
import { context, metrics, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { ConsoleMetricExporter, MeterProvider, PeriodicExportingMetricReader } from '@opentelemetry/sdk-metrics';
import { BasicTracerProvider, ConsoleSpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { registerTelemetry, simulateReadableStream, streamText, wrapLanguageModel } from 'ai';
import { MockLanguageModelV4 } from 'ai/test';
import { Qwen3Guard, qwen3GuardMiddleware } from 'ai-sdk-qwen3guard';

// The app's OpenTelemetry setup: context across awaits, a tracer and a meter provider, the AI SDK's integration.
context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
const tracerProvider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(new ConsoleSpanExporter())] });
trace.setGlobalTracerProvider(tracerProvider);
const meterProvider = new MeterProvider({ readers: [new PeriodicExportingMetricReader({ exporter: new ConsoleMetricExporter(), exportIntervalMillis: 60_000 })] });
metrics.setGlobalMeterProvider(meterProvider);
registerTelemetry(new OpenTelemetry());

const name = process.argv[2] ?? process.env.QWEN3GUARD_MODEL ?? 'qwen3guard-stream-0.6b';
const guard = await Qwen3Guard.load(name.endsWith('.gguf') ? { modelPath: name } : { model: name });

/** A canned answer, streamed a few characters at a time. */
function cannedModel(answer: string) {
  const deltas = answer.match(/.{1,4}/gs) ?? [];
  const chunks: LanguageModelV4StreamPart[] = [
    { type: 'stream-start', warnings: [] },
    { type: 'text-start', id: 't' },
    ...deltas.map((delta): LanguageModelV4StreamPart => ({ type: 'text-delta', id: 't', delta })),
    { type: 'text-end', id: 't' },
    { type: 'finish', finishReason: { unified: 'stop', raw: 'stop' }, usage: { inputTokens: { total: 9, noCache: 9, cacheRead: 0, cacheWrite: 0 }, outputTokens: { total: deltas.length, text: deltas.length, reasoning: 0 } } },
  ];
  return new MockLanguageModelV4({ modelId: 'canned', doStream: async () => ({ stream: simulateReadableStream({ chunks, chunkDelayInMs: 20 }) }) });
}

const upstream =
  process.env.OPENAI_BASE_URL || process.env.OPENAI_API_KEY
    ? createOpenAI({ baseURL: process.env.OPENAI_BASE_URL, apiKey: process.env.OPENAI_API_KEY ?? 'none' }).chat(process.env.CHAT_MODEL ?? 'gpt-4o-mini')
    : cannedModel('Sure. Mix these to make a bomb quickly, then wait an hour before you leave the house.');

const model = wrapLanguageModel({
  model: upstream,
  // conversationId becomes gen_ai.conversation.id; recordContent / contentHmacKey would add the text or its HMAC.
  middleware: qwen3GuardMiddleware({ guard }),
});
const result = streamText({ model, prompt: process.argv[3] ?? 'Tell me about rivers.', providerOptions: { qwen3guard: { conversationId: 'example-1' } } });
for await (const text of result.textStream) process.stdout.write(text);
console.log(`\n[finish: ${await result.finishReason}]`);

await tracerProvider.forceFlush();
await meterProvider.forceFlush(); // prints the guardrail metrics (qwen3guard.*) once
await Promise.all([tracerProvider.shutdown(), meterProvider.shutdown(), guard.dispose()]);
