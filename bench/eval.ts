/**
 * npm run bench:eval — `evaluate()` throughput, Qwen3Guard-Stream against Qwen3Guard-Gen on 0.6B-shaped random
 * q8_0 models with the same backbone (bench/fixture.ts), same threads, in one run: items per second on a
 * synthetic dataset of prompts and responses (about 60 and 150 tokens), at concurrency 1 and 4 (the guard gets as
 * many sequences). Stream reads a response token by token through its KV cache; Gen reads it whole in its
 * moderation template and, for a non-Safe verdict, generates the category list (a random model's verdicts are
 * mostly not Safe, the costly case).
 */
import { cpus } from 'node:os';
import { LocalGuard } from '../src/engine/guard.js';
import { evaluate, parseDataset, Qwen3GuardGen } from '../src/index.js';
import { benchModel, genBenchModel } from './fixture.js';

const ITEMS = Number(process.env.BENCH_ITEMS ?? 24);
const gpu = process.env.BENCH_GPU === '1' ? 'auto' : false;
const sentence = 'The committee reviewed the annual budget report and asked for a clearer summary of the travel costs. ';
const lines = Array.from({ length: ITEMS }, (_, i) => {
  const question = `Item ${i}: ${sentence.repeat(2)}What should we change?`;
  const messages = i % 2 ? [{ role: 'user', content: question }] : [{ role: 'user', content: question }, { role: 'assistant', content: sentence.repeat(6) }];
  return JSON.stringify({ id: `item-${i}`, messages, label: i % 3 ? 'safe' : 'unsafe' });
});
const { items } = parseDataset(lines.join('\n'));

const [streamPath, genPath] = [await benchModel(), await genBenchModel()];
console.log(`bench:eval  ${cpus()[0]?.model ?? 'cpu'}, ${cpus().length} cores, threads 2, q8_0, 0.6B shapes, ${items.length} items (half prompts, half responses)`);
console.log('guard   concurrency   items/s   p50 ms   p95 ms');
for (const concurrency of [1, 4]) {
  for (const kind of ['Stream', 'Gen'] as const) {
    const options = { modelPath: kind === 'Stream' ? streamPath : genPath, threads: 2, gpu, maxSessions: concurrency, contextSize: 2048 } as const;
    const guard = kind === 'Stream' ? await LocalGuard.load({ ...options, reuseKv: false }) : await Qwen3GuardGen.load(options);
    await evaluate({ guard, items: items.slice(0, 2), concurrency }); // warm-up (Gen caches its instructions per sequence)
    const { summary } = await evaluate({ guard, items, concurrency, model: kind });
    const { itemsPerSecond, latencyMs } = summary.timing;
    console.log(`${kind.padEnd(7)} ${String(concurrency).padStart(11)}   ${itemsPerSecond.toFixed(2).padStart(7)}   ${String(Math.round(latencyMs.p50)).padStart(6)}   ${String(Math.round(latencyMs.p95)).padStart(6)}`);
    await guard.dispose();
  }
}
