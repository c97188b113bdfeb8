import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile, readdir, rename, writeFile } from 'node:fs/promises';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { REPO_ROOT } from '../fixtures/cache.js';

/**
 * The Next.js example (examples/nextjs-chat) as a user gets it: the package packed by `npm pack` (the tarball is
 * what npm would download), installed into the app, `next build`, then `next start` as a child process.
 */

export const APP_DIR = join(REPO_ROOT, 'examples', 'nextjs-chat');
const TARBALL = 'ai-sdk-qwen3guard.tgz';
/** Written after a build: the hash of what it was built from, so an unchanged app is not built again. */
const STAMP = join(APP_DIR, '.next', 'e2e-source-hash');

const run = promisify(execFile);
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
const quiet = { ...process.env, NEXT_TELEMETRY_DISABLED: '1', npm_config_audit: 'false', npm_config_fund: 'false' };

async function sh(command: string, args: string[], cwd: string): Promise<string> {
  try {
    const { stdout, stderr } = await run(command, args, { cwd, env: quiet, maxBuffer: 64 * 1024 * 1024 });
    return stdout + stderr;
  } catch (error) {
    const { stdout = '', stderr = '' } = error as { stdout?: string; stderr?: string };
    throw new Error(`${command} ${args.join(' ')} failed in ${cwd}:\n${stdout}\n${stderr}`);
  }
}

/** The app's own files (not its install or build), with the tarball: what a build depends on. */
async function sourceHash(): Promise<string> {
  const hash = createHash('sha256');
  const walk = async (dir: string): Promise<void> => {
    for (const entry of (await readdir(dir, { withFileTypes: true })).sort((a, b) => a.name.localeCompare(b.name))) {
      if (['node_modules', '.next', 'package-lock.json', 'next-env.d.ts'].includes(entry.name) || entry.name.endsWith('.tsbuildinfo') || entry.name.endsWith('.md')) continue;
      const path = join(dir, entry.name);
      if (entry.isDirectory()) await walk(path);
      else hash.update(path).update(await readFile(path));
    }
  };
  await walk(APP_DIR);
  return hash.digest('hex');
}

/**
 * Packs the package (its prepack builds dist/), installs it into the app and builds the app, unless nothing
 * changed since the last build. `buildOutput` is what `next build` printed (null when it was not run).
 */
export async function buildExample(): Promise<{ buildOutput: string | null }> {
  await sh(npm, ['pack', '--silent', '--pack-destination', APP_DIR], REPO_ROOT);
  const { version } = JSON.parse(await readFile(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string };
  await rename(join(APP_DIR, `ai-sdk-qwen3guard-${version}.tgz`), join(APP_DIR, TARBALL));
  const hash = await sourceHash();
  if (existsSync(STAMP) && (await readFile(STAMP, 'utf8')) === hash) return { buildOutput: null };
  // Naming the tarball makes npm take its new content: a plain `npm install` keeps the copy its lockfile knows.
  await sh(npm, ['install', '--no-audit', '--no-fund', `./${TARBALL}`], APP_DIR);
  const buildOutput = await sh(process.execPath, [join(APP_DIR, 'node_modules', 'next', 'dist', 'bin', 'next'), 'build'], APP_DIR);
  await writeFile(STAMP, hash);
  return { buildOutput };
}

export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

export interface NextServer {
  url: string;
  /** The server's process id, which is also its process group's. */
  pid: number;
  /** Everything the server printed. */
  output(): string;
  /** Ends the server's whole process group and waits for it to exit. */
  stop(): Promise<void>;
}

/** `next start` on a free port; resolves once the page answers and `instrumentation.ts` has loaded the guard. */
export async function startExample(env: Record<string, string>, timeoutMs = 60_000): Promise<NextServer> {
  const port = await freePort();
  const child: ChildProcess = spawn(process.execPath, [join(APP_DIR, 'node_modules', 'next', 'dist', 'bin', 'next'), 'start', '-H', '127.0.0.1', '-p', String(port)], {
    cwd: APP_DIR,
    env: { ...quiet, ...env },
    detached: true, // its own process group: stop() ends next and any worker it started
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const url = `http://127.0.0.1:${port}`;

  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      try {
        process.kill(-child.pid!, 'SIGTERM');
      } catch {}
      const timer = setTimeout(() => {
        try {
          process.kill(-child.pid!, 'SIGKILL');
        } catch {}
      }, 5000);
      await exited;
      clearTimeout(timer);
    }
  };

  const deadline = Date.now() + timeoutMs;
  while (!output.includes('qwen3guard: guard loaded')) {
    if (child.exitCode !== null) throw new Error(`next start exited with ${child.exitCode}:\n${output}`);
    if (output.includes('qwen3guard: the guard did not load')) break; // the test reads why from output()
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`next start did not load the guard within ${timeoutMs} ms:\n${output}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return { url, pid: child.pid!, output: () => output, stop };
}
