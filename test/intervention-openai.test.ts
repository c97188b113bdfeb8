import { createOpenAI } from '@ai-sdk/openai';
import { streamText, wrapLanguageModel } from 'ai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { qwen3GuardMiddleware, type Qwen3Guard } from '../src/index.js';
import { plantedGuard } from './fixtures/guards.js';
import { startOpenAiServer, wordDeltas, type OpenAiServer } from './fixtures/openai-server.js';

/**
 * The continue action end to end: `streamText`, the real `@ai-sdk/openai` Chat Completions provider over HTTP
 * to the loopback server, the planted guard. The server answers the first request with an answer that turns
 * unsafe (" bomb") and the continuation request with a safe one.
 */
let guard: Qwen3Guard;
let server: OpenAiServer;
beforeAll(async () => {
  [guard, server] = await Promise.all([plantedGuard(), startOpenAiServer()]);
});
afterAll(async () => {
  await server?.close();
  await guard?.dispose();
});

// Long enough to be still streaming when the flag comes, even on a busy machine.
const UNSAFE = `Sure. Mix these to make a bomb quickly, then wait an hour.${' The rest goes on and on.'.repeat(40)}`;
const SORRY = "...oh, I'm sorry, I just realized I shouldn't explain that. Let's bake a cake instead.";

describe.each(['quote', 'assistant-prefix'] as const)('continue over a real OpenAI-compatible server (%s)', (continuation) => {
  it('hangs up on the first request and streams the second one, which carries the partial answer', async () => {
    const marker = `[continue ${continuation}]`;
    const continuationText = continuation === 'quote' ? SORRY : ` flour and sugar, then ${SORRY}`;
    server.setScript((body) => {
      const messages = JSON.stringify(body.messages ?? []);
      if (!messages.includes(marker)) return { deltas: ['Wrong script.'] };
      const continued = body.messages!.length > 1;
      return continued ? { deltas: wordDeltas(continuationText), tokensPerSecond: 200 } : { deltas: wordDeltas(UNSAFE), tokensPerSecond: 50 };
    });
    const provider = createOpenAI({ baseURL: server.baseURL, apiKey: 'test' });
    const model = wrapLanguageModel({ model: provider.chat('test-model'), middleware: qwen3GuardMiddleware({ guard, response: { actions: { Unsafe: 'continue' }, continuation } }) });
    const result = streamText({ model, prompt: `Tell me about mixing things. ${marker}`, maxRetries: 0 });
    let text = '';
    const types: string[] = [];
    for await (const part of result.fullStream) {
      types.push(part.type);
      if (part.type === 'text-delta') text += part.text;
    }

    const requests = server.requests.filter((r) => JSON.stringify(r.body?.messages ?? '').includes(marker));
    expect(requests).toHaveLength(2);
    await Promise.all(requests.map((r) => r.closed));
    expect(requests[0].closedByClient).toBe(true);
    expect(requests[0].deltasWritten).toBeLessThan(requests[0].totalDeltas);
    expect(requests[1].completed).toBe(true);
    const messages = requests[1].body!.messages!;
    expect(messages[0]).toMatchObject({ role: 'user' });
    if (continuation === 'quote') {
      expect(messages).toHaveLength(2);
      expect(JSON.stringify(messages[1].content)).toContain('<response>\\nSure. Mix\\n</response>');
      expect(text).toBe(`Sure. Mix ${SORRY}`);
    } else {
      expect(messages).toHaveLength(3);
      expect(messages[2]).toMatchObject({ role: 'assistant', content: 'Sure. Mix' });
      expect(text).toBe(`Sure. Mix${continuationText}`);
    }
    expect(text).not.toContain('bomb');
    expect(types).not.toContain('error');
    expect(types.filter((t) => t === 'text-start')).toHaveLength(1);
    expect(await result.finishReason).toBe('stop');
    const metadata = (await result.providerMetadata)?.qwen3guard as Record<string, any>;
    expect(metadata.intervention).toMatchObject({ attempts: 1, outcome: 'continued' });
    // The usage is the continuation's (the first request was cut before its usage chunk).
    expect((await result.usage).outputTokens).toBe(requests[1].totalDeltas);
  });
});
