/**
 * A terminal chat with a moderated model, the library calls only: `npx tsx examples/terminal-chat.ts`.
 * Works with any OpenAI-compatible server (OPENAI_BASE_URL, OPENAI_API_KEY, CHAT_MODEL). The full chat, with
 * Ctrl-C to stop an answer and coloured verdicts, is `npx qwen3guard chat --model guard.gguf`.
 */
import { createInterface } from 'node:readline/promises';
import { createOpenAI } from '@ai-sdk/openai';
import { streamText, wrapLanguageModel, type ModelMessage } from 'ai';
import { qwen3GuardMiddleware, type Qwen3GuardMetadata } from 'ai-sdk-qwen3guard';
import { guard } from './guard.js';

// The guard's texts are given here so that the chat can tell them from the model's and show them apart.
const REFUSAL = "I can't help with that request.";
const REPLACEMENT = "I can't continue with this response.";

const openai = createOpenAI({ baseURL: process.env.OPENAI_BASE_URL, apiKey: process.env.OPENAI_API_KEY ?? 'none' });
const model = wrapLanguageModel({
  model: openai.chat(process.env.CHAT_MODEL ?? 'gpt-4o-mini'),
  middleware: qwen3GuardMiddleware({ guard, prompt: { refusal: REFUSAL }, response: { replacement: REPLACEMENT, categories: { PII: 'redact' } } }),
});

const dim = (text: string) => (process.stdout.hasColors?.() && !process.env.NO_COLOR ? `\x1b[2m${text}\x1b[22m` : text);

const rl = createInterface({ input: process.stdin, output: process.stdout });
const messages: ModelMessage[] = [];
for (;;) {
  const prompt = await rl.question('you> ').catch(() => null); // null: Ctrl-D
  if (prompt === null) process.stdout.write('\n');
  if (!prompt) break;
  messages.push({ role: 'user', content: prompt });
  const result = streamText({ model, messages });
  process.stdout.write('bot> ');
  let answer = '';
  let guardText = '';
  for await (const delta of result.textStream) {
    if (delta === REPLACEMENT || delta === REFUSAL) guardText = delta;
    else process.stdout.write(delta);
    answer += delta;
  }
  // Every line ends before readline prompts again: its prompt redraw erases the line the cursor is on.
  process.stdout.write('\n');
  const verdicts = (await result.providerMetadata)?.qwen3guard as Qwen3GuardMetadata | undefined;
  if (verdicts?.prompt && verdicts.prompt.riskLevel !== 'Safe') console.log(dim(`[qwen3guard: prompt ${verdicts.prompt.riskLevel} (${verdicts.prompt.category}): ${verdicts.prompt.action}]`));
  for (const flag of verdicts?.flags ?? []) console.log(dim(`[qwen3guard: ${flag.action} at character ${flag.charOffset}: ${flag.riskLevel} (${flag.category})]`));
  if (guardText) console.log(dim(guardText));
  // A stopped prompt is left out: the guard reads the whole conversation and would stop every later turn.
  const promptStopped = verdicts?.prompt?.action === 'rewrite' || verdicts?.prompt?.action === 'abort';
  if (promptStopped) messages.pop();
  else messages.push({ role: 'assistant', content: answer });
}
rl.close();
await (await guard).dispose();
