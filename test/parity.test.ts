import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LocalGuard } from '../src/engine/guard.js';
import type { PromptVerdict, TokenVerdict } from '../src/guard/types.js';
import { tinyRandomCheckpoint } from './fixtures/cache.js';
import { CONVERSATIONS } from './fixtures/corpus.js';
import { randomGuard } from './fixtures/guards.js';
import { Qwen3GuardReference, type ReferenceOutput } from './reference/qwen3guard-reference.js';

interface Run {
  prompt: PromptVerdict;
  tokens: TokenVerdict[];
  ids: readonly number[];
}

async function classify(guard: LocalGuard, conversation: (typeof CONVERSATIONS)[number]): Promise<Run> {
  const session = await guard.createSession();
  try {
    const prompt = await session.checkPrompt(conversation.messages);
    const tokens: TokenVerdict[] = [];
    if (conversation.reasoning) tokens.push(...(await session.appendText('reasoning', conversation.reasoning, { final: true })));
    tokens.push(...(await session.appendText('answer', conversation.answer)));
    tokens.push(...(await session.end()));
    return { prompt, tokens, ids: [...session.tokenIds] };
  } finally {
    await session.dispose();
  }
}

let reference: Qwen3GuardReference;
const referenceRuns = new Map<string, ReferenceOutput[]>();
function referenceFor(ids: readonly number[]): ReferenceOutput[] {
  const key = ids.join(',');
  if (!referenceRuns.has(key)) referenceRuns.set(key, reference.run([...ids]));
  return referenceRuns.get(key)!;
}

beforeAll(async () => {
  reference = new Qwen3GuardReference(await tinyRandomCheckpoint());
});

describe('f32 GGUF with an f32 KV cache matches the float64 reference', () => {
  let guard: LocalGuard;
  beforeAll(async () => {
    guard = await randomGuard('f32', { kvCacheType: 'f32', responseProbabilities: true });
  });
  afterAll(() => guard.dispose());

  it('gives the reference label and probabilities on every response token and the prompt', async () => {
    let scored = 0;
    for (const conversation of CONVERSATIONS) {
      const run = await classify(guard, conversation);
      const ref = referenceFor(run.ids);
      for (const token of run.tokens) {
        const expected = ref[token.position].response;
        expect(token.id).toBe(run.ids[token.position]);
        expect(token.riskLevel, `token ${token.index} (${guard.tokenText(token.id)})`).toBe(expected.risk);
        if (token.riskLevel !== 'Safe') expect(token.category).toBe(expected.category);
        expect(token.probabilities!.Safe).toBeCloseTo(expected.riskProbabilities[0], 4);
        expect(token.probabilities!.Unsafe).toBeCloseTo(expected.riskProbabilities[1], 4);
        expect(token.probabilities!.Controversial).toBeCloseTo(expected.riskProbabilities[2], 4);
        scored++;
      }
      const at = promptPosition(run.ids);
      const q = ref[at].query;
      expect(run.prompt.riskLevel).toBe(q.risk);
      expect(Math.abs(run.prompt.probabilities.Safe - q.riskProbabilities[0])).toBeLessThan(1e-4);
      expect(Math.abs(run.prompt.probabilities.Unsafe - q.riskProbabilities[1])).toBeLessThan(1e-4);
      expect(Math.abs(run.prompt.probabilities.Controversial - q.riskProbabilities[2])).toBeLessThan(1e-4);
      for (const [label, p] of Object.entries(run.prompt.categoryProbabilities)) {
        expect(Math.abs(p - q.categoryProbabilities[Object.keys(run.prompt.categoryProbabilities).indexOf(label)])).toBeLessThan(1e-4);
      }
    }
    expect(scored).toBeGreaterThan(150);
    expect(guard.stats.inexactTokens).toBe(0);
  });

  it('gives the same labels with the folded label rows (no probabilities)', async () => {
    const labelsOnly = await randomGuard('f32', { kvCacheType: 'f32' });
    try {
      for (const conversation of CONVERSATIONS) {
        const run = await classify(labelsOnly, conversation);
        const ref = referenceFor(run.ids);
        for (const token of run.tokens) {
          expect(token.riskLevel).toBe(ref[token.position].response.risk);
          expect(token.probabilities).toBeUndefined();
        }
      }
    } finally {
      await labelsOnly.dispose();
    }
  });

  it('gives the same results for chunks of 1, 7 and 64 tokens as for one call', async () => {
    const conversation = CONVERSATIONS[2];
    const answerIds = guard.tokenizeText(conversation.answer);
    const runChunks = async (chunk: number) => {
      const session = await guard.createSession();
      try {
        await session.checkPrompt(conversation.messages);
        const out: TokenVerdict[] = [];
        for (let i = 0; i < answerIds.length; i += chunk) out.push(...(await session.appendTokens('answer', answerIds.slice(i, i + chunk))));
        return out;
      } finally {
        await session.dispose();
      }
    };
    const whole = await runChunks(answerIds.length);
    expect(whole).toHaveLength(answerIds.length);
    for (const chunk of [1, 7, 64]) {
      const chunked = await runChunks(chunk);
      expect(chunked.map((t) => t.riskLevel)).toEqual(whole.map((t) => t.riskLevel));
      chunked.forEach((t, i) => expect(t.probabilities!.Unsafe).toBeCloseTo(whole[i].probabilities!.Unsafe, 5));
    }
  });

  it('gives two interleaved sessions the same results as each alone', async () => {
    const [a, b] = [CONVERSATIONS[0], CONVERSATIONS[4]];
    const alone = [await classify(guard, a), await classify(guard, b)];
    const [sa, sb] = [await guard.createSession(), await guard.createSession()];
    try {
      await Promise.all([sa.checkPrompt(a.messages), sb.checkPrompt(b.messages)]);
      const ids = [guard.tokenizeText(a.answer), guard.tokenizeText(b.answer)];
      const out: TokenVerdict[][] = [[], []];
      for (let i = 0; i < Math.max(ids[0].length, ids[1].length); i += 5) {
        // Both sessions' chunks go to the backend together, batched in one decode.
        const [ra, rb] = await Promise.all([sa.appendTokens('answer', ids[0].slice(i, i + 5)), sb.appendTokens('answer', ids[1].slice(i, i + 5))]);
        out[0].push(...ra);
        out[1].push(...rb);
      }
      out[0].push(...(await sa.end()));
      out[1].push(...(await sb.end()));
      for (const k of [0, 1]) {
        // appendTokens puts the answer's "\n\n" on its own, as appendText does for these texts.
        expect(out[k].map((t) => t.id)).toEqual(alone[k].tokens.map((t) => t.id));
        expect(out[k].map((t) => t.riskLevel)).toEqual(alone[k].tokens.map((t) => t.riskLevel));
        out[k].forEach((t, i) => expect(t.probabilities!.Safe).toBeCloseTo(alone[k].tokens[i].probabilities!.Safe, 5));
      }
    } finally {
      await sa.dispose();
      await sb.dispose();
    }
  });
});

/** Position of the `<|im_end|>` closing the last user turn in a rendered conversation. */
function promptPosition(ids: readonly number[]): number {
  for (let i = ids.length - 1; i >= 1; i--) {
    if (ids[i - 1] === 151644 && ids[i] === 872) return ids.indexOf(151645, i);
  }
  throw new Error('no user turn');
}

describe.each(['f16', 'q8_0'] as const)('%s GGUF with the default KV cache', (type) => {
  let guard: LocalGuard;
  beforeAll(async () => {
    guard = await randomGuard(type);
  });
  afterAll(() => guard.dispose());

  it('agrees with the reference on at least 99% of token labels and on every prompt verdict', async () => {
    let agree = 0;
    let total = 0;
    for (const conversation of CONVERSATIONS) {
      const run = await classify(guard, conversation);
      const ref = referenceFor(run.ids);
      for (const token of run.tokens) {
        total++;
        if (token.riskLevel === ref[token.position].response.risk) agree++;
      }
      expect(run.prompt.riskLevel).toBe(ref[promptPosition(run.ids)].query.risk);
    }
    expect(agree / total).toBeGreaterThanOrEqual(0.99);
  });
});
