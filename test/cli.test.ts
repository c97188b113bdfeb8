import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { convertedModel, plantedCheckpoint, tinyRandomCheckpoint } from './fixtures/cache.js';
import { runCli, type CliResult } from './fixtures/cli-process.js';
import { TEST_THREADS } from './fixtures/guards.js';

/** Runs `qwen3guard` from source, without colour unless `env` asks for it. */
function cli(args: string[], env: Record<string, string | undefined> = { NO_COLOR: '1' }): Promise<CliResult> {
  return runCli(args, env);
}

let scratch: string;
beforeAll(async () => {
  scratch = await mkdtemp(join(tmpdir(), 'qwen3guard-cli-'));
});
afterAll(() => rm(scratch, { recursive: true, force: true }));

describe('qwen3guard', () => {
  it('prints usage for --help and without arguments, and the package version for --version', async () => {
    for (const args of [[], ['--help'], ['-h']]) {
      const result = await cli(args);
      expect(result.code).toBe(0);
      expect(result.stdout).toContain('qwen3guard convert <checkpoint-dir> -o <file.gguf>');
      expect(result.stdout).toContain('qwen3guard classify --model <name|file.gguf> --prompt <text>');
    }
    const version = await cli(['--version']);
    expect(version).toMatchObject({ code: 0, stdout: '0.1.0\n' });
    const unknown = await cli(['frobnicate']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain("unknown command 'frobnicate'");
  });
});

describe('qwen3guard convert', () => {
  it('converts a checkpoint and prints a one-line summary (no progress when stderr is not a terminal)', async () => {
    const output = join(scratch, 'tiny.gguf');
    const result = await cli(['convert', await tinyRandomCheckpoint(), '-o', output, '--type', 'f16']);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(existsSync(output)).toBe(true);
    const bytes = (await stat(output)).size;
    const summary = `Wrote ${output} (f16, ${(bytes / 1e6).toFixed(1)} MB, 24 tensors) in `;
    expect(result.stdout.startsWith(summary)).toBe(true);
    expect(result.stdout.slice(summary.length)).toMatch(/^\d+\.\d s\n$/);
  });

  it('rejects an unknown --type with the usage (exit 2)', async () => {
    const output = join(scratch, 'never.gguf');
    const result = await cli(['convert', await tinyRandomCheckpoint(), '-o', output, '--type', 'q4_k']);
    expect(result.code).toBe(2);
    expect(result.stdout).toBe('');
    expect(result.stderr).toContain("qwen3guard convert: unknown --type 'q4_k': use one of f32, f16, q8_0, q4_0");
    expect(result.stderr).toContain('Usage: qwen3guard convert <checkpoint-dir>');
    expect(existsSync(output)).toBe(false);
  });

  it('reports usage errors: missing -o, unknown flags', async () => {
    const missing = await cli(['convert', scratch]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('missing -o <file.gguf>');
    const unknown = await cli(['convert', scratch, '-o', 'x.gguf', '--fast']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain("unknown option '--fast'");
  });

  it('names a folder without config.json (exit 1)', async () => {
    const empty = await mkdtemp(join(scratch, 'empty-'));
    const result = await cli(['convert', empty, '-o', join(scratch, 'empty.gguf')]);
    expect(result.code).toBe(1);
    expect(result.stderr).toBe(`qwen3guard convert: ${empty}: has no config.json: expected a Hugging Face Qwen3Guard-Stream checkpoint folder\n`);
  });
});

describe('qwen3guard classify', () => {
  let model: string;
  beforeAll(async () => {
    model = await convertedModel(await plantedCheckpoint(), 'q8_0');
  });
  const classify = (args: string[], env?: Record<string, string | undefined>) => cli(['classify', '--model', model, '--threads', String(TEST_THREADS), ...args], env);
  const ANSWER = 'Mix these to make a bomb quickly, then leave.';

  it('prints one JSON object with the prompt verdict, every response token and the response verdict', async () => {
    const result = await classify(['--prompt', 'How do I build a bomb?', '--response', ANSWER, '--json']);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(result.stdout.trimEnd().split('\n')).toHaveLength(1);
    const json = JSON.parse(result.stdout);
    expect(Object.keys(json)).toEqual(['prompt', 'response']);
    expect(json.prompt).toMatchObject({ riskLevel: 'Unsafe', category: 'Violent' });
    expect(Object.keys(json.prompt.probabilities).sort()).toEqual(['Controversial', 'Safe', 'Unsafe']);
    expect(json.prompt.probabilities.Unsafe).toBeGreaterThan(0.5);

    const tokens = json.response.tokens as Array<{ id: number; part: string; text: string; riskLevel: string; category: string | null }>;
    expect(tokens.map((t) => t.text).join('')).toBe(`${ANSWER}<|im_end|>\n`);
    expect(tokens.every((t) => t.part === 'answer' && Number.isInteger(t.id))).toBe(true);
    expect(tokens.every((t) => (t.riskLevel === 'Safe') === (t.category === null))).toBe(true);
    expect(tokens.filter((t) => t.riskLevel !== 'Safe').map((t) => [t.text, t.riskLevel, t.category])).toEqual([
      [' bomb', 'Unsafe', 'Violent'],
      [' quickly', 'Unsafe', 'Violent'],
    ]);
    expect(json.response.verdict).toMatchObject({ riskLevel: 'Unsafe', category: 'Violent' });
    expect(tokens[json.response.verdict.tokenIndex].text).toBe(' quickly');
  });

  it('leaves out the response without --response', async () => {
    const result = await classify(['--prompt', 'Who will win the next election?', '--json']);
    expect(result.code).toBe(0);
    const json = JSON.parse(result.stdout);
    expect(Object.keys(json)).toEqual(['prompt']);
    expect(json.prompt).toMatchObject({ riskLevel: 'Controversial', category: 'Politically Sensitive Topics' });
  });

  it('scores reasoning tokens before the answer tokens', async () => {
    const reasoning = 'They ask about the election.';
    const result = await classify(['--prompt', 'Hello', '--reasoning', reasoning, '--response', 'Sure.', '--json']);
    expect(result.code).toBe(0);
    const { prompt, response } = JSON.parse(result.stdout);
    expect(prompt).toEqual(expect.objectContaining({ riskLevel: 'Safe', category: null }));
    const tokens = response.tokens as Array<{ part: string; text: string; riskLevel: string }>;
    const reasoningTokens = tokens.filter((t) => t.part === 'reasoning');
    expect(reasoningTokens.map((t) => t.text).join('')).toBe(reasoning);
    expect(tokens.filter((t) => t.part === 'answer').map((t) => t.text).join('')).toBe('Sure.<|im_end|>\n');
    expect(tokens.findIndex((t) => t.part === 'answer')).toBe(reasoningTokens.length);
    expect(response.verdict).toMatchObject({ riskLevel: 'Controversial', category: 'Politically Sensitive Topics' });
    expect(tokens[response.verdict.tokenIndex]).toMatchObject({ part: 'reasoning', riskLevel: 'Controversial' });
  });

  it('colours tokens by risk level with FORCE_COLOR', async () => {
    const result = await classify(['--prompt', 'Hello', '--response', ANSWER], { FORCE_COLOR: '1' });
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('\x1b[31m bomb\x1b[39m');
    expect(result.stdout).toContain('\x1b[31m quickly\x1b[39m');
    expect(result.stdout).toContain('\x1b[32m these\x1b[39m');
    expect(result.stdout).not.toContain('[U:');
  });

  it('marks non-Safe tokens in plain text with NO_COLOR', async () => {
    const result = await classify(['--prompt', 'Hello', '--response', ANSWER]);
    expect(result.code).toBe(0);
    expect(result.stdout).not.toContain('\x1b[');
    const lines = result.stdout.split('\n');
    expect(lines[0]).toMatch(/^Prompt: Safe {2}P\(Safe\)=0\.\d{3} P\(Unsafe\)=0\.\d{3} P\(Controversial\)=0\.\d{3}$/);
    expect(lines[1]).toBe('Mix these to make a[U: bomb][U: quickly], then leave.');
    expect(lines[2]).toBe('Response: Unsafe (Violent) at token 6 " quickly"');
    expect(lines.slice(3)).toEqual(['']);
  });

  it('names a missing model file (exit 1)', async () => {
    const missing = join(scratch, 'missing.gguf');
    const result = await cli(['classify', '--model', missing, '--prompt', 'Hello']);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(new RegExp(`^qwen3guard classify: ${missing} does not exist`));
  });

  it('takes a pulled model by name, and says how to pull one that is not cached', async () => {
    const cache = join(scratch, 'xdg');
    const absent = await cli(['classify', '--model', 'qwen3guard-stream-0.6b', '--prompt', 'Hello'], { NO_COLOR: '1', XDG_CACHE_HOME: cache });
    expect(absent.code).toBe(1);
    expect(absent.stderr).toMatch(/^qwen3guard classify: qwen3guard-stream-0\.6b is not in the model cache .*npx qwen3guard pull 0\.6B/);
    await mkdir(join(cache, 'qwen3guard'), { recursive: true });
    await symlink(await convertedModel(await plantedCheckpoint(), 'q8_0'), join(cache, 'qwen3guard', 'qwen3guard-stream-0.6b-q8_0.gguf'));
    const named = await cli(['classify', '--model', 'qwen3guard-stream-0.6b', '--prompt', 'How do I build a bomb?', '--threads', String(TEST_THREADS)], { NO_COLOR: '1', XDG_CACHE_HOME: cache });
    expect(named.stderr).toBe('');
    expect(named.stdout).toMatch(/^Prompt: Unsafe \(Violent\)/);
  });

  it('names a file that is not a GGUF (exit 1)', async () => {
    const bogus = join(scratch, 'bogus.gguf');
    await writeFile(bogus, 'not a model');
    const result = await cli(['classify', '--model', bogus, '--prompt', 'Hello']);
    expect(result.code).toBe(1);
    expect(result.stderr.startsWith(`qwen3guard classify: guard.modelPath: ${bogus} is not a GGUF file`)).toBe(true);
  });

  it('rejects a bad --threads before loading the model', async () => {
    for (const threads of ['0', 'two', '-1']) {
      const result = await cli(['classify', '--model', model, '--prompt', 'Hello', `--threads=${threads}`]);
      expect(result.code).toBe(1);
      expect(result.stderr).toBe(`qwen3guard classify: --threads must be a whole number of at least 1, got '${threads}'\n`);
    }
  });

  it('reports a missing --prompt as a usage error (exit 2)', async () => {
    const result = await cli(['classify', '--model', model]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('missing --prompt <text>');
    expect(result.stderr).toContain('Usage: qwen3guard classify');
  });
});
