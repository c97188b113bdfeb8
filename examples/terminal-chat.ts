/**
 * A terminal chat with a moderated model: `npx tsx examples/terminal-chat.ts`.
 * Works with any OpenAI-compatible server (OPENAI_BASE_URL, OPENAI_API_KEY, CHAT_MODEL).
 */
import { createInterface } from 'node:readline/promises';
import { createOpenAI } from '@ai-sdk/openai';
import { streamText, wrapLanguageModel, type ModelMessage } from 'ai';
import { qwen3GuardMiddleware } from 'ai-sdk-qwen3guard';
import { guard } from './guard.js';

const openai = createOpenAI({ baseURL: process.env.OPENAI_BASE_URL, apiKey: process.env.OPENAI_API_KEY ?? 'none' });
const model = wrapLanguageModel({
  model: openai.chat(process.env.CHAT_MODEL ?? 'gpt-4o-mini'),
  middleware: qwen3GuardMiddleware({ guard, response: { categories: { PII: 'redact' } } }),
});

const rl = createInterface({ input: process.stdin, output: process.stdout });
const messages: ModelMessage[] = [];
for (;;) {
  const prompt = await rl.question('\nyou> ');
  if (!prompt) break;
  messages.push({ role: 'user', content: prompt });
  const result = streamText({ model, messages });
  process.stdout.write('bot> ');
  let answer = '';
  for await (const delta of result.textStream) {
    answer += delta;
    process.stdout.write(delta);
  }
  const guardInfo = (await result.providerMetadata)?.qwen3guard as { action?: string } | undefined;
  if ((await result.finishReason) === 'content-filter') process.stdout.write(`\n[qwen3guard: ${guardInfo?.action}]`);
  messages.push({ role: 'assistant', content: answer });
}
rl.close();
await (await guard).dispose();
