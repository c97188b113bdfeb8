/**
 * The chat endpoint of `useChat`, for either route: streams the moderated answer as a UI message stream. The
 * guard's verdict (`providerMetadata.qwen3guard` of the finish part) travels as the message's metadata, which the
 * page reads to show each answer's fate. It carries verdicts and error codes only, never server paths or error text.
 */
import { convertToModelMessages, createUIMessageStreamResponse, streamText, toUIMessageStream, type LanguageModel } from 'ai';
import type { ChatMessage, GuardVerdict } from './verdict';

export async function chatResponse(req: Request, model: LanguageModel): Promise<Response> {
  const { messages } = (await req.json()) as { messages: ChatMessage[] };
  // req.signal: a client that goes away cancels the upstream request and the guard's work.
  const result = streamText({ model, messages: await convertToModelMessages(messages), abortSignal: req.signal });
  return createUIMessageStreamResponse({
    stream: toUIMessageStream({
      stream: result.stream,
      messageMetadata: ({ part }) => (part.type === 'finish-step' ? { qwen3guard: part.providerMetadata?.qwen3guard as unknown as GuardVerdict | undefined } : undefined),
    }),
  });
}
