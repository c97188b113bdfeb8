import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { benchModel } from './fixture.js';
import { cachedDir, REPO_ROOT } from '../test/fixtures/cache.js';
import { HubServer } from '../test/fixtures/hub-server.js';

/**
 * One `qwen3guard pull 0.6B` of the 0.6B-shaped checkpoint (BF16 safetensors, ~1.2 GB) from the loopback hub:
 * download (HEADs, GETs, sha256 check) and conversion to q8_0 timed apart, as the CLI's summary line reports them.
 */
await benchModel(); // builds the checkpoint once
const checkpoint = await cachedDir('qwen3guard-0.6b-shape-random-v1', () => Promise.reject(new Error('benchModel() builds it')));
const hub = await HubServer.start({ repos: { 'Qwen/Qwen3Guard-Stream-0.6B': checkpoint } });
const cache = await mkdtemp(join(tmpdir(), 'qwen3guard-bench-pull-'));
try {
  const started = performance.now();
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/index.ts', 'pull', '0.6B', '--cache', cache], {
    cwd: REPO_ROOT,
    env: { ...process.env, HF_ENDPOINT: hub.endpoint },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let stdout = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  process.stdout.write(stdout);
  console.log(`exit ${code}, wall ${((performance.now() - started) / 1000).toFixed(1)} s (node start and tsx included)`);
} finally {
  await hub.close();
  await rm(cache, { recursive: true, force: true });
}
