/**
 * npm run bench:quant — q4_0 against q8_0 on the same random checkpoint with Qwen3Guard-Stream-0.6B's shapes
 * (q4_0: the layer matrices in q4_0, token_embd kept in q8_0; see src/convert/ggml-types.ts): one-token
 * decode of plain node-llama-cpp, the engine's classification one token per call and in chunks of 16 and 64
 * tokens, and the file sizes. Both models stay loaded and rounds interleave them (alternating which goes
 * first), so machine noise hits both alike; medians are reported with the ratio q4_0 / q8_0.
 */
import { readFileSync, statSync } from 'node:fs';
import { cpus } from 'node:os';
import type { LlamaContext, LlamaContextSequence, Token } from 'node-llama-cpp';
import { LocalGuard } from '../src/engine/guard.js';
import { BENCH_TEXT, benchModel, classifyRate } from './fixture.js';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const TYPES = ['q8_0', 'q4_0'] as const;
type Type = (typeof TYPES)[number];
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const now = () => performance.now();
const gpu = process.env.BENCH_GPU === '1' ? 'auto' : false;

interface Subject {
  path: string;
  guard: LocalGuard;
  plain: LlamaContext;
  sequence: LlamaContextSequence;
}

const subjects = {} as Record<Type, Subject>;
for (const type of TYPES) {
  const path = await benchModel(type);
  const guard = await LocalGuard.load({ modelPath: path, contextSize: 4096, maxSessions: 1, gpu });
  // Plain node-llama-cpp on the same model: its own context with the same threads and batch size.
  const plain = await guard.model.createContext({ contextSize: 4096, threads: guard.threads, batchSize: guard.context.batchSize });
  subjects[type] = { path, guard, plain, sequence: plain.getSequence() };
}

const tokens = subjects.q8_0.guard.tokenizeText(BENCH_TEXT.repeat(100));

/** Tokens per second of plain one-token decodes (no outputs) after a 64-token prefill. */
async function decode(s: Subject, n: number): Promise<number> {
  await s.sequence.clearHistory();
  await s.sequence.evaluateWithoutGeneratingNewTokens(tokens.slice(0, 64) as Token[]);
  const start = now();
  for (let i = 0; i < n; i++) await s.sequence.evaluateWithoutGeneratingNewTokens([tokens[64 + i]] as Token[]);
  return n / ((now() - start) / 1000);
}

const WORKLOADS: Array<[string, (s: Subject) => Promise<number>]> = [
  ['plain node-llama-cpp decode, one token per call', (s) => decode(s, 32)],
  ['engine classification, one token per call', (s) => classifyRate(s.guard, tokens, 24, 1)],
  ['engine classification, chunk 16', (s) => classifyRate(s.guard, tokens, 256, 16)],
  ['engine classification, chunk 64', (s) => classifyRate(s.guard, tokens, 256, 64)],
];
const results = Object.fromEntries(TYPES.map((t) => [t, WORKLOADS.map(() => [] as number[])])) as Record<Type, number[][]>;

for (const type of TYPES) {
  await decode(subjects[type], 8); // warm-up
  await classifyRate(subjects[type].guard, tokens, 16, 16);
}
for (let round = 0; round < ROUNDS; round++) {
  const order = round % 2 === 0 ? TYPES : [...TYPES].reverse();
  for (const [w, [, run]] of WORKLOADS.entries()) for (const type of order) results[type][w].push(await run(subjects[type]));
  process.stderr.write(`round ${round + 1}/${ROUNDS} done\n`);
}

const flags = (readFileSync('/proc/cpuinfo', 'utf8').match(/^flags\s*:(.*)$/m)?.[1] ?? '').split(' ').filter((f) => /^(avx2|avx512f|avx512_vnni|avx512_bf16|avx_vnni|f16c|fma)$/.test(f));
const row = (name: string, ...cells: string[]) => console.log(`${name.padEnd(52)}${cells.map((c) => c.padStart(12)).join('')}`);
console.log(`\nquant benchmark — ${cpus()[0]?.model ?? 'cpu'}, ${cpus().length} cores (${flags.join(' ') || 'flags unknown'}), threads ${subjects.q8_0.guard.threads}, node ${process.version}`);
console.log(`model: Qwen3Guard-Stream-0.6B shapes, random weights; medians of ${ROUNDS} interleaved rounds\n`);
row('workload (tok/s)', 'q8_0', 'q4_0', 'q4_0/q8_0');
for (const [w, [name]] of WORKLOADS.entries()) {
  const [a, b] = TYPES.map((t) => median(results[t][w]));
  row(name, a.toFixed(1), b.toFixed(1), (b / a).toFixed(2));
}
const [sizeA, sizeB] = TYPES.map((t) => statSync(subjects[t].path).size / 2 ** 20);
row('file size (MiB)', sizeA.toFixed(0), sizeB.toFixed(0), (sizeB / sizeA).toFixed(2));
console.log(`\nrounds: ${JSON.stringify(Object.fromEntries(TYPES.map((t) => [t, results[t].map((v) => v.map((x) => +x.toFixed(2)))])))}`);

for (const type of TYPES) {
  await subjects[type].plain.dispose();
  await subjects[type].guard.dispose();
}
