import type { LanguageModelV4StreamPart } from '@ai-sdk/provider';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LocalGuard } from '../src/engine/guard.js';
import type { GuardSession } from '../src/engine/session.js';
import type { ResponsePart, TokenVerdict } from '../src/guard/types.js';
import { ContinuationSplice, continuationPrompt } from '../src/middleware/intervention.js';
import { plantedGuard } from './fixtures/guards.js';

/**
 * GuardSession.rollbackTo against a fresh session given only the kept text and the continuation: the same
 * tokens at the same positions with the same probabilities (exact readout), so the erased cells are really gone
 * and nothing kept was evaluated again.
 */
let guard: LocalGuard;
beforeAll(async () => {
  guard = await plantedGuard({ responseProbabilities: true, maxSessions: 2 });
});
afterAll(() => guard.dispose());

const PROMPT = [{ role: 'user' as const, content: 'Tell me something about chemistry and kitchens, please.' }];
type Step = [ResponsePart, string, boolean?];

async function session(steps: Step[]): Promise<{ session: GuardSession; verdicts: TokenVerdict[] }> {
  const s = await guard.createSession();
  await s.checkPrompt(PROMPT);
  const verdicts: TokenVerdict[] = [];
  for (const [part, text, final] of steps) verdicts.push(...(await s.appendText(part, text, { final })));
  return { session: s, verdicts };
}

const shape = (v: TokenVerdict) => ({ index: v.index, position: v.position, id: v.id, part: v.part, start: v.start, end: v.end, riskLevel: v.riskLevel, probabilities: v.probabilities });

/** Rolls `before` back to its first `keep` scored tokens, appends `after`; compares with a fresh session of `kept` + `after`. */
async function parity(before: Step[], keep: number, kept: Step[], after: Step[]) {
  const rolled = await session(before);
  const fresh = await session(kept);
  try {
    const evaluated = guard.stats.evaluatedTokens;
    await rolled.session.rollbackTo(keep > 0 ? rolled.verdicts[keep - 1] : null);
    expect(guard.stats.evaluatedTokens).toBe(evaluated); // a rollback evaluates nothing
    expect(rolled.session.scoredTokens).toBe(keep);
    const continued: TokenVerdict[] = [];
    for (const [part, text, final] of after) continued.push(...(await rolled.session.appendText(part, text, { final })));
    continued.push(...(await rolled.session.end()));
    const expected: TokenVerdict[] = [];
    for (const [part, text, final] of after) expected.push(...(await fresh.session.appendText(part, text, { final })));
    expected.push(...(await fresh.session.end()));
    expect(fresh.verdicts.map(shape)).toEqual(rolled.verdicts.slice(0, keep).map(shape));
    expect(continued.map(shape)).toEqual(expected.map(shape));
    expect(rolled.session.tokenIds).toEqual(fresh.session.tokenIds);
    return { rolled: rolled.verdicts, continued };
  } finally {
    await rolled.session.dispose();
    await fresh.session.dispose();
  }
}

describe('GuardSession.rollbackTo', () => {
  it('erases the tokens after the kept one: the continuation reads as if they never came', async () => {
    const text = 'Sure. Mix these to make a bomb quickly, then wait.';
    const probe = await session([['answer', text]]);
    const mixAt = probe.verdicts.findIndex((v) => text.slice(v.start, v.end) === ' Mix');
    await probe.session.dispose();
    const { rolled, continued } = await parity([['answer', text]], mixAt + 1, [['answer', 'Sure. Mix']], [['answer', ' flour and sugar for a cake.']]);
    expect(rolled.some((v) => v.riskLevel === 'Unsafe')).toBe(true);
    expect(continued.every((v) => v.riskLevel === 'Safe')).toBe(true);
  });

  it('rolls back to the start of the response, and into the reasoning (which opens again)', async () => {
    await parity([['answer', 'A bomb went off.']], 0, [], [['answer', 'Nothing happened.']]);
    const reasoning = 'I will explain the bomb design.';
    const probe = await session([['reasoning', reasoning]]);
    const willAt = probe.verdicts.findIndex((v) => reasoning.slice(v.start, v.end) === ' will');
    await probe.session.dispose();
    await parity(
      [['reasoning', reasoning, true], ['answer', 'Here it is.']],
      willAt + 1,
      [['reasoning', 'I will']],
      [['reasoning', ' talk about cakes.', true], ['answer', 'Cakes are nice.']],
    );
  });

  it('refuses a verdict that is not one of its scored tokens', async () => {
    const { session: s, verdicts } = await session([['answer', 'Hello there.']]);
    try {
      await expect(s.rollbackTo({ ...verdicts[0], index: 99, position: 9999 })).rejects.toThrow(/not a scored token/);
    } finally {
      await s.dispose();
    }
  });
});

describe('the continuation request and splice', () => {
  const prompt = [{ role: 'user' as const, content: [{ type: 'text' as const, text: 'Hi' }] }];

  it('quotes the partial answer, or sends it as the assistant message to continue', () => {
    const quoted = continuationPrompt(prompt, { part: 'answer', text: 'Sure. Mix' }, 'Go on safely.', 'quote');
    expect(quoted).toEqual([...prompt, { role: 'user', content: [{ type: 'text', text: 'Go on safely.\n\nYour prior response so far:\n<response>\nSure. Mix\n</response>' }] }]);
    const prefixed = continuationPrompt(prompt, { part: 'answer', text: 'Sure. Mix' }, 'Go on safely.', 'assistant-prefix');
    expect(prefixed.slice(1)).toEqual([
      { role: 'user', content: [{ type: 'text', text: 'Go on safely.' }] },
      { role: 'assistant', content: [{ type: 'text', text: 'Sure. Mix' }] },
    ]);
  });

  const run = (splice: ContinuationSplice, parts: LanguageModelV4StreamPart[]) => parts.flatMap((p) => splice.map(p));
  const text = (parts: LanguageModelV4StreamPart[]) => parts.map((p) => (p.type === 'text-delta' ? p.delta : '')).join('');
  const stream = (deltas: string[]): LanguageModelV4StreamPart[] => [
    { type: 'stream-start', warnings: [] },
    { type: 'text-start', id: 't1' },
    ...deltas.map((delta) => ({ type: 'text-delta' as const, id: 't1', delta })),
    { type: 'text-end', id: 't1' },
  ];

  it('goes on in the open text block, drops the stream start, renames other blocks', () => {
    const splice = new ContinuationSplice({ attempt: 2, open: { text: 'orig' }, repeat: null });
    const out = run(splice, [...stream(['Oh', ' no.']), { type: 'reasoning-start', id: 'r' }, { type: 'reasoning-end', id: 'r' }]);
    expect(out).toEqual([
      { type: 'text-delta', id: 'orig', delta: 'Oh' },
      { type: 'text-delta', id: 'orig', delta: ' no.' },
      { type: 'text-end', id: 'orig' },
      { type: 'reasoning-start', id: 'r-c2' },
      { type: 'reasoning-end', id: 'r-c2' },
    ]);
    expect(splice.unused).toEqual([]);
    expect(new ContinuationSplice({ attempt: 1, open: { text: 'x', reasoning: 'y' }, repeat: null }).unused).toEqual(['x', 'y']);
  });

  it('strips a repetition of the released text, whatever the deltas, and keeps a new start apart', () => {
    const repeat = { part: 'answer' as const, text: 'Sure. Mix' };
    for (const deltas of [['Sure. Mix flour.'], ['Su', 're.', ' Mi', 'x', ' flour.'], [' Sure. Mix', ' flour.']]) {
      const splice = new ContinuationSplice({ attempt: 1, open: { text: 'o' }, repeat });
      expect(text(run(splice, stream(deltas)))).toBe(' flour.');
      expect(splice.stripped.trim()).toBe('Sure. Mix');
    }
    const fresh = new ContinuationSplice({ attempt: 1, open: { text: 'o' }, repeat });
    expect(text(run(fresh, stream(['...oh', ' sorry.'])))).toBe(' ...oh sorry.');
    expect(fresh.stripped).toBe('');
    // A start that only looked like the repeat is sent as it came when its block ends.
    expect(text(run(new ContinuationSplice({ attempt: 1, open: { text: 'o' }, repeat }), stream(['Sure.'])))).toBe(' Sure.');
  });
});
