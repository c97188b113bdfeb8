/**
 * npm run bench:remote — the guard over loopback (`qwen3guard serve` in its own process, `Qwen3Guard.remote`)
 * against the same guard in this process, measured side by side in one run, interleaved round by round: time
 * to first token and release lag at 20 and 50 tokens/s (the @ai-sdk/openai provider reading a loopback
 * OpenAI-compatible server), the prompt verdict at turn 12 of a chat (KV reuse on the server), aggregate
 * throughput with 1, 8 and 32 clients, and the protocol's own cost per guard call (the same one-token append,
 * remote minus local). The guard is the trained-like Qwen3Guard-Stream-0.6B shaped q8_0 model of the stream
 * benchmark (Safe but for planted words), threads 2 on each side.
 */
import { cpus } from 'node:os';
import { readFile } from 'node:fs/promises';
import { createOpenAI } from '@ai-sdk/openai';
import { streamText, wrapLanguageModel, type LanguageModelMiddleware, type ModelMessage } from 'ai';
import { LocalGuard } from '../src/engine/guard.js';
import { qwen3GuardMiddleware, Qwen3Guard, type StreamGuard } from '../src/index.js';
import { startOpenAiServer } from '../test/fixtures/openai-server.js';
import { startServe } from '../test/fixtures/serve-process.js';
import { FLAG_ONLY_POLICY, readTimed, releaseLags, tokenDeltas, trainedLikeModel } from './fixture.js';

const FIRST_TOKEN_DELAY_MS = 600;
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const WORDS = 'the river winds through the valley past old mills and quiet farms where herons wait in the shallows while evening light turns the water to copper'.split(' ');
const quantile = (xs: number[], q: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(q * xs.length))];
const median = (xs: number[]) => quantile(xs, 0.5);

const modelPath = await trainedLikeModel();
const contextSize = 2048;
// 16 sessions of 2048 cells on each side (3.6 GiB of KV each): 32 clients queue for them.
const local = await LocalGuard.load({ modelPath, threads: 2, gpu: false, contextSize, maxSessions: 16 });
const serve = await startServe(['--model', modelPath, '--max-sessions', '16', '--max-waiting', '64', '--context-size', String(contextSize)]);
// A failed run must not leave the server (and its memory) behind.
process.on('exit', () => serve.kill('SIGKILL'));
const remote = Qwen3Guard.remote({ baseURL: serve.url, timeoutMs: 120_000 });
const kinds: Array<[string, StreamGuard]> = [
  ['in-process', local],
  ['remote', remote],
];
const upstream = await startOpenAiServer();
const provider = createOpenAI({ baseURL: upstream.baseURL, apiKey: 'bench' });
const prose = (seed: number, tokens: number) => tokenDeltas(local, Array.from({ length: tokens * 2 }, (_, i) => WORDS[(seed * 7 + i * (1 + (seed % 5))) % WORDS.length]).join(' '), tokens);
const guarded = (guard: StreamGuard, extra: Record<string, unknown> = {}) => qwen3GuardMiddleware({ guard, ...FLAG_ONLY_POLICY, ...extra }) as LanguageModelMiddleware;

/**
 * Waits until neither guard works in the background (a finished turn's re-render for KV reuse). Each decodes
 * with 2 threads on these 2 cores: one process's background decode during the other's measured stream would
 * oversubscribe the cores (llama.cpp's threads spin at their barriers), and measure that instead.
 */
async function quiet(): Promise<void> {
  await local.pool.settled();
  // The server's background work is counted by no metric (it runs after the session's last call): read its
  // CPU time instead (utime + stime, in clock ticks of 10 ms), until it stays idle for 300 ms.
  const cpuTicks = async () => {
    const fields = (await readFile(`/proc/${serve.pid}/stat`, 'utf8')).split(') ')[1].split(' ');
    return Number(fields[11]) + Number(fields[12]);
  };
  for (let last = await cpuTicks(), i = 0; i < 200; i++) {
    await new Promise((r) => setTimeout(r, 300));
    const now = await cpuTicks();
    if (now - last <= 2) return;
    last = now;
  }
}

/** One streamed answer: TTFT and the release lag of each delta (server write -> client holds it). */
async function measure(messages: ModelMessage[], deltas: string[], rate: number, middleware: LanguageModelMiddleware | null, script = true) {
  // (concurrent clients share one script, set by the caller: the upstream has one at a time)
  if (script) upstream.setScript({ deltas, tokensPerSecond: rate, firstTokenDelayMs: rate ? FIRST_TOKEN_DELAY_MS : 0 });
  const index = upstream.requests.length;
  const model = middleware ? wrapLanguageModel({ model: provider.chat('bench'), middleware }) : provider.chat('bench');
  const start = performance.now();
  const result = streamText({ model, messages });
  const { text, ttft, arrivals } = await readTimed(result.textStream, start);
  const request = await upstream.request(index);
  const lags = releaseLags(deltas, arrivals, request.deltaTimes);
  if (text !== deltas.join('')) throw new Error(`the guarded text differs from the upstream text (${JSON.stringify((await result.providerMetadata)?.qwen3guard)})`);
  return { ttft, lags, wallMs: performance.now() - start };
}

const f = (x: number) => x.toFixed(1).padStart(7);
console.log(`\nremote benchmark — ${cpus()[0]?.model ?? 'cpu'}, ${cpus().length} cores, node ${process.version}; guard threads 2 in each process; ${ROUNDS} interleaved rounds`);
for (const [, guard] of kinds) await measure([{ role: 'user', content: 'warm up' }], prose(99, 30), 0, guarded(guard));

console.log('\nrate tokens | TTFT plain  in-proc   remote (+ms over in-proc) | lag p50 in-proc remote | lag p95 in-proc remote (+ms)');
for (const { rate, tokens } of [
  { rate: 20, tokens: 160 },
  { rate: 50, tokens: 400 },
]) {
  const runs: Record<string, Array<Awaited<ReturnType<typeof measure>>>> = { plain: [], 'in-process': [], remote: [] };
  for (let round = 0; round < ROUNDS; round++) {
    const deltas = prose(round, tokens);
    const messages: ModelMessage[] = [{ role: 'user', content: `Describe a calm river valley in autumn. [${rate}/${round}]` }];
    await quiet();
    runs.plain.push(await measure(messages, deltas, rate, null));
    // Alternate which kind goes first, so that neither always runs on a warmer machine.
    for (const [name, guard] of round % 2 ? [...kinds].reverse() : kinds) {
      await quiet();
      runs[name].push(await measure(messages, deltas, rate, guarded(guard)));
    }
  }
  const ttft = (k: string) => median(runs[k].map((r) => r.ttft));
  const lag = (k: string, q: number) => median(runs[k].map((r) => quantile(r.lags, q)));
  console.log(
    `${String(rate).padStart(4)} ${String(tokens).padStart(6)} | ${f(ttft('plain'))} ${f(ttft('in-process'))} ${f(ttft('remote'))} (${f(ttft('remote') - ttft('in-process'))}) |` +
      ` ${f(lag('in-process', 0.5))} ${f(lag('remote', 0.5))} | ${f(lag('in-process', 0.95))} ${f(lag('remote', 0.95))} (${f(lag('remote', 0.95) - lag('in-process', 0.95))})`,
  );
}

// The prompt verdict at turn 12: each turn resends the conversation; the server keeps its KV cache.
console.log('\nchat, 12 turns (40-token questions, 80-token answers at 50 tok/s): prompt verdict ms at turns 1 / 6 / 12');
for (const [name, guard] of kinds) {
  const verdicts: number[] = [];
  const history: ModelMessage[] = [];
  const middleware = guarded(guard, { onPromptVerdict: (info: { latencyMs: number }) => verdicts.push(info.latencyMs) });
  await quiet();
  for (let turn = 0; turn < 12; turn++) {
    history.push({ role: 'user', content: `Question ${turn + 1} (${name}): ${prose(2 * turn + 1, 40).join('')}?` });
    const answer = prose(2 * turn + 2, 80);
    await measure([...history], answer, 50, middleware);
    history.push({ role: 'assistant', content: answer.join('') });
    await new Promise((r) => setTimeout(r, 1500)); // the user reads and types: the finished turn is re-rendered meanwhile
  }
  console.log(`  ${name.padEnd(10)} ${f(verdicts[0])} ${f(verdicts[5])} ${f(verdicts[11])}`);
}

// Aggregate throughput: N clients at once, each a 96-token answer as fast as the guard takes it.
console.log('\nthroughput, answers of 96 tokens delivered at once: guard tokens/s in all (remote / in-process)');
for (const clients of [1, 8, 32]) {
  const row: string[] = [];
  for (const [, guard] of kinds) {
    await quiet();
    const deltas = prose(clients + 50, 96);
    upstream.setScript({ deltas, tokensPerSecond: 0, firstTokenDelayMs: 0 });
    const started = performance.now();
    await Promise.all(Array.from({ length: clients }, (_, c) => measure([{ role: 'user', content: `Tell me about rivers, client ${c} of ${clients}.` }], deltas, 0, guarded(guard), false)));
    row.push(((clients * 96) / ((performance.now() - started) / 1000)).toFixed(1));
  }
  console.log(`  ${String(clients).padStart(2)} clients: in-process ${row[0].padStart(6)}  remote ${row[1].padStart(6)}  ratio ${(Number(row[1]) / Number(row[0])).toFixed(2)}`);
}

// The protocol's cost per call: the same one-token append, remote minus local, interleaved call by call.
const perCall: Record<string, number[]> = { 'in-process': [], remote: [] };
await quiet();
const probes = await Promise.all(
  kinds.map(async ([name, guard]) => {
    const session = await guard.createSession();
    await session.checkPrompt([{ role: 'user', content: 'Count the boats.' }]);
    await session.appendText('answer', 'Boats');
    return [name, session] as const;
  }),
);
await quiet();
for (let i = 0; i < 200; i++) {
  for (const [name, session] of i % 2 ? [...probes].reverse() : probes) {
    const started = performance.now();
    await session.appendText('answer', ' boat');
    perCall[name].push(performance.now() - started);
  }
}
for (const [, session] of probes) await session.dispose();
const cost = median(perCall.remote) - median(perCall['in-process']);
console.log(`\none-token append, median of 200: in-process ${median(perCall['in-process']).toFixed(2)} ms, remote ${median(perCall.remote).toFixed(2)} ms: the protocol costs ${cost.toFixed(2)} ms per call (p95 ${(quantile(perCall.remote, 0.95) - quantile(perCall['in-process'], 0.95)).toFixed(2)} ms)`);

await remote.dispose();
serve.kill('SIGTERM');
await serve.exited;
await upstream.close();
await local.dispose();
