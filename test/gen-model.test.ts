import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { readGgufFileInfo } from 'node-llama-cpp';
import { describe, expect, it } from 'vitest';
import { convertCheckpoint } from '../src/convert/convert.js';
import { ConvertError } from '../src/convert/errors.js';
import { LocalGuard } from '../src/engine/guard.js';
import { GuardModelError } from '../src/guard/errors.js';
import { Qwen3GuardGen } from '../src/index.js';
import { detectVariant } from '../src/format/variant.js';
import { detectVariantOfFile } from '../src/gen/variant-file.js';
import { OptionsError } from '../src/shared/validation.js';
import { cachedDir, convertedModel, tinyRandomCheckpoint } from './fixtures/cache.js';
import { randomTensors, TINY, VOCAB_SIZE, writeCheckpoint } from './fixtures/checkpoint.js';
import { GEN_CHAT_TEMPLATE, genRandomTensors, writeGenCheckpoint } from './fixtures/gen-checkpoint.js';
import { convertedGen, genRandomCheckpoint, genUntiedCheckpoint } from './fixtures/gen-models.js';
import { TEST_THREADS } from './fixtures/guards.js';

const header = async (path: string) => (await readGgufFileInfo(path, { readTensorInfo: true })) as { metadata: Record<string, any>; tensorInfo?: Array<{ name: string; dimensions: number[] }> };

describe('converting a Qwen3Guard-Gen checkpoint', () => {
  it('writes a plain qwen3 GGUF: tokenizer and moderation template, no guard keys, tied output', async () => {
    const path = await convertedGen(await genRandomCheckpoint(), 'q8_0');
    const { metadata, tensorInfo } = await header(path);
    expect(metadata.general.architecture).toBe('qwen3');
    expect(metadata.qwen3guard).toBeUndefined();
    expect(metadata.tokenizer.chat_template).toBe(GEN_CHAT_TEMPLATE);
    expect(metadata.tokenizer.ggml.tokens).toHaveLength(VOCAB_SIZE);
    const names = tensorInfo!.map((t) => t.name);
    expect(names).not.toContain('output.weight');
    expect(tensorInfo!.find((t) => t.name === 'token_embd.weight')!.dimensions.map(Number)).toEqual([TINY.hidden, VOCAB_SIZE]);
    expect(await detectVariantOfFile(path)).toBe('gen');
  });

  it('writes output.weight from lm_head.weight when embeddings are untied (Gen-8B), and llama.cpp loads it', async () => {
    const path = await convertedGen(await genUntiedCheckpoint(), 'f16');
    const { tensorInfo } = await header(path);
    expect(tensorInfo!.find((t) => t.name === 'output.weight')!.dimensions.map(Number)).toEqual([TINY.hidden, VOCAB_SIZE]);
    const tied = await Qwen3GuardGen.load({ modelPath: await convertedGen(await genRandomCheckpoint(), 'f16'), gpu: false, threads: TEST_THREADS, contextSize: 1024, maxSessions: 1 });
    const untied = await Qwen3GuardGen.load({ modelPath: path, gpu: false, threads: TEST_THREADS, contextSize: 1024, maxSessions: 1 });
    try {
      const messages = [{ role: 'user' as const, content: 'hello there' }];
      expect(tied.variant).toBe('gen');
      const [a, b] = [await tied.checkPrompt(messages), await untied.checkPrompt(messages)];
      // Same backbone, another output matrix: other verdict logits.
      expect(a.probabilities).not.toEqual(b.probabilities);
    } finally {
      await tied.dispose();
      await untied.dispose();
    }
  });

  it('still converts a Stream checkpoint whose config says untied (Stream-8B has no lm_head): no output.weight', async () => {
    const dir = await cachedDir('stream-untied-config-v1', async (out) => {
      await writeCheckpoint(out, TINY, randomTensors(TINY, 9));
      const config = JSON.parse(await readFile(join(out, 'config.json'), 'utf8'));
      await writeFile(join(out, 'config.json'), JSON.stringify({ ...config, tie_word_embeddings: false }));
    });
    const output = join(dir, 'model.gguf');
    await convertCheckpoint({ checkpoint: dir, output, type: 'f16' });
    const { metadata, tensorInfo } = await header(output);
    expect(metadata.qwen3guard).toBeDefined();
    expect(tensorInfo!.map((t) => t.name)).not.toContain('output.weight');
  });

  it('refuses a Qwen3ForCausalLM checkpoint without the moderation template (an ordinary Qwen3)', async () => {
    const dir = await cachedDir('gen-no-template-v1', async (out) => {
      await writeGenCheckpoint(out, TINY, genRandomTensors(TINY, 5));
      const config = JSON.parse(await readFile(join(out, 'tokenizer_config.json'), 'utf8'));
      await writeFile(join(out, 'tokenizer_config.json'), JSON.stringify({ ...config, chat_template: '{{ messages }}' }));
    });
    const output = join(dir, 'never.gguf');
    const error = await convertCheckpoint({ checkpoint: dir, output }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConvertError);
    expect((error as Error).message).toMatch(/is not a Qwen3Guard-Stream config.*Qwen3ForCausalLM.*moderation template/);
  });
});

describe('variant detection', () => {
  it('tells Stream from Gen from a GGUF header, including a community Gen file named Guard-Gen', async () => {
    expect(await detectVariantOfFile(await convertedModel(await tinyRandomCheckpoint(), 'q8_0'))).toBe('stream');
    expect(await detectVariantOfFile(await convertedGen(await genRandomCheckpoint(), 'q8_0'))).toBe('gen');
    expect(detectVariant({ general: { architecture: 'qwen3', name: 'Qwen3Guard-Gen-0.6B' } })).toBe('gen');
    expect(detectVariant({ general: { architecture: 'qwen3', name: 'Qwen3-0.6B' }, tokenizer: { chat_template: '{{ x }}' } })).toBe('unknown');
    expect(detectVariant({ general: { architecture: 'llama', name: 'Qwen3Guard-Gen' } })).toBe('unknown');
  });

  it('gives each loader a clear error for the other variant', async () => {
    const gen = await convertedGen(await genRandomCheckpoint(), 'q8_0');
    const stream = await convertedModel(await tinyRandomCheckpoint(), 'q8_0');
    const streamError = await LocalGuard.load({ modelPath: gen, gpu: false, threads: TEST_THREADS, contextSize: 256 }).catch((e: unknown) => e);
    expect(streamError).toBeInstanceOf(GuardModelError);
    expect((streamError as Error).message).toMatch(/is a Qwen3Guard-Gen model: use Qwen3GuardGen\.load/);
    const genError = await Qwen3GuardGen.load({ modelPath: stream, gpu: false, threads: TEST_THREADS }).catch((e: unknown) => e);
    expect(genError).toBeInstanceOf(GuardModelError);
    expect((genError as Error).message).toMatch(/is a Qwen3Guard-Stream model: use Qwen3Guard\.load/);
  });

  it('validates options before loading, with the field and the fix', async () => {
    await expect(Qwen3GuardGen.load({})).rejects.toThrow(OptionsError);
    await expect(Qwen3GuardGen.load({})).rejects.toThrow(/guard\.modelPath: give either modelPath .* or model .*qwen3guard-gen-0\.6b/);
    await expect(Qwen3GuardGen.load({ modelPath: 'x.gguf', threads: 0 } as never)).rejects.toThrow(/guard\.threads/);
    await expect(Qwen3GuardGen.load({ modelPath: 'x.gguf', mode: 'lenient' } as never)).rejects.toThrow(/guard\.mode/);
    await expect(Qwen3GuardGen.load({ modelPath: 'x.gguf', responseProbabilities: true } as never)).rejects.toThrow(/responseProbabilities/);
    await expect(Qwen3GuardGen.load({ modelPath: '/nonexistent/gen.gguf' })).rejects.toThrow(/does not exist/);
    const dir = await cachedDir('gen-not-gguf-v1', (out) => mkdir(out, { recursive: true }).then(() => writeFile(join(out, 'model.gguf'), 'not a model')));
    await expect(Qwen3GuardGen.load({ modelPath: join(dir, 'model.gguf') })).rejects.toThrow(/is not a GGUF file/);
  });
});
