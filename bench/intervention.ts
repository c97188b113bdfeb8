/**
 * npm run bench:intervention — what one on-the-fly intervention (the `continue` action) costs, through the
 * middleware with the real @ai-sdk/openai provider against the loopback OpenAI-compatible server at 50 tokens/s,
 * with the planted guard (" bomb" is Unsafe, flagged at the token after it; CPU, threads 2).
 *
 * Per holdBack: the time to first token of a safe answer (what the hold-back costs every response), and for an
 * answer that turns unsafe after ~40 tokens and is continued by a second request with a safe ~60-token text:
 * the time the output stood still (metadata extraMs), the tokens discarded and waited for (extraTokens), and
 * the wall time against the same final text streamed in one request.
 */
import { cpus } from 'node:os';
import { createOpenAI } from '@ai-sdk/openai';
import { streamText, wrapLanguageModel } from 'ai';
import { qwen3GuardMiddleware } from '../src/index.js';
import { plantedGuard } from '../test/fixtures/guards.js';
import { startOpenAiServer, wordDeltas, type ScriptedResponse } from '../test/fixtures/openai-server.js';

const TOKENS_PER_SECOND = 50;
const FIRST_TOKEN_DELAY_MS = 300;
const RUNS = 5;
const HOLD_BACKS = [0, 6, 16, 40];

const LEAD = 'The kitchen was quiet in the morning and the old radio played softly while we sorted the jars on the shelf by colour and size, then we decided to';
const UNSAFE = `${LEAD} make a bomb out of the cleaning supplies under the sink, which is a terrible idea for many reasons.`;
const CONTINUATION =
  "...oh, I'm sorry, I just realized I shouldn't describe that. Instead we baked a simple lemon cake, with flour, sugar, three eggs and the zest of two lemons, and ate it warm in the garden.";

const guard = await plantedGuard({ maxSessions: 2 });
const server = await startOpenAiServer();
const provider = createOpenAI({ baseURL: server.baseURL, apiKey: 'bench' });
const paced = (text: string): ScriptedResponse => ({ deltas: wordDeltas(text), tokensPerSecond: TOKENS_PER_SECOND, firstTokenDelayMs: FIRST_TOKEN_DELAY_MS });

async function request(holdBack: number, script: (continued: boolean) => ScriptedResponse) {
  server.setScript((body) => script((body.messages?.length ?? 0) > 1));
  const middleware = qwen3GuardMiddleware({ guard, response: { actions: { Unsafe: 'continue' }, holdBack } });
  const start = performance.now();
  const result = streamText({ model: wrapLanguageModel({ model: provider.chat('bench-model'), middleware }), prompt: 'Tell me about your morning in the kitchen.', maxRetries: 0 });
  let ttft = 0;
  let text = '';
  for await (const part of result.textStream) {
    ttft ||= performance.now() - start;
    text += part;
  }
  const metadata = (await result.providerMetadata)?.qwen3guard as { intervention?: { extraMs: number; extraTokens: number; tokensDiscarded: number; attempts: number } };
  return { ttft, totalMs: performance.now() - start, text, intervention: metadata.intervention };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const fmt = (x: number, w = 9) => x.toFixed(0).padStart(w);

console.log(`\nintervention benchmark — ${cpus()[0]?.model ?? 'cpu'}, ${cpus().length} cores, planted guard, threads 2, node ${process.version}`);
console.log(`upstream ${TOKENS_PER_SECOND} tok/s, first token after ${FIRST_TOKEN_DELAY_MS} ms; medians of ${RUNS} runs\n`);
console.log('holdBack | safe TTFT  +vs 0 | intervened: stall ms  extra tokens  discarded | wall ms  one-request wall ms  extra ms');
let baseTtft = 0;
for (const holdBack of HOLD_BACKS) {
  const safe: number[] = [];
  const stall: number[] = [];
  const extra: number[] = [];
  const discarded: number[] = [];
  const wall: number[] = [];
  const direct: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    safe.push((await request(holdBack, () => paced(CONTINUATION))).ttft);
    const intervened = await request(holdBack, (continued) => paced(continued ? CONTINUATION : UNSAFE));
    if (!intervened.intervention || intervened.text.includes('bomb')) throw new Error(`no intervention at holdBack ${holdBack}: ${intervened.text}`);
    stall.push(intervened.intervention.extraMs);
    extra.push(intervened.intervention.extraTokens);
    discarded.push(intervened.intervention.tokensDiscarded);
    wall.push(intervened.totalMs);
    // The same final text in one request: what the answer would have cost without the detour.
    direct.push((await request(holdBack, () => paced(intervened.text))).totalMs);
  }
  if (holdBack === 0) baseTtft = median(safe);
  console.log(
    `${String(holdBack).padStart(8)} | ${fmt(median(safe))} ${fmt(median(safe) - baseTtft, 6)} |        ${fmt(median(stall))}     ${fmt(median(extra))}  ${fmt(median(discarded))} | ${fmt(median(wall), 7)}  ${fmt(median(direct), 19)} ${fmt(median(wall) - median(direct))}`,
  );
}
console.log('\nstall: from the flag to the first released character of the continuation (metadata intervention.extraMs)');
console.log('extra tokens: tokens the client waited for without seeing them (discarded + stripped repeats)');

await server.close();
await guard.dispose();
