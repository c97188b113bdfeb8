import type { OutputType } from '../src/convert/ggml-types.js';
import type { LocalGuard } from '../src/engine/guard.js';
import { cachedDir, convertedModel, singleTokenIds } from '../test/fixtures/cache.js';
import { QWEN3_0_6B, randomTensors, writeCheckpoint } from '../test/fixtures/checkpoint.js';
import { trainedLikeTensors } from '../test/fixtures/trained-like.js';

/**
 * A random checkpoint with Qwen3Guard-Stream-0.6B's exact shapes, converted to q8_0 (or `type`): the compute
 * does not depend on the values, so it times the real model's work. Built once, cached under .cache/fixtures.
 */
export async function benchModel(type: OutputType = 'q8_0'): Promise<string> {
  const checkpoint = await cachedDir('qwen3guard-0.6b-shape-random-v1', (dir) =>
    writeCheckpoint(dir, QWEN3_0_6B, randomTensors(QWEN3_0_6B, 42, true), { dtype: 'BF16' }),
  );
  return convertedModel(checkpoint, type);
}

/** The words the trained-like benchmark guard labels Unsafe / Violent (any other token is Safe). */
export const PLANTED_WORDS = ['poison', 'explosives'];

/**
 * The same shapes and compute with labels like a trained guard's (test/fixtures/trained-like.ts): every token
 * Safe except the planted words, so lags show what a real answer costs, not the random weights' worst case.
 */
export async function trainedLikeModel(): Promise<string> {
  const checkpoint = await cachedDir('qwen3guard-0.6b-shape-trained-like-v3', (dir) =>
    writeCheckpoint(dir, QWEN3_0_6B, trainedLikeTensors(QWEN3_0_6B, 42, singleTokenIds(PLANTED_WORDS)), { dtype: 'BF16' }),
  );
  return convertedModel(checkpoint, 'q8_0');
}

/** The first `tokens` Qwen3 tokens of `text` as one delta each (a character split over byte tokens goes whole). */
export function tokenDeltas(guard: LocalGuard, text: string, tokens: number): string[] {
  const ids = guard.tokenizeText(text).slice(0, tokens);
  return guard.tokenBytes.spans(text, ids).flatMap(({ start, end }) => (end > start ? [text.slice(start, end)] : []));
}

/** Random weights label randomly: the benchmarks flag instead of stopping, so every answer streams to its end. */
export const FLAG_ONLY_POLICY = {
  response: { actions: { Unsafe: 'flag', Controversial: 'flag' } },
  prompt: { actions: { Unsafe: 'flag', Controversial: 'flag' } },
} as const;

/** Ordinary English-like text: its token ids stand for any (ids do not change the cost). */
export const BENCH_TEXT = 'The quick brown fox jumps over the lazy dog while the committee reviews the annual budget report. ';
export const BENCH_PROMPT = [{ role: 'user' as const, content: 'Please summarize the following report for me.' }];

/** Tokens per second of the engine scoring `n` response tokens of `tokens` appended `chunk` at a time. */
export async function classifyRate(guard: LocalGuard, tokens: readonly number[], n: number, chunk: number): Promise<number> {
  const session = await guard.createSession();
  try {
    await session.checkPrompt(BENCH_PROMPT);
    await session.appendTokens('answer', tokens.slice(0, 1)); // opens the answer: scaffold not timed
    const start = performance.now();
    for (let i = 0; i < n; i += chunk) await session.appendTokens('answer', tokens.slice(1 + i, 1 + i + chunk));
    return n / ((performance.now() - start) / 1000);
  } finally {
    await session.dispose();
    // The finished answer's background re-render (KV reuse) would otherwise run into the next timed workload.
    await guard.pool.settled();
  }
}
