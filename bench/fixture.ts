import { copyFile, readFile, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { OutputType } from '../src/convert/ggml-types.js';
import type { LocalGuard } from '../src/engine/guard.js';
import { cachedDir, convertedModel, FIXTURE_ROOT, singleTokenIds } from '../test/fixtures/cache.js';
import { QWEN3_0_6B, randomTensors, TOKENIZER_DIR, writeCheckpoint } from '../test/fixtures/checkpoint.js';
import { GEN_CHAT_TEMPLATE, genConfigJson } from '../test/fixtures/gen-checkpoint.js';
import { convertedGen } from '../test/fixtures/gen-models.js';
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

/**
 * A Qwen3Guard-Gen with the same 0.6B shapes and backbone weights as `benchModel` (the Gen checkpoint links the
 * Stream one's safetensors: the converter reads only the backbone for Gen), q8_0.
 */
export async function genBenchModel(): Promise<string> {
  await benchModel();
  const streamCheckpoint = join(FIXTURE_ROOT, 'qwen3guard-0.6b-shape-random-v1');
  const genCheckpoint = await cachedDir('qwen3guard-gen-0.6b-shape-random-v1', async (dir) => {
    await writeFile(join(dir, 'config.json'), JSON.stringify(genConfigJson(QWEN3_0_6B), null, 2));
    await copyFile(join(TOKENIZER_DIR, 'tokenizer.json'), join(dir, 'tokenizer.json'));
    const config = JSON.parse(await readFile(join(TOKENIZER_DIR, 'tokenizer_config.json'), 'utf8'));
    await writeFile(join(dir, 'tokenizer_config.json'), JSON.stringify({ ...config, chat_template: GEN_CHAT_TEMPLATE }));
    await symlink(join(streamCheckpoint, 'model.safetensors'), join(dir, 'model.safetensors'));
  });
  return convertedGen(genCheckpoint, 'q8_0');
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

/**
 * Reads a streamed answer to its end: its text, the time from `start` to its first delta, and for each delta the
 * text length received so far and when (what `releaseLags` takes).
 */
export async function readTimed(stream: AsyncIterable<string>, start: number): Promise<{ text: string; ttft: number; arrivals: Array<[number, number]> }> {
  let text = '';
  let ttft = -1;
  const arrivals: Array<[number, number]> = [];
  for await (const delta of stream) {
    const now = performance.now();
    if (ttft < 0) ttft = now - start;
    text += delta;
    arrivals.push([text.length, now]);
  }
  return { text, ttft, arrivals };
}

/**
 * The release lag of each upstream delta: from the server writing it (`deltaTimes`) to the client holding all of
 * it (`arrivals`: [text length received so far, time] per client delta).
 */
export function releaseLags(deltas: readonly string[], arrivals: ReadonlyArray<readonly [number, number]>, deltaTimes: readonly number[]): number[] {
  const lags: number[] = [];
  let end = 0;
  let a = 0;
  deltas.forEach((d, k) => {
    end += d.length;
    while (a < arrivals.length && arrivals[a][0] < end) a++;
    if (a < arrivals.length) lags.push(arrivals[a][1] - deltaTimes[k]);
  });
  return lags;
}
