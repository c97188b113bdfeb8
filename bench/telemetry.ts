/**
 * npm run bench:telemetry — what telemetry costs a guarded stream: time to first token and release lag with
 * telemetry off, on with no SDK registered (the API's no-op, every app's default) and on with the SDK's
 * in-memory span exporter and metric reader, side by side in one run (rounds interleave the three, so that drift
 * in the machine's load falls on all of them). The guard is the tiny planted test guard, whose own work is
 * small: the worst case for telemetry's share. The scripted upstream paces its parts in this process and notes
 * when it sent each delta; the lag is from there to the client's read.
 */
import { cpus } from 'node:os';
import { AggregationTemporality, InMemoryMetricExporter, MeterProvider, PeriodicExportingMetricReader } from '@opentelemetry/sdk-metrics';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { streamText, wrapLanguageModel, type LanguageModelMiddleware } from 'ai';
import { qwen3GuardMiddleware, type TelemetryOptions } from '../src/index.js';
import { plantedGuard } from '../test/fixtures/guards.js';
import { scriptedModel, split } from '../test/fixtures/scripted-model.js';
import { readTimed, releaseLags } from './fixture.js';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 10);
const DELTA_MS = 20; // 50 parts per second
const ANSWER = split('The river winds through the valley, past old mills and quiet farms, where herons wait in the shallows. '.repeat(2), 4);

async function measure(middleware: LanguageModelMiddleware): Promise<{ ttft: number; lags: number[]; cpuMs: number }> {
  const sentAt: number[] = [];
  const cpu = process.cpuUsage();
  const start = performance.now();
  const upstream = scriptedModel({ answer: ANSWER, delayMs: DELTA_MS, sent: (part) => void (part.type === 'text-delta' && sentAt.push(performance.now())) });
  const result = streamText({ model: wrapLanguageModel({ model: upstream.model, middleware }), prompt: 'Describe a calm river valley.' });
  const { text, ttft, arrivals } = await readTimed(result.textStream, start);
  const used = process.cpuUsage(cpu);
  if (text !== ANSWER.join('')) throw new Error('the guarded answer differs from the upstream one');
  return { ttft, lags: releaseLags(ANSWER, arrivals, sentAt), cpuMs: (used.user + used.system) / 1000 };
}

const guard = await plantedGuard({ maxSessions: 1, reuseKv: false });
const spans = new InMemorySpanExporter();
const tracer = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(spans)] }).getTracer('bench');
const reader = new PeriodicExportingMetricReader({ exporter: new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE), exportIntervalMillis: 3_600_000 });
const meter = new MeterProvider({ readers: [reader] }).getMeter('bench');
const arms: Array<{ name: string; telemetry: TelemetryOptions }> = [
  { name: 'telemetry off', telemetry: { enabled: false } },
  { name: 'on, no SDK registered', telemetry: {} },
  { name: 'on, in-memory exporter', telemetry: { tracer, meter } },
];
const middlewares = arms.map((arm) => qwen3GuardMiddleware({ guard, telemetry: arm.telemetry }) as LanguageModelMiddleware);
const results = arms.map(() => ({ ttft: [] as number[], lags: [] as number[], cpuMs: [] as number[] }));

for (const middleware of middlewares) await measure(middleware); // warm-up
for (let round = 0; round < ROUNDS; round++) {
  // A different order each round: no arm always runs first after a pause.
  for (let k = 0; k < arms.length; k++) {
    const a = (round + k) % arms.length;
    const m = await measure(middlewares[a]);
    results[a].ttft.push(m.ttft);
    results[a].lags.push(...m.lags);
    results[a].cpuMs.push(m.cpuMs);
  }
}

const quantile = (xs: number[], q: number) => [...xs].sort((x, y) => x - y)[Math.min(xs.length - 1, Math.floor(q * xs.length))];
const mean = (xs: number[]) => xs.reduce((s, x) => s + x, 0) / xs.length;
const pct = (x: number, base: number) => `${x >= base ? '+' : ''}${(((x - base) / base) * 100).toFixed(1)}%`;
const [off] = results;
console.log(`\ntelemetry benchmark — ${cpus()[0]?.model ?? 'cpu'}, ${cpus().length} cores, node ${process.version}, planted guard, ${ROUNDS} rounds of ${ANSWER.length} deltas at ${1000 / DELTA_MS}/s`);
console.log(`${'arm'.padEnd(24)} | TTFT p50 ms (vs off) | release lag p50 ms (vs off) | p95 ms | CPU ms/request (vs off)`);
arms.forEach((arm, i) => {
  const r = results[i];
  const [ttft, lag50, lag95, cpu] = [quantile(r.ttft, 0.5), quantile(r.lags, 0.5), quantile(r.lags, 0.95), mean(r.cpuMs)];
  console.log(
    `${arm.name.padEnd(24)} | ${ttft.toFixed(1).padStart(7)} (${pct(ttft, quantile(off.ttft, 0.5)).padStart(6)})     | ` +
      `${lag50.toFixed(1).padStart(7)} (${pct(lag50, quantile(off.lags, 0.5)).padStart(6)})            | ${lag95.toFixed(1).padStart(6)} | ${cpu.toFixed(1).padStart(6)} (${pct(cpu, mean(off.cpuMs))})`,
  );
});
console.log(`spans exported by the in-memory arm: ${spans.getFinishedSpans().length} (${(ROUNDS + 1) * 2} checks)`);
await guard.dispose();
