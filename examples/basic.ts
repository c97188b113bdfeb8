/**
 * The shortest guarded stream: `node examples/basic.ts` (Node 22.18+ runs TypeScript as is).
 * QWEN3GUARD_MODEL: a pulled model name or a GGUF path; OPENAI_BASE_URL / OPENAI_API_KEY / CHAT_MODEL: any
 * OpenAI-compatible server.
 */
import { createOpenAI } from '@ai-sdk/openai';
import { streamText, wrapLanguageModel } from 'ai';
import { Qwen3Guard, qwen3GuardMiddleware } from 'ai-sdk-qwen3guard';

const name = process.env.QWEN3GUARD_MODEL ?? 'qwen3guard-stream-0.6b';
const guard = await Qwen3Guard.load(name.endsWith('.gguf') ? { modelPath: name } : { model: name });
const openai = createOpenAI({ baseURL: process.env.OPENAI_BASE_URL, apiKey: process.env.OPENAI_API_KEY ?? 'none' });
const model = wrapLanguageModel({ model: openai.chat(process.env.CHAT_MODEL ?? 'gpt-4o-mini'), middleware: qwen3GuardMiddleware({ guard }) });

const result = streamText({ model, prompt: process.argv[2] ?? 'Tell me about rivers.' });
for await (const text of result.textStream) process.stdout.write(text);
console.log(`\n[finish: ${await result.finishReason}, guard: ${JSON.stringify((await result.providerMetadata)?.qwen3guard?.action)}]`);
await guard.dispose();
