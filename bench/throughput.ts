/**
 * npm run bench:throughput — the engine's classification against plain node-llama-cpp prefill in chunks of the
 * same size (16, 64, 256 tokens), same GGUF (Qwen3Guard-Stream-0.6B shapes, q8_0), threads and context, in one
 * run of interleaved rounds (medians). Small chunks are slow on a CPU by themselves, so only same-chunk ratios
 * show the engine's own cost; the ratio against 512-token prefill is the second column.
 *
 * The breakdown adds one thing per row, so each difference is one cost:
 *   prefill            the backbone alone (no outputs)
 *   one output         + the vocabulary projection and sampling of one token per chunk
 *   greedy outputs     + the vocabulary projection of every token, llama.cpp's logits copy and node-llama-cpp's
 *                        candidate array and argmax per token (the least a per-token output costs through the API)
 *   top-k route        + the engine's top-k (the folded head rows' pairs) instead of the argmax
 *   engine             + the engine's JavaScript: items, head values from the pairs, verdict objects
 * Concurrency (1, 4 and 16 streams batched) is `npm run bench:concurrency`.
 */
import { cpus } from 'node:os';
import type { ControlledEvaluateInputItem, Token } from 'node-llama-cpp';
import { LocalGuard } from '../src/engine/guard.js';
import { pairIds } from '../src/engine/heads.js';
import { BENCH_TEXT, benchModel, classifyRate } from './fixture.js';

type ItemOptions = Extract<ControlledEvaluateInputItem, unknown[]>[1];
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const TOKENS = 512;
const CHUNKS = [16, 64, 256];
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const now = () => performance.now();

const modelPath = await benchModel();
const gpu = process.env.BENCH_GPU === '1' ? 'auto' : false;
const guard = await LocalGuard.load({ modelPath, contextSize: 4096, maxSessions: 1, gpu });
const threads = guard.threads;
const plain = await guard.model.createContext({ contextSize: 4096, threads, batchSize: guard.context.batchSize });
const sequence = plain.getSequence();
const tokens = guard.tokenizeText(BENCH_TEXT.repeat(100)).slice(0, TOKENS + 1) as Token[];

// The engine's own top-k item: the same filter and sampling options its folded readout uses.
const { response, query } = guard.layout;
const filter = [response.risk, response.category].flatMap(pairIds) as Token[];
const topK = [response, query].reduce((n, h) => n + h.risk.scaleLog2.length + h.category.scaleLog2.length, 0) + 64;
const greedy: ItemOptions = { generateNext: { token: true, options: { temperature: 0 } } };
const topKItem: ItemOptions = { generateNext: { logits: { filter: { tokens: filter } }, options: { temperature: 1, topK, topP: 1, minP: 0, seed: 0 } } };

/** Tokens per second of `TOKENS` tokens in chunks of `chunk`, each chunk through `run`. */
async function timed(chunk: number, run: (ids: Token[]) => Promise<unknown>): Promise<number> {
  await sequence.clearHistory();
  const start = now();
  for (let i = 0; i < TOKENS; i += chunk) await run(tokens.slice(i, i + chunk));
  return TOKENS / ((now() - start) / 1000);
}

const workloads: Record<string, (chunk: number) => Promise<number>> = {
  prefill: (c) => timed(c, (ids) => sequence.evaluateWithoutGeneratingNewTokens(ids)),
  'one output': (c) => timed(c, (ids) => sequence.controlledEvaluate(ids.map((id, k) => (k === ids.length - 1 ? [id, greedy] : id)))),
  'greedy outputs': (c) => timed(c, (ids) => sequence.controlledEvaluate(ids.map((id) => [id, greedy]))),
  'top-k route': (c) => timed(c, (ids) => sequence.controlledEvaluate(ids.map((id) => [id, topKItem]))),
  engine: (c) => classifyRate(guard, tokens, TOKENS, c),

};

const results: Record<string, number[]> = {};
await timed(64, (ids) => sequence.evaluateWithoutGeneratingNewTokens(ids)); // warm-up
for (let round = 0; round < ROUNDS; round++) {
  (results.prefill512 ??= []).push(await workloads.prefill(512));
  for (const chunk of CHUNKS) for (const [name, run] of Object.entries(workloads)) (results[`${name}@${chunk}`] ??= []).push(await run(chunk));
  process.stderr.write(`round ${round + 1}/${ROUNDS} done\n`);
}
const m = Object.fromEntries(Object.entries(results).map(([k, v]) => [k, median(v)]));

console.log(`\nthroughput benchmark — ${cpus()[0]?.model ?? 'cpu'}, ${cpus().length} cores, threads ${threads}, node ${process.version}`);
console.log(`Qwen3Guard-Stream-0.6B shapes, random weights, q8_0; ${TOKENS} tokens per workload; medians of ${ROUNDS} interleaved rounds`);
console.log(`plain prefill in 512-token batches: ${m.prefill512.toFixed(1)} tok/s\n`);
console.log(`${'workload'.padEnd(16)}${'chunk'.padStart(6)}${'tok/s'.padStart(9)}${'x same-chunk prefill'.padStart(22)}${'x 512 prefill'.padStart(15)}${'ms/token added'.padStart(16)}`);
for (const chunk of CHUNKS) {
  let previous = 0;
  for (const name of Object.keys(workloads)) {
    const v = m[`${name}@${chunk}`];
    const perToken = 1000 / v;
    const added = previous ? (perToken - previous).toFixed(2) : '';
    previous = perToken;
    console.log(`${name.padEnd(16)}${String(chunk).padStart(6)}${v.toFixed(1).padStart(9)}${(v / m[`prefill@${chunk}`]).toFixed(2).padStart(22)}${(v / m.prefill512).toFixed(2).padStart(15)}${added.padStart(16)}`);
  }
  console.log('');
}
console.log(`rounds: ${JSON.stringify(Object.fromEntries(Object.entries(results).map(([k, v]) => [k, v.map((x) => +x.toFixed(1))])))}`);
await plain.dispose();
await guard.dispose();
