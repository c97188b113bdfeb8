import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TextAligner } from '../src/align/text-aligner.js';
import type { LocalGuard } from '../src/engine/guard.js';
import { RESPONSE_TEMPLATE } from '../src/format/template.js';
import type { TokenVerdict } from '../src/guard/types.js';
import { randomGuard } from './fixtures/guards.js';
import { Rng } from './fixtures/random.js';

/**
 * Speculative evaluation of the held tail (`GuardSession.speculate`): it must change nothing but when the work
 * is done. Verdicts, token ids and what a later turn reuses are those of a run without it, however the text is
 * split, also where a delta re-tokenizes the tail (a word split between deltas, a combining mark that changes
 * the character before it under NFC, a character split into lone surrogates).
 */
const ANSWER =
  'Herons wait in the shallows, unbelievably patient; e\u0301te\u0301 comes 😀😀 and 中文字符 too. ' +
  'Then the river-boat (named "Anneliese") drifts past 12345 mills, while the townsfolk prepare.\n\nDone!';
const PROMPT = [{ role: 'user' as const, content: 'Describe a river in autumn.' }];

const shape = (v: TokenVerdict) => [v.index, v.position, v.id, v.part, v.riskLevel, v.category, v.start, v.end];

/** Streams `deltas` as the middleware does: final text through the aligner, the held tail speculated when asked. */
async function stream(guard: LocalGuard, deltas: string[], speculate: boolean, ahead = false) {
  const session = await guard.createSession();
  await session.checkPrompt(PROMPT);
  if (speculate) await session.speculate('answer', '');
  const aligner = new TextAligner(RESPONSE_TEMPLATE.answerPrefix);
  const verdicts: TokenVerdict[] = [];
  for (const delta of deltas) {
    const chunks = aligner.push(delta);
    for (const [i, chunk] of chunks.entries()) {
      // The held tail in the same call (the middleware's way), or on its own after the final text.
      const withAhead = ahead && i === chunks.length - 1 && !chunk.cut;
      verdicts.push(...(await session.appendText('answer', chunk.text, withAhead ? { ahead: aligner.pendingText } : {})));
    }
    if (speculate && !(ahead && chunks.length)) await session.speculate('answer', aligner.pendingText);
  }
  for (const chunk of aligner.flush()) verdicts.push(...(await session.appendText('answer', chunk.text)));
  verdicts.push(...(await session.end()));
  const ids = [...session.tokenIds];
  await session.dispose();
  return { verdicts, ids };
}

function randomSplit(text: string, rng: Rng, max: number): string[] {
  const out: string[] = [];
  for (let i = 0; i < text.length; ) {
    const n = 1 + Math.floor(rng.next() * max);
    out.push(text.slice(i, i + n));
    i += n;
  }
  return out;
}

describe('speculative evaluation of the held tail', () => {
  let guard: LocalGuard;
  beforeAll(async () => {
    guard = await randomGuard('f32', { reuseKv: false });
  });
  afterAll(() => guard.dispose());

  it('gives the verdicts and token ids of a run without it, for every split', async () => {
    const reference = await stream(guard, [ANSWER], false);
    const rng = new Rng(11);
    for (const deltas of [[...ANSWER.slice(0, 90)].concat(ANSWER.slice(90)), randomSplit(ANSWER, rng, 3), randomSplit(ANSWER, rng, 9), [ANSWER]]) {
      const before = { ...guard.stats };
      const run = await stream(guard, deltas, true);
      expect(run.verdicts.map(shape)).toEqual(reference.verdicts.map(shape));
      expect(run.ids).toEqual(reference.ids);
      const withAhead = await stream(guard, deltas, true, true);
      expect(withAhead.verdicts.map(shape)).toEqual(reference.verdicts.map(shape));
      expect(withAhead.ids).toEqual(reference.ids);
      expect(guard.stats.speculatedTokens).toBeGreaterThan(before.speculatedTokens);
      if (deltas.length > 1) expect(guard.stats.discardedTokens).toBeGreaterThan(before.discardedTokens);
    }
  });

  it('evaluates nothing again when the final text is what was speculated', async () => {
    const session = await guard.createSession();
    await session.checkPrompt(PROMPT);
    await session.speculate('answer', '');
    await session.speculate('answer', 'Herons wait');
    const evaluated = guard.stats.evaluatedTokens;
    const verdicts = await session.appendText('answer', 'Herons wait');
    expect(guard.stats.evaluatedTokens).toBe(evaluated);
    expect(verdicts.map((v) => 'Herons wait'.slice(v.start, v.end)).join('')).toBe('Herons wait');
    // Text past the speculation evaluates only its own tokens.
    await session.appendText('answer', ' in the shallows');
    expect(guard.stats.evaluatedTokens - evaluated).toBe(guard.tokenizeText(' in the shallows').length);
    await session.dispose();
  });

  it('drops a speculated answer scaffold when reasoning comes instead', async () => {
    const withAhead = await guard.createSession();
    await withAhead.checkPrompt(PROMPT);
    await withAhead.speculate('answer', '');
    const a = [...(await withAhead.appendText('reasoning', 'Think first.', { final: true })), ...(await withAhead.appendText('answer', 'Then answer.')), ...(await withAhead.end())];
    const idsA = [...withAhead.tokenIds];
    await withAhead.dispose();
    const plain = await guard.createSession();
    await plain.checkPrompt(PROMPT);
    const b = [...(await plain.appendText('reasoning', 'Think first.', { final: true })), ...(await plain.appendText('answer', 'Then answer.')), ...(await plain.end())];
    expect(a.map(shape)).toEqual(b.map(shape));
    expect(idsA).toEqual([...plain.tokenIds]);
    await plain.dispose();
  });

  it('refuses bad arguments and a speculation before the prompt', async () => {
    const session = await guard.createSession();
    await expect(session.speculate('answer', 'x')).rejects.toThrow(/call checkPrompt\(messages\) first/);
    await session.checkPrompt(PROMPT);
    await expect(session.speculate('final' as never, 'x')).rejects.toThrow(/part must be/);
    await expect(session.speculate('answer', 3 as never)).rejects.toThrow(/text must be a string/);
    await session.dispose();
  });
});

describe('speculation and conversation KV reuse', () => {
  let guard: LocalGuard;
  beforeAll(async () => {
    guard = await randomGuard('f32');
  });
  afterAll(() => guard.dispose());

  it('a stopped response with a speculated tail leaves a sequence the next turn reuses exactly', async () => {
    const session = await guard.createSession();
    await session.checkPrompt(PROMPT);
    await session.appendText('answer', 'Herons wait');
    await session.speculate('answer', ' in the shal');
    await session.dispose(); // stopped mid-answer: the speculated cells must not count as conversation
    await guard.pool.settled();
    const next = [...PROMPT, { role: 'assistant' as const, content: 'Herons wait' }, { role: 'user' as const, content: 'And in winter?' }];
    const reused = await guard.createSession();
    const verdict = await reused.checkPrompt(next);
    await reused.dispose();
    const fresh = await randomGuard('f32', { reuseKv: false });
    const check = await fresh.createSession();
    expect(verdict).toEqual(await check.checkPrompt(next));
    await check.dispose();
    await fresh.dispose();
  });
});
