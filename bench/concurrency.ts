/**
 * npm run bench:concurrency — aggregate classification throughput of one guard with 1, 4 and 16 concurrent
 * streams (sessions on their own sequences, batched into shared decodes by node-llama-cpp) against one stream,
 * measured side by side in one run on the Qwen3Guard-Stream-0.6B-shaped q8_0 model. Each stream appends
 * `CHUNK`-token chunks as a streaming answer would; rounds interleave the workloads and medians are reported.
 */
import { cpus } from 'node:os';
import { LocalGuard } from '../src/engine/guard.js';
import { benchModel } from './fixture.js';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const CHUNK = Number(process.env.BENCH_CHUNK ?? 8);
const TOKENS_PER_STREAM = Number(process.env.BENCH_TOKENS ?? 64);
const LEVELS = [1, 4, 16];
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const guard = await LocalGuard.load({
  modelPath: await benchModel(),
  contextSize: 512,
  maxSessions: Math.max(...LEVELS),
  gpu: process.env.BENCH_GPU === '1' ? 'auto' : false,
});
const text = 'The quick brown fox jumps over the lazy dog while the committee reviews the annual budget report. ';
const tokens = guard.tokenizeText(text.repeat(40));
const prompt = [{ role: 'user' as const, content: 'Please summarize the report.' }];

/** Tokens per second over all streams: `streams` sessions each scoring TOKENS_PER_STREAM tokens in chunks. */
async function aggregate(streams: number): Promise<number> {
  const sessions = await Promise.all(Array.from({ length: streams }, () => guard.createSession()));
  try {
    await Promise.all(sessions.map((s) => s.checkPrompt(prompt)));
    await Promise.all(sessions.map((s) => s.appendTokens('answer', tokens.slice(0, 1)))); // scaffold, not timed
    const start = performance.now();
    await Promise.all(
      sessions.map(async (s) => {
        for (let i = 0; i < TOKENS_PER_STREAM; i += CHUNK) await s.appendTokens('answer', tokens.slice(1 + i, 1 + i + CHUNK));
      }),
    );
    return (streams * TOKENS_PER_STREAM) / ((performance.now() - start) / 1000);
  } finally {
    await Promise.all(sessions.map((s) => s.dispose()));
  }
}

await aggregate(2); // warm-up
const results: Record<number, number[]> = Object.fromEntries(LEVELS.map((n) => [n, []]));
for (let round = 0; round < ROUNDS; round++) {
  for (const n of LEVELS) results[n].push(await aggregate(n));
  process.stderr.write(`round ${round + 1}/${ROUNDS} done\n`);
}
const one = median(results[1]);
console.log(`\nconcurrency benchmark — ${cpus()[0]?.model ?? 'cpu'}, ${cpus().length} cores, threads ${guard.threads}, node ${process.version}`);
console.log(`model: Qwen3Guard-Stream-0.6B shapes, random weights, q8_0; ${TOKENS_PER_STREAM} tokens per stream in ${CHUNK}-token chunks; medians of ${ROUNDS} rounds\n`);
console.log(`${'concurrent streams'.padEnd(24)}${'aggregate tok/s'.padStart(18)}${'x one stream'.padStart(16)}`);
for (const n of LEVELS) {
  const v = median(results[n]);
  console.log(`${String(n).padEnd(24)}${v.toFixed(1).padStart(18)}${(v / one).toFixed(2).padStart(16)}`);
}
console.log(`\nrounds: ${JSON.stringify(Object.fromEntries(LEVELS.map((n) => [n, results[n].map((x) => +x.toFixed(1))])))}`);
await guard.dispose();
