/**
 * npm run bench:engine — classification throughput of the engine against plain node-llama-cpp prefill on
 * the same GGUF (Qwen3Guard-Stream-0.6B shapes, q8_0), with the same threads, measured side by side in one
 * run. Rounds interleave the workloads and medians are reported, so machine noise hits all of them alike.
 */
import { statSync } from 'node:fs';
import { cpus } from 'node:os';
import type { Token } from 'node-llama-cpp';
import { LocalGuard } from '../src/engine/guard.js';
import { BENCH_PROMPT, BENCH_TEXT, benchModel, classifyRate } from './fixture.js';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const now = () => performance.now();

const modelPath = await benchModel();
const gpu = process.env.BENCH_GPU === '1' ? 'auto' : false;
const guard = await LocalGuard.load({ modelPath, contextSize: 4096, maxSessions: 1, gpu });
const rssGuardMb = process.memoryUsage().rss / 2 ** 20;
// The same model with q8_0 keys in the KV cache (kvCacheType: 'q8_0'), for the long-context rows.
const guardQ8Keys = await LocalGuard.load({ modelPath, contextSize: 4096, maxSessions: 1, gpu, kvCacheType: 'q8_0' });
const threads = guard.threads;
// Plain node-llama-cpp on the same model: its own context with the same threads and batch size.
const plain = await guard.model.createContext({ contextSize: 4096, threads, batchSize: guard.context.batchSize });
const plainSequence = plain.getSequence();

const tokens = guard.tokenizeText(BENCH_TEXT.repeat(200));

async function prefill(n: number): Promise<number> {
  await plainSequence.clearHistory();
  const start = now();
  await plainSequence.evaluateWithoutGeneratingNewTokens(tokens.slice(0, n) as Token[]);
  return n / ((now() - start) / 1000);
}

/** Milliseconds per token of `chunk`-token appends once the session holds `context` tokens. */
async function perTokenAt(context: number, chunk: number, chunks: number, on = guard): Promise<number> {
  const session = await on.createSession();
  try {
    await session.checkPrompt(BENCH_PROMPT);
    const fill = context - session.tokenIds.length;
    if (fill > 0) await session.appendTokens('answer', tokens.slice(0, fill));
    const times: number[] = [];
    for (let c = 0; c < chunks; c++) {
      const start = now();
      await session.appendTokens('answer', tokens.slice(fill + c * chunk, fill + (c + 1) * chunk));
      times.push((now() - start) / chunk);
    }
    return median(times);
  } finally {
    await session.dispose();
    await on.pool.settled(); // the answer's background re-render must not run into the next workload
  }
}

const results: Record<string, number[]> = { prefill: [], chunk1: [], chunk16: [], chunk64: [], ctx64: [], ctx2048: [], ctx64c1: [], ctx2048c1: [], ctx64q8: [], ctx2048q8: [] };
await prefill(64); // warm-up
await classifyRate(guard, tokens, 16, 16);
for (let round = 0; round < ROUNDS; round++) {
  results.prefill.push(await prefill(512));
  results.chunk1.push(await classifyRate(guard, tokens, 24, 1));
  results.chunk16.push(await classifyRate(guard, tokens, 256, 16));
  results.chunk64.push(await classifyRate(guard, tokens, 256, 64));
  results.ctx64.push(await perTokenAt(64, 16, 6));
  results.ctx2048.push(await perTokenAt(2048, 16, 6));
  results.ctx64c1.push(await perTokenAt(64, 1, 8));
  results.ctx2048c1.push(await perTokenAt(2048, 1, 8));
  results.ctx64q8.push(await perTokenAt(64, 16, 6, guardQ8Keys));
  results.ctx2048q8.push(await perTokenAt(2048, 16, 6, guardQ8Keys));
  process.stderr.write(`round ${round + 1}/${ROUNDS} done\n`);
}

const m = Object.fromEntries(Object.entries(results).map(([k, v]) => [k, median(v)]));
const rssMb = process.memoryUsage().rss / 2 ** 20;
const fileMb = statSync(modelPath).size / 2 ** 20;
const row = (name: string, value: string, ratio = '') => console.log(`${name.padEnd(52)}${value.padStart(14)}${ratio.padStart(16)}`);
console.log(`\nengine benchmark — ${cpus()[0]?.model ?? 'cpu'}, ${cpus().length} cores, threads ${threads}, node ${process.version}`);
console.log(`model: Qwen3Guard-Stream-0.6B shapes, random weights, q8_0 (${fileMb.toFixed(0)} MB); medians of ${ROUNDS} interleaved rounds\n`);
row('workload', 'tok/s', 'x prefill');
row('plain node-llama-cpp prefill (512 tokens, no outputs)', m.prefill.toFixed(1), '1.00');
for (const chunk of [1, 16, 64]) {
  const v = m[`chunk${chunk}`];
  row(`engine classification, chunk ${chunk}`, v.toFixed(1), (v / m.prefill).toFixed(2));
}
console.log('');
row('per-token cost at context 64 (16-token chunks)', `${m.ctx64.toFixed(2)} ms`);
row('per-token cost at context 2048 (16-token chunks)', `${m.ctx2048.toFixed(2)} ms`, `ratio ${(m.ctx2048 / m.ctx64).toFixed(2)}`);
row('per-token cost at context 64 (one token per call)', `${m.ctx64c1.toFixed(2)} ms`);
row('per-token cost at context 2048 (one token per call)', `${m.ctx2048c1.toFixed(2)} ms`, `ratio ${(m.ctx2048c1 / m.ctx64c1).toFixed(2)}`);
row('q8_0 keys: per-token cost at context 64 (16-token chunks)', `${m.ctx64q8.toFixed(2)} ms`);
row('q8_0 keys: per-token cost at context 2048 (16-token chunks)', `${m.ctx2048q8.toFixed(2)} ms`, `ratio ${(m.ctx2048q8 / m.ctx64q8).toFixed(2)}`);
row('resident memory: process RSS with the guard loaded', `${rssGuardMb.toFixed(0)} MB`);
row('resident memory: at the end (+ q8_0-key guard, plain context)', `${rssMb.toFixed(0)} MB`);
console.log(`\nrounds: ${JSON.stringify(Object.fromEntries(Object.entries(results).map(([k, v]) => [k, v.map((x) => +x.toFixed(2))])))}`);
console.log(`stats: ${JSON.stringify(guard.stats)}`);

await plain.dispose();
await guardQ8Keys.dispose();
await guard.dispose();
