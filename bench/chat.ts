/**
 * npm run bench:chat — a 12-turn chat through the middleware with the real @ai-sdk/openai provider (loopback
 * OpenAI-compatible server), the Qwen3Guard-Stream-0.6B shaped q8_0 guard of the engine benchmark, threads 2,
 * CPU. Each turn sends the whole conversation again (~50 new user tokens, ~130-token answers). Per turn: the
 * prompt verdict's latency (onPromptVerdict) and the time-to-first-token overhead against an unguarded run of
 * the same turn, with KV reuse (the default) and without it (`reuseKv: false`: every turn re-reads the
 * conversation), in one run. Between turns the "user" takes THINK_MS to read and type, as people do: that is
 * when the guard re-renders the finished answer in history form, in the background.
 *
 * Random weights label randomly: the policy flags instead of stopping, so every answer streams to its end.
 */
import { cpus } from 'node:os';
import { createOpenAI } from '@ai-sdk/openai';
import { streamText, wrapLanguageModel, type LanguageModelMiddleware, type ModelMessage } from 'ai';
import { LocalGuard } from '../src/engine/guard.js';
import { renderConversation } from '../src/format/template.js';
import { qwen3GuardMiddleware } from '../src/index.js';
import { startOpenAiServer } from '../test/fixtures/openai-server.js';
import { benchModel, FLAG_ONLY_POLICY, tokenDeltas } from './fixture.js';

const TURNS = 12;
const USER_TOKENS = 50;
const ANSWER_TOKENS = 130;
const FIRST_TOKEN_DELAY_MS = 600;
const TOKENS_PER_SECOND = 50;
const THINK_MS = 3000;

const WORDS =
  'the river winds through the valley past old mills and quiet farms where herons wait in the shallows while evening light turns the water to copper and the town prepares for its autumn market with bread apples cider wool lanterns music and long tables under the chestnut trees'.split(' ');

const modelPath = await benchModel();
const load = (reuseKv: boolean) => LocalGuard.load({ modelPath, contextSize: 4096, maxSessions: 2, threads: 2, gpu: false, reuseKv });

/** `tokens` Qwen3 tokens of varied prose, cut at token boundaries; as one-token deltas for the answers. */
function prose(guard: LocalGuard, seed: number, tokens: number): string[] {
  const words = Array.from({ length: tokens * 2 }, (_, i) => WORDS[(seed * 7 + i * (seed % 5 + 1)) % WORDS.length]);
  return tokenDeltas(guard, words.join(' '), tokens);
}

const server = await startOpenAiServer();
const provider = createOpenAI({ baseURL: server.baseURL, apiKey: 'bench' });
const policy = FLAG_ONLY_POLICY;

// The same scripted chat for both runs.
const scriptGuard = await load(false);
const script = Array.from({ length: TURNS }, (_, t) => ({
  user: `Question ${t + 1}: ${prose(scriptGuard, 2 * t + 1, USER_TOKENS).join('')}?`,
  answer: prose(scriptGuard, 2 * t + 2, ANSWER_TOKENS),
}));
const historyTokens = script.map((_, t) => {
  const messages = script.slice(0, t + 1).flatMap((s, i) => [{ role: 'user' as const, content: s.user }, ...(i < t ? [{ role: 'assistant' as const, content: s.answer.join('') }] : [])]);
  return scriptGuard.tokenizePieces(renderConversation(messages).pieces).length;
});
await scriptGuard.dispose();

async function ttft(messages: ModelMessage[], answer: string[], middleware: LanguageModelMiddleware | null): Promise<{ ttft: number; text: string }> {
  server.setScript({ deltas: answer, tokensPerSecond: TOKENS_PER_SECOND, firstTokenDelayMs: FIRST_TOKEN_DELAY_MS });
  const base = provider.chat('bench-model');
  const model = middleware ? wrapLanguageModel({ model: base, middleware }) : base;
  const start = performance.now();
  const result = streamText({ model, messages });
  let first = -1;
  let text = '';
  for await (const delta of result.textStream) {
    if (first < 0) first = performance.now() - start;
    text += delta;
  }
  return { ttft: first, text };
}

interface Row {
  verdictMs: number;
  overheadMs: number;
  evaluated: number;
}

async function chat(reuseKv: boolean): Promise<Row[]> {
  const guard = await load(reuseKv);
  let verdictMs = -1;
  const middleware = qwen3GuardMiddleware({ guard, ...policy, onPromptVerdict: (info) => (verdictMs = info.latencyMs) }) as LanguageModelMiddleware;
  await ttft([{ role: 'user', content: 'Warm-up.' }], ['Hello', '.'], middleware);
  const messages: ModelMessage[] = [];
  const rows: Row[] = [];
  for (const { user, answer } of script) {
    messages.push({ role: 'user', content: user });
    await new Promise((r) => setTimeout(r, THINK_MS));
    const plain = await ttft(messages, answer, null);
    const before = guard.stats.evaluatedTokens;
    const guarded = await ttft(messages, answer, middleware);
    if (guarded.text !== answer.join('')) throw new Error('the guarded text differs from the upstream text');
    rows.push({ verdictMs, overheadMs: guarded.ttft - plain.ttft, evaluated: guard.stats.evaluatedTokens - before });
    messages.push({ role: 'assistant', content: guarded.text });
  }
  await guard.dispose();
  return rows;
}

console.log(`\nchat benchmark — ${cpus()[0]?.model ?? 'cpu'}, ${cpus().length} cores, guard threads 2, node ${process.version}`);
console.log(`${TURNS} turns, ~${USER_TOKENS} user + ${ANSWER_TOKENS} answer tokens each; upstream first token after ${FIRST_TOKEN_DELAY_MS} ms, ${TOKENS_PER_SECOND} tok/s; ${THINK_MS} ms between turns\n`);
const reused = await chat(true);
const fresh = await chat(false);
const fmt = (x: number, w = 8) => x.toFixed(0).padStart(w);
console.log('turn  history | KV reuse: verdict ms  TTFT overhead  evaluated | no reuse: verdict ms  TTFT overhead  evaluated');
script.forEach((_, t) => {
  const [a, b] = [reused[t], fresh[t]];
  console.log(`${String(t + 1).padStart(4)} ${fmt(historyTokens[t])} |        ${fmt(a.verdictMs)}       ${fmt(a.overheadMs)}   ${fmt(a.evaluated)} |        ${fmt(b.verdictMs)}       ${fmt(b.overheadMs)}   ${fmt(b.evaluated)}`);
});
const ratio = (rows: Row[]) => (rows.at(-1)!.verdictMs / rows[0].verdictMs).toFixed(2);
console.log(`\nprompt verdict, turn ${TURNS} / turn 1: KV reuse ${ratio(reused)}x, no reuse ${ratio(fresh)}x (goal <= 1.5x)`);
console.log('evaluated: guard tokens of the turn (prompt, response, and with reuse the background re-render of the previous answer)');
await server.close();
