import { generateText, streamText, wrapLanguageModel, type LanguageModelMiddleware } from 'ai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_INTERVENTION, qwen3GuardMiddleware, type InterventionInfo, type Qwen3GuardMiddlewareOptions, type StreamGuard } from '../src/index.js';
import { GUARD_KINDS, plantedGuardOf, type GuardUnderTest } from './fixtures/guard-kinds.js';
import { scriptedCalls, split, type Script } from './fixtures/scripted-model.js';

/**
 * The continue action through streamText, with the planted guard (" bomb" is Unsafe/Violent, flagged at the
 * token after it) and a scripted upstream called once per attempt.
 */
// The continue action runs against the local guard and against the same guard behind `qwen3guard serve`.
let under: GuardUnderTest;
let guard: StreamGuard;

const BOMB = 'Sure. Mix these to make a bomb quickly, then wait an hour before you leave the house.';
const SORRY = "...oh, I'm sorry, I just realized I shouldn't explain that. Let's bake a cake instead.";
const UNSAFE_AGAIN = '...oh, sorry. Anyway, the bomb needs a fuse and a timer to work well.';
const REPLACEMENT = "I can't continue with this response.";
const FILLER = ' The rest of this answer goes on for a while, sentence after sentence.'.repeat(8);
/** An answer still streaming when its flag comes (so the rollback has an upstream to cancel). */
const slow = (text: string): Script => ({ answer: split(text + FILLER, 4), delayMs: 10 });

function middleware(options: Partial<Qwen3GuardMiddlewareOptions> = {}): LanguageModelMiddleware {
  return qwen3GuardMiddleware({ guard, ...options, response: { actions: { Unsafe: 'continue' }, ...options.response } } as Qwen3GuardMiddlewareOptions) as LanguageModelMiddleware;
}

async function run(mw: LanguageModelMiddleware, scripts: Parameters<typeof scriptedCalls>[0], extra: { prompt?: string; abortSignal?: AbortSignal; onPart?: (part: { type: string }, upstream: ReturnType<typeof scriptedCalls>) => void } = {}) {
  const upstream = scriptedCalls(scripts);
  const errors: unknown[] = [];
  const result = streamText({
    model: wrapLanguageModel({ model: upstream.model, middleware: mw }),
    prompt: extra.prompt ?? 'Hello there',
    abortSignal: extra.abortSignal,
    maxRetries: 0,
    onError: ({ error }) => void errors.push(error),
  });
  const parts: Array<{ type: string; [k: string]: unknown }> = [];
  try {
    for await (const part of result.fullStream) {
      parts.push(part as never);
      extra.onPart?.(part, upstream);
    }
  } catch (error) {
    errors.push(error);
  }
  const text = parts.filter((p) => p.type === 'text-delta').map((p) => p.text as string).join('');
  const finish = parts.find((p) => p.type === 'finish') as { finishReason?: string; providerMetadata?: Record<string, any> } | undefined;
  const metadata = (finish ? (await result.providerMetadata)?.qwen3guard : undefined) as Record<string, any> | undefined;
  return { text, parts, finishReason: finish?.finishReason, metadata, upstream, errors };
}

/** The partial answer a continuation request quotes. */
function quoted(call: ReturnType<typeof scriptedCalls>['calls'][number]): string {
  const last = call.options.prompt.at(-1)!;
  const text = last.role === 'user' ? (last.content[0] as { text: string }).text : '';
  return /<response>\n([\s\S]*)\n<\/response>/.exec(text)?.[1] ?? '';
}

const lastUserText = (call: ReturnType<typeof scriptedCalls>['calls'][number]) => {
  const user = call.options.prompt.findLast((m) => m.role === 'user')!;
  return (user.content[0] as { text: string }).text;
};

describe.each(GUARD_KINDS)('with the %s guard', (kind) => {
  beforeAll(async () => {
    under = await plantedGuardOf(kind, { maxSessions: 2 });
    guard = under.guard;
  });
  afterAll(() => under.close());

  describe('the continue action', () => {
    it('rolls back to the released text and continues in the same stream, without evaluating the conversation again', async () => {
      // A long, unique prompt: evaluating it again would show in the guard's counters.
      const prompt = `Tell me about kitchen chemistry. ${'Baking soda and vinegar make a fizzy foam in a glass. '.repeat(20)}[run 1]`;
      const infos: InterventionInfo[] = [];
      const counters: Record<string, number> = {};
      const mw = middleware({
        onIntervention: (info) => {
          infos.push(info);
          counters.atRollback = guard.stats.evaluatedTokens;
        },
        onResponseVerdict: () => (counters.atEnd = guard.stats.evaluatedTokens),
      });
      counters.before = guard.stats.evaluatedTokens;
      const { text, parts, finishReason, metadata, upstream } = await run(mw, [slow(BOMB), { answer: split(SORRY, 5) }], { prompt });

      expect(upstream.calls).toHaveLength(2);
      const partial = quoted(upstream.calls[1]);
      // The default hold-back (6 tokens) also took back the lead-in "these to make a".
      expect(partial).toBe('Sure. Mix');
      expect(text).toBe(`${partial} ${SORRY}`);
      expect(JSON.stringify(parts)).not.toMatch(/bomb|these to make/);
      expect(finishReason).toBe('stop');
      // One text block, continued: opened and closed once.
      expect(parts.filter((p) => p.type === 'text-start')).toHaveLength(1);
      expect(parts.filter((p) => p.type === 'text-end')).toHaveLength(1);
      expect(upstream.calls[0].wasCancelled).toBe(true);
      // The second call: the conversation, then the intervention quoting the partial answer.
      expect(JSON.stringify(upstream.calls[1].options.prompt[0])).toContain('[run 1]');
      expect(lastUserText(upstream.calls[1]).startsWith(DEFAULT_INTERVENTION)).toBe(true);
      expect(metadata).toMatchObject({ action: 'continue', response: { riskLevel: 'Safe' }, intervention: { attempts: 1, outcome: 'continued' } });
      expect(metadata!.intervention.tokensDiscarded).toBeGreaterThan(4);
      expect(metadata!.intervention.extraTokens).toBe(metadata!.intervention.tokensDiscarded);
      expect(metadata!.intervention.extraMs).toBeGreaterThan(0);
      expect(infos).toMatchObject([{ attempt: 1, next: 'continue', riskLevel: 'Unsafe', category: 'Violent', part: 'answer', keptChars: partial.length }]);
      expect(infos[0].tokensDiscarded).toBe(metadata!.intervention.tokensDiscarded);

      // The guard went on from the released text: after the rollback it evaluated the continuation (and the
      // closing tokens), not the long conversation again.
      const promptTokens = under.engine.tokenizeText(prompt).length;
      const continuationTokens = under.engine.tokenizeText(` ${SORRY}`).length;
      expect(counters.atRollback - counters.before).toBeGreaterThan(promptTokens);
      expect(counters.atEnd - counters.atRollback).toBeGreaterThanOrEqual(continuationTokens);
      expect(counters.atEnd - counters.atRollback).toBeLessThanOrEqual(continuationTokens + 4);
    });

    it('keeps the lead-in with holdBack 0 (only the flagged span is dropped)', async () => {
      const { text, upstream } = await run(middleware({ response: { holdBack: 0 } }), [{ answer: split(BOMB, 4) }, { answer: split(SORRY, 5) }]);
      expect(quoted(upstream.calls[1])).toBe('Sure. Mix these to make a');
      expect(text).toBe(`Sure. Mix these to make a ${SORRY}`);
    });

    it('falls back to the replacement once every attempt was unsafe', async () => {
      const infos: InterventionInfo[] = [];
      const { text, parts, finishReason, metadata, upstream } = await run(middleware({ response: { attempts: 2 }, onIntervention: (i) => infos.push(i) }), [
        slow(BOMB),
        slow(UNSAFE_AGAIN),
      ]);
      expect(upstream.calls).toHaveLength(3);
      expect(upstream.calls.every((c) => c.wasCancelled)).toBe(true);
      // Each attempt quotes what the client saw before it.
      expect(text.startsWith(quoted(upstream.calls[2]))).toBe(true);
      expect(quoted(upstream.calls[2]).startsWith(quoted(upstream.calls[1]))).toBe(true);
      expect(quoted(upstream.calls[2])).toBe(`${quoted(upstream.calls[1])} ...oh, sorry`);
      // The last attempt also got its safe start out before its flag; then the replacement.
      expect(text).toBe(`${quoted(upstream.calls[2])} ...oh, sorry\n\n${REPLACEMENT}`);
      expect(JSON.stringify(parts)).not.toContain('bomb');
      expect(finishReason).toBe('content-filter');
      expect(metadata).toMatchObject({ action: 'rewrite', intervention: { attempts: 2, outcome: 'fallback-rewrite' } });
      expect(infos.map((i) => [i.attempt, i.next])).toEqual([
        [1, 'continue'],
        [2, 'continue'],
        [3, 'rewrite'],
      ]);
    });

    it('falls back to abort: the released text, then the end', async () => {
      const { text, finishReason, metadata, upstream } = await run(middleware({ response: { attempts: 1, fallback: 'abort' } }), [{ answer: split(BOMB, 4) }, { answer: split(UNSAFE_AGAIN, 3) }]);
      expect(upstream.calls).toHaveLength(2);
      expect(text).not.toContain('bomb');
      expect(text).not.toContain(REPLACEMENT);
      // What the hold-back let out of the unsafe continuation before its flag, then nothing.
      expect(text).toBe(`${quoted(upstream.calls[1])} ...oh, sorry`);
      expect(finishReason).toBe('content-filter');
      expect(metadata).toMatchObject({ action: 'abort', intervention: { attempts: 1, outcome: 'fallback-abort' } });
    });

    it("reports 'aborted' when another action stops a continuation", async () => {
      const { text, finishReason, metadata, upstream } = await run(middleware({ response: { categories: { PII: 'abort' } } }), [
        slow(BOMB),
        { answer: split('...oh, sorry. Your password is hunter2, by the way.', 4) },
      ]);
      expect(upstream.calls).toHaveLength(2);
      expect(text).not.toMatch(/bomb|password/);
      expect(finishReason).toBe('content-filter');
      expect(metadata).toMatchObject({ action: 'abort', intervention: { attempts: 1, outcome: 'aborted' } });
    });

    it('an upstream error during an attempt errors the stream, as a first call would', async () => {
      const refused = await run(middleware(), [{ answer: split(BOMB, 4) }, new Error('continuation refused')]);
      expect(refused.upstream.calls).toHaveLength(2);
      expect(refused.errors.map(String).join()).toMatch(/continuation refused/);
      expect(refused.finishReason).toBeUndefined();
      expect(JSON.stringify(refused.parts)).not.toContain('bomb');

      const broken = await run(middleware(), [{ answer: split(BOMB, 4) }, { answer: split(SORRY, 5), failAfter: 4 }]);
      expect(broken.errors.map(String).join()).toMatch(/upstream failed mid-stream/);
      expect(broken.finishReason).toBeUndefined();
    });

    it("a client abort during an attempt reaches that attempt's upstream", async () => {
      const client = new AbortController();
      const { upstream } = await run(middleware(), [{ answer: split(BOMB, 4) }, { answer: split(SORRY.repeat(20), 3), delayMs: 5 }], {
        abortSignal: client.signal,
        onPart: (part, up) => {
          if (part.type === 'text-delta' && up.calls.length === 2 && up.calls[1].pulled > 5) client.abort(new Error('client went away'));
        },
      });
      expect(upstream.calls).toHaveLength(2);
      await upstream.calls[1].cancelled;
      expect(upstream.calls[1].options.abortSignal?.aborted).toBe(true);
      expect(upstream.calls[1].pulled).toBeLessThan(100);
      // The session was freed: another request gets the guard.
      const next = await run(middleware(), [{ answer: ['All fine.'] }]);
      expect(next.text).toBe('All fine.');
    });

    it('continues a trailing assistant message with continuation assistant-prefix', async () => {
      const intervention = (span: { category: string | null }) => `Steer clear of ${span.category} content.`;
      const { text, upstream } = await run(middleware({ response: { continuation: 'assistant-prefix', intervention } }), [{ answer: split(BOMB, 4) }, { answer: split(' flour and sugar.', 3) }]);
      const prompt = upstream.calls[1].options.prompt;
      expect(prompt.at(-2)).toEqual({ role: 'user', content: [{ type: 'text', text: 'Steer clear of Violent content.' }] });
      expect(prompt.at(-1)).toEqual({ role: 'assistant', content: [{ type: 'text', text: 'Sure. Mix' }] });
      expect(text).toBe('Sure. Mix flour and sugar.');
    });

    it('strips a quoted continuation that starts by repeating the released text', async () => {
      const { text, metadata } = await run(middleware(), [{ answer: split(BOMB, 4) }, { answer: split('Sure. Mix flour and sugar for a cake.', 4) }]);
      expect(text).toBe('Sure. Mix flour and sugar for a cake.');
      expect(metadata!.intervention.extraTokens).toBeGreaterThan(metadata!.intervention.tokensDiscarded);
    });

    it('moderates reasoning and tool calls of a continuation as in a first answer', async () => {
      const call: Script['after'] = [{ type: 'tool-call', toolCallId: 'c1', toolName: 'recipes', input: '{"dish":"cake"}' }];
      const { parts, text, finishReason } = await run(middleware(), [{ answer: split(BOMB, 4) }, { reasoning: split('Better to suggest a cake.', 4), answer: split(SORRY, 5), after: call, finishReason: 'tool-calls' }]);
      expect(parts.filter((p) => p.type === 'reasoning-delta').map((p) => p.text).join('')).toBe('Better to suggest a cake.');
      expect(parts.filter((p) => p.type === 'tool-call')).toHaveLength(1);
      expect(text).toBe(`Sure. Mix ${SORRY}`);
      expect(finishReason).toBe('tool-calls');
      const unsafeThought = await run(middleware(), [{ answer: split(BOMB, 4) }, { reasoning: split('The bomb needs a fuse, I will explain it.', 4), answer: ['Done.'] }, { answer: split(SORRY, 5) }]);
      expect(unsafeThought.upstream.calls).toHaveLength(3);
      expect(JSON.stringify(unsafeThought.parts)).not.toContain('bomb');
      expect(unsafeThought.metadata!.intervention).toMatchObject({ attempts: 2, outcome: 'continued' });
    });
  });
});

describe('continue options', () => {
  beforeAll(async () => {
    under = await plantedGuardOf('local');
    guard = under.guard;
  });
  afterAll(() => under.close());

  it.each([
    [{ prompt: { actions: { Unsafe: 'continue' } } }, /prompt\.actions\.Unsafe: "continue" applies to responses only/],
    [{ response: { actions: { Unsafe: 'continue' }, release: 'optimistic' } }, /response\.release: the 'continue' action needs release 'hold'/],
    [{ response: { attempts: 0 } }, /response\.attempts/],
    [{ response: { attempts: 11 } }, /response\.attempts/],
    [{ response: { holdBack: 257 } }, /response\.holdBack/],
    [{ response: { fallback: 'continue' } }, /response\.fallback.*"rewrite"\|"abort"/],
    [{ response: { continuation: 'prefill' } }, /response\.continuation.*"quote"\|"assistant-prefix"/],
    [{ response: { intervention: 42 } }, /response\.intervention: expected a string or a function/],
    [{ onIntervention: 'yes' }, /onIntervention must be a function/],
  ])('rejects %j when the middleware is created', (options, message) => {
    expect(() => qwen3GuardMiddleware({ guard, ...options } as never)).toThrow(message);
  });

  it('refuses per request an intervention function, and optimistic release with continue', async () => {
    for (const [response, message] of [
      [{ intervention: () => 'x' }, /providerOptions\.qwen3guard\.response\.intervention: a function cannot be passed per request/],
      [{ release: 'optimistic' }, /the 'continue' action needs release 'hold'/],
    ] as const) {
      const upstream = scriptedCalls([{ answer: ['Hello.'] }]);
      const errors: unknown[] = [];
      const result = streamText({ model: wrapLanguageModel({ model: upstream.model, middleware: middleware() }), prompt: 'Hi', providerOptions: { qwen3guard: { response } as never }, onError: ({ error }) => void errors.push(error) });
      await result.consumeStream();
      expect(String(errors[0])).toMatch(message);
      expect(upstream.calls).toHaveLength(0);
    }
  });

  it('generateText refuses continue with a clear error, and works with another action per request', async () => {
    const upstream = scriptedCalls([{ answer: [BOMB] }]);
    const model = wrapLanguageModel({ model: upstream.model, middleware: middleware() });
    await expect(generateText({ model, prompt: 'Hi', maxRetries: 0 })).rejects.toThrow(/'continue' action needs a stream \(streamText\)/);
    const result = await generateText({ model, prompt: 'Hi', maxRetries: 0, providerOptions: { qwen3guard: { response: { actions: { Unsafe: 'rewrite' } } } } }).catch((e) => e);
    // The scripted model has no doGenerate: what matters is that the middleware let the call through.
    expect(String(result)).not.toMatch(/'continue' action/);
  });
});
