import { execFile, spawn } from 'node:child_process';
import { copyFile, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { convertedModel, plantedCheckpoint, REPO_ROOT } from './fixtures/cache.js';
import { startOpenAiServer, wordDeltas, type OpenAiServer } from './fixtures/openai-server.js';

/**
 * The package as a user gets it: the tarball `npm pack` makes, installed into an empty app with `ai` and
 * `@ai-sdk/openai`; the examples type-check there against the published types and run against a loopback
 * OpenAI-compatible server with the planted guard.
 */
const exec = promisify(execFile);
const npm = (args: string[], cwd: string) => exec('npm', [...args, '--no-audit', '--no-fund', '--loglevel=error'], { cwd, maxBuffer: 1 << 26 });

let app: string;
let server: OpenAiServer;
let model: string;
beforeAll(async () => {
  model = await convertedModel(await plantedCheckpoint(), 'q8_0');
  const work = await mkdtemp(join(tmpdir(), 'qwen3guard-package-'));
  await npm(['pack', '--pack-destination', work], REPO_ROOT);
  const tarball = (await readdir(work)).find((f) => f.endsWith('.tgz'))!;
  app = join(work, 'app');
  await exec('mkdir', ['-p', app]);
  await writeFile(join(app, 'package.json'), JSON.stringify({ name: 'app', private: true, type: 'module' }));
  // Versions the repo itself builds with; the npm cache of the repo's own install makes this mostly offline.
  await npm(['install', '--prefer-offline', join(work, tarball), 'ai@^7', '@ai-sdk/openai@^4', 'typescript@~5.9.0', '@types/node@^22', 'tsx@^4'], app);
  for (const file of ['basic.ts', 'terminal-chat.ts', 'guard.ts', 'classify.ts']) await copyFile(join(REPO_ROOT, 'examples', file), join(app, file));
  await writeFile(
    join(app, 'tsconfig.json'),
    JSON.stringify({ compilerOptions: { target: 'ES2023', module: 'NodeNext', moduleResolution: 'NodeNext', strict: true, noEmit: true, skipLibCheck: true, types: ['node'] }, include: ['*.ts'] }),
  );
  server = await startOpenAiServer();
}, 600_000);
afterAll(async () => {
  await server?.close();
  if (app) await rm(join(app, '..'), { recursive: true, force: true });
});

function run(command: string, args: string[], input?: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      cwd: app,
      env: { ...process.env, QWEN3GUARD_MODEL: model, OPENAI_BASE_URL: server.baseURL, OPENAI_API_KEY: 'test', CHAT_MODEL: 'scripted', NO_COLOR: '1' },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const killer = setTimeout(() => child.kill('SIGKILL'), 120_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(killer);
      resolve({ code, stdout, stderr });
    });
    if (input !== undefined) child.stdin.end(input);
  });
}

describe('the packed tarball in an empty app', () => {
  it('type-checks the examples against the published types', async () => {
    const result = await exec('npx', ['--no-install', 'tsc', '-p', '.'], { cwd: app }).catch((e: { stdout: string; stderr: string }) => e);
    expect('stdout' in result ? result.stdout + result.stderr : '').toBe('');
  });

  it('resolves to the full build in Node and to dist/edge.js under the Edge conditions', async () => {
    const probe = "const m = await import('ai-sdk-qwen3guard'); console.log(import.meta.resolve('ai-sdk-qwen3guard').split('/node_modules/ai-sdk-qwen3guard/')[1], typeof m.convertCheckpoint)";
    const node = await run(process.execPath, ['--input-type=module', '-e', probe]);
    expect(node.stdout.trim(), node.stderr).toBe('dist/index.js function');
    const edge = await run(process.execPath, ['--conditions=edge-light', '--input-type=module', '-e', probe]);
    expect(edge.stdout.trim(), edge.stderr).toBe('dist/edge.js undefined'); // the Edge build: remote guards only
  });

  it('runs the CLI from the installed bin', async () => {
    const help = await run('npx', ['--no-install', 'qwen3guard', '--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/qwen3guard pull/);
  });

  it('runs examples/basic.ts with node: a safe answer streams, an unsafe one is stopped', async () => {
    server.setScript({ deltas: wordDeltas('Rivers carry water from the hills to the sea.') });
    const safe = await run(process.execPath, ['basic.ts', 'Tell me about rivers.']);
    expect(safe.stderr).toBe('');
    expect(safe.stdout).toContain('Rivers carry water from the hills to the sea.');
    expect(safe.stdout).toContain('[finish: stop, guard: "none"]');
    server.setScript({ deltas: wordDeltas('Sure. Mix these to make a bomb quickly, then leave the house.') });
    const unsafe = await run(process.execPath, ['basic.ts', 'Tell me something.']);
    expect(unsafe.stdout).not.toMatch(/bomb/);
    expect(unsafe.stdout).toContain('[finish: content-filter, guard: "rewrite"]');
  });

  it('runs examples/terminal-chat.ts: answers, then exits on end of input', async () => {
    server.setScript({ deltas: wordDeltas('Hello! How can I help?') });
    const chat = await run('npx', ['--no-install', 'tsx', 'terminal-chat.ts'], 'Hello\n');
    expect(chat.code).toBe(0);
    expect(chat.stdout).toContain('Hello! How can I help?');
  });
});
