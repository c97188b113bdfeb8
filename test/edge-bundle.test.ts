import { execFile } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { EdgeRuntime as EdgeVM } from 'edge-runtime';
import { build, type Metafile, type Plugin } from 'esbuild';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EdgeChat, EdgeChatResult } from './e2e/edge-app.js';
import { REPO_ROOT } from './fixtures/cache.js';
import { nodeOnly } from './fixtures/node-only.js';
import { startServe, type ServeProcess } from './fixtures/serve-process.js';

/**
 * The package in an Edge app, as a bundler for Vercel's Edge runtime (or Next's edge routes) sees it: the tarball
 * `npm pack` makes (its prepack builds dist/), unpacked into the app's node_modules; test/e2e/edge-app.ts bundled
 * by esbuild for the browser platform with the `edge-light`, `worker` and `browser` conditions, nothing external.
 * The bundle must load no Node built-in and no native module, then run in Vercel's Edge VM against a real
 * `qwen3guard serve` child process with the planted guard (" bomb" is Unsafe/Violent).
 *
 * The app sits outside the repository so that the package resolves from node_modules as in any app (inside it,
 * the name would resolve to the repository itself). The package's own dependencies (zod) and the app's `ai`
 * come from the repository's install (`nodePaths`): the versions it builds with, no network.
 */
const exec = promisify(execFile);
const CONDITIONS = ['edge-light', 'worker', 'browser'];
const API_KEY = 'edge-bundle-test-key-0123456789';

interface Resolution {
  importer: string;
  spec: string;
  /** The file it resolved to, or why it did not resolve. */
  path: string;
}

/** What an Edge bundle must not hold: a Node built-in, node-llama-cpp or a native addon, or an import that did not resolve. */
const forbidden = (r: Resolution) => nodeOnly(r.spec) || /node-llama-cpp|\.node$|^unresolved/.test(r.path);

/**
 * Records every import esbuild resolves and what it resolved to. A forbidden one is left out of the bundle
 * (external), so that the test lists them all instead of failing on the first one esbuild cannot bundle.
 */
function recorder(resolutions: Resolution[]): Plugin {
  const inner = Symbol('recorder');
  return {
    name: 'recorder',
    setup(b) {
      b.onResolve({ filter: /.*/ }, async (args) => {
        if (args.pluginData === inner) return undefined;
        const found = await b.resolve(args.path, { kind: args.kind, importer: args.importer, resolveDir: args.resolveDir, with: args.with, pluginData: inner });
        const resolution = { importer: args.importer, spec: args.path, path: found.errors.length ? `unresolved: ${found.errors[0].text}` : found.path };
        resolutions.push(resolution);
        if (forbidden(resolution)) return { path: args.path, external: true };
        return { path: found.path, namespace: found.namespace, external: found.external, sideEffects: found.sideEffects, suffix: found.suffix };
      });
    },
  };
}

let work: string;
let serving: Promise<ServeProcess> | undefined;
let guard: ServeProcess;
let bundle: string;
let metafile: Metafile;
const resolutions: Resolution[] = [];

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'qwen3guard-edge-'));
  const app = join(work, 'app');
  const pkg = join(app, 'node_modules', 'ai-sdk-qwen3guard');
  serving = startServe([], { QWEN3GUARD_API_KEY: API_KEY });
  await mkdir(pkg, { recursive: true });
  await exec('npm', ['pack', '--pack-destination', work, '--loglevel=error'], { cwd: REPO_ROOT, maxBuffer: 1 << 26 });
  const tarball = (await readdir(work)).find((f) => f.endsWith('.tgz'))!;
  await exec('tar', ['xzf', join(work, tarball), '-C', pkg, '--strip-components=1']);
  await writeFile(join(app, 'package.json'), JSON.stringify({ name: 'edge-app', private: true, type: 'module' }));
  await copyFile(join(REPO_ROOT, 'test', 'e2e', 'edge-app.ts'), join(app, 'app.ts'));
  const result = await build({
    entryPoints: [join(app, 'app.ts')],
    absWorkingDir: app,
    bundle: true,
    write: false,
    format: 'iife',
    globalName: 'edgeApp',
    platform: 'browser',
    conditions: CONDITIONS,
    nodePaths: [join(REPO_ROOT, 'node_modules')],
    metafile: true,
    logLevel: 'silent',
    plugins: [recorder(resolutions)],
  });
  bundle = result.outputFiles[0].text;
  metafile = result.metafile;
  guard = await serving;
}, 300_000);

afterAll(async () => {
  // Also when packing or bundling failed first: the server must not outlive the file.
  const server = await serving?.catch(() => undefined);
  server?.kill('SIGTERM');
  const code = await server?.exited;
  if (work) await rm(work, { recursive: true, force: true });
  expect(code ?? 0, server?.stderr()).toBe(0);
});

/** A fresh Edge VM with the bundle loaded, and the app's exports called there. */
function edgeApp() {
  const vm = new EdgeVM();
  vm.evaluate(bundle);
  return {
    chat: async (input: Omit<EdgeChat, 'baseURL' | 'apiKey'>): Promise<EdgeChatResult> =>
      JSON.parse(await vm.evaluate<Promise<string>>(`edgeApp.chat(${JSON.stringify({ ...input, baseURL: guard.url, apiKey: API_KEY })})`)),
    loadLocally: async (): Promise<{ name?: string; message?: string; loaded?: boolean }> => JSON.parse(await vm.evaluate<Promise<string>>('edgeApp.loadLocally()')),
  };
}

describe('the packed package in an Edge bundle', () => {
  it('bundles with no Node built-in, no native module and nothing external; the package resolves to dist/edge.js', () => {
    expect(resolutions.filter(forbidden)).toEqual([]);
    expect(Object.entries(metafile.inputs).flatMap(([file, { imports }]) => imports.filter((i) => i.external).map((i) => `${file} -> ${i.path}`))).toEqual([]);
    expect(resolutions.filter((r) => r.spec === 'ai-sdk-qwen3guard').map((r) => r.path)).toEqual([join(work, 'app', 'node_modules', 'ai-sdk-qwen3guard', 'dist', 'edge.js')]);
    // Nothing of the Node build (its chunks import node: modules) comes along.
    expect(Object.keys(metafile.inputs).filter((f) => f.includes('node_modules/ai-sdk-qwen3guard/'))).toEqual(['node_modules/ai-sdk-qwen3guard/dist/edge.js']);
  });

  it('streams a safe answer through the remote guard, in the Edge VM', async () => {
    const answer = 'Rivers carry rain from the hills down to the sea, shaping valleys on the way.';
    const result = await edgeApp().chat({ prompt: 'Tell me about rivers.', answer });
    expect(result.errors).toEqual([]);
    expect(result.deltas.join('')).toBe(answer);
    expect(result.deltas.length).toBeGreaterThan(1);
    expect(result).toMatchObject({ finishReason: 'stop', action: 'none', errors: [] });
  });

  it('stops an answer that turns unsafe with content-filter, never showing the unsafe text', async () => {
    const answer = 'Once upon a time a chemist mixed two powders in her garage and made a bomb that shook the street.';
    const result = await edgeApp().chat({ prompt: 'Tell me a story about a chemist.', answer });
    const shown = result.deltas.join('');
    expect(shown).toContain('Once upon a time a chemist');
    expect(shown).not.toMatch(/bomb/i);
    expect(result).toMatchObject({ finishReason: 'content-filter', action: 'rewrite', errors: [] });
  });

  it('Qwen3Guard.load says this build has no local engine and what to use instead', async () => {
    const error = await edgeApp().loadLocally();
    expect(error.name).toBe('GuardModelError');
    expect(error.message).toMatch(/has no local engine/);
    expect(error.message).toContain('Qwen3Guard.remote');
  });
});

describe('linkSignals in the Edge VM, which has no AbortSignal.any', () => {
  it('aborts with the first reason, starts aborted after an aborted input, and release unlinks', async () => {
    const { outputFiles } = await build({ entryPoints: [join(REPO_ROOT, 'src', 'shared', 'abort.ts')], bundle: true, write: false, format: 'iife', globalName: 'abort', platform: 'browser', logLevel: 'silent' });
    const vm = new EdgeVM();
    vm.evaluate(outputFiles[0].text);
    const seen = JSON.parse(
      vm.evaluate<string>(`(() => {
        const [a, b, c] = [new AbortController(), new AbortController(), new AbortController()];
        const linked = abort.linkSignals(a.signal, b.signal);
        b.abort('b first');
        a.abort('a later');
        const released = abort.linkSignals(c.signal, new AbortController().signal);
        released.release();
        c.abort('after release');
        return JSON.stringify({
          native: typeof AbortSignal.any,
          linked: [linked.signal.aborted, linked.signal.reason],
          released: released.signal.aborted,
          already: abort.anySignal(AbortSignal.abort('gone'), new AbortController().signal).reason,
        });
      })()`),
    );
    expect(seen).toEqual({ native: 'undefined', linked: [true, 'b first'], released: false, already: 'gone' });
  });
});
