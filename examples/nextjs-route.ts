/**
 * A Next.js App Router route handler (app/api/chat/route.ts) with a moderated chat model. The guard's
 * verdict reaches the client as message metadata; the client's disconnect (req.signal) cancels both the
 * upstream request and the guard's work.
 */
import { createOpenAI } from '@ai-sdk/openai';
import { convertToModelMessages, createUIMessageStreamResponse, streamText, toUIMessageStream, wrapLanguageModel, type UIMessage } from 'ai';
import { qwen3GuardMiddleware } from 'ai-sdk-qwen3guard';
import { guard } from './guard.js';

const openai = createOpenAI({ apiKey: process.env.OPENAI_API_KEY });

const model = wrapLanguageModel({
  model: openai.chat('gpt-4o-mini'),
  middleware: qwen3GuardMiddleware({
    guard,
    prompt: { categories: { Jailbreak: 'rewrite' } },
    response: { mode: 'strict', categories: { PII: 'redact' } },
    onResponseFlag: (flag) => console.warn('qwen3guard flagged', flag),
  }),
});

export async function POST(req: Request): Promise<Response> {
  const { messages } = (await req.json()) as { messages: UIMessage[] };
  const result = streamText({ model, messages: await convertToModelMessages(messages), abortSignal: req.signal });
  return createUIMessageStreamResponse({
    stream: toUIMessageStream({
      stream: result.stream,
      messageMetadata: ({ part }) => (part.type === 'finish-step' ? { qwen3guard: part.providerMetadata?.qwen3guard } : undefined),
    }),
  });
}
