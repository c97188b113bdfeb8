import type { LanguageModelV4StreamPart } from '@ai-sdk/provider';
import { streamText, wrapLanguageModel, type LanguageModelMiddleware } from 'ai';
import { MockLanguageModelV4 } from 'ai/test';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LocalGuard } from '../src/engine/guard.js';
import { GuardSession } from '../src/engine/session.js';
import { qwen3GuardMiddleware } from '../src/index.js';
import { ResponseModeration } from '../src/middleware/response-moderation.js';
import { resolveResponsePolicy } from '../src/policy/resolve.js';
import { plantedGuard } from './fixtures/guards.js';
import { scriptParts } from './fixtures/scripted-model.js';

// Time to first token: what the guard evaluates before the first delta, and what the first verdicts wait for.
let guard: LocalGuard;
beforeAll(async () => {
  guard = await plantedGuard({ maxSessions: 2 });
});
afterAll(async () => {
  await guard?.dispose();
});

const until = async (condition: () => boolean, what: string) => {
  for (let waited = 0; !condition(); waited += 10) {
    if (waited > 10_000) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
};

describe('before the first delta', () => {
  it("evaluates the answer's scaffold once the prompt is allowed, while the upstream call has not returned", async () => {
    // A provider whose response (headers included) comes only with its first token, as many do.
    let respond!: () => void;
    const responded = new Promise<void>((resolve) => (respond = resolve));
    const parts = scriptParts({ answer: ['The', ' river', ' winds', ' on.'] });
    const model = new MockLanguageModelV4({
      doStream: async () => {
        await responded;
        return { stream: new ReadableStream<LanguageModelV4StreamPart>({ start: (c) => (parts.forEach((p) => c.enqueue(p)), c.close()) }) };
      },
    });
    let verdicts = 0;
    const middleware = qwen3GuardMiddleware({ guard, onPromptVerdict: () => verdicts++ }) as LanguageModelMiddleware;
    const before = { ...guard.stats };
    const result = streamText({ model: wrapLanguageModel({ model, middleware }), prompt: 'Describe a river.' });
    const text = result.text;
    await until(() => verdicts === 1, 'the prompt verdict');
    // The scaffold (the empty thinking block and the answer's opening) is speculated with no upstream part yet.
    await until(() => guard.stats.speculatedTokens > before.speculatedTokens, 'the scaffold to be speculated');
    respond();
    expect(await text).toBe('The river winds on.');
    // The scaffold was not evaluated twice: the answer's tokens found it in place.
    expect(guard.stats.discardedTokens).toBe(before.discardedTokens);
  });
});

describe('the first verdicts', () => {
  it('come from the first chunk alone when text piled up before the first verdict', async () => {
    const session = await guard.createSession();
    const calls: string[] = [];
    const appendText = GuardSession.prototype.appendText;
    GuardSession.prototype.appendText = function (this: GuardSession, ...args: Parameters<typeof appendText>) {
      calls.push(args[1]);
      return appendText.apply(this, args);
    };
    try {
      await session.checkPrompt([{ role: 'user', content: 'Describe a river.' }]);
      const policy = resolveResponsePolicy({ actions: { Unsafe: 'flag', Controversial: 'flag' } });
      let firstRelease = -1;
      const moderation = new ResponseModeration(session, policy, {
        onChange: () => (firstRelease = firstRelease < 0 && moderation.tracker.tokens.length > 0 ? moderation.tracker.tokens.length : firstRelease),
        onError: (e) => { throw e; },
      }, true);
      // The deltas that arrived while the prompt was checked, routed at once (the scaffold is still evaluating).
      for (const delta of ['The', ' river', ' winds', ' through', ' the', ' valley']) moderation.append('answer', delta);
      await moderation.drain();
      expect(calls.slice(0, 2)).toEqual(['The', ' river winds through the']);
      expect(firstRelease).toBe(1); // the first word's verdict came on its own
      await moderation.finish();
      expect(moderation.tracker.tokens.filter((t) => !t.verdict.closing).map((t) => t.verdict.id)).toEqual(guard.tokenizeText('The river winds through the valley'));
    } finally {
      GuardSession.prototype.appendText = appendText;
      await session.dispose();
    }
  });

  it('come from the speculated text alone, not batched with text that still needs a decode', async () => {
    const session = await guard.createSession();
    const calls: Array<{ text: string; ahead?: string; decodes: number }> = [];
    const appendText = GuardSession.prototype.appendText;
    GuardSession.prototype.appendText = async function (this: GuardSession, ...args: Parameters<typeof appendText>) {
      const evaluations = guard.stats.evaluations;
      const verdicts = await appendText.apply(this, args);
      calls.push({ text: args[1], ahead: args[2]?.ahead, decodes: guard.stats.evaluations - evaluations });
      return verdicts;
    };
    try {
      await session.checkPrompt([{ role: 'user', content: 'Describe a river.' }]);
      const policy = resolveResponsePolicy({ actions: { Unsafe: 'flag', Controversial: 'flag' } });
      const moderation = new ResponseModeration(session, policy, { onChange: () => undefined, onError: (e) => { throw e; } }, true);
      await moderation.drain(); // the scaffold is in place
      moderation.append('answer', 'The'); // held (it may still grow), and evaluated ahead at once
      // Two more deltas while that decode runs: "The" becomes final, then " river", which nobody evaluated yet.
      moderation.append('answer', ' river');
      moderation.append('answer', ' winds');
      await moderation.drain();
      expect(calls[0]).toEqual({ text: 'The', ahead: undefined, decodes: 0 });
      expect(calls[1]).toMatchObject({ text: ' river', ahead: ' winds' });
      await moderation.finish();
      expect(moderation.tracker.tokens.filter((t) => !t.verdict.closing).map((t) => t.verdict.id)).toEqual(guard.tokenizeText('The river winds'));
    } finally {
      GuardSession.prototype.appendText = appendText;
      await session.dispose();
    }
  });
});
