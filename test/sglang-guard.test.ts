import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { TextAligner } from '../src/align/text-aligner.js';
import { GUARD_SUBDIR, HEADS_FILE, TOKENIZER_FILE } from '../src/convert/sglang-heads-format.js';
import type { LocalGuard } from '../src/engine/guard.js';
import { RESPONSE_TEMPLATE } from '../src/format/template.js';
import { GuardModelError, GuardStateError, OptionsError, Qwen3Guard, type GuardMessage, type PromptVerdict, type StreamGuard, type StreamGuardSession, type TokenVerdict } from '../src/index.js';
import type { SglangGuard } from '../src/sglang/sglang-guard.js';
import { CONVERSATIONS } from './fixtures/corpus.js';
import { randomGuard } from './fixtures/guards.js';
import { exportTinyForSglang, type ExportedCheckpoint } from './fixtures/sglang-export.js';
import { startSglangServer, type SglangServer } from './fixtures/sglang-server.js';

/**
 * Qwen3Guard.sglang against the local engine on the same checkpoint (f32 GGUF, f32 KV cache): the same calls on
 * both, and every verdict (labels, probabilities, positions, ids, offsets) and the ids sent must be the
 * engine's, whatever the fixture server's radix cache did (hits, partial and full evictions, states it served
 * that were needed).
 */
let exported: ExportedCheckpoint;
let local: LocalGuard;
let server: SglangServer;
let guard: SglangGuard;
beforeAll(async () => {
  exported = await exportTinyForSglang();
  local = await randomGuard('f32', { kvCacheType: 'f32', responseProbabilities: true });
  server = await startSglangServer(exported.checkpoint);
  guard = Qwen3Guard.sglang({ baseURL: server.url, heads: join(exported.served, GUARD_SUBDIR), timeoutMs: 60_000 });
});
afterAll(async () => {
  await guard?.dispose();
  await server?.close();
  await local?.dispose();
  await exported?.remove();
});

/** Aligned chunks of `text` streamed in deltas of `size` characters, as the middleware gives them. */
function chunks(text: string, prefix: string, size: number): string[] {
  const aligner = new TextAligner(prefix);
  const out: string[] = [];
  for (let i = 0; i < text.length; i += size) out.push(...aligner.push(text.slice(i, i + size)).map((c) => c.text));
  out.push(...aligner.flush().map((c) => c.text));
  return out.filter((t) => t.length > 0);
}

interface Run {
  prompt: PromptVerdict;
  tokens: TokenVerdict[];
  ids: readonly number[];
}

type Step = (session: StreamGuardSession, k: number) => Promise<TokenVerdict[] | void>;

/** The conversation's prompt check, its reasoning (final with the last chunk) and answer chunk by chunk, and `end`; `between` runs before each chunk. */
async function run(g: StreamGuard, conversation: (typeof CONVERSATIONS)[number], between: (k: number) => void = () => {}, extra: Step[] = []): Promise<Run> {
  const session = await g.createSession();
  try {
    const prompt = await session.checkPrompt(conversation.messages);
    const tokens: TokenVerdict[] = [];
    const steps: Step[] = [];
    const reasoning = conversation.reasoning ? chunks(conversation.reasoning, RESPONSE_TEMPLATE.reasoningPrefix, 7) : [];
    reasoning.forEach((text, i) => steps.push((s) => s.appendText('reasoning', text, { final: i === reasoning.length - 1 })));
    for (const text of chunks(conversation.answer, RESPONSE_TEMPLATE.answerPrefix, 5)) steps.push((s) => s.appendText('answer', text));
    steps.push(...extra, (s) => s.end());
    for (const [k, step] of steps.entries()) {
      between(k);
      tokens.push(...((await step(session, k)) ?? []));
    }
    const ids = (session as unknown as { tokenIds: readonly number[] }).tokenIds;
    return { prompt, tokens, ids: [...ids] };
  } finally {
    await session.dispose();
  }
}

function expectSame(sglang: Run, engine: Run): void {
  expect(sglang.ids).toEqual(engine.ids);
  expect(sglang.prompt.riskLevel).toBe(engine.prompt.riskLevel);
  expect(sglang.prompt.category).toBe(engine.prompt.category);
  for (const [level, p] of Object.entries(engine.prompt.probabilities)) expect(Math.abs(sglang.prompt.probabilities[level as 'Safe'] - p)).toBeLessThan(1e-4);
  for (const [label, p] of Object.entries(engine.prompt.categoryProbabilities)) expect(Math.abs(sglang.prompt.categoryProbabilities[label] - p)).toBeLessThan(1e-4);
  expect(sglang.tokens).toHaveLength(engine.tokens.length);
  sglang.tokens.forEach((token, i) => {
    const { probabilities, ...rest } = engine.tokens[i];
    const { probabilities: mine, ...same } = token;
    expect(same, `token ${i}`).toEqual(rest);
    for (const [level, p] of Object.entries(probabilities!)) expect(Math.abs(mine![level as 'Safe'] - p)).toBeLessThan(1e-4);
  });
}

describe('Qwen3Guard.sglang gives the local engine\'s verdicts', () => {
  it('on the parity conversations, chunk by chunk, through cache hits, partial and full evictions', async () => {
    const levels = new Set<string>();
    let compared = 0;
    for (const [n, conversation] of CONVERSATIONS.entries()) {
      const engine = await run(local, conversation);
      const before = server.requests.length;
      // A partial eviction before the third chunk (more than the new tokens recomputed), everything before the fifth.
      const sglang = await run(guard, conversation, (k) => (k === 2 ? server.evict(20) : k === 4 && n % 2 === 0 ? server.evict(0) : undefined));
      expectSame(sglang, engine);
      for (const token of sglang.tokens) levels.add(token.riskLevel);
      compared += sglang.tokens.length;
      const cached = server.requests.slice(before).map((r) => r.cachedTokens!);
      expect(cached.filter((c) => c > 20).length).toBeGreaterThan(2); // hits
      expect(cached).toContain(20); // the partial eviction
      if (n % 2 === 0) expect(cached).toContain(0); // the full one
    }
    expect(compared).toBeGreaterThan(150);
    expect(levels.size).toBe(3); // not vacuous: the random guard says all three
    expect(guard.stats.scoredTokens).toBeGreaterThanOrEqual(compared);
    expect(guard.stats.reusedTokens).toBeGreaterThan(guard.stats.evaluatedTokens); // the radix cache did most of the work
  });

  it('after a rollback, a continuation that repeats the dropped text: the cached states are recomputed (reuse capped, then a new cache salt)', async () => {
    const conversation = CONVERSATIONS[0];
    // The answer's own start: the server's cache holds these tokens, whose states are needed again.
    const again = 'Start with a pine board, cut six boards.';
    const rollback: Step = async (s) => {
      await s.rollbackTo(null);
      return s.appendText('answer', again);
    };
    const engine = await run(local, conversation, undefined, [rollback]);
    for (const ignoreLogprobCap of [false, true]) {
      const before = server.requests.length;
      server.set({ ignoreLogprobCap });
      const sglang = await run(guard, conversation, undefined, [rollback]);
      server.set({});
      expectSame(sglang, engine);
      const retried = server.requests.slice(before).filter((r) => r.body?.return_logprob === true);
      expect(retried.length).toBeGreaterThan(0);
      const salted = server.requests.slice(before).filter((r) => typeof r.body?.cache_salt === 'string');
      // A server that caps the reuse needs no salt; one that does not gets a full recompute.
      expect(salted.length > 0).toBe(ignoreLogprobCap);
      for (const r of salted) expect(r.cachedTokens).toBe(0);
    }
  });

  it('with a known prompt verdict sends nothing for the prompt: the first append carries the conversation', async () => {
    const conversation = CONVERSATIONS[1];
    const engine = await run(local, conversation);
    const session = await guard.createSession({ conversationId: 'conv-42' });
    const before = server.requests.length;
    expect(await session.checkPrompt(conversation.messages, { knownVerdict: engine.prompt })).toBe(engine.prompt);
    expect(server.requests.length).toBe(before);
    const tokens = await session.appendText('reasoning', conversation.reasoning!, { final: true });
    expect(tokens.map((t) => [t.position, t.id, t.riskLevel])).toEqual(engine.tokens.filter((t) => t.part === 'reasoning').map((t) => [t.position, t.id, t.riskLevel]));
    expect(server.requests.at(-1)!.headers['x-smg-routing-key']).toBe('conv-42');
    await session.dispose();
  });
});

describe('sessions and the guard', () => {
  const messages: GuardMessage[] = [{ role: 'user', content: 'Hello, how do I build a birdhouse?' }];

  it('route every request of a conversation by one key: the app\'s id, else a keyed hash of its opening', async () => {
    const keys: Array<string | undefined> = [];
    for (const conversationId of [undefined, undefined, 'app-id-1']) {
      const session = await guard.createSession({ conversationId });
      await session.checkPrompt(messages);
      await session.appendText('answer', 'Start with');
      await session.end();
      const mine = server.requests.slice(-3).map((r) => r.headers['x-smg-routing-key'] as string);
      expect(new Set(mine).size).toBe(1);
      keys.push(mine[0]);
      await session.dispose();
    }
    expect(keys[0]).toMatch(/^h\./);
    expect(keys[1]).toBe(keys[0]);
    expect(keys[2]).toBe('app-id-1');
  });

  it('sends a long prompt without states first: the states request recomputes the verdict\'s position only', async () => {
    const long: GuardMessage[] = [{ role: 'user', content: `Hello, how do I build a birdhouse? ${'I have pine boards, nails and a saw. '.repeat(12)}` }];
    const engine = await local.createSession();
    const expected = await engine.checkPrompt(long);
    await engine.dispose();
    const session = await guard.createSession();
    const before = server.requests.length;
    const verdict = await session.checkPrompt(long);
    const [warm, states] = server.requests.slice(before);
    expect(server.requests.length - before).toBe(2);
    expect(warm.body!.return_hidden_states).toBe(false);
    const length = (warm.body!.input_ids as number[]).length;
    expect(length).toBeGreaterThan(64);
    expect(states).toMatchObject({ cachedTokens: length - 1, states: 1 });
    expect(verdict.riskLevel).toBe(expected.riskLevel);
    for (const [level, p] of Object.entries(expected.probabilities)) expect(Math.abs(verdict.probabilities[level as 'Safe'] - p)).toBeLessThan(1e-4);
    expect(session.counts).toMatchObject({ evaluatedTokens: length - warm.cachedTokens! + 1, reusedTokens: warm.cachedTokens });
    await session.dispose();
  });

  it('has the heads file\'s labels, counts tokens, refuses calls out of turn, and takes no speculation', async () => {
    const info = await guard.ready();
    expect(info).toEqual({ model: 'Qwen3Guard-Stream', prompt: local.info.prompt, response: local.info.response, speculate: false });
    expect(guard.kind).toBe('sglang');
    const session = await guard.createSession();
    expect(await session.countTokens('Hello <|im_end|> world')).toBe(local.tokenizeText('Hello <|im_end|> world').length);
    await expect(session.appendText('answer', 'x')).rejects.toThrow(GuardStateError);
    await session.checkPrompt(messages);
    const before = server.requests.length;
    await session.speculate('answer', 'Start with a pine');
    expect(server.requests.length).toBe(before);
    await session.appendText('answer', 'Start');
    await expect(session.appendText('reasoning', 'late')).rejects.toThrow(/the session is in its answer phase/);
    await expect(session.rollbackTo({ index: 99, position: 999 } as TokenVerdict)).rejects.toThrow(/not a scored token/);
    await session.dispose();
    await expect(session.appendText('answer', 'x')).rejects.toThrow(/disposed/);
  });

  it('validates its options at construction and finds the export\'s files from either folder', async () => {
    expect(() => Qwen3Guard.sglang({} as never)).toThrow(OptionsError);
    expect(() => Qwen3Guard.sglang({ baseURL: server.url, heads: exported.served } as never)).toThrow(/timeoutMs must be given/);
    expect(() => Qwen3Guard.sglang({ baseURL: 'gpu1:30000', heads: exported.served, timeoutMs: 1000 })).toThrow(/baseURL must be an http\(s\) URL/);
    expect(() => Qwen3Guard.sglang({ baseURL: server.url, heads: exported.served, timeoutMs: 1000, speculate: true } as never)).toThrow(/speculate/);
    for (const heads of [exported.served, { heads: join(exported.served, HEADS_FILE), tokenizer: join(exported.served, TOKENIZER_FILE) }]) {
      const other = Qwen3Guard.sglang({ baseURL: server.url, heads, timeoutMs: 1000 });
      expect(other.info).toBeNull();
      expect((await other.ready()).response).toEqual(local.info.response);
      await other.dispose();
    }
    const wrong = Qwen3Guard.sglang({ baseURL: server.url, heads: exported.checkpoint, timeoutMs: 1000 });
    await expect(wrong.ready()).rejects.toThrow(GuardModelError);
    await expect(wrong.ready()).rejects.toThrow(/holds neither heads.safetensors/);
  });

  it('is refused by the Edge build, which has no tokenizer for it', async () => {
    vi.resetModules();
    const edge = await import('../src/edge.js');
    expect(() => edge.Qwen3Guard.sglang({ baseURL: server.url, heads: exported.served, timeoutMs: 1000 })).toThrow(/needs Node\.js.*Edge/);
    vi.resetModules();
  });
});
