import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LocalGuard } from '../src/engine/guard.js';
import { RESPONSE_TEMPLATE } from '../src/format/template.js';
import type { PromptVerdict, TokenVerdict } from '../src/guard/types.js';
import { HEADS_FILE } from '../src/convert/sglang-heads-format.js';
import { promptVerdict, readHeadsFile, tokenLabels, type SglangHeads } from '../src/sglang/heads.js';
import { CONVERSATIONS } from './fixtures/corpus.js';
import { randomGuard } from './fixtures/guards.js';
import { exportTinyForSglang, type ExportedCheckpoint } from './fixtures/sglang-export.js';
import { requestStates, startSglangServer, type SglangServer } from './fixtures/sglang-server.js';

/**
 * The SGLang path against the local engine on the same checkpoint (f32 GGUF, f32 KV cache, as parity.test.ts
 * runs it): the engine renders, tokenizes and scores each parity conversation; the same ids go to the fixture
 * server the way a streaming guard would send them, and the heads file's labels must be the engine's.
 */
let exported: ExportedCheckpoint;
let guard: LocalGuard;
let heads: SglangHeads;
let server: SglangServer;
beforeAll(async () => {
  exported = await exportTinyForSglang();
  heads = await readHeadsFile(join(exported.served, HEADS_FILE));
  guard = await randomGuard('f32', { kvCacheType: 'f32', responseProbabilities: true });
  server = await startSglangServer(exported.checkpoint);
});
afterAll(async () => {
  await server?.close();
  await guard?.dispose();
  await exported?.remove();
});

interface EngineRun {
  prompt: PromptVerdict;
  verdictPosition: number;
  tokens: TokenVerdict[];
  ids: readonly number[];
}

async function engineRun(conversation: (typeof CONVERSATIONS)[number]): Promise<EngineRun> {
  const session = await guard.createSession();
  try {
    const prompt = await session.checkPrompt(conversation.messages);
    // checkPrompt evaluates the conversation, its closing "\n" and the response's opening after the verdict.
    const verdictPosition = session.tokenIds.length - 1 - guard.tokenizePieces([{ text: '\n' }, ...RESPONSE_TEMPLATE.opening]).length;
    const tokens: TokenVerdict[] = [];
    if (conversation.reasoning) tokens.push(...(await session.appendText('reasoning', conversation.reasoning, { final: true })));
    tokens.push(...(await session.appendText('answer', conversation.answer)));
    tokens.push(...(await session.end()));
    return { prompt, verdictPosition, tokens, ids: [...session.tokenIds] };
  } finally {
    await session.dispose();
  }
}

describe('the SGLang path gives the local engine\'s verdicts', () => {
  it('on the parity conversations: the prompt verdict and every response token, chunk by chunk through the cache', async () => {
    let compared = 0;
    const levels = new Set<string>();
    for (const conversation of CONVERSATIONS) {
      const run = await engineRun(conversation);
      const { ids, verdictPosition: v } = run;
      expect(ids[v]).toBe(guard.specialId('<|im_end|>'));

      const prompt = promptVerdict(heads, (await requestStates(server.url, ids.slice(0, v + 1), v, heads.hiddenSize)).at(v));
      expect(prompt.riskLevel).toBe(run.prompt.riskLevel);
      expect(prompt.category).toBe(run.prompt.category);
      for (const level of ['Safe', 'Unsafe', 'Controversial'] as const) expect(Math.abs(prompt.probabilities[level] - run.prompt.probabilities[level])).toBeLessThan(1e-4);
      for (const [label, p] of Object.entries(run.prompt.categoryProbabilities)) expect(Math.abs(prompt.categoryProbabilities[label] - p)).toBeLessThan(1e-4);

      // The response as a streaming guard sends it: up to 6 scored tokens a request, scaffold included.
      for (let first = 0; first < run.tokens.length; first += 6) {
        const chunk = run.tokens.slice(first, first + 6);
        const from = first === 0 ? v + 1 : run.tokens[first - 1].position + 1;
        const end = chunk.at(-1)!.position + 1;
        const states = await requestStates(server.url, ids.slice(0, end), from, heads.hiddenSize);
        for (const token of chunk) {
          const labels = tokenLabels(heads, states.at(token.position));
          expect(labels.riskLevel, `token ${token.index} at ${token.position}`).toBe(token.riskLevel);
          expect(labels.category).toBe(token.category);
          for (const level of ['Safe', 'Unsafe', 'Controversial'] as const) expect(Math.abs(labels.probabilities![level] - token.probabilities![level])).toBeLessThan(1e-4);
          levels.add(token.riskLevel);
          compared++;
        }
      }
    }
    expect(compared).toBeGreaterThan(150);
    expect(levels.size).toBe(3); // not vacuous: the random guard says all three
    // Every response request after the first of a conversation found its prefix in the server's cache.
    expect(server.requests.filter((r) => r.cachedTokens! > 20).length).toBeGreaterThan(CONVERSATIONS.length * 3);
  });
});
