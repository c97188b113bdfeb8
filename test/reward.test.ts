import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Qwen3GuardGen } from '../src/gen/classifier.js';
import { handleRewardRequest } from '../src/reward/http-adapters.js';
import { safetyReward } from '../src/reward/safety-reward.js';
import { OptionsError } from '../src/shared/validation.js';
import { plantedGen } from './fixtures/gen-models.js';

// The planted Gen: bomb is Unsafe, election Controversial, sorry a refusal (test/fixtures/gen-models.ts).
const PROMPT = 'How do rivers form?';
const SAFE = '<think>\nRain gathers in valleys.\n</think>\n\nRain gathers and flows downhill.';
const UNSAFE_ANSWER = '<think>\nRain gathers.\n</think>\n\nFirst, build a bomb.';
const UNSAFE_THINKING = '<think>\nMaybe I should describe a bomb.\n</think>\n\nRain gathers and flows downhill.';
const REFUSAL = "<think>\nI won't.\n</think>\n\nI am sorry, I cannot help.";
const CONTROVERSIAL = 'It depends on the election.';

let gen: Qwen3GuardGen;
beforeAll(async () => {
  gen = await plantedGen({ maxSessions: 4 });
});
afterAll(() => gen?.dispose());

describe('safetyReward', () => {
  it('hybrid without H: 0 when safe, -10 when the answer or the thinking is not safe, -5 for a refusal', async () => {
    const reward = safetyReward({ gen });
    const safe = await reward(PROMPT, SAFE);
    expect(safe).toMatchObject({ reward: 0, unsafe: false, refusal: false, helpfulness: 0, answer: { riskLevel: 'Safe' }, thinking: { riskLevel: 'Safe' } });
    expect(await reward(PROMPT, UNSAFE_ANSWER)).toMatchObject({ reward: -10, unsafe: true, answer: { riskLevel: 'Unsafe', category: 'Violent' }, thinking: { riskLevel: 'Safe' } });
    expect(await reward(PROMPT, UNSAFE_THINKING)).toMatchObject({ reward: -10, unsafe: true, answer: { riskLevel: 'Safe' }, thinking: { riskLevel: 'Unsafe' } });
    expect(await reward(PROMPT, REFUSAL)).toMatchObject({ reward: -5, unsafe: false, refusal: true });
    // Controversial is not safe (report eq. 1), unless configured otherwise.
    expect(await reward(PROMPT, CONTROVERSIAL)).toMatchObject({ reward: -10, unsafe: true, answer: { riskLevel: 'Controversial' } });
    expect((await reward(PROMPT, CONTROVERSIAL)).thinking).toBeUndefined();
    expect((await safetyReward({ gen, controversial: 'safe' })(PROMPT, CONTROVERSIAL)).reward).toBe(0);
    // A generation cut off while thinking is judged as thinking.
    expect(await reward(PROMPT, '<think>\nA bomb is')).toMatchObject({ unsafe: true, thinking: { riskLevel: 'Unsafe' } });
  });

  it('guard-only: 1 when both are Safe, else 0 (Controversial included); constants configurable', async () => {
    const reward = safetyReward({ gen, scheme: 'guard-only' });
    expect((await reward(PROMPT, SAFE)).reward).toBe(1);
    expect((await reward(PROMPT, REFUSAL)).reward).toBe(1);
    expect((await reward(PROMPT, UNSAFE_THINKING)).reward).toBe(0);
    expect((await reward(PROMPT, CONTROVERSIAL)).reward).toBe(0);
    expect((await reward(PROMPT, SAFE)).helpfulness).toBeUndefined();
    const custom = safetyReward({ gen, scheme: 'guard-only', guardOnly: { safe: 2, notSafe: -1 } });
    expect((await custom(PROMPT, UNSAFE_ANSWER)).reward).toBe(-1);
  });

  it('takes H from a function, capped by the penalties', async () => {
    const reward = safetyReward({ gen, helpfulness: (prompt, answer) => (answer.includes('downhill') ? 3 : -20), penalties: { unsafe: -8 } });
    expect((await reward(PROMPT, SAFE)).reward).toBe(3);
    expect((await reward(PROMPT, UNSAFE_ANSWER)).reward).toBe(-20); // min(-8, -20)
    expect((await reward(PROMPT, UNSAFE_THINKING)).reward).toBe(-8); // min(-8, 3)
    expect((await reward(PROMPT, REFUSAL)).reward).toBe(-20); // min(-5, -20)
  });

  it('takes H from a reward model over HTTP', async () => {
    const bodies: unknown[] = [];
    const server = createServer((req, res) => {
      let text = '';
      req.on('data', (c) => (text += c)).on('end', () => {
        bodies.push(JSON.parse(text));
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify(bodies.length === 1 ? { score: 4.5 } : 2));
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const reward = safetyReward({ gen, helpfulness: { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/score` } });
      expect((await reward(PROMPT, SAFE)).reward).toBe(4.5);
      expect((await reward(PROMPT, REFUSAL)).reward).toBe(-5);
      expect(bodies[0]).toEqual({ prompt: PROMPT, messages: [{ role: 'user', content: PROMPT }], response: 'Rain gathers and flows downhill.' });
    } finally {
      server.close();
    }
  });

  it('refuses bad options at construction', () => {
    expect(() => safetyReward({ gen, scheme: 'both' as never })).toThrow(OptionsError);
    expect(() => safetyReward({ gen: {} as never })).toThrow(/safetyReward\.gen: must be a Qwen3Guard-Gen/);
    expect(() => safetyReward({ gen, helpfulness: { url: 'ftp://x' } })).toThrow(/safetyReward\.helpfulness/);
    expect(() => safetyReward({ gen, penalties: { unsafe: 'high' as never } })).toThrow(/safetyReward\.penalties\.unsafe/);
  });
});

describe('handleRewardRequest', () => {
  const reward = () => safetyReward({ gen });
  const templated = (prompt: string) => `<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\n${prompt}<|im_end|>\n<|im_start|>assistant\n`;

  it('answers an OpenRLHF batch, the prompt prefix stripped from each query, all judged at once', async () => {
    const prompts = [templated(PROMPT), templated(PROMPT), templated(PROMPT)];
    const responses = [SAFE, UNSAFE_ANSWER, REFUSAL];
    const reply = await handleRewardRequest({ query: prompts.map((p, i) => `${p}${responses[i]}<|im_end|>`), prompts, labels: ['', '', ''] }, reward());
    expect(reply).toEqual({ status: 200, body: { rewards: [0, -10, -5], scores: [0, -10, -5], extra_logs: { unsafe: [0, 1, 0], refusal: [0, 0, 1] } } });
  });

  it('answers slime with a number, or a dict', async () => {
    expect(await handleRewardRequest({ prompt: PROMPT, response: UNSAFE_THINKING, label: null }, reward())).toEqual({ status: 200, body: -10 });
    const dict = await handleRewardRequest({ prompt: [{ role: 'user', content: PROMPT }], response: SAFE }, reward(), { slimeReply: 'dict' });
    expect(dict).toEqual({ status: 200, body: { reward: 0, unsafe: 0, refusal: 0, answer_risk: 'Safe', thinking_risk: 'Safe', helpfulness: 0 } });
  });

  it('says what is wrong with a bad request (400) and with a failed reward (500)', async () => {
    expect(await handleRewardRequest([], reward())).toMatchObject({ status: 400, body: { error: expect.stringMatching(/expected a JSON object/) } });
    expect(await handleRewardRequest({ query: ['a'], prompts: [] }, reward())).toEqual({ status: 400, body: { error: 'OpenRLHF request: prompts: must hold one prompt per query' } });
    expect(await handleRewardRequest({ query: ['abc'], prompts: ['x'] }, reward())).toMatchObject({ status: 400, body: { error: expect.stringMatching(/query\[0\] does not start with prompts\[0\]/) } });
    expect(await handleRewardRequest({ prompt: 'p' }, reward())).toMatchObject({ status: 400, body: { error: expect.stringMatching(/^slime request: response: /) } });
    expect(await handleRewardRequest({ foo: 1 }, reward())).toMatchObject({ status: 400 });
    const failing = safetyReward({ gen, helpfulness: () => Number.NaN });
    expect(await handleRewardRequest({ prompt: PROMPT, response: SAFE }, failing)).toEqual({ status: 500, body: { error: 'the reward failed: the helpfulness function returned NaN, not a finite number' } });
  });
});
