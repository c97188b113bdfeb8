import { createOpenAI } from '@ai-sdk/openai';
import { generateText, streamText, wrapLanguageModel, type LanguageModel } from 'ai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { qwen3GuardMiddleware, type Qwen3Guard, type Qwen3GuardMiddlewareOptions, type ResponseFlagInfo } from '../src/index.js';
import { plantedGuard } from './fixtures/guards.js';
import { startOpenAiServer, wordDeltas, type OpenAiServer, type RecordedRequest, type ScriptedResponse } from './fixtures/openai-server.js';

/**
 * End to end, no mocks: `streamText` / `generateText` from `ai`, the real `@ai-sdk/openai` Chat Completions
 * provider talking HTTP to a local OpenAI-compatible server, and the middleware with the planted guard
 * (" bomb" flags as Unsafe/Violent at the token after it, " password" as Unsafe/PII, a prompt with "bomb" is
 * Unsafe/Violent).
 */

const REPLACEMENT = "I can't continue with this response.";
const REFUSAL = "I can't help with that request.";
const FILLER = ' The quick brown fox jumps over the lazy dog near the river bank.';

let guard: Qwen3Guard;
let server: OpenAiServer;

beforeAll(async () => {
  [guard, server] = await Promise.all([plantedGuard(), startOpenAiServer()]);
});

afterAll(async () => {
  await server?.close();
  await guard?.dispose();
});

/** A guarded chat model on the local server; flags are recorded with the time they were raised. */
function guarded(options: Omit<Qwen3GuardMiddlewareOptions, 'guard' | 'modelPath'> = {}) {
  const flags: Array<ResponseFlagInfo & { at: number }> = [];
  const middleware = qwen3GuardMiddleware({ guard, ...options, onResponseFlag: (info) => flags.push({ ...info, at: performance.now() }) });
  const provider = createOpenAI({ baseURL: server.baseURL, apiKey: 'test' });
  const model: LanguageModel = wrapLanguageModel({ model: provider.chat('test-model'), middleware });
  return { model, flags };
}

/** Runs the script for exactly one request, identified by a marker in its prompt. */
function scriptFor(marker: string, response: ScriptedResponse) {
  server.setScript((body) => (JSON.stringify(body.messages).includes(marker) ? response : { deltas: ['Wrong script.'] }));
}

const requestsWith = (marker: string): RecordedRequest[] => server.requests.filter((r) => JSON.stringify(r.body?.messages ?? '').includes(marker));

/** Drains a streamText result, collecting its parts and the answer text it showed. */
async function drain(result: ReturnType<typeof streamText>) {
  const parts: Array<{ type: string }> = [];
  let text = '';
  for await (const part of result.fullStream) {
    parts.push(part);
    if (part.type === 'text-delta') text += part.text;
  }
  return { parts, text };
}

describe('qwen3GuardMiddleware over a real OpenAI-compatible server', () => {
  it('lets a safe answer through unchanged, with the upstream usage', async () => {
    const answer = 'Paris is the capital of France. It lies on the Seine and is known for its museums.';
    scriptFor('[case 1]', { deltas: wordDeltas(answer), tokensPerSecond: 200, usage: { promptTokens: 11, completionTokens: 19 } });
    const { model, flags } = guarded();
    const result = streamText({ model, prompt: 'What is the capital of France? [case 1]', maxRetries: 0 });
    const { parts, text } = await drain(result);

    expect(text).toBe(answer);
    expect(await result.text).toBe(answer);
    expect(await result.finishReason).toBe('stop');
    const usage = await result.usage;
    expect(usage.inputTokens).toBe(11);
    expect(usage.outputTokens).toBe(19);
    expect(usage.totalTokens).toBe(30);
    const metadata = (await result.providerMetadata)?.qwen3guard as Record<string, unknown>;
    expect(metadata.action).toBe('none');
    expect(metadata.prompt).toMatchObject({ riskLevel: 'Safe', action: 'allow' });
    expect(metadata.response).toMatchObject({ riskLevel: 'Safe' });
    expect(flags).toEqual([]);
    expect(parts.some((p) => p.type === 'error')).toBe(false);

    const [request] = requestsWith('[case 1]');
    await request.closed;
    expect(request).toMatchObject({ stream: true, completed: true, closedByClient: false, deltasWritten: request.totalDeltas });
    expect(request.body?.stream_options).toEqual({ include_usage: true });
  });

  it('rewrites an unsafe answer mid-stream and hangs up on the upstream right after the flag', async () => {
    const before = 'Sure. First gather the parts, then assemble the';
    const deltas = wordDeltas(`${before} bomb carefully in the garage.`);
    const bombAt = deltas.indexOf(' bomb');
    while (deltas.length < 200) deltas.push(...wordDeltas(FILLER));
    deltas.length = 200;
    scriptFor('[case 2]', { deltas, tokensPerSecond: 100 });
    const { model, flags } = guarded();
    const result = streamText({ model, prompt: 'Tell me a story about a workshop. [case 2]', maxRetries: 0 });
    const { parts, text } = await drain(result);

    expect(text).toBe(`${before}\n\n${REPLACEMENT}`);
    expect(text).not.toContain('bomb');
    expect(parts.some((p) => p.type === 'error')).toBe(false);
    expect(await result.finishReason).toBe('content-filter');
    expect(flags).toHaveLength(1);
    expect(flags[0]).toMatchObject({ riskLevel: 'Unsafe', category: 'Violent', action: 'rewrite', part: 'answer', charOffset: before.length, leakedChars: 0 });
    const metadata = (await result.providerMetadata)?.qwen3guard as Record<string, unknown>;
    expect(metadata.action).toBe('rewrite');
    expect(metadata.response).toMatchObject({ riskLevel: 'Unsafe', category: 'Violent' });

    const [request] = requestsWith('[case 2]');
    await request.closed;
    expect(request.closedByClient).toBe(true);
    expect(request.completed).toBe(false);
    // The flag comes at the token after " bomb" (plus the guard's lag): the upstream wrote past it, not all 200.
    expect(request.deltasWritten).toBeGreaterThan(bombAt + 1);
    expect(request.deltasWritten).toBeLessThan(deltas.length);
    expect(request.closedAt! - flags[0].at).toBeLessThan(1000);
    // Nothing written after the connection closed.
    expect(request.deltaTimes.every((t) => t <= request.closedAt!)).toBe(true);
  });

  it("closes the upstream connection when the client's own abort signal fires", async () => {
    scriptFor('[case 3]', { deltas: wordDeltas(FILLER.repeat(10)), tokensPerSecond: 50 });
    const { model } = guarded();
    const controller = new AbortController();
    const result = streamText({ model, prompt: 'Tell me about foxes. [case 3]', abortSignal: controller.signal, maxRetries: 0, onError: () => undefined });
    let seen = 0;
    let abortedAt = 0;
    const parts: string[] = [];
    try {
      for await (const part of result.fullStream) {
        parts.push(part.type);
        if (part.type === 'text-delta' && ++seen === 3) {
          abortedAt = performance.now();
          controller.abort();
        }
      }
    } catch {
      // an aborted stream may end either way: an abort part or a rejection
    }
    expect(abortedAt).toBeGreaterThan(0);

    const [request] = requestsWith('[case 3]');
    await request.closed;
    expect(request.closedByClient).toBe(true);
    expect(request.deltasWritten).toBeLessThan(request.totalDeltas);
    expect(request.closedAt! - abortedAt).toBeLessThan(1000);
  });

  describe('a blocked prompt', () => {
    const slow = (answer: string): ScriptedResponse => ({ deltas: wordDeltas(answer), firstTokenDelayMs: 1500, tokensPerSecond: 20 });

    it('answers with the refusal and cancels the upstream request before its first token', async () => {
      scriptFor('[case 4a]', slow('Here is how you do it, step by step.'));
      const { model } = guarded();
      const startedAt = performance.now();
      const result = streamText({ model, prompt: 'How do I build a bomb? [case 4a]', maxRetries: 0 });
      const { parts, text } = await drain(result);
      const endedAt = performance.now();

      expect(text).toBe(REFUSAL);
      expect(await result.finishReason).toBe('content-filter');
      expect(parts.some((p) => p.type === 'error')).toBe(false);
      const metadata = (await result.providerMetadata)?.qwen3guard as Record<string, unknown>;
      expect(metadata.action).toBe('rewrite');
      expect(metadata.prompt).toMatchObject({ riskLevel: 'Unsafe', category: 'Violent', action: 'rewrite' });
      // The refusal did not wait for the slow upstream.
      expect(endedAt - startedAt).toBeLessThan(1000);

      // The request went out in parallel with the prompt check; if it reached the server, it was cancelled
      // there before its first delta (a guard faster than the request can even beat it to the server).
      const requests = requestsWith('[case 4a]');
      expect(requests.length).toBeLessThanOrEqual(1);
      for (const request of requests) {
        await request.closed;
        expect(request.closedByClient).toBe(true);
        expect(request.deltasWritten).toBe(0);
        expect(request.firstDeltaAt).toBeNull();
        expect(request.closedAt! - request.receivedAt).toBeLessThan(1500);
      }
    });

    it.each([
      ['the middleware option', { prompt: { waitForVerdict: true } }, undefined],
      ['providerOptions.qwen3guard', {}, { qwen3guard: { prompt: { waitForVerdict: true } } }],
    ] as const)('sends no request at all with waitForVerdict (%s)', async (_, options, providerOptions) => {
      const marker = `[case 4b ${providerOptions ? 'request' : 'middleware'}]`;
      scriptFor(marker, slow('Here is how you do it, step by step.'));
      const { model } = guarded(options);
      const result = streamText({ model, prompt: `How do I build a bomb? ${marker}`, providerOptions, maxRetries: 0 });
      const { text } = await drain(result);

      expect(text).toBe(REFUSAL);
      expect(await result.finishReason).toBe('content-filter');
      expect(requestsWith(marker)).toEqual([]);
    });
  });

  it('redacts a PII span in a generateText answer and goes on', async () => {
    scriptFor('[case 5]', { deltas: wordDeltas('Sure. Your password is hunter2, and you can change it in settings.') });
    const { model, flags } = guarded({ response: { categories: { PII: 'redact' } } });
    const result = await generateText({ model, prompt: 'How do I log in? [case 5]', maxRetries: 0 });

    expect(result.text).toBe('Sure. Your [redacted] hunter2, and you can change it in settings.');
    expect(result.finishReason).toBe('stop');
    expect(flags).toMatchObject([{ riskLevel: 'Unsafe', category: 'PII', action: 'redact' }]);
    expect(result.usage.outputTokens).toBe(requestsWith('[case 5]')[0].totalDeltas);
    const [request] = requestsWith('[case 5]');
    expect(request.stream).toBe(false);
    expect(request.completed).toBe(true);
  });

  describe('usage', () => {
    it('is kept on a normal generateText stop', async () => {
      scriptFor('[case 6a]', { deltas: wordDeltas('Foxes are small omnivores.'), usage: { promptTokens: 5, completionTokens: 4 } });
      const { model } = guarded();
      const result = await generateText({ model, prompt: 'Tell me about foxes. [case 6a]', maxRetries: 0 });
      expect(result.text).toBe('Foxes are small omnivores.');
      expect(result.finishReason).toBe('stop');
      expect(result.usage).toMatchObject({ inputTokens: 5, outputTokens: 4, totalTokens: 9 });
    });

    it('is kept on a content-filter stop that comes after the upstream finished', async () => {
      // The flag can only come at " here" (the token after " bomb"), at the very end: the whole stream is
      // written at once, so its finish part (with usage) reaches the middleware before the guard catches up.
      scriptFor('[case 6b]', { deltas: wordDeltas('It was loud, like a bomb here.'), usage: { promptTokens: 6, completionTokens: 7 } });
      const { model, flags } = guarded();
      const result = streamText({ model, prompt: 'Describe the fireworks. [case 6b]', maxRetries: 0 });
      const { text } = await drain(result);

      expect(text).toBe(`It was loud, like a\n\n${REPLACEMENT}`);
      expect(await result.finishReason).toBe('content-filter');
      expect(flags).toHaveLength(1);
      const [request] = requestsWith('[case 6b]');
      await request.closed;
      expect(request.completed).toBe(true);
      expect(flags[0].at).toBeGreaterThan(request.completedAt!);
      expect(await result.usage).toMatchObject({ inputTokens: 6, outputTokens: 7, totalTokens: 13 });
    });

    it('is unknown on a content-filter stop that cut the upstream short', async () => {
      const deltas = wordDeltas(`A loud bomb went off.${FILLER.repeat(5)}`);
      scriptFor('[case 6c]', { deltas, tokensPerSecond: 100, usage: { promptTokens: 6, completionTokens: deltas.length } });
      const { model } = guarded();
      const result = streamText({ model, prompt: 'Describe the fireworks. [case 6c]', maxRetries: 0 });
      const { text } = await drain(result);

      expect(text).toBe(`A loud\n\n${REPLACEMENT}`);
      expect(await result.finishReason).toBe('content-filter');
      // The upstream never sent its usage chunk: the middleware reports none rather than a guess.
      expect((await result.usage).inputTokens).toBeUndefined();
      expect((await result.usage).outputTokens).toBeUndefined();
      const [request] = requestsWith('[case 6c]');
      await request.closed;
      expect(request.closedByClient).toBe(true);
    });
  });
});
