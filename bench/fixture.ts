import { cachedDir, convertedModel } from '../test/fixtures/cache.js';
import { QWEN3_0_6B, randomTensors, writeCheckpoint } from '../test/fixtures/checkpoint.js';

/**
 * A random checkpoint with Qwen3Guard-Stream-0.6B's exact shapes, converted to q8_0: the compute does not
 * depend on the values, so it times the real model's work. Built once, cached under .cache/fixtures.
 */
export async function benchModel(): Promise<string> {
  const checkpoint = await cachedDir('qwen3guard-0.6b-shape-random-v1', (dir) =>
    writeCheckpoint(dir, QWEN3_0_6B, randomTensors(QWEN3_0_6B, 42, true), { dtype: 'BF16' }),
  );
  return convertedModel(checkpoint, 'q8_0');
}
