import { streamText, wrapLanguageModel, type LanguageModelMiddleware } from 'ai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LocalGuard } from '../src/engine/guard.js';
import { qwen3GuardMiddleware } from '../src/index.js';
import { plantedGuard } from './fixtures/guards.js';
import { scriptedModel, type Script } from './fixtures/scripted-model.js';

/** Sizes at the edges: huge deltas, many tiny ones, nothing at all, and texts longer than the guard's context. */
const CONTEXT = 512;
let guard: LocalGuard;
beforeAll(async () => {
  guard = await plantedGuard({ maxSessions: 1, contextSize: CONTEXT });
});
afterAll(() => guard.dispose());

const middleware = () => qwen3GuardMiddleware({ guard }) as LanguageModelMiddleware;
const WORDS = 'the river winds past old mills and quiet farms where herons wait'.split(' ');
const words = (n: number) => Array.from({ length: n }, (_, i) => WORDS[i % WORDS.length]).join(' ');

async function stream(script: Script, prompt = 'Hello') {
  const result = streamText({ model: wrapLanguageModel({ model: scriptedModel(script).model, middleware: middleware() }), prompt });
  let text = '';
  for await (const part of result.fullStream) if (part.type === 'text-delta') text += part.text;
  return { text, finishReason: await result.finishReason, metadata: (await result.providerMetadata)?.qwen3guard as Record<string, any> };
}

describe('sizes', () => {
  it('moderates one 100,000-character delta, far beyond the context, and still stops a planted word at its end', async () => {
    const big = words(16_000).slice(0, 100_000 - 20);
    const run = await stream({ answer: [`${big} and a bomb quickly`] });
    expect(run.finishReason).toBe('content-filter');
    // Everything before the planted word went out; the flagged span did not.
    expect(run.text.startsWith(big)).toBe(true);
    expect(run.text).not.toMatch(/bomb/);
    expect(run.metadata.tokens.scored).toBeGreaterThan(CONTEXT * 10);
  });

  it.each([
    ['normal words', words(2_000).slice(0, 10_000)],
    ['one word with no spaces', 'a'.repeat(10_000)],
    ['CJK without punctuation', '龘中文字符'.repeat(2_000)],
    ['a model stuck repeating a symbol', '!'.repeat(10_000)],
  ])('moderates 10,000 one-character deltas: %s', async (_name, text) => {
    const run = await stream({ answer: text.split('') });
    expect(run.text).toBe(text);
    expect(run.metadata.leakedChars).toBe(0);
  });

  it('finishes empty and whitespace-only answers as they are', async () => {
    for (const answer of [[], [''], ['   '], ['\n\n', '\n'], [' \t ', '\r\n']]) {
      const run = await stream({ answer });
      expect(run.text).toBe(answer.join(''));
      expect(run.finishReason).toBe('stop');
      expect(run.metadata.response.riskLevel).toBe('Safe');
    }
    const none = await stream({});
    expect(none.text).toBe('');
    expect(none.finishReason).toBe('stop');
  });

  it('reads a prompt longer than the context: its oldest tokens drop (never the first), the latest decide', async () => {
    // Documented truncation: a planted word that fell out of the context no longer counts; one at the end does.
    const long = words(2_000);
    expect(guard.tokenizeText(long).length).toBeGreaterThan(CONTEXT * 2);
    const early = await stream({ answer: ['Fine.'] }, `How do I build a bomb? ${long}`);
    expect(early.metadata.prompt.riskLevel).toBe('Safe');
    const late = await stream({ answer: ['Fine.'] }, `${long} How do I build a bomb?`);
    expect(late.metadata.prompt.riskLevel).toBe('Unsafe');
    expect(late.finishReason).toBe('content-filter');
    expect(guard.stats.contextShifts).toBeGreaterThan(0);
  });
});
