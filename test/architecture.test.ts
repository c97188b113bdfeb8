import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT } from './fixtures/cache.js';
import { nodeOnly } from './fixtures/node-only.js';

/**
 * The source's shape, checked: imports run one way (down the ranks below, never within a circle), no file
 * grows past a screenful or two, and the Edge entry point's static imports reach no Node built-in or native
 * module (the local engines are imported on demand by the Node entry point only).
 */
const SRC = join(REPO_ROOT, 'src');
/** Folder ranks: a file may import its own folder and lower ranks. Top-level files are the entry points. */
const RANKS: Record<string, number> = {
  shared: 0,
  format: 0,
  guard: 1,
  convert: 2,
  align: 2,
  policy: 2,
  protocol: 2,
  telemetry: 2,
  engine: 3,
  download: 3,
  remote: 3,
  gen: 4,
  sglang: 4,
  local: 5,
  middleware: 6,
  '.': 7,
  eval: 8,
  reward: 9,
  server: 10,
  cli: 11,
};
const MAX_LINES = 345;

interface Import {
  spec: string;
  typeOnly: boolean;
  dynamic: boolean;
}

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? sources(path) : path.endsWith('.ts') ? [path] : [];
  });
}

function importsOf(file: string): Import[] {
  const text = readFileSync(file, 'utf8');
  const found: Import[] = [];
  for (const m of text.matchAll(/^\s*(import|export)\s+(type\s+)?([^'";]*?)\s*from\s+'([^']+)'/gm)) found.push({ spec: m[4], typeOnly: Boolean(m[2]), dynamic: false });
  for (const m of text.matchAll(/^\s*import\s+'([^']+)'/gm)) found.push({ spec: m[1], typeOnly: false, dynamic: false });
  for (const m of text.matchAll(/import\(\s*'([^']+)'\s*\)/g)) found.push({ spec: m[1], typeOnly: false, dynamic: true });
  return found;
}

const files = sources(SRC);
const local = (from: string, spec: string) => resolve(dirname(from), spec).replace(/\.js$/, '.ts');
const folderOf = (file: string) => {
  const path = relative(SRC, file).split('/');
  return path.length === 1 ? '.' : path[0];
};
const graph = new Map(files.map((f) => [f, importsOf(f)]));

describe('architecture', () => {
  it('every folder has a rank', () => {
    expect(files.map(folderOf).filter((f) => RANKS[f] === undefined)).toEqual([]);
  });

  it('imports run down the ranks', () => {
    const upward: string[] = [];
    for (const [file, imports] of graph) {
      for (const { spec } of imports) {
        if (!spec.startsWith('.')) continue;
        const from = folderOf(file);
        const to = folderOf(local(file, spec));
        if (from !== to && RANKS[to] >= RANKS[from] && from !== '.') upward.push(`${relative(SRC, file)} -> ${spec}`);
      }
    }
    expect(upward).toEqual([]);
  });

  it('has no import circles (type imports included)', () => {
    const cycles: string[] = [];
    const state = new Map<string, 'open' | 'done'>();
    const stack: string[] = [];
    const visit = (file: string) => {
      state.set(file, 'open');
      stack.push(file);
      for (const { spec } of graph.get(file) ?? []) {
        if (!spec.startsWith('.')) continue;
        const to = local(file, spec);
        if (state.get(to) === 'open') cycles.push([...stack.slice(stack.indexOf(to)), to].map((f) => relative(SRC, f)).join(' -> '));
        else if (!state.has(to)) visit(to);
      }
      stack.pop();
      state.set(file, 'done');
    };
    for (const file of files) if (!state.has(file)) visit(file);
    expect(cycles).toEqual([]);
  });

  it(`keeps files under ${MAX_LINES} lines`, () => {
    const long = files.map((f) => [relative(SRC, f), readFileSync(f, 'utf8').split('\n').length] as const).filter(([, n]) => n > MAX_LINES);
    expect(long).toEqual([]);
  });

  /** Everything `entry` loads when imported: static value imports, followed through our files. */
  function staticClosure(entry: string): { files: Set<string>; packages: Set<string> } {
    const seen = new Set<string>();
    const packages = new Set<string>();
    const visit = (file: string) => {
      if (seen.has(file)) return;
      seen.add(file);
      for (const { spec, typeOnly, dynamic } of graph.get(file) ?? []) {
        if (typeOnly || dynamic) continue;
        if (spec.startsWith('.')) visit(local(file, spec));
        else packages.add(spec);
      }
    };
    visit(join(SRC, entry));
    return { files: seen, packages };
  }

  it('the Edge entry point reaches no Node built-in and no native module', () => {
    const { files: loaded, packages } = staticClosure('edge.ts');
    expect([...packages].filter(nodeOnly)).toEqual([]);
    // Node globals are absent there too (the Edge runtime has Web APIs only).
    const globals = [...loaded].flatMap((file) => {
      const code = readFileSync(file, 'utf8').replace(/\/\*[\s\S]*?\*\/|\/\/.*$/gm, '');
      return /\bBuffer\b|\bprocess\.|__dirname|\brequire\(/.test(code) ? [relative(SRC, file)] : [];
    });
    expect(globals).toEqual([]);
  });

  it('the Node entry point loads node-llama-cpp only on demand', () => {
    const { packages } = staticClosure('index.ts');
    expect([...packages].filter((p) => p.includes('llama'))).toEqual([]);
  });
});
