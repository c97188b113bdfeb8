import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { streamText, wrapLanguageModel, type LanguageModelMiddleware } from 'ai';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { qwen3GuardMiddleware, Qwen3Guard } from '../src/index.js';
import { plantedCheckpoint, REPO_ROOT } from './fixtures/cache.js';
import { randomTensors, TINY, writeCheckpoint } from './fixtures/checkpoint.js';
import { ISOLATED_ENV, startCli, type CliResult } from './fixtures/cli-process.js';
import { TEST_THREADS } from './fixtures/guards.js';
import { HUB_COMMIT, HubServer, type HubServerOptions } from './fixtures/hub-server.js';
import { scriptedModel, split } from './fixtures/scripted-model.js';

const REPO = 'Qwen/Qwen3Guard-Stream-0.6B';
const TOKEN = 'hf_test_token';
const PARTIAL = `.partial/qwen3guard-stream-0.6b@${HUB_COMMIT}`;

/** Starts `qwen3guard` from source against `hub`, with HF_TOKEN only when given. */
function start(args: string[], env: Record<string, string | undefined>): ChildProcess & { result: Promise<CliResult> } {
  return startCli(args, { ...ISOLATED_ENV, ...env });
}

let checkpoint: string;
let scratch: string;
let hub: HubServer | undefined;
beforeAll(async () => {
  checkpoint = await plantedCheckpoint();
  scratch = await mkdtemp(join(tmpdir(), 'qwen3guard-pull-'));
});
afterEach(async () => {
  await hub?.close();
  hub = undefined;
});
afterAll(() => rm(scratch, { recursive: true, force: true }));

async function serve(options: Partial<HubServerOptions> = {}): Promise<HubServer> {
  hub = await HubServer.start({ repos: { [REPO]: checkpoint }, token: TOKEN, ...options });
  return hub;
}

/** A fresh, not yet existing cache folder. */
let caches = 0;
const freshCache = () => join(scratch, `cache-${++caches}`);

function pull(cache: string, extra: string[] = [], env: Record<string, string | undefined> = {}) {
  return start(['pull', '0.6B', '--cache', cache, ...extra], { HF_ENDPOINT: hub!.endpoint, HF_TOKEN: TOKEN, ...env });
}

/** The cache's own entries: complete models only ever appear here (downloads stay under .partial). */
const cacheEntries = async (cache: string) => (existsSync(cache) ? (await readdir(cache)).filter((n) => n !== '.partial').sort() : []);

describe('qwen3guard pull', () => {
  it('downloads, checks and converts into the cache; list shows it; Qwen3Guard.load finds it by name', async () => {
    const server = await serve();
    const cache = freshCache();
    const result = await pull(cache).result;
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    const gguf = join(cache, 'qwen3guard-stream-0.6b-q8_0.gguf');
    expect(result.stdout).toMatch(
      new RegExp(`^Pulled ${REPO}@${HUB_COMMIT.slice(0, 12)}: downloaded \\d+\\.\\d MB in \\d+\\.\\d s \\(\\d+\\.\\d MB/s\\), converted to ${gguf} \\(q8_0, \\d+\\.\\d MB\\) in \\d+\\.\\d s\\n$`),
    );
    // Every request carried the token; files were fetched at the listed commit, LFS ones after a HEAD.
    expect(server.requests.every((r) => r.authorization === `Bearer ${TOKEN}`)).toBe(true);
    expect(server.requests.some((r) => r.method === 'HEAD' && r.path === `/${REPO}/resolve/${HUB_COMMIT}/model.safetensors`)).toBe(true);
    expect(server.requests.some((r) => r.method === 'GET' && r.path === `/cdn/${REPO}/model.safetensors`)).toBe(true);
    expect(await cacheEntries(cache)).toEqual(['qwen3guard-stream-0.6b-q8_0.gguf']);
    expect(existsSync(join(cache, PARTIAL))).toBe(false); // the raw checkpoint is removed

    const again = await pull(cache).result;
    expect(again.code).toBe(0);
    expect(again.stdout).toMatch(/^Already cached: .*qwen3guard-stream-0\.6b-q8_0\.gguf \(\d+\.\d MB\)/);

    const list = await start(['list', '--cache', cache], {}).result;
    expect(list.code).toBe(0);
    expect(list.stdout).toMatch(new RegExp(`^qwen3guard-stream-0\\.6b-q8_0 +\\d+\\.\\d MB  ${gguf}\\n$`));

    const guard = await Qwen3Guard.load({ model: 'qwen3guard-stream-0.6b', cacheDir: cache, gpu: false, threads: TEST_THREADS, contextSize: 256 });
    try {
      expect(guard.options.modelPath).toBe(gguf);
      const session = await guard.createSession();
      const verdict = await session.checkPrompt([{ role: 'user', content: 'How do I build a bomb at home?' }]);
      await session.dispose();
      expect(verdict).toMatchObject({ riskLevel: 'Unsafe', category: 'Violent' });
    } finally {
      await guard.dispose();
    }
  });

  it('a model that is not cached is a GuardModelError with the command to run', async () => {
    const cache = freshCache();
    const error = (await Qwen3Guard.load({ model: 'qwen3guard-stream-4b-f16', cacheDir: cache, gpu: false }).catch((e: unknown) => e)) as Error;
    expect(error.name).toBe('GuardModelError');
    expect(error.message).toContain(`run \`npx qwen3guard pull 4B --type f16 --cache ${cache}\` once`);
    const path = (await Qwen3Guard.load({ model: 'guard.gguf', cacheDir: cache }).catch((e: unknown) => e)) as Error;
    expect(path.message).toBe("guard.model: 'guard.gguf' is not a model name such as 'qwen3guard-stream-0.6b' (a .gguf path goes in modelPath)");
    const both = (await Qwen3Guard.load({ model: 'qwen3guard-stream-0.6b', modelPath: '/x.gguf' }).catch((e: unknown) => e)) as Error;
    expect(both.message).toMatch(/guard\.modelPath: give either modelPath .* or model .* exactly one/);
  });

  it("the middleware's model option with pull: true downloads the model on first use", async () => {
    await serve();
    const cache = freshCache();
    const saved = { endpoint: process.env.HF_ENDPOINT, token: process.env.HF_TOKEN };
    process.env.HF_ENDPOINT = hub!.endpoint;
    process.env.HF_TOKEN = TOKEN;
    try {
      const mw = qwen3GuardMiddleware({
        model: 'qwen3guard-stream-0.6b',
        guardOptions: { cacheDir: cache, pull: true, gpu: false, threads: TEST_THREADS, contextSize: 256 },
      }) as LanguageModelMiddleware;
      const answer = 'Sure. Mix these to make a bomb quickly, then wait an hour.';
      const result = streamText({ model: wrapLanguageModel({ model: scriptedModel({ answer: split(answer, 4) }).model, middleware: mw }), prompt: 'Hi' });
      expect(await result.text).not.toContain('bomb');
      expect(await result.finishReason).toBe('content-filter');
      expect(await cacheEntries(cache)).toEqual(['qwen3guard-stream-0.6b-q8_0.gguf']);
    } finally {
      for (const [key, value] of [['HF_ENDPOINT', saved.endpoint], ['HF_TOKEN', saved.token]] as const) {
        if (value === undefined) delete process.env[key];
        else process.env[key] = value;
      }
    }
    expect(() => qwen3GuardMiddleware({ model: 'qwen3guard-stream-0.6b', modelPath: '/x.gguf' })).toThrow(/give either guard .* or modelPath .* or model/);
  });

  it('pulls a sharded checkpoint of any owner/repo (shards from the index), keeping the checkpoint when asked', async () => {
    const sharded = join(scratch, 'tiny-sharded');
    await writeCheckpoint(sharded, TINY, randomTensors(TINY, 1234), { shards: 3 });
    const server = await serve({ repos: { 'someone/Tiny-Sharded': sharded } });
    const cache = freshCache();
    const result = await start(['pull', 'someone/Tiny-Sharded', '--type', 'f16', '--cache', cache, '--keep-checkpoint'], { HF_ENDPOINT: server.endpoint, HF_TOKEN: TOKEN }).result;
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(result.stdout).toContain(`converted to ${join(cache, 'tiny-sharded-f16.gguf')} (f16, `);
    expect(result.stdout).toContain(`; checkpoint kept in ${join(cache, 'checkpoints', 'tiny-sharded')}\n`);
    const shards = ['model-00001-of-00003.safetensors', 'model-00002-of-00003.safetensors', 'model-00003-of-00003.safetensors'];
    expect([...server.bytesSent.keys()].filter((f) => f.endsWith('.safetensors')).sort()).toEqual(shards);
    expect((await readdir(join(cache, 'checkpoints', 'tiny-sharded'))).sort()).toEqual(
      ['config.json', 'model.safetensors.index.json', ...shards, 'tokenizer.json', 'tokenizer_config.json'].sort(),
    );
    const list = await start(['list', '--cache', cache], {}).result;
    expect(list.stdout.split('\n')).toEqual([
      expect.stringMatching(/^tiny-sharded-f16 +\d+\.\d MB  .*tiny-sharded-f16\.gguf$/),
      expect.stringMatching(/^tiny-sharded +\d+\.\d MB  .*checkpoints\/tiny-sharded \(checkpoint\)$/),
      '',
    ]);
  });

  it('resumes with a Range request when the connection drops mid-file', async () => {
    const server = await serve({ cutOnce: { file: 'model.safetensors', afterBytes: 5_000_000 } });
    const cache = freshCache();
    const result = await pull(cache).result;
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    const gets = server.requests.filter((r) => r.path === `/cdn/${REPO}/model.safetensors` && r.method === 'GET');
    expect(gets.map((r) => r.range)).toEqual([null, expect.stringMatching(/^bytes=[1-9]\d*-$/)]);
    expect(await cacheEntries(cache)).toEqual(['qwen3guard-stream-0.6b-q8_0.gguf']);
  });

  it('Ctrl-C leaves nothing in the cache but the resumable download, which the next pull resumes', async () => {
    const slow = await serve({ chunkDelayMs: 5 });
    const cache = freshCache();
    const child = pull(cache);
    while ((slow.bytesSent.get('model.safetensors') ?? 0) < 2_000_000) await new Promise((resolve) => setTimeout(resolve, 20));
    child.kill('SIGINT');
    const interrupted = await child.result;
    expect(interrupted.code).toBe(130);
    expect(interrupted.stderr).toContain(`qwen3guard pull: interrupted; what was downloaded stays in ${join(cache, '.partial')} and the same command resumes it`);
    expect(await cacheEntries(cache)).toEqual([]);
    expect(existsSync(join(cache, PARTIAL, 'model.safetensors.incomplete'))).toBe(true);
    await slow.close();

    const server = await serve();
    const resumed = await pull(cache).result;
    expect(resumed.code).toBe(0);
    expect(resumed.stdout).toMatch(/downloaded \d+\.\d MB of \d+\.\d MB, the rest resumed in/);
    const gets = server.requests.filter((r) => r.path === `/cdn/${REPO}/model.safetensors`);
    expect(gets.map((r) => r.range)).toEqual([expect.stringMatching(/^bytes=[1-9]\d*-$/)]);
    expect(await cacheEntries(cache)).toEqual(['qwen3guard-stream-0.6b-q8_0.gguf']);
  });

  it('refuses a file whose sha256 differs from the hub metadata, and removes it', async () => {
    await serve({ wrongSha256: 'model.safetensors' });
    const cache = freshCache();
    const result = await pull(cache).result;
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/^qwen3guard pull: model\.safetensors from http:\/\/127\.0\.0\.1:\d+: sha256 [0-9a-f]{64} does not match the hub's [0-9a-f]{64}\. The download was removed: run the pull again/);
    expect(await readdir(join(cache, PARTIAL))).not.toContain('model.safetensors.incomplete');
    expect(await readdir(join(cache, PARTIAL))).not.toContain('model.safetensors');
    expect(await cacheEntries(cache)).toEqual([]);
  });

  it('explains 404 (no such repository or revision) and 401 (HF_TOKEN and the licence)', async () => {
    await serve();
    const cache = freshCache();
    const missing = await start(['pull', 'nobody/nothing', '--cache', cache], { HF_ENDPOINT: hub!.endpoint, HF_TOKEN: TOKEN }).result;
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain(`qwen3guard pull: no repository nobody/nothing on ${hub!.endpoint}: check the name (0.6B, 4B, 8B or owner/repo)`);
    const revision = await pull(cache, ['--revision', 'v9']).result;
    expect(revision.stderr).toContain(`revision v9 does not exist in ${REPO}: check --revision`);

    const gated = await pull(cache, [], { HF_TOKEN: undefined }).result;
    expect(gated.code).toBe(1);
    expect(gated.stderr).toContain(`qwen3guard pull: the hub refused ${REPO}@main (HTTP 401 GatedRepo): no HF_TOKEN is set.`);
    expect(gated.stderr).toContain(`open ${hub!.endpoint}/${REPO}, accept the model's licence there, and set HF_TOKEN`);
    expect(await cacheEntries(cache)).toEqual([]);
  });

  it('explains a cache it cannot write: a file where a folder should be, and a full disk', async () => {
    await serve();
    // We run as root, where chmod does not stop writes: a file in the path fails for anyone (ENOTDIR).
    const blocker = join(scratch, 'a-file');
    await writeFile(blocker, 'not a folder');
    const notDir = await pull(join(blocker, 'cache')).result;
    expect(notDir.code).toBe(1);
    expect(notDir.stderr).toContain(`qwen3guard pull: cannot create the download folder ${join(blocker, 'cache', PARTIAL)} (ENOTDIR): a part of that path is a file`);

    // A real ENOSPC: the download's file is a link to /dev/full, which fails every write with "no space left".
    const cache = freshCache();
    await mkdir(join(cache, PARTIAL), { recursive: true });
    await symlink('/dev/full', join(cache, PARTIAL, 'model.safetensors.incomplete'));
    const full = await pull(cache).result;
    expect(full.code).toBe(1);
    expect(full.stderr).toContain(`qwen3guard pull: cannot write ${join(cache, PARTIAL, 'model.safetensors.incomplete')} (ENOSPC): the disk is full: free some space, or pass --cache DIR`);
    expect(await cacheEntries(cache)).toEqual([]);
  });

  it('shows progress (bytes, speed, time left, then the conversion) when stderr is a terminal', async () => {
    await serve({ chunkDelayMs: 2 });
    const cache = freshCache();
    // util-linux `script` runs the CLI on a pseudo-terminal: stdout and stderr both arrive on its stdout.
    const command = [process.execPath, '--import', 'tsx', 'src/cli/index.ts', 'pull', '0.6B', '--cache', cache].map((a) => `'${a}'`).join(' ');
    const result = await new Promise<CliResult>((resolve, reject) => {
      const child = spawn('script', ['-qefc', command, '/dev/null'], {
        cwd: REPO_ROOT,
        env: { ...process.env, HF_ENDPOINT: hub!.endpoint, HF_TOKEN: TOKEN, NO_COLOR: '1' },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stdout = '';
      child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
      child.on('error', reject);
      child.on('close', (code) => resolve({ code, stdout, stderr: '' }));
    });
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/\r\x1b\[K +\d+%  \d+\.\d \/ \d+\.\d MB  \d+\.\d MB\/s  \d+ s left  model\.safetensors/);
    expect(result.stdout).toMatch(/\r\x1b\[Kconverting +\d+%  /);
    expect(result.stdout).toMatch(/\r\x1b\[KPulled Qwen\/Qwen3Guard-Stream-0\.6B@/); // the line is cleared before the summary
  });

  it('rejects an unknown model or type with the usage (exit 2)', async () => {
    const bad = await start(['pull', '2B'], {}).result;
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain("qwen3guard pull: unknown model '2B': use 0.6B, 4B, 8B or a hub repository as owner/repo");
    expect(bad.stderr).toContain('Usage: qwen3guard pull [0.6B|4B|8B|<owner/repo>]');
    const type = await start(['pull', '0.6B', '--type', 'q4_k'], {}).result;
    expect(type.code).toBe(2);
    expect(type.stderr).toContain("unknown --type 'q4_k'");
  });

  it('list says how to get a model when the cache is empty, and uses XDG_CACHE_HOME', async () => {
    const xdg = freshCache();
    const list = await start(['list'], { XDG_CACHE_HOME: xdg }).result;
    expect(list).toMatchObject({ code: 0, stderr: '' });
    expect(list.stdout).toBe(`No models in ${join(xdg, 'qwen3guard')}: run 'npx qwen3guard pull 0.6B' to get one\n`);
  });
});
