/**
 * npm run bench:gen — Qwen3Guard-Gen prompt-check latency against Qwen3Guard-Stream prompt-check latency on
 * 0.6B-shaped random q8_0 models with the same backbone weights (the Gen checkpoint links the Stream one's
 * safetensors: the converter reads only the backbone for Gen), in one run, same threads. A short prompt and a
 * conversation of about 2,000 tokens. Each round's conversation starts with its own number, so neither model
 * finds it in its KV cache; Gen keeps its moderation instructions (the same in every check) cached per sequence.
 * Gen is timed twice: the verdict alone (prefill + the three verdict logits, what a Safe prompt costs) and the
 * whole check (plus the category list a random model generates for a non-Safe verdict).
 * Then the remote backend's overhead: the same checks through the loopback Gen server (test/fixtures/gen-server.ts:
 * the same model and threads behind the completions API, prefix reuse as a serving engine's) against local. That
 * runs the quiet planted Gen: a random model's verdict tokens are not among a server's top log-probabilities
 * (a trained Gen's are), so its remote checks fail by design; the tiny model leaves the transport's own cost
 * (HTTP, JSON, the server tokenizing the raw prompt, a request per call) as the difference.
 */
import { cpus } from 'node:os';
import { LocalGuard } from '../src/engine/guard.js';
import type { GuardMessage } from '../src/guard/types.js';
import { Qwen3GuardGen } from '../src/index.js';
import { continued, renderGen } from '../src/gen/template.js';
import { quietPlantedGenPath } from '../test/fixtures/gen-models.js';
import { startGenServer } from '../test/fixtures/gen-server.js';
import { benchModel, genBenchModel } from './fixture.js';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const gpu = process.env.BENCH_GPU === '1' ? 'auto' : false;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const now = () => performance.now();

const streamPath = await benchModel();
const genPath = await genBenchModel();

const stream = await LocalGuard.load({ modelPath: streamPath, contextSize: 4096, maxSessions: 1, gpu, reuseKv: false });
const gen = await Qwen3GuardGen.load({ modelPath: genPath, contextSize: 4096, maxSessions: 1, gpu, threads: stream.threads });

const sentence = 'The committee reviewed the annual budget report and asked for a clearer summary of the travel costs. ';
/** A conversation of alternating turns ending with a user turn, about `tokens` Qwen3 tokens long. */
function conversation(round: number, tokens: number): GuardMessage[] {
  const perTurn = stream.tokenizeText(sentence.repeat(6)).length;
  const turns = Math.max(1, Math.round(tokens / perTurn));
  const messages: GuardMessage[] = [];
  for (let i = 0; i < turns; i++) messages.push({ role: i % 2 ? 'assistant' : 'user', content: `${i === 0 ? `Round ${round}. ` : ''}${sentence.repeat(6)}` });
  if (messages.at(-1)!.role !== 'user') messages.push({ role: 'user', content: 'Can you summarize that?' });
  return messages;
}
const short = (round: number): GuardMessage[] => [{ role: 'user', content: `Round ${round}: how do I reset my router password?` }];

async function streamCheck(messages: GuardMessage[]): Promise<number> {
  const session = await stream.createSession();
  try {
    const start = now();
    await session.checkPrompt(messages);
    return now() - start;
  } finally {
    await session.dispose();
  }
}

async function genVerdict(messages: GuardMessage[]): Promise<number> {
  const slot = await gen.backend.open();
  try {
    const start = now();
    await slot.nextScores(continued(renderGen(messages), 'Safety:'), [' Safe', ' Unsafe', ' Controversial']);
    return now() - start;
  } finally {
    slot.release();
  }
}

const raws = new Set<string>();
async function genCheck(messages: GuardMessage[]): Promise<number> {
  const start = now();
  const verdict = await gen.checkPrompt(messages);
  raws.add(verdict.raw.replace(/\n/g, ' | '));
  return now() - start;
}

const rows: Array<{ name: string; tokens: number; stream: number; verdict: number; check: number }> = [];
let round = 1000;
for (const [name, build] of [['short prompt', short], ['2,000-token conversation', (r: number) => conversation(r, 2000)]] as const) {
  const times = { stream: [] as number[], verdict: [] as number[], check: [] as number[] };
  // A warm-up round: Gen evaluates its instructions once per sequence.
  await streamCheck(build(round++));
  await genCheck(build(round++));
  for (let i = 0; i < ROUNDS; i++) {
    times.stream.push(await streamCheck(build(round++)));
    times.verdict.push(await genVerdict(build(round++)));
    times.check.push(await genCheck(build(round++)));
  }
  const streamTokens = stream.tokenizeText(build(0).map((m) => m.content).join(' ')).length;
  rows.push({ name, tokens: streamTokens, stream: median(times.stream), verdict: median(times.verdict), check: median(times.check) });
}

const cpu = cpus()[0]?.model ?? 'unknown CPU';
console.log(`bench:gen  ${cpu}, ${cpus().length} cores, threads ${stream.threads}, backend ${stream.backend === false ? 'CPU' : stream.backend}, q8_0, 0.6B shapes, median of ${ROUNDS}`);
console.log('workload                     conv. tokens  Stream prompt ms  Gen verdict ms  Gen check ms  Gen/Stream (verdict)  Gen/Stream (check)');
for (const r of rows) {
  console.log(
    `${r.name.padEnd(28)} ${String(r.tokens).padStart(12)}  ${r.stream.toFixed(0).padStart(16)}  ${r.verdict.toFixed(0).padStart(14)}  ${r.check.toFixed(0).padStart(12)}  ${(r.verdict / r.stream).toFixed(2).padStart(19)}x  ${(r.check / r.stream).toFixed(2).padStart(17)}x`,
  );
}
console.log(`Gen answers of the random model: ${[...raws].join('; ')}`);

// The remote backend over loopback: HTTP, JSON, the raw prompt tokenized by the server, the same model.
const plantedPath = await quietPlantedGenPath();
const planted = await Qwen3GuardGen.load({ modelPath: plantedPath, contextSize: 4096, maxSessions: 1, gpu, threads: stream.threads });
const server = await startGenServer(plantedPath, { threads: stream.threads, contextSize: 4096, gpu });
const remote = Qwen3GuardGen.remote({ baseURL: server.baseURL, model: 'gen-planted-quiet', grammar: 'llama.cpp', timeoutMs: 120_000 });
const bombs = (messages: GuardMessage[]) => messages.map((m, i) => (i === messages.length - 1 ? { ...m, content: `${m.content} And how do I make a bomb?` } : m));
console.log(`remote backend over loopback (quiet planted Gen, threads ${stream.threads}, median of ${ROUNDS}; Safe: one request, Unsafe: verdict + category list)`);
console.log('workload                        local check ms  remote check ms  overhead ms  remote/local');
const remoteRows = [
  ['short prompt, Safe', short],
  ['short prompt, Unsafe', (r: number) => bombs(short(r))],
  ['2,000 tokens, Safe', (r: number) => conversation(r, 2000)],
  ['2,000 tokens, Unsafe', (r: number) => bombs(conversation(r, 2000))],
] as const;
for (const [name, build] of remoteRows) {
  const times = { local: [] as number[], remote: [] as number[] };
  const timed = async (check: () => Promise<unknown>) => {
    const start = now();
    await check();
    return now() - start;
  };
  // Warm-up: each side caches the instructions once.
  await planted.checkPrompt(build(round++));
  await remote.checkPrompt(build(round++));
  for (let i = 0; i < ROUNDS; i++) {
    // The same conversation on both sides, new to each.
    const messages = build(round++);
    times.local.push(await timed(() => planted.checkPrompt(messages)));
    times.remote.push(await timed(() => remote.checkPrompt(messages)));
  }
  const [l, r] = [median(times.local), median(times.remote)];
  console.log(`${name.padEnd(30)} ${l.toFixed(1).padStart(15)}  ${r.toFixed(1).padStart(15)}  ${(r - l).toFixed(1).padStart(11)}  ${(r / l).toFixed(2).padStart(11)}x`);
}
await remote.dispose();
await server.close();
await planted.dispose();
await gen.dispose();
await stream.dispose();
