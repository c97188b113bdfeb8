/**
 * npm run bench:contexts — two llama.cpp contexts of the 0.6B-shaped guard in one process (what a Stream guard
 * and a local Gen classifier are), each decoding 256 tokens in chunks of 4 and of 64: one after the other, both
 * at once, and both at once through the ComputeLane (src/engine/compute-lane.ts), side by side in one run.
 */
import { cpus } from 'node:os';
import type { LlamaContextSequence, Token } from 'node-llama-cpp';
import { ComputeLane } from '../src/engine/compute-lane.js';
import { LocalGuard } from '../src/engine/guard.js';
import { BENCH_TEXT, benchModel } from './fixture.js';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const TOKENS = 256;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const guard = await LocalGuard.load({ modelPath: await benchModel(), contextSize: 4096, maxSessions: 1, gpu: false });
const tokens = guard.tokenizeText(BENCH_TEXT.repeat(100)).slice(0, TOKENS) as Token[];
const contexts = await Promise.all([0, 1].map(() => guard.model.createContext({ contextSize: 4096, threads: guard.threads })));
const [a, b] = contexts.map((c) => c.getSequence());

/** Decodes the tokens in chunks on `sequence`, each chunk through `wrap`. */
async function work(sequence: LlamaContextSequence, chunk: number, wrap = (task: () => Promise<void>) => task()) {
  await sequence.clearHistory();
  for (let i = 0; i < TOKENS; i += chunk) await wrap(() => sequence.evaluateWithoutGeneratingNewTokens(tokens.slice(i, i + chunk)));
}

const ways: Record<string, (chunk: number) => Promise<unknown>> = {
  'one after the other': async (chunk) => {
    await work(a, chunk);
    await work(b, chunk);
  },
  'at once': (chunk) => Promise.all([work(a, chunk), work(b, chunk)]),
  'at once, in the lane': (chunk) => {
    const lane = new ComputeLane(cpus().length);
    return Promise.all([work(a, chunk, (t) => lane.run(a.context, t)), work(b, chunk, (t) => lane.run(b.context, t))]);
  },
};
const results: Record<string, number[]> = {};
await work(a, 64); // warm-up
for (let round = 0; round < ROUNDS; round++) {
  for (const chunk of [4, 64])
    for (const [name, run] of Object.entries(ways)) {
      const start = performance.now();
      await run(chunk);
      (results[`${name}@${chunk}`] ??= []).push(performance.now() - start);
    }
  process.stderr.write(`round ${round + 1}/${ROUNDS} done\n`);
}

console.log(`\ncontexts benchmark — ${cpus()[0]?.model ?? 'cpu'}, ${cpus().length} cores, threads ${guard.threads} per context, node ${process.version}`);
console.log(`two contexts of the Qwen3Guard-Stream-0.6B-shaped q8_0 model, ${TOKENS} tokens each; medians of ${ROUNDS} interleaved rounds\n`);
console.log(`${'both contexts'.padEnd(24)}${'chunk'.padStart(6)}${'ms'.padStart(9)}${'x one after the other'.padStart(24)}`);
for (const chunk of [4, 64]) {
  const base = median(results[`one after the other@${chunk}`]);
  for (const name of Object.keys(ways)) {
    const v = median(results[`${name}@${chunk}`]);
    console.log(`${name.padEnd(24)}${String(chunk).padStart(6)}${v.toFixed(0).padStart(9)}${(v / base).toFixed(2).padStart(24)}`);
  }
}
console.log(`\nrounds: ${JSON.stringify(Object.fromEntries(Object.entries(results).map(([k, v]) => [k, v.map((x) => Math.round(x))])))}`);
for (const context of contexts) await context.dispose();
await guard.dispose();
