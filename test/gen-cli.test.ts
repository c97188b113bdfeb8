import { existsSync } from 'node:fs';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Qwen3GuardGen } from '../src/index.js';
import { detectVariantOfFile } from '../src/gen/variant-file.js';
import { parseModelName, parseModelSource } from '../src/download/models.js';
import { convertedGen, genPlantedCheckpoint } from './fixtures/gen-models.js';
import { ISOLATED_ENV, runCli, type CliResult } from './fixtures/cli-process.js';
import { TEST_THREADS } from './fixtures/guards.js';
import { HUB_COMMIT, HubServer } from './fixtures/hub-server.js';

/** Runs `qwen3guard` from source, isolated from the user's colour, hub and cache settings, with `env` on top. */
function cli(args: string[], env: Record<string, string> = {}): Promise<CliResult> {
  return runCli(args, { ...ISOLATED_ENV, ...env });
}

let scratch: string;
let model: string;
beforeAll(async () => {
  scratch = await mkdtemp(join(tmpdir(), 'qwen3guard-gen-cli-'));
  model = await convertedGen(await genPlantedCheckpoint(), 'f32');
});
afterAll(() => rm(scratch, { recursive: true, force: true }));

const probabilities = { Safe: expect.any(Number), Unsafe: expect.any(Number), Controversial: expect.any(Number) };

describe('qwen3guard classify with a Gen model', () => {
  const classify = (args: string[]) => cli(['classify', '--model', model, '--threads', String(TEST_THREADS), ...args]);

  it('detects Gen and prints the Stream JSON shape with model "gen", the categories and the refusal', async () => {
    const result = await classify(['--prompt', 'How do I build a bomb?', '--response', "Sorry, I can't help with that.", '--json']);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    const json = JSON.parse(result.stdout);
    expect(json).toEqual({
      model: 'gen',
      prompt: { riskLevel: 'Unsafe', category: 'Violent', categories: ['Violent'], probabilities },
      response: { verdict: { riskLevel: 'Unsafe', category: 'Violent', categories: ['Violent'], probabilities }, refusal: true },
    });
    expect(json.prompt.probabilities.Unsafe).toBeGreaterThan(0.99);
    const safe = JSON.parse((await classify(['--prompt', 'Hello', '--json'])).stdout);
    expect(safe).toEqual({ model: 'gen', prompt: { riskLevel: 'Safe', category: null, categories: [], probabilities } });
  });

  it('prints a short report without --json, and refuses --reasoning, which Gen does not read', async () => {
    const result = await classify(['--prompt', 'Who wins the election?', '--response', 'Nobody knows.']);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^Prompt: Controversial \(Politically Sensitive Topics\)  P\(Safe\)=0\.\d{3} P\(Unsafe\)=0\.\d{3} P\(Controversial\)=[01]\.\d{3}\n/);
    expect(result.stdout).toMatch(/\nResponse: Controversial \(Politically Sensitive Topics\)  .* refusal: no\n$/);
    const reasoning = await classify(['--prompt', 'Hi', '--reasoning', 'hmm', '--response', 'Hello']);
    expect(reasoning.code).toBe(1);
    expect(reasoning.stderr).toMatch(/^qwen3guard classify: --reasoning applies to Qwen3Guard-Stream models/);
  });
});

describe('qwen3guard pull gen-0.6b', () => {
  it('names the Gen repositories', () => {
    expect(parseModelSource('gen-0.6B')).toEqual({ repo: 'Qwen/Qwen3Guard-Gen-0.6B', size: '0.6B', variant: 'gen' });
    expect(parseModelSource('GEN-8b')?.repo).toBe('Qwen/Qwen3Guard-Gen-8B');
    expect(parseModelSource('4B')?.repo).toBe('Qwen/Qwen3Guard-Stream-4B');
    expect(parseModelName('gen-4b-f16')).toEqual({ base: 'qwen3guard-gen-4b', type: 'f16', size: '4B', variant: 'gen' });
    expect(parseModelName('qwen3guard-gen-0.6b')).toMatchObject({ base: 'qwen3guard-gen-0.6b', type: 'q8_0', variant: 'gen' });
  });

  it('downloads Qwen/Qwen3Guard-Gen-0.6B from the hub, converts it, and Qwen3GuardGen.load and classify find it by name', async () => {
    const repo = 'Qwen/Qwen3Guard-Gen-0.6B';
    const hub = await HubServer.start({ repos: { [repo]: await genPlantedCheckpoint() } });
    const cache = join(scratch, 'cache');
    try {
      const result = await cli(['pull', 'gen-0.6b', '--type', 'f32', '--cache', cache], { HF_ENDPOINT: hub.endpoint });
      expect(result.stderr).toBe('');
      expect(result.code).toBe(0);
      const gguf = join(cache, 'qwen3guard-gen-0.6b-f32.gguf');
      expect(result.stdout).toMatch(new RegExp(`^Pulled ${repo}@${HUB_COMMIT.slice(0, 12)}: .* converted to ${gguf} \\(f32,`));
      expect(hub.requests.some((r) => r.path.startsWith(`/api/models/${repo}/revision/`))).toBe(true);
      expect((await readdir(cache)).filter((n) => !n.startsWith('.'))).toEqual(['qwen3guard-gen-0.6b-f32.gguf']);
      expect(existsSync(join(cache, '.partial', `qwen3guard-gen-0.6b@${HUB_COMMIT}`))).toBe(false);
      expect(await detectVariantOfFile(gguf)).toBe('gen');

      const gen = await Qwen3GuardGen.load({ model: 'qwen3guard-gen-0.6b-f32', cacheDir: cache, gpu: false, threads: TEST_THREADS, contextSize: 1024, maxSessions: 1 });
      try {
        expect(gen.options.modelPath).toBe(gguf);
        expect(await gen.checkPrompt([{ role: 'user', content: 'What is her password?' }])).toMatchObject({ riskLevel: 'Unsafe', category: 'PII' });
      } finally {
        await gen.dispose();
      }
      const named = await cli(['classify', '--model', 'gen-0.6b-f32', '--prompt', 'a bomb', '--json', '--threads', String(TEST_THREADS)], { XDG_CACHE_HOME: join(scratch, 'xdg') });
      // Not in the default cache: the message gives the Gen pull command.
      expect(named.code).toBe(1);
      expect(named.stderr).toMatch(/is not in the model cache .*npx qwen3guard pull gen-0\.6B --type f32/);
    } finally {
      await hub.close();
    }
  });
});
