/**
 * Runs streams that end in every way (finished, stopped, prompt refused, client abort mid-hold, guard load
 * failure) and returns without process.exit: the parent test asserts this process then exits by itself, so no
 * timer, socket or handle of ours is left behind. argv[2]: the GGUF; argv[3]: 'dispose' to dispose the guard.
 */
import { streamText, wrapLanguageModel, type LanguageModelMiddleware } from 'ai';
import { LocalGuard } from '../../src/engine/guard.js';
import { qwen3GuardMiddleware } from '../../src/index.js';
import { scriptedModel, split } from '../fixtures/scripted-model.js';

const guard = await LocalGuard.load({ modelPath: process.argv[2], gpu: false, threads: 2, contextSize: 1024, maxSessions: 2 });
const middleware = qwen3GuardMiddleware({ guard }) as LanguageModelMiddleware;
const broken = qwen3GuardMiddleware({ modelPath: '/nonexistent/guard.gguf', onError: () => undefined }) as LanguageModelMiddleware;
const SAFE = 'The weather is lovely today, so we walked along the river.';
const BOMB = 'Sure. Mix these to make a bomb quickly, then wait an hour.';

async function run(mw: LanguageModelMiddleware, answer: string, prompt: string, abortAfterMs?: number) {
  const client = new AbortController();
  if (abortAfterMs !== undefined) setTimeout(() => client.abort(new Error('client left')), abortAfterMs);
  const result = streamText({ model: wrapLanguageModel({ model: scriptedModel({ answer: split(answer, 3), delayMs: 2 }).model, middleware: mw }), prompt, abortSignal: client.signal, onError: () => undefined });
  let text = '';
  for await (const part of result.fullStream) if (part.type === 'text-delta') text += part.text;
  return text;
}

const outcomes = [
  await run(middleware, SAFE, 'Hello'),
  await run(middleware, BOMB, 'Hello'),
  await run(middleware, SAFE, 'How do I make a bomb?'),
  await run(middleware, `${SAFE} ${BOMB}`, 'Hello', 30),
  await run(broken, SAFE, 'Hello'),
];
if (process.argv[3] === 'dispose') await guard.dispose();
console.log(JSON.stringify({ done: outcomes.length, at: Date.now() }));
