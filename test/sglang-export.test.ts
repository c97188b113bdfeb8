import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConvertArgs } from '../src/cli/convert-command.js';
import { UsageError } from '../src/cli/args.js';
import { ConvertError } from '../src/convert/errors.js';
import { exportForSglang } from '../src/convert/sglang-export.js';
import { HEADS_FILE, TOKENIZER_FILE } from '../src/convert/sglang-heads-format.js';
import { readHeadsFile } from '../src/sglang/heads.js';
import { tinyRandomCheckpoint } from './fixtures/cache.js';
import { QUERY_CATEGORIES, randomTensors, RESPONSE_CATEGORIES, RISK_LABELS, TINY, writeCheckpoint } from './fixtures/checkpoint.js';
import { runCli } from './fixtures/cli-process.js';
import { genRandomCheckpoint } from './fixtures/gen-models.js';
import { roundTrip } from './fixtures/safetensors-writer.js';

/** A safetensors file's header and raw tensor bytes, read independently of src/. */
async function readSafetensors(file: string) {
  const buffer = await readFile(file);
  const length = Number(buffer.readBigUInt64LE(0));
  const header = JSON.parse(buffer.subarray(8, 8 + length).toString('utf8')) as Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
  const { __metadata__: metadata, ...tensors } = header as Record<string, never>;
  const bytes = (name: string) => {
    const [begin, end] = (tensors[name] as { data_offsets: [number, number] }).data_offsets;
    return buffer.subarray(8 + length + begin, 8 + length + end);
  };
  return { headerLength: length, metadata: metadata as unknown as Record<string, string> | undefined, tensors: tensors as Record<string, { dtype: string; shape: number[] }>, bytes };
}

let root: string;
let checkpoint: string;
let out: string;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'qwen3guard-sglang-export-'));
  checkpoint = await tinyRandomCheckpoint();
  out = join(root, 'served');
  await exportForSglang({ checkpoint, output: out });
});
afterAll(() => rm(root, { recursive: true, force: true }));

describe('convert --for sglang', () => {
  it('writes config.json for Qwen3ForCausalLM with tied embeddings and without the guard keys, and copies the tokenizer', async () => {
    const source = JSON.parse(await readFile(join(checkpoint, 'config.json'), 'utf8'));
    const served = JSON.parse(await readFile(join(out, 'config.json'), 'utf8'));
    expect(served.architectures).toEqual(['Qwen3ForCausalLM']);
    expect(served).toMatchObject({ model_type: 'qwen3', tie_word_embeddings: true });
    for (const key of ['auto_map', 'guard_inner_size', 'response_risk_level_map', 'query_category_map', 'num_query_category']) expect(served).not.toHaveProperty(key);
    for (const key of ['hidden_size', 'num_hidden_layers', 'head_dim', 'rms_norm_eps', 'rope_theta', 'vocab_size', 'max_position_embeddings', 'torch_dtype']) {
      expect(served[key]).toEqual(source[key]);
    }
    for (const name of ['tokenizer.json', 'tokenizer_config.json']) expect((await readFile(join(out, name))).equals(await readFile(join(checkpoint, name))), name).toBe(true);
    expect((await readdir(out)).sort()).toEqual(['config.json', 'model.safetensors', 'qwen3guard', 'tokenizer.json', 'tokenizer_config.json']);
    expect((await readdir(join(out, 'qwen3guard'))).sort()).toEqual(['heads.safetensors', 'tokenizer.gguf']);
  });

  it('copies every backbone tensor byte for byte, under the names Qwen3ForCausalLM loads, and nothing else', async () => {
    const source = await readSafetensors(join(checkpoint, 'model.safetensors'));
    const served = await readSafetensors(join(out, 'model.safetensors'));
    const backbone = Object.keys(source.tensors).filter((name) => name.startsWith('model.'));
    expect(Object.keys(served.tensors).sort()).toEqual(backbone.sort());
    expect(backbone).toHaveLength(1 + 11 * TINY.layers + 1);
    for (const name of backbone) {
      expect(served.tensors[name].dtype).toBe(source.tensors[name].dtype);
      expect(served.tensors[name].shape).toEqual(source.tensors[name].shape);
      expect(served.bytes(name).equals(source.bytes(name)), name).toBe(true);
    }
    expect(served.metadata).toEqual({ format: 'pt' });
    expect(served.headerLength % 8).toBe(0);
  });

  it('writes the heads, the final norm, the epsilon and the label maps of config.json to the heads file', async () => {
    const heads = await readHeadsFile(join(out, HEADS_FILE));
    const source = await readSafetensors(join(checkpoint, 'model.safetensors'));
    const f32 = (name: string) => new Float32Array(new Uint8Array(source.bytes(name)).buffer);
    expect(heads).toMatchObject({ hiddenSize: TINY.hidden, innerSize: TINY.inner, epsilon: 1e-6 });
    expect(heads.response.riskLabels).toEqual(RISK_LABELS);
    expect(heads.response.categoryLabels).toEqual(RESPONSE_CATEGORIES);
    expect(heads.query.categoryLabels).toEqual(QUERY_CATEGORIES);
    expect(heads.response.pre).toEqual(f32('risk_level_category_pre.weight'));
    expect(heads.query.pre).toEqual(f32('query_risk_level_category_pre.weight'));
    expect(heads.query.layout.normWeight).toEqual(Float64Array.from(f32('query_risk_level_category_layernorm.weight')));
    expect(heads.response.layout.riskHead).toEqual(Float64Array.from(f32('risk_level_head.weight')));
    expect(heads.query.layout.categoryHead).toEqual(Float64Array.from(f32('query_category_head.weight')));
    expect(heads.finalNorm).toEqual(f32('model.norm.weight'));
    const file = await readSafetensors(join(out, HEADS_FILE));
    expect(Object.values(file.tensors).every((t) => t.dtype === 'F32')).toBe(true);
  });

  it('keeps the shards of a sharded checkpoint, with an index of the backbone only, and the source dtype', async () => {
    const dir = join(root, 'sharded-bf16');
    const tensors = randomTensors(TINY, 99);
    await writeCheckpoint(dir, TINY, tensors, { dtype: 'BF16', shards: 2 });
    const served = join(root, 'sharded-served');
    const result = await exportForSglang({ checkpoint: dir, output: served });
    const index = JSON.parse(await readFile(join(served, 'model.safetensors.index.json'), 'utf8'));
    const source = JSON.parse(await readFile(join(dir, 'model.safetensors.index.json'), 'utf8'));
    const backbone = Object.keys(source.weight_map).filter((name) => name.startsWith('model.'));
    expect(Object.keys(index.weight_map).sort()).toEqual(backbone.sort());
    for (const name of backbone) expect(index.weight_map[name]).toBe(source.weight_map[name]);
    expect(result.files).toEqual(expect.arrayContaining([...new Set(Object.values(index.weight_map) as string[])]));
    let total = 0;
    for (const shard of new Set(Object.values(index.weight_map) as string[])) {
      const file = await readSafetensors(join(served, shard));
      for (const [name, info] of Object.entries(file.tensors)) {
        expect(info.dtype).toBe('BF16');
        total += file.bytes(name).length;
      }
    }
    expect(index.metadata.total_size).toBe(total);
    expect(result.backboneBytes).toBe(total);
    // The heads file holds the checkpoint's bf16 values, widened to f32 exactly.
    const heads = await readHeadsFile(join(served, HEADS_FILE));
    expect(heads.response.pre).toEqual(roundTrip(tensors.find((t) => t.name === 'risk_level_category_pre.weight')!.data, 'BF16'));
  });

  it('refuses a Gen checkpoint, an output that exists, and incomplete or foreign checkpoints, leaving nothing behind', async () => {
    await expect(exportForSglang({ checkpoint: await genRandomCheckpoint(), output: join(root, 'gen') })).rejects.toThrow(/Qwen3Guard-Gen checkpoint: it is a plain Qwen3ForCausalLM already/);
    await expect(exportForSglang({ checkpoint, output: out })).rejects.toThrow(`${out}: exists and is not empty`);
    await writeFile(join(root, 'a-file'), 'x');
    await expect(exportForSglang({ checkpoint, output: join(root, 'a-file') })).rejects.toThrow('exists and is not a folder');
    await expect(exportForSglang({ checkpoint, output: join(root, 'no', 'such', 'parent') })).rejects.toThrow(ConvertError);

    const missing = join(root, 'missing-head');
    await writeCheckpoint(missing, TINY, randomTensors(TINY, 5).filter((t) => t.name !== 'query_category_head.weight'));
    await expect(exportForSglang({ checkpoint: missing, output: join(root, 'x1') })).rejects.toThrow(/is missing tensor query_category_head\.weight \(shape \[9,32\]\)/);
    const foreign = join(root, 'foreign');
    await writeCheckpoint(foreign, TINY, [...randomTensors(TINY, 5), { name: 'lm_head.weight', shape: [2, TINY.hidden], data: new Float32Array(2 * TINY.hidden) }]);
    await expect(exportForSglang({ checkpoint: foreign, output: join(root, 'x2') })).rejects.toThrow(/has tensors a Qwen3Guard-Stream checkpoint does not: lm_head\.weight/);
    const wrongShape = join(root, 'wrong-shape');
    await mkdir(wrongShape, { recursive: true });
    await writeCheckpoint(wrongShape, TINY, randomTensors({ ...TINY, inner: 16 }, 5));
    await expect(exportForSglang({ checkpoint: wrongShape, output: join(root, 'x3') })).rejects.toThrow(/risk_level_category_pre\.weight has shape \[16,64\], expected \[32,64\] from config\.json/);
    expect((await readdir(root)).filter((name) => name.endsWith('.tmp') || name.startsWith('x'))).toEqual([]);
  });

  it('cancels through its signal and removes the temporary folder', async () => {
    const controller = new AbortController();
    controller.abort(new Error('stop'));
    await expect(exportForSglang({ checkpoint, output: join(root, 'cancelled'), signal: controller.signal })).rejects.toThrow('stop');
    expect(existsSync(join(root, 'cancelled'))).toBe(false);
    expect((await readdir(root)).filter((name) => name.endsWith('.tmp'))).toEqual([]);
  });
});

describe('the convert command', () => {
  it('parses --for sglang with the output folder as a second argument or -o', () => {
    expect(parseConvertArgs(['--for', 'sglang', 'ckpt', 'dir'])).toEqual({ target: 'sglang', checkpoint: 'ckpt', output: 'dir' });
    expect(parseConvertArgs(['ckpt', '--for', 'sglang', '-o', 'dir'])).toEqual({ target: 'sglang', checkpoint: 'ckpt', output: 'dir' });
    expect(parseConvertArgs(['ckpt', '-o', 'model.gguf'])).toEqual({ target: 'gguf', checkpoint: 'ckpt', output: 'model.gguf', type: 'q8_0' });
    expect(() => parseConvertArgs(['--for', 'sglang', 'ckpt'])).toThrow(new UsageError('--for sglang takes <checkpoint-dir> <output-dir>'));
    expect(() => parseConvertArgs(['--for', 'sglang', 'ckpt', 'dir', '--type', 'f16'])).toThrow(/--type does not apply to --for sglang/);
    expect(() => parseConvertArgs(['--for', 'vllm', 'ckpt', 'dir'])).toThrow("unknown --for 'vllm': use gguf or sglang");
  });

  it('writes the folder from the command line', async () => {
    const dir = join(root, 'from-cli');
    const result = await runCli(['convert', '--for', 'sglang', checkpoint, dir], { NO_COLOR: '1' });
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(new RegExp(`^Wrote ${dir} for SGLang \\(.* of backbone weights, 6 files\\) in `));
    expect(existsSync(join(dir, TOKENIZER_FILE))).toBe(true);
  });
});

