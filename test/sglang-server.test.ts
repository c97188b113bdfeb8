import { join } from 'node:path';
import { getLlama, LlamaLogLevel, type LlamaModel } from 'node-llama-cpp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IM_END, renderConversation } from '../src/format/template.js';
import { HEADS_FILE, TOKENIZER_FILE } from '../src/convert/sglang-heads-format.js';
import { applyHead, readHeadsFile, type SglangHeads } from '../src/sglang/heads.js';
import { positionStates, SglangAnswerError, type PositionedStates } from '../src/sglang/positions.js';
import { CONVERSATIONS } from './fixtures/corpus.js';
import { exportTinyForSglang, type ExportedCheckpoint } from './fixtures/sglang-export.js';
import { requestStates, startSglangServer, type SglangServer } from './fixtures/sglang-server.js';
import { Qwen3GuardReference, type ReferenceOutput } from './reference/qwen3guard-reference.js';

/**
 * The SGLang path end to end on the fixture server: ids from the export's tokenizer GGUF, states from the
 * server (float32 values of the float64 reference), labels from the export's heads file; the reference is what
 * they must equal, token by token, whatever the server's cache did.
 */
let exported: ExportedCheckpoint;
let checkpoint: string;
let heads: SglangHeads;
let tokenizer: LlamaModel;
let reference: Qwen3GuardReference;
let server: SglangServer;
beforeAll(async () => {
  exported = await exportTinyForSglang();
  checkpoint = exported.checkpoint;
  heads = await readHeadsFile(join(exported.served, HEADS_FILE));
  const llama = await getLlama({ gpu: false, build: 'never', logLevel: LlamaLogLevel.disabled });
  tokenizer = await llama.loadModel({ modelPath: join(exported.served, TOKENIZER_FILE), vocabOnly: true });
  reference = new Qwen3GuardReference(checkpoint);
  server = await startSglangServer(checkpoint);
});
afterAll(async () => {
  await server?.close();
  await tokenizer?.dispose();
  await exported?.remove();
});

/** A conversation and its answer rendered as the next turn's template gives it, and where its prompt verdict is read. */
function rendered(conversation: (typeof CONVERSATIONS)[number]) {
  const { pieces, verdictPiece } = renderConversation([...conversation.messages, { role: 'assistant', content: conversation.answer, reasoning: conversation.reasoning }]);
  const tokens = (slice: typeof pieces) => slice.flatMap((p) => ('special' in p ? tokenizer.tokenize(p.special, true) : tokenizer.tokenize(p.text.normalize('NFC'), false)));
  const verdict = tokens(pieces.slice(0, verdictPiece)).length;
  const ids = tokens(pieces);
  expect(ids[verdict]).toBe(tokenizer.tokenize(IM_END, true)[0]);
  return { ids, verdict };
}

function expectReference(states: PositionedStates, ref: ReferenceOutput[], from: number, to: number, path: 'response' | 'query') {
  for (let p = from; p < to; p++) {
    const head = applyHead(heads, path, states.at(p));
    expect(head.riskLevel, `${path} at ${p}`).toBe(ref[p][path].risk);
    if (head.riskLevel !== 'Safe') expect(head.category).toBe(ref[p][path].category);
    expect(Math.abs(head.probabilities.Unsafe - ref[p][path].riskProbabilities[1])).toBeLessThan(1e-5);
  }
}

describe('labels through the fixture SGLang server', () => {
  it('equal the float reference token by token across cache hits, misses and evictions', async () => {
    let scored = 0;
    const before = server.requests.length;
    for (const [n, conversation] of CONVERSATIONS.entries()) {
      const { ids, verdict } = rendered(conversation);
      const ref = reference.run(ids);
      // The prompt check ends at the verdict's <|im_end|>: the last position, which a cache never serves.
      const prompt = await requestStates(server.url, ids.slice(0, verdict + 1), verdict, heads.hiddenSize);
      expectReference(prompt, ref, verdict, verdict + 1, 'query');
      // The response streams in: each request the whole sequence so far, states wanted for its new tokens.
      let end = verdict + 1;
      for (let step = 0; end < ids.length; step++) {
        const next = Math.min(ids.length, end + 5 + (step % 7));
        // A partial eviction: the server recomputes more than the new tokens. Then everything: a full recompute.
        const evicted = step === 2 ? end - 4 : step === 4 && n % 2 === 0 ? 0 : undefined;
        if (evicted !== undefined) server.evict(evicted);
        const states = await requestStates(server.url, ids.slice(0, next), end, heads.hiddenSize);
        expect(server.requests.at(-1)).toMatchObject({ cachedTokens: evicted ?? end, states: next - (evicted ?? end) });
        expectReference(states, ref, end, next, 'response');
        scored += next - end;
        end = next;
      }
    }
    expect(scored).toBeGreaterThan(150);
    const cached = server.requests.slice(before).map((r) => r.cachedTokens!);
    expect(cached.filter((c) => c === 0).length).toBeGreaterThan(1); // misses
    expect(cached.filter((c) => c > 20).length).toBeGreaterThan(CONVERSATIONS.length * 2); // hits
  });

  it('recovers the states of cached positions with a new cache_salt (a retried request the server already ran)', async () => {
    const { ids, verdict } = rendered(CONVERSATIONS[0]);
    const ref = reference.run(ids);
    const end = verdict + 12;
    await requestStates(server.url, ids.slice(0, end), verdict, heads.hiddenSize);
    // The same request again: the cache serves all but its last position.
    const again = requestStates(server.url, ids.slice(0, end), verdict + 1, heads.hiddenSize);
    await expect(again).rejects.toThrow(SglangAnswerError);
    await expect(again).rejects.toMatchObject({ problem: 'cached' });
    expect(server.requests.at(-1)!.cachedTokens).toBe(end - 1);
    const salted = await requestStates(server.url, ids.slice(0, end), verdict + 1, heads.hiddenSize, { cacheSalt: 'retry-1' });
    expect(server.requests.at(-1)!.cachedTokens).toBe(0);
    expectReference(salted, ref, verdict + 1, end, 'response');
  });

  it('ignores decode steps: an answer of several tokens has the same input states', async () => {
    const { ids, verdict } = rendered(CONVERSATIONS[3]);
    const ref = reference.run(ids);
    const body = { input_ids: ids.slice(0, verdict + 6), sampling_params: { max_new_tokens: 3 }, return_hidden_states: true, cache_salt: 'decode' };
    const answer = (await (await fetch(`${server.url}/generate`, { method: 'POST', body: JSON.stringify(body) })).json()) as { output_ids: number[]; meta_info: Record<string, unknown> };
    expect(answer.meta_info).toMatchObject({ cached_tokens: 0, completion_tokens: 3, prompt_tokens: verdict + 6, finish_reason: { type: 'length', length: 3 } });
    expect(answer.meta_info.hidden_states).toHaveLength(3); // the prefill, then two decode steps
    expect(answer.output_ids).toHaveLength(3);
    const states = positionStates({ inputLength: verdict + 6, from: 0 }, { cachedTokens: 0, hiddenStates: answer.meta_info.hidden_states }, heads.hiddenSize);
    expectReference(states, ref, 0, verdict + 6, 'response');
  });
});

describe('the fixture server fails as a server does', () => {
  const ids = () => rendered(CONVERSATIONS[1]).ids.slice(0, 40);

  it('a 500, a hang, a closed connection, a body that is not JSON', async () => {
    server.set({ fail: { status: 500, times: 1 } });
    await expect(requestStates(server.url, ids(), 0, heads.hiddenSize)).rejects.toThrow('/generate answered 500: {"error":{"message":"injected failure 500"}}');
    server.set({ hang: true });
    await expect(requestStates(server.url, ids(), 0, heads.hiddenSize, { signal: AbortSignal.timeout(300) })).rejects.toThrow(/aborted due to timeout/);
    server.set({ close: true });
    await expect(requestStates(server.url, ids(), 0, heads.hiddenSize)).rejects.toThrow(/fetch failed/);
    server.set({ malformed: true });
    await expect(requestStates(server.url, ids(), 0, heads.hiddenSize)).rejects.toThrow(SyntaxError);
    server.set({});
    await expect(requestStates(server.url, ids(), 0, heads.hiddenSize, { cacheSalt: 'fresh' })).resolves.toBeDefined();
  });

  it('a short answer and a chunked prefill are refused, never shifted', async () => {
    server.set({ shortBy: 1 });
    await expect(requestStates(server.url, ids(), 0, heads.hiddenSize, { cacheSalt: 'short' })).rejects.toMatchObject({ problem: 'short' });
    server.set({});
    const chunked = await startSglangServer(checkpoint, { chunkedPrefillSize: 16 });
    try {
      await expect(requestStates(chunked.url, ids(), 0, heads.hiddenSize)).rejects.toMatchObject({ problem: 'short' });
      expect(chunked.requests[0]).toMatchObject({ cachedTokens: 0, states: 8 }); // 40 = 16 + 16 + 8: the last chunk
      // Within one chunk nothing is lost.
      const small = await requestStates(chunked.url, ids().slice(0, 12), 0, heads.hiddenSize, { cacheSalt: 'small' });
      expect(small.start).toBe(0);
    } finally {
      await chunked.close();
    }
  });

  it('refuses return_hidden_states when not launched with --enable-return-hidden-states, and a request without ids', async () => {
    const plain = await startSglangServer(checkpoint, { hiddenStates: false });
    try {
      await expect(requestStates(plain.url, ids(), 0, heads.hiddenSize)).rejects.toThrow(/answered 400: .*The server is not configured to return hidden states/);
      const response = await fetch(`${plain.url}/generate`, { method: 'POST', body: JSON.stringify({ text: 'hi' }) });
      expect(response.status).toBe(400);
    } finally {
      await plain.close();
    }
  });
});
