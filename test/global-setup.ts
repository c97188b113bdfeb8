import { convertedModel, plantedCheckpoint, tinyRandomCheckpoint } from './fixtures/cache.js';

/** Builds the shared fixtures once per run (cached under .cache/fixtures across runs). */
export default async function setup(): Promise<void> {
  const random = await tinyRandomCheckpoint();
  const planted = await plantedCheckpoint();
  for (const type of ['f32', 'f16', 'q8_0'] as const) await convertedModel(random, type);
  await convertedModel(planted, 'q8_0');
  await convertedModel(planted, 'f32');
}
