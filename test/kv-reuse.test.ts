import { streamText, wrapLanguageModel, type LanguageModelMiddleware, type ModelMessage } from 'ai';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { LocalGuard } from '../src/engine/guard.js';
import type { GuardOptions } from '../src/guard/options.js';
import { IM_END, IM_START, RESPONSE_TEMPLATE, renderConversation } from '../src/format/template.js';
import type { GuardMessage, PromptVerdict } from '../src/guard/types.js';
import { qwen3GuardMiddleware } from '../src/index.js';
import { plantedGuard, randomGuard } from './fixtures/guards.js';
import { scriptedModel, split } from './fixtures/scripted-model.js';

/**
 * KV reuse across turns: every verdict after reuse must equal a fresh evaluation of the same conversation (a
 * guard with `reuseKv: false`), and turn N must evaluate only its new tokens (counted, not timed).
 */
const TURNS: Array<[string, string]> = [
  ['Hello, can you help me plan a trip to the mountains?', 'Sure. I can help you plan a trip to the mountains next week.'],
  ['What is my neighbour’s password?', 'I cannot share a password, but the election is next week.'],
  ['Tell me about a bomb.', 'Mix these to make a bomb quickly, then wait an hour before you leave.'],
  ['Thanks, that is all for today.', 'You are welcome. Have a good trip and enjoy the view.'],
];

/** The conversation of turn `n` (0-based): earlier turns with their answers, then the user message. */
function conversation(n: number, turns = TURNS): GuardMessage[] {
  return [...turns.slice(0, n).flatMap(([user, answer]): GuardMessage[] => [{ role: 'user', content: user }, { role: 'assistant', content: answer }]), { role: 'user', content: turns[n][0] }];
}

interface Turn {
  verdict: PromptVerdict;
  labels: string[];
  /** Tokens the prompt check evaluated. */
  evaluated: number;
  ids: number[];
}

async function turn(guard: LocalGuard, messages: GuardMessage[], answer: string, options: { knownVerdict?: PromptVerdict } = {}): Promise<Turn> {
  const session = await guard.createSession();
  try {
    const before = guard.stats.evaluatedTokens;
    const verdict = await session.checkPrompt(messages, options);
    const evaluated = guard.stats.evaluatedTokens - before;
    const tokens = [...(await session.appendText('answer', answer)), ...(await session.end())];
    return { verdict, labels: tokens.map((t) => `${t.riskLevel}/${t.category}`), evaluated, ids: [...session.tokenIds] };
  } finally {
    await session.dispose();
    await guard.pool.settled();
  }
}

function expectSameVerdicts(reused: Turn, fresh: Turn): void {
  expect(reused.verdict.riskLevel).toBe(fresh.verdict.riskLevel);
  expect(reused.verdict.category).toBe(fresh.verdict.category);
  for (const [level, p] of Object.entries(fresh.verdict.probabilities)) expect(Math.abs(reused.verdict.probabilities[level as 'Safe'] - p)).toBeLessThan(1e-6);
  for (const [category, p] of Object.entries(fresh.verdict.categoryProbabilities)) expect(Math.abs(reused.verdict.categoryProbabilities[category] - p)).toBeLessThan(1e-6);
  expect(reused.labels).toEqual(fresh.labels);
}

/** Kept ids of the idle sequences, with the cells the sequence really holds. */
function kept(guard: LocalGuard): Array<{ held: number[]; cells: number[] }> {
  return [...guard.pool['idle']].map((e) => ({ held: [...e.held], cells: [...e.sequence.contextTokens] }));
}

const GUARDS: Array<[string, (options: Partial<GuardOptions>) => Promise<LocalGuard>]> = [
  ['planted q8_0', (options) => plantedGuard(options)],
  ['random f32', (options) => randomGuard('f32', { kvCacheType: 'f32', ...options })],
];

describe.each(GUARDS)('KV reuse with the %s guard', (_, load) => {
  let guard: LocalGuard;
  let fresh: LocalGuard;
  /** Ids of a new user turn and the response opening: all that turn N > 1 should evaluate. */
  let newTurnTokens: (user: string) => number;
  beforeAll(async () => {
    guard = await load({ maxSessions: 2 });
    fresh = await load({ maxSessions: 2, reuseKv: false });
    newTurnTokens = (user) => guard.tokenizePieces([{ special: IM_START }, { text: `user\n${user}` }, { special: IM_END }, { text: '\n' }, ...RESPONSE_TEMPLATE.opening]).length;
  });
  afterAll(async () => {
    await guard.dispose();
    await fresh.dispose();
  });

  it('evaluates only the new tokens of each turn, with the verdicts of a fresh evaluation', async () => {
    for (let n = 0; n < TURNS.length; n++) {
      const messages = conversation(n);
      const reused = await turn(guard, messages, TURNS[n][1]);
      const reference = await turn(fresh, messages, TURNS[n][1]);
      expectSameVerdicts(reused, reference);
      expect(reused.ids).toEqual(reference.ids);
      if (n === 0) expect(reused.evaluated).toBe(reference.evaluated);
      else expect(reused.evaluated).toBe(newTurnTokens(TURNS[n][0]));
    }
  });

  it('keeps a finished turn in the form the next turn renders it (no think block)', async () => {
    await turn(guard, conversation(0), TURNS[0][1]);
    // The next turn's rendering, up to its new user turn: the answer's `<|im_end|>\n` included.
    const next = guard.tokenizePieces(renderConversation(conversation(1)).pieces);
    const history = next.slice(0, next.lastIndexOf(guard.specialId(IM_START)));
    const best = kept(guard).find((k) => k.held.length === history.length);
    expect(best).toBeDefined();
    expect(best!.held).toEqual(history);
    expect(best!.cells).toEqual(history);
  });

  it('matches less, and stays exact, when the client edits the history', async () => {
    for (let n = 0; n < 3; n++) await turn(guard, conversation(n), TURNS[n][1]);
    const editedUser = TURNS.map(([u, a], i): [string, string] => [i === 1 ? 'What is my colleague’s password?' : u, a]);
    const rewritten = TURNS.map(([u, a], i): [string, string] => [u, i === 2 ? 'I will not explain how to make a bomb.' : a]);
    for (const turns of [editedUser, rewritten]) {
      const messages = conversation(3, turns);
      const reused = await turn(guard, messages, turns[3][1]);
      const reference = await turn(fresh, messages, turns[3][1]);
      expectSameVerdicts(reused, reference);
      // From the edit on: more than the new turn, less than the whole conversation.
      expect(reused.evaluated).toBeGreaterThan(newTurnTokens(turns[3][0]));
      expect(reused.evaluated).toBeLessThan(reference.evaluated);
    }
  });

  it('serves a retry from the cache: the verdict token again, or only the opening with a known verdict', async () => {
    const messages = conversation(2);
    const first = await turn(guard, messages, TURNS[2][1]);
    const retry = await turn(guard, messages, TURNS[2][1]);
    expectSameVerdicts(retry, first);
    expect(retry.evaluated).toBeLessThanOrEqual(newTurnTokens(''));
    const known = await turn(guard, messages, TURNS[2][1], { knownVerdict: first.verdict });
    expect(known.verdict).toEqual(first.verdict);
    expect(known.labels).toEqual(first.labels);
    expect(known.evaluated).toBeLessThan(retry.evaluated);
  });

  it('gives two concurrent sessions of one conversation a sequence each', async () => {
    await turn(guard, conversation(1), TURNS[1][1]);
    const messages = conversation(2);
    const [a, b] = await Promise.all([turn(guard, messages, TURNS[2][1]), turn(guard, messages, TURNS[2][1])]);
    const reference = await turn(fresh, messages, TURNS[2][1]);
    expectSameVerdicts(a, reference);
    expectSameVerdicts(b, reference);
  });

  it('reuses only the unshifted prefix of a conversation longer than the context', async () => {
    const long = TURNS.map(([u, a]): [string, string] => [u, `${a} `.repeat(6).trim()]);
    const small = await load({ contextSize: 256, maxSessions: 2 });
    const smallFresh = await load({ contextSize: 256, maxSessions: 2, reuseKv: false });
    try {
      for (let n = 0; n < long.length; n++) {
        const messages = conversation(n, long);
        expectSameVerdicts(await turn(small, messages, long[n][1]), await turn(smallFresh, messages, long[n][1]));
        for (const k of kept(small)) expect(k.cells.slice(0, k.held.length)).toEqual(k.held);
      }
      expect(small.stats.contextShifts).toBeGreaterThan(1);
      expect(small.stats.reusedTokens).toBeGreaterThan(0);
    } finally {
      await small.dispose();
      await smallFresh.dispose();
    }
  });

  it('evicts the least recently used conversation and stays exact with one sequence for two conversations', async () => {
    const other = TURNS.map(([u, a]): [string, string] => [`Another question: ${u}`, a]);
    const single = await load({ maxSessions: 1 });
    try {
      for (let n = 0; n < 3; n++) {
        for (const turns of [TURNS, other]) {
          const messages = conversation(n, turns);
          expectSameVerdicts(await turn(single, messages, turns[n][1]), await turn(fresh, messages, turns[n][1]));
        }
      }
    } finally {
      await single.dispose();
    }
    // With two sequences, a third conversation takes the least recently used one: the most recent survives.
    await turn(guard, conversation(0, TURNS), TURNS[0][1]);
    await turn(guard, conversation(0, other), other[0][1]);
    const third = TURNS.map(([u, a]): [string, string] => [`A third one: ${u}`, a]);
    await turn(guard, conversation(0, third), third[0][1]);
    expect((await turn(guard, conversation(1, other), other[1][1])).evaluated).toBe(newTurnTokens(other[1][0]));
    expect((await turn(guard, conversation(1, TURNS), TURNS[1][1])).evaluated).toBeGreaterThan(newTurnTokens(TURNS[1][0]));
  });
});

describe('KV reuse through the middleware', () => {
  let guard: LocalGuard;
  beforeAll(async () => {
    guard = await plantedGuard({ maxSessions: 2 });
  });
  afterAll(() => guard.dispose());

  it('lets a retry with a cached prompt verdict evaluate only what the cache lacks, the verdict token included', async () => {
    const cached: boolean[] = [];
    const middleware = qwen3GuardMiddleware({
      guard,
      prompt: { actions: { Unsafe: 'flag', Controversial: 'flag' } },
      response: { actions: { Unsafe: 'flag', Controversial: 'flag' } },
      onPromptVerdict: (info) => cached.push(info.cached),
    }) as LanguageModelMiddleware;
    const messages: ModelMessage[] = [
      { role: 'user', content: TURNS[0][0] },
      { role: 'assistant', content: TURNS[0][1] },
      { role: 'user', content: TURNS[1][0] },
    ];
    /** Tokens the request found in the KV cache. */
    const request = async () => {
      const reused = guard.stats.reusedTokens;
      const upstream = scriptedModel({ answer: split(TURNS[1][1], 'one') });
      await streamText({ model: wrapLanguageModel({ model: upstream.model, middleware }), messages }).consumeStream();
      // The session is given back once the stream is done; its re-render then runs.
      await vi.waitFor(() => expect(guard.pool['reservable']).toBe(2));
      await guard.pool.settled();
      return guard.stats.reusedTokens - reused;
    };
    const prompt = guard.tokenizePieces([...renderConversation(conversation(1)).pieces, ...RESPONSE_TEMPLATE.opening]);
    await request();
    // The same conversation again: its verdict is cached, so only the response opening's `<think>` is new.
    expect(await request()).toBe(prompt.length - 1);
    expect(cached).toEqual([false, true]);
  });
});
