/**
 * npm run bench:reward — rewards per second at batch 1, 8 and 64, in one run: (1) `safetyReward` in the process
 * with a 0.6B-shaped random q8_0 Gen (the model's cost: thinking and answer judged, a category list for non-Safe
 * verdicts), and (2) through `qwen3guard serve`'s `POST /get_reward` in OpenRLHF's shape, one request per batch,
 * with the tiny quiet planted Gen (a random model's verdict tokens are not among a served top-k, so the remote
 * path needs a Gen that answers like a trained one; the tiny model leaves the endpoint's own cost: HTTP, JSON,
 * the in-process completions calls, batching into the Gen model's sequences).
 */
import { cpus } from 'node:os';
import { Qwen3GuardGen, safetyReward } from '../src/index.js';
import { quietPlantedGenPath } from '../test/fixtures/gen-models.js';
import { startServe } from '../test/fixtures/serve-process.js';
import { genBenchModel } from './fixture.js';

const BATCHES = [1, 8, 64];
const gpu = process.env.BENCH_GPU === '1' ? 'auto' : false;
const prompt = (i: number) => `Question ${i}: how do rivers shape their valleys over time?`;
const response = (i: number) => `<think>\nThe user asks about erosion ${i}.\n</think>\n\nRivers cut down into rock and carry sediment to the sea, widening their valleys.`;

console.log(`bench:reward  ${cpus()[0]?.model ?? 'cpu'}, ${cpus().length} cores, threads 2`);
const gen = await Qwen3GuardGen.load({ modelPath: await genBenchModel(), threads: 2, gpu, maxSessions: 8, contextSize: 1024 });
const reward = safetyReward({ gen, scheme: 'hybrid' });
await reward(prompt(-1), response(-1)); // warm-up: the instructions are cached per sequence
console.log('in process, 0.6B-shaped Gen (8 sequences): batch  rewards/s');
for (const batch of BATCHES) {
  const started = performance.now();
  await Promise.all(Array.from({ length: batch }, (_, i) => reward(prompt(i), response(i))));
  console.log(`${String(batch).padStart(49)}  ${(batch / ((performance.now() - started) / 1000)).toFixed(2).padStart(9)}`);
}
await gen.dispose();

const serve = await startServe(['--model', await quietPlantedGenPath(), '--max-sessions', '8', '--max-waiting', '256']);
const post = (body: unknown) => fetch(`${serve.url}/get_reward`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
await post({ query: [`${prompt(-1)}${response(-1)}`], prompts: [prompt(-1)] });
console.log('through POST /get_reward, tiny planted Gen: batch  rewards/s  ms per request');
for (const batch of BATCHES) {
  const prompts = Array.from({ length: batch }, (_, i) => prompt(i));
  const started = performance.now();
  const answer = await post({ query: prompts.map((p, i) => p + response(i)), prompts, labels: prompts.map(() => '') });
  const ms = performance.now() - started;
  if (answer.status !== 200) throw new Error(`get_reward answered ${answer.status}: ${await answer.text()}`);
  console.log(`${String(batch).padStart(48)}  ${(batch / (ms / 1000)).toFixed(1).padStart(9)}  ${ms.toFixed(0).padStart(13)}`);
}
serve.kill('SIGTERM');
await serve.exited;
