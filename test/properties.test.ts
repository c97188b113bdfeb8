import { streamText, wrapLanguageModel, type LanguageModelMiddleware } from 'ai';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LocalGuard } from '../src/engine/guard.js';
import { qwen3GuardMiddleware } from '../src/index.js';
import { ResponseModeration } from '../src/middleware/response-moderation.js';
import { resolveResponsePolicy } from '../src/policy/resolve.js';
import { plantedGuard } from './fixtures/guards.js';
import { scriptedModel } from './fixtures/scripted-model.js';

/**
 * Property tests over random texts from all of Unicode, split into random deltas: what the guard scores and
 * what leaves must depend on the text alone, never on where the deltas happen to end.
 */
let guard: LocalGuard;
beforeAll(async () => {
  guard = await plantedGuard({ maxSessions: 2 });
});
afterAll(() => guard.dispose());

const TRICKY = [
  '😀', // surrogate pair (deltas may cut it between its halves)
  '\ud83d', // lone high surrogate
  '\ude00', // lone low surrogate
  '👩‍👩‍👧', // ZWJ sequence
  '🇫🇷🇯🇵', // flags
  'e\u0301', // combining mark (NFC composes it)
  '\u0301', // a mark on its own
  '한', // precomposed Hangul
  '\u1112\u1161\u11ab', // Hangul jamo (NFC composes them)
  '①', // characters the tokenizer splits into several byte tokens
  '⅔',
  '龘',
  '中文字符',
  'שלום', // RTL
  'مرحبا',
  '\u202e', // RTL override
  '\r\n',
  '\n\n',
  '\0', // NUL
  '\ufeff', // BOM
  '\u200b', // zero-width space
  '\u00a0', // no-break space
  '\t',
  '  ',
  "'s",
  '...',
  '123',
];
/** Planted words of the fixture guard: Unsafe (Violent, PII) and Controversial. */
const PLANTED = [' bomb', ' password', ' election'];
const fragment = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom(...TRICKY) },
  { weight: 3, arbitrary: fc.constantFrom(' the', ' river', ' quietly', 'Hello', ',', '.', ' ') },
  { weight: 1, arbitrary: fc.constantFrom(...PLANTED) },
  { weight: 2, arbitrary: fc.string({ unit: 'binary', maxLength: 4 }) }, // any code point, lone surrogates included
  { weight: 1, arbitrary: fc.string({ unit: 'grapheme', maxLength: 3 }) },
);
const text = fc.array(fragment, { minLength: 1, maxLength: 30 }).map((parts) => parts.join(''));

/** Deltas of `text` cut at the given fractions (code units: surrogate pairs may be cut between halves). */
function cut(text: string, points: number[]): string[] {
  const at = [...new Set(points.map((p) => Math.floor(p * text.length)))].filter((x) => x > 0 && x < text.length).sort((a, b) => a - b);
  return [0, ...at].map((start, i, all) => text.slice(start, all[i + 1] ?? text.length));
}
const splits = fc.array(fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { maxLength: 40 }), { minLength: 2, maxLength: 3 });

/** Moderates `deltas` with a policy that never stops (so every token is scored) and returns what it saw. */
async function moderate(deltas: string[], reasoning: string[] = []) {
  const session = await guard.createSession();
  try {
    await session.checkPrompt([{ role: 'user', content: 'Hello' }]);
    const policy = resolveResponsePolicy({ actions: { Unsafe: 'flag', Controversial: 'flag' }, categories: { PII: 'redact' } });
    const moderation = new ResponseModeration(session, policy, { onChange: () => undefined, onError: (e) => { throw e; } }, true);
    for (const delta of reasoning) moderation.append('reasoning', delta);
    for (const delta of deltas) moderation.append('answer', delta);
    await moderation.finish();
    const answer = moderation.text.answer;
    return {
      scored: moderation.tracker.tokens.map((t) => [t.verdict.id, t.verdict.part, t.verdict.start ?? null, t.verdict.end ?? null, t.verdict.riskLevel, t.status]),
      events: moderation.tracker.events.map((e) => [e.tokenIndex, e.runStart, e.riskLevel, e.category, e.action]),
      released: moderation.render('answer', 0, 0, answer),
    };
  } finally {
    await session.dispose();
  }
}

describe('split invariance over random Unicode', () => {
  it('scores the same token sequence, flags the same runs and releases the same text for every split', async () => {
    await fc.assert(
      fc.asyncProperty(text, splits, async (t, cuts) => {
        const runs = [];
        for (const points of cuts) runs.push(await moderate(cut(t, points)));
        const [first] = runs;
        expect(first.released.upTo).toBe(t.length);
        for (const run of runs.slice(1)) expect(run).toEqual(first);
        // Every character of the text belongs to exactly one scored token span (contiguous spans).
        const spans = first.scored.filter((s) => s[2] !== null && s[1] === 'answer');
        for (let i = 1; i < spans.length; i++) expect(spans[i][2]).toBe(spans[i - 1][3]);
      }),
      { numRuns: 15, seed: 20261201 },
    );
  });

  it('does the same with reasoning before the answer', async () => {
    await fc.assert(
      fc.asyncProperty(text, text, splits, async (r, t, cuts) => {
        const runs = [];
        for (const points of cuts) runs.push(await moderate(cut(t, points), cut(r, points)));
        for (const run of runs.slice(1)) expect(run).toEqual(runs[0]);
      }),
      { numRuns: 6, seed: 7 },
    );
  });

  it('through streamText: the same released text, flags and stop position for every split, no flagged character out', async () => {
    const middleware = qwen3GuardMiddleware({ guard, response: { categories: { PII: 'redact' } } }) as LanguageModelMiddleware;
    await fc.assert(
      fc.asyncProperty(text, splits, async (t, cuts) => {
        const runs = [];
        for (const points of cuts) {
          const result = streamText({ model: wrapLanguageModel({ model: scriptedModel({ answer: cut(t, points) }).model, middleware }), prompt: 'Hello' });
          let out = '';
          for await (const part of result.fullStream) if (part.type === 'text-delta') out += part.text;
          const metadata = (await result.providerMetadata)?.qwen3guard as Record<string, any>;
          runs.push({ out, finish: await result.finishReason, flags: metadata.flags, response: metadata.response, leaked: metadata.leakedChars });
        }
        for (const run of runs.slice(1)) expect(run).toEqual(runs[0]);
        expect(runs[0].leaked).toBe(0);
        if (runs[0].finish === 'content-filter') expect(runs[0].out).not.toMatch(/bomb|election/);
        expect(runs[0].out).not.toMatch(/password/);
      }),
      { numRuns: 10, seed: 99 },
    );
  });
});
