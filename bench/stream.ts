/**
 * npm run bench:stream — the middleware in a real stream: the @ai-sdk/openai provider reads a long answer from a
 * loopback OpenAI-compatible server at 20, 50 and 100 tokens per second (one Qwen3 token per delta); the guard is the Qwen3Guard-Stream-0.6B
 * shaped q8_0 model of the engine benchmark (random labels) and the trained-like one (Safe but for planted
 * words), each with and without speculative evaluation of the held tail. Guarded and unguarded runs, in one run:
 * time-to-first-token overhead, release lag (server write -> client receive) p50/p95/max in hold mode, lag
 * growth over the answer, characters leaked, tokens per decode, speculated tokens discarded, the guard's CPU share.
 *
 * The policy flags instead of stopping (a flagged run is still held until resolved) so that every answer
 * streams to its end.
 */
import { cpus } from 'node:os';
import { createOpenAI } from '@ai-sdk/openai';
import { streamText, wrapLanguageModel, type LanguageModelMiddleware } from 'ai';
import { LocalGuard } from '../src/engine/guard.js';
import { qwen3GuardMiddleware } from '../src/index.js';
import { startOpenAiServer, wordDeltas } from '../test/fixtures/openai-server.js';
import { benchModel, FLAG_ONLY_POLICY, PLANTED_WORDS, readTimed, releaseLags, tokenDeltas, trainedLikeModel } from './fixture.js';

const FIRST_TOKEN_DELAY_MS = 600;
const RUNS: Array<{ rate: number; tokens: number }> = [
  { rate: 20, tokens: 300 },
  { rate: 50, tokens: 2000 },
  { rate: 100, tokens: 600 },
];

const WORDS =
  'The river winds through the valley, past old mills and quiet farms, where herons wait in the shallows and the evening light turns the water to copper while the town prepares for the autumn market'.split(' ');
/** The answer as deltas of one Qwen3 token each, so "tokens per second" means the guard's tokens. */
function answer(tokens: number, planted = false): string[] {
  const words = Array.from({ length: tokens * 2 }, (_, i) => (planted && i % PLANT_EVERY === PLANT_EVERY - 1 ? PLANTED_WORDS.join(' ') : WORDS[i % WORDS.length]));
  return tokenDeltas(guard, wordDeltas(words.join(' ')).join(''), tokens);
}
/** How often (in words) a trained-like answer carries the planted phrase: a flagged span now and then. */
const PLANT_EVERY = 400;
const prompt = 'Could you describe a calm river valley in autumn, with its mills, farms and birds, for a short story I am writing?';

const quantile = (xs: number[], q: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(q * xs.length))];

const gpu = process.env.BENCH_GPU === '1' ? 'auto' : false;
// No KV reuse: every request is a new conversation here, and a finished turn's background re-render in one guard
// would compete with the next guard's measured stream.
const load = async (modelPath: string, speculate: boolean) => LocalGuard.load({ modelPath, contextSize: 4096, maxSessions: 1, gpu, speculate, reuseKv: false });
const server = await startOpenAiServer();
const provider = createOpenAI({ baseURL: server.baseURL, apiKey: 'bench' });
const policy = FLAG_ONLY_POLICY;
/**
 * Guards compared in one run: the random-weights model (two thirds of its tokens non-Safe: every such token waits
 * for the next verdict, the worst case) and the trained-like one (every token Safe but the planted words), each
 * with and without speculative evaluation of the held tail.
 */
const variants: Array<{ name: string; guard: LocalGuard; middleware: LanguageModelMiddleware }> = [];
for (const [name, modelPath, speculate] of [
  ['random, final text only', await benchModel(), false],
  ['random, speculative', await benchModel(), true],
  ['trained-like, final text only', await trainedLikeModel(), false],
  ['trained-like, speculative', await trainedLikeModel(), true],
] as const) {
  const guard = await load(modelPath, speculate);
  variants.push({ name, guard, middleware: qwen3GuardMiddleware({ guard, ...policy }) as LanguageModelMiddleware });
}
const guard = variants[0].guard;

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
  const { text, ttft, arrivals } = await readTimed(result.textStream, start);
  const wallMs = performance.now() - start;
  const used = process.cpuUsage(cpu);
  const request = await server.request(index);
  const lags = releaseLags(deltas, arrivals, request.deltaTimes);
  const metadata = (await result.providerMetadata)?.qwen3guard as Record<string, any> | undefined;
  return { ttft, lags, cpuMs: (used.user + used.system) / 1000, wallMs, text, metadata };
}

const fmt = (x: number) => x.toFixed(0).padStart(6);
console.log(`\nstream benchmark — ${cpus()[0]?.model ?? 'cpu'}, ${cpus().length} cores, guard threads ${guard.threads}, node ${process.version}`);
console.log(`upstream first token after ${FIRST_TOKEN_DELAY_MS} ms; one Qwen3 token per delta; hold mode; the trained-like answers carry "${PLANTED_WORDS.join(' ')}" every ${PLANT_EVERY} tokens\n`);
console.log('rate   tokens guard                          | TTFT plain guarded overhead | lag ms p50   p95   max | p95 first/last quarter | plain p95 | leaked | tokens/decode | discarded | guard CPU (cores)');
for (const { middleware } of variants) await measure(answer(40), 0, middleware); // warm-up
for (const { rate, tokens } of RUNS) {
  const plain = await measure(answer(tokens), rate, null);
  for (const { name, guard, middleware } of variants) {
    const deltas = answer(tokens, name.startsWith('trained'));
    const stats = { ...guard.stats };
    const guarded = await measure(deltas, rate, middleware);
    if (guarded.text !== deltas.join('')) throw new Error('the guarded text differs from the upstream text');
    const q = Math.floor(guarded.lags.length / 4);
    const first = quantile(guarded.lags.slice(0, q), 0.95);
    const last = quantile(guarded.lags.slice(-q), 0.95);
    const guardCores = (guarded.cpuMs - plain.cpuMs) / guarded.wallMs;
    const perDecode = (guard.stats.evaluatedTokens - stats.evaluatedTokens) / (guard.stats.evaluations - stats.evaluations);
    const discarded = guard.stats.discardedTokens - stats.discardedTokens;
    console.log(
      `${String(rate).padStart(4)} ${String(deltas.length).padStart(7)} ${name.padEnd(30)} | ${fmt(plain.ttft)} ${fmt(guarded.ttft)} ${fmt(guarded.ttft - plain.ttft)}   |` +
        ` ${fmt(quantile(guarded.lags, 0.5))}${fmt(quantile(guarded.lags, 0.95))}${fmt(Math.max(...guarded.lags))} |` +
        `      ${fmt(first)} / ${fmt(last)}      | ${fmt(quantile(plain.lags, 0.95))}    | ${String(guarded.metadata?.leakedChars).padStart(6)} | ${perDecode.toFixed(2).padStart(13)} | ${String(discarded).padStart(9)} | ${guardCores.toFixed(2)} of ${cpus().length}`,
    );
    console.log(`           guard: ${JSON.stringify({ tokens: guarded.metadata?.tokens, guardLagMs: guarded.metadata?.guardLagMs, flags: guarded.metadata?.flags.length })}`);
  }
}
await server.close();
for (const { guard } of variants) await guard.dispose();
