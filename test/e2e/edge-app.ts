/**
 * A tiny Edge app: test/edge-bundle.test.ts copies it into an app folder beside the unpacked package, bundles it
 * for the Edge conditions and runs the bundle in Vercel's Edge VM. The upstream LLM is scripted (the one part
 * the test may fake); the guard is a real `qwen3guard serve` reached through `Qwen3Guard.remote`.
 * Results cross the VM boundary as JSON.
 */
import type { LanguageModelV4StreamPart } from '@ai-sdk/provider';
import { simulateReadableStream, streamText, wrapLanguageModel } from 'ai';
import { MockLanguageModelV4 } from 'ai/test';
import { Qwen3Guard, qwen3GuardMiddleware } from 'ai-sdk-qwen3guard';

export interface EdgeChat {
  baseURL: string;
  apiKey: string;
  prompt: string;
  /** What the upstream answers, streamed word by word. */
  answer: string;
}

/** What the consumer saw: each text delta, the finish reason and the guard's action; and the guard's errors. */
export interface EdgeChatResult {
  deltas: string[];
  finishReason: string;
  action: string | null;
  errors: string[];
}

const none = { total: undefined, noCache: undefined, cacheRead: undefined, cacheWrite: undefined };

function upstream(answer: string): MockLanguageModelV4 {
  const words = answer.match(/\s*\S+/g) ?? [];
  const parts: LanguageModelV4StreamPart[] = [
    { type: 'stream-start', warnings: [] },
    { type: 'text-start', id: 't' },
    ...words.map((delta): LanguageModelV4StreamPart => ({ type: 'text-delta', id: 't', delta })),
    { type: 'text-end', id: 't' },
    { type: 'finish', finishReason: { unified: 'stop', raw: 'stop' }, usage: { inputTokens: none, outputTokens: { total: words.length, text: words.length, reasoning: 0 } } },
  ];
  return new MockLanguageModelV4({ doStream: async () => ({ stream: simulateReadableStream({ chunks: parts, chunkDelayInMs: 5 }) }) });
}

export async function chat({ baseURL, apiKey, prompt, answer }: EdgeChat): Promise<string> {
  const guard = Qwen3Guard.remote({ baseURL, apiKey });
  try {
    const errors: string[] = [];
    const onError = (error: unknown, { phase }: { phase: string }) => errors.push(`${phase}: ${error instanceof Error ? `${error.name}: ${error.message}` : String(error)}`);
    const model = wrapLanguageModel({ model: upstream(answer), middleware: qwen3GuardMiddleware({ guard, onError }) });
    const result = streamText({ model, prompt });
    const deltas: string[] = [];
    for await (const delta of result.textStream) deltas.push(delta);
    const metadata = (await result.providerMetadata)?.qwen3guard as { action?: string } | undefined;
    const out: EdgeChatResult = { deltas, finishReason: await result.finishReason, action: metadata?.action ?? null, errors };
    return JSON.stringify(out);
  } finally {
    await guard.dispose();
  }
}

/** The error `Qwen3Guard.load` gives in this build (it has no local engine). */
export async function loadLocally(): Promise<string> {
  try {
    await Qwen3Guard.load({ modelPath: 'guard.gguf' });
    return JSON.stringify({ loaded: true });
  } catch (error) {
    return JSON.stringify({ name: (error as Error).name, message: (error as Error).message });
  }
}
