/**
 * npm run bench:stream — the middleware in a real stream: the @ai-sdk/openai provider reads a long answer from a
 * loopback OpenAI-compatible server at 20, 50 and 100 tokens per second (one Qwen3 token per delta); the guard is the Qwen3Guard-Stream-0.6B
 * shaped q8_0 model of the engine benchmark. Guarded and unguarded runs of the same script, in one run:
 * time-to-first-token overhead, release lag (server write -> client receive) p50/p95/max in hold mode, lag
 * growth over the answer, characters leaked, and the guard's CPU share.
 *
 * The weights are random, so labels are random: the policy flags instead of stopping (a flagged run is still
 * held until resolved, the hold-mode worst case) and the answer always streams to its end.
 */
import { cpus } from 'node:os';
import { createOpenAI } from '@ai-sdk/openai';
import { streamText, wrapLanguageModel, type LanguageModelMiddleware } from 'ai';
import { Qwen3Guard } from '../src/engine/guard.js';
import { qwen3GuardMiddleware } from '../src/middleware/qwen3guard-middleware.js';
import { startOpenAiServer, wordDeltas } from '../test/fixtures/openai-server.js';
import { benchModel, FLAG_ONLY_POLICY, tokenDeltas } from './fixture.js';

const FIRST_TOKEN_DELAY_MS = 600;
const RUNS: Array<{ rate: number; tokens: number; q8?: boolean }> = [
  { rate: 20, tokens: 300 },
  { rate: 50, tokens: 2000 },
  { rate: 100, tokens: 600 },
];

const WORDS =
  'The river winds through the valley, past old mills and quiet farms, where herons wait in the shallows and the evening light turns the water to copper while the town prepares for the autumn market'.split(' ');
/** The answer as deltas of one Qwen3 token each, so "tokens per second" means the guard's tokens. */
function answer(tokens: number): string[] {
  return tokenDeltas(guard, wordDeltas(Array.from({ length: tokens * 2 }, (_, i) => WORDS[i % WORDS.length]).join(' ')).join(''), tokens);
}
const prompt = 'Could you describe a calm river valley in autumn, with its mills, farms and birds, for a short story I am writing?';

const quantile = (xs: number[], q: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(q * xs.length))];

const guard = await Qwen3Guard.load({ modelPath: await benchModel(), contextSize: 4096, maxSessions: 1, gpu: process.env.BENCH_GPU === '1' ? 'auto' : false });
const server = await startOpenAiServer();
const provider = createOpenAI({ baseURL: server.baseURL, apiKey: 'bench' });
const policy = FLAG_ONLY_POLICY;
const middleware = qwen3GuardMiddleware({ guard, ...policy }) as LanguageModelMiddleware;
// The same model with q8_0 keys in its KV cache (cheaper attention as the answer grows), for one extra row.
const guardQ8Keys = await Qwen3Guard.load({ modelPath: await benchModel(), contextSize: 4096, maxSessions: 1, gpu: process.env.BENCH_GPU === '1' ? 'auto' : false, kvCacheType: 'q8_0' });
const middlewareQ8Keys = qwen3GuardMiddleware({ guard: guardQ8Keys, ...policy }) as LanguageModelMiddleware;

interface Measure {
  ttft: number;
  lags: number[];
  cpuMs: number;
  wallMs: number;
  text: string;
  metadata?: Record<string, any>;
}

async function measure(deltas: string[], rate: number, guarded: LanguageModelMiddleware | null): Promise<Measure> {
  server.setScript({ deltas, tokensPerSecond: rate, firstTokenDelayMs: FIRST_TOKEN_DELAY_MS });
  const index = server.requests.length;
  const base = provider.chat('bench-model');
  const model = guarded ? wrapLanguageModel({ model: base, middleware: guarded }) : base;
  const cpu = process.cpuUsage();
  const start = performance.now();
  const result = streamText({ model, prompt: `${prompt} [${index}]` });
  let text = '';
  let ttft = -1;
  const arrivals: Array<[number, number]> = []; // [received length, time]
  for await (const delta of result.textStream) {
    const now = performance.now();
    if (ttft < 0) ttft = now - start;
    text += delta;
    arrivals.push([text.length, now]);
  }
  const wallMs = performance.now() - start;
  const used = process.cpuUsage(cpu);
  const request = await server.request(index);
  // Release lag of each delta: from the server writing it to the client holding all of it.
  const lags: number[] = [];
  let end = 0;
  let a = 0;
  deltas.forEach((d, k) => {
    end += d.length;
    while (a < arrivals.length && arrivals[a][0] < end) a++;
    if (a < arrivals.length) lags.push(arrivals[a][1] - request.deltaTimes[k]);
  });
  const metadata = (await result.providerMetadata)?.qwen3guard as Record<string, any> | undefined;
  return { ttft, lags, cpuMs: (used.user + used.system) / 1000, wallMs, text, metadata };
}

const fmt = (x: number) => x.toFixed(0).padStart(6);
console.log(`\nstream benchmark — ${cpus()[0]?.model ?? 'cpu'}, ${cpus().length} cores, guard threads ${guard.threads}, node ${process.version}`);
console.log(`upstream first token after ${FIRST_TOKEN_DELAY_MS} ms; one Qwen3 token per delta; hold mode\n`);
console.log('rate   tokens | TTFT plain guarded overhead | lag ms p50   p95   max | p95 first/last quarter | plain p95 | leaked | guard CPU (cores)');
await measure(answer(40), 0, middleware); // warm-up
await measure(answer(40), 0, middlewareQ8Keys);
for (const { rate, tokens, q8 } of [...RUNS, { rate: 50, tokens: 2000, q8: true }]) {
  const deltas = answer(tokens);
  const plain = await measure(deltas, rate, null);
  const guarded = await measure(deltas, rate, q8 ? middlewareQ8Keys : middleware);
  if (guarded.text !== deltas.join('')) throw new Error('the guarded text differs from the upstream text');
  const q = Math.floor(guarded.lags.length / 4);
  const first = quantile(guarded.lags.slice(0, q), 0.95);
  const last = quantile(guarded.lags.slice(-q), 0.95);
  const guardCores = (guarded.cpuMs - plain.cpuMs) / guarded.wallMs;
  console.log(
    `${String(rate).padStart(4)} ${String(deltas.length).padStart(7)}${q8 ? ' (q8_0 keys)' : ''} | ${fmt(plain.ttft)} ${fmt(guarded.ttft)} ${fmt(guarded.ttft - plain.ttft)}   |` +
      ` ${fmt(quantile(guarded.lags, 0.5))}${fmt(quantile(guarded.lags, 0.95))}${fmt(Math.max(...guarded.lags))} |` +
      `      ${fmt(first)} / ${fmt(last)}      | ${fmt(quantile(plain.lags, 0.95))}    | ${String(guarded.metadata?.leakedChars).padStart(6)} | ${guardCores.toFixed(2)} of ${cpus().length}`,
  );
  console.log(`           guard: ${JSON.stringify({ tokens: guarded.metadata?.tokens, guardLagMs: guarded.metadata?.guardLagMs, flags: guarded.metadata?.flags.length })}`);
}
await server.close();
await guardQ8Keys.dispose();
await guard.dispose();
