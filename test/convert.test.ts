import { execFile } from 'node:child_process';
import { existsSync, readdirSync, statSync, truncateSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, open, readdir, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { getLlama, LlamaLogLevel, readGgufFileInfo } from 'node-llama-cpp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { convertCheckpoint, type ConvertOptions, type ConvertProgress } from '../src/convert/convert.js';
import { ConvertError } from '../src/convert/errors.js';
import { encodeTensorData, floatToHalf, halfToFloat, quantizeQ8_0 } from '../src/convert/numeric.js';
import { readGuardLayout } from '../src/engine/guard-layout.js';
import { GUARD_FORMAT_VERSION } from '../src/format/guard-metadata.js';
import {
  configJson,
  QUERY_CATEGORIES,
  randomTensors,
  RESPONSE_CATEGORIES,
  RISK_LABELS,
  TINY,
  TOKENIZER_DIR,
  VOCAB_SIZE,
  writeCheckpoint,
  type Shape,
} from './fixtures/checkpoint.js';
import { roundTrip, writeSafetensors, type NamedTensor } from './fixtures/safetensors-writer.js';

const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const MEMORY_CHILD = join(REPO_ROOT, 'test', 'convert-memory-child.ts');

/** Vocabulary rows of a TINY conversion: the vocabulary, then (+, -) pairs of W_pre (G rows), risk (3) and category rows per path. */
/** Per path: G plain W_pre rows, then a (+, -) pair per folded risk and category row. */
const GUARD_ROWS = 2 * TINY.inner + 2 * (RISK_LABELS.length + RESPONSE_CATEGORIES.length + RISK_LABELS.length + QUERY_CATEGORIES.length);
const TOTAL_ROWS = VOCAB_SIZE + GUARD_ROWS;
/** ggml type ids as GGUF stores them. */
const GGML = { F32: 0, F16: 1, Q8_0: 8 } as const;

let root: string;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'qwen3guard-convert-'));
});
afterAll(async () => {
  if (!root) return;
  // Read-only folders made by the tests must be writable again to be removed.
  for (const entry of await readdir(root, { recursive: true, withFileTypes: true })) {
    if (entry.isDirectory()) await chmod(join(entry.parentPath, entry.name), 0o755).catch(() => undefined);
  }
  await rm(root, { recursive: true, force: true });
});

// ---------------------------------------------------------------------------------------------------------
// Helpers

type GgufInfo = Awaited<ReturnType<typeof readGgufFileInfo>>;
type TensorInfo = NonNullable<GgufInfo['tensorInfo']>[number];

function ggufInfo(path: string): Promise<GgufInfo> {
  return readGgufFileInfo(path, { logWarnings: false });
}

/** A metadata value by its GGUF key (node-llama-cpp nests keys by their dots). */
function meta(info: GgufInfo, key: string): unknown {
  let node: unknown = info.metadata;
  for (const part of key.split('.')) node = (node as Record<string, unknown> | undefined)?.[part];
  return node;
}

function tensorInfo(info: GgufInfo, name: string): TensorInfo {
  const found = info.tensorInfo!.find((t) => t.name === name);
  if (!found) throw new Error(`no tensor ${name} in the GGUF`);
  return found;
}

function rowBytes(t: TensorInfo): number {
  const width = Number(t.dimensions[0]);
  if (t.ggmlType === GGML.F32) return width * 4;
  if (t.ggmlType === GGML.F16) return width * 2;
  if (t.ggmlType === GGML.Q8_0) return (width / 32) * 34;
  throw new Error(`unexpected ggml type ${t.ggmlType} for ${t.name}`);
}

function tensorBytes(t: TensorInfo): number {
  return rowBytes(t) * t.dimensions.slice(1).reduce<number>((a, b) => a * Number(b), 1);
}

/** Raw bytes of rows [start, end) of a tensor, read from the file at the tensor's absolute data offset. */
async function readRowBytes(path: string, info: GgufInfo, name: string, start: number, end: number): Promise<Buffer> {
  const t = tensorInfo(info, name);
  const size = rowBytes(t);
  const handle = await open(path, 'r');
  try {
    const buffer = Buffer.alloc((end - start) * size);
    const { bytesRead } = await handle.read(buffer, 0, buffer.byteLength, Number(t.fileOffset) + start * size);
    expect(bytesRead, `${name} rows ${start}..${end} lie inside the file`).toBe(buffer.byteLength);
    return buffer;
  } finally {
    await handle.close();
  }
}

async function readRowsF32(path: string, info: GgufInfo, name: string, start: number, end: number): Promise<Float32Array> {
  expect(tensorInfo(info, name).ggmlType).toBe(GGML.F32);
  const bytes = await readRowBytes(path, info, name, start, end);
  return new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
}

/** Bit-exact comparison of float arrays (so -0 and NaN payloads count too), naming the first difference. */
function expectSameFloats(actual: Float32Array, expected: Float32Array, what: string): void {
  expect(actual.length, `${what}: length`).toBe(expected.length);
  const a = new Uint32Array(Float32Array.from(actual).buffer);
  const b = new Uint32Array(Float32Array.from(expected).buffer);
  const first = a.findIndex((bits, i) => bits !== b[i]);
  expect(first, first < 0 ? what : `${what}: value ${first} is ${actual[first]}, expected ${expected[first]}`).toBe(-1);
}

function sourceTensor(tensors: NamedTensor[], name: string): NamedTensor {
  const found = tensors.find((t) => t.name === name);
  if (!found) throw new Error(`fixture has no tensor ${name}`);
  return found;
}

function rowOf(data: Float32Array, row: number, width: number): Float32Array {
  return data.subarray(row * width, (row + 1) * width);
}

/** A regular expression matching `text` literally. */
function literal(text: string): RegExp {
  return new RegExp(text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
}

/** Runs a conversion that must fail with a ConvertError whose message matches every pattern. */
async function expectConvertError(options: ConvertOptions, ...patterns: RegExp[]): Promise<ConvertError> {
  const error = await convertCheckpoint(options).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error, 'the conversion must fail').toBeInstanceOf(ConvertError);
  const message = (error as ConvertError).message;
  for (const pattern of patterns) expect(message).toMatch(pattern);
  return error as ConvertError;
}

/** Leftover temporary files of a conversion (`.<name>.<pid>.<hex>.tmp`) in a folder. */
function temporaries(folder: string): string[] {
  return existsSync(folder) ? readdirSync(folder).filter((name) => name.endsWith('.tmp')) : [];
}

const asMap = (labels: readonly string[]) => Object.fromEntries(labels.map((label, i) => [String(i), label]));

// ---------------------------------------------------------------------------------------------------------

describe('sharded checkpoints', () => {
  const tensors = randomTensors(TINY, 11);
  let sharded: string;
  let single: string;
  let shardedGguf: string;
  let singleGguf: string;

  beforeAll(async () => {
    // Same basename ("ckpt") so that general.name, the only input-path-dependent value, agrees.
    sharded = join(root, 'sharded', 'ckpt');
    single = join(root, 'single', 'ckpt');
    await writeCheckpoint(sharded, TINY, tensors, { shards: 3 });
    await writeCheckpoint(single, TINY, tensors);
    shardedGguf = join(root, 'sharded', 'model.gguf');
    singleGguf = join(root, 'single', 'model.gguf');
  });

  it('is written as an index and three shard files', async () => {
    const index = JSON.parse(await readFile(join(sharded, 'model.safetensors.index.json'), 'utf8')) as { weight_map: Record<string, string> };
    const shards = [...new Set(Object.values(index.weight_map))].sort();
    expect(shards).toEqual(['model-00001-of-00003.safetensors', 'model-00002-of-00003.safetensors', 'model-00003-of-00003.safetensors']);
    expect(Object.keys(index.weight_map).length).toBe(tensors.length);
    expect(existsSync(join(sharded, 'model.safetensors'))).toBe(false);
  });

  it('converts to the same bytes as the unsharded checkpoint', async () => {
    const a = await convertCheckpoint({ checkpoint: sharded, output: shardedGguf, type: 'f32' });
    const b = await convertCheckpoint({ checkpoint: single, output: singleGguf, type: 'f32' });
    expect(a).toEqual({ ...b, output: shardedGguf });
    expect(a.vocabularyRows).toBe(TOTAL_ROWS);
    expect(a.tensors).toBe(2 + 11 * TINY.layers);
    expect(statSync(shardedGguf).size).toBe(a.bytes);
    const [bytesA, bytesB] = await Promise.all([readFile(shardedGguf), readFile(singleGguf)]);
    expect(bytesA.byteLength).toBe(bytesB.byteLength);
    expect(bytesA.equals(bytesB), 'sharded and unsharded conversions differ').toBe(true);
    expect(temporaries(join(root, 'sharded'))).toEqual([]);
  });

  it('loads in node-llama-cpp, tokenizes, evaluates, and the engine reads its guard layout', async () => {
    const llama = await getLlama({ gpu: false, build: 'never', logLevel: LlamaLogLevel.error });
    try {
      const model = await llama.loadModel({ modelPath: shardedGguf });
      try {
        expect(model.fileInfo.metadata.general.architecture).toBe('qwen3');
        expect(model.trainContextSize).toBe(8192);
        const text = 'Hello world, how are you?';
        const tokens = model.tokenize(text);
        expect(tokens.length).toBeGreaterThan(3);
        expect(model.detokenize(tokens)).toBe(text);
        // <|im_end|> is a control token: written as text it is plain text unless special tokens are parsed.
        expect(model.tokenize('<|im_end|>', true)).toEqual([151645]);

        const layout = readGuardLayout(model.fileInfo.metadata, shardedGguf);
        expect(layout.vocabSize).toBe(VOCAB_SIZE);
        expect(layout.response.preRow).toBe(VOCAB_SIZE);
        expect(layout.query.category.start + 2 * QUERY_CATEGORIES.length).toBe(TOTAL_ROWS);

        const context = await model.createContext({ contextSize: 256, threads: 2 });
        try {
          await context.getSequence().evaluateWithoutGeneratingNewTokens(tokens);
        } finally {
          await context.dispose();
        }
      } finally {
        await model.dispose();
      }
    } finally {
      await llama.dispose();
    }
  });
});

// ---------------------------------------------------------------------------------------------------------

describe.each(['BF16', 'F16'] as const)('%s checkpoint converted to f32', (dtype) => {
  const tensors = randomTensors(TINY, dtype === 'BF16' ? 21 : 22);
  const H = TINY.hidden;
  let output: string;
  let info: GgufInfo;

  beforeAll(async () => {
    const checkpoint = join(root, `dtype-${dtype}`, 'ckpt');
    await writeCheckpoint(checkpoint, TINY, tensors, { dtype });
    output = join(root, `dtype-${dtype}`, 'model.gguf');
    await convertCheckpoint({ checkpoint, output, type: 'f32' });
    info = await ggufInfo(output);
  });

  it('lays out the tensor data where the header says', () => {
    expect(info.version).toBe(3);
    expect(meta(info, 'general.file_type')).toBe(0);
    expect(info.infoEndOffset! % 32).toBe(0);
    let end = info.infoEndOffset!;
    for (const t of info.tensorInfo!) {
      expect(Number(t.fileOffset), t.name).toBe(info.infoEndOffset! + Number(t.offset));
      expect(Number(t.offset) % 32, `${t.name} is aligned`).toBe(0);
      expect(Number(t.fileOffset), `${t.name} follows the previous tensor`).toBeGreaterThanOrEqual(end);
      end = Number(t.fileOffset) + tensorBytes(t);
    }
    expect(statSync(output).size, 'the file ends with the last tensor').toBe(end);
  });

  it(`keeps the ${dtype} values of token_embd exactly, across read pieces`, async () => {
    const embed = sourceTensor(tensors, 'model.embed_tokens.weight').data;
    const t = tensorInfo(info, 'token_embd.weight');
    expect(t.ggmlType).toBe(GGML.F32);
    expect(t.dimensions.map(Number)).toEqual([H, TOTAL_ROWS]);
    // The converter reads the embedding 4M values (65536 rows of 64) at a time: cover both sides of a boundary.
    const piece = (4 << 20) / H;
    for (const [start, end] of [[0, 3], [1234, 1236], [piece - 2, piece + 2], [VOCAB_SIZE - 2, VOCAB_SIZE]]) {
      const rows = await readRowsF32(output, info, 'token_embd.weight', start, end);
      const expected = roundTrip(embed.subarray(start * H, end * H), dtype);
      expectSameFloats(rows, expected, `token_embd rows ${start}..${end}`);
      // The rounding is real: the f32 source values were not representable.
      expect(expected.some((v, i) => v !== embed[start * H + i])).toBe(true);
    }
  });

  it('keeps the layer matrices and norms exactly', async () => {
    const pairs: Array<[string, string]> = [
      ['blk.0.attn_q.weight', 'model.layers.0.self_attn.q_proj.weight'],
      ['blk.1.attn_output.weight', 'model.layers.1.self_attn.o_proj.weight'],
      ['blk.1.ffn_down.weight', 'model.layers.1.mlp.down_proj.weight'],
      ['blk.0.attn_k_norm.weight', 'model.layers.0.self_attn.k_norm.weight'],
      ['output_norm.weight', 'model.norm.weight'],
    ];
    for (const [gguf, hf] of pairs) {
      const source = sourceTensor(tensors, hf);
      const t = tensorInfo(info, gguf);
      expect(t.dimensions.map(Number), gguf).toEqual([...source.shape].reverse());
      const rows = source.shape.length === 1 ? 1 : source.shape[0];
      expectSameFloats(await readRowsF32(output, info, gguf, 0, rows), roundTrip(source.data, dtype), gguf);
    }
  });

  it('appends W_pre exactly after the vocabulary, then the folded rows as exact (+2^e, -2^e) pairs', async () => {
    const pre = roundTrip(sourceTensor(tensors, 'risk_level_category_pre.weight').data, dtype);
    expect(meta(info, 'qwen3guard.response.pre_row')).toBe(VOCAB_SIZE);
    const rows = await readRowsF32(output, info, 'token_embd.weight', VOCAB_SIZE, VOCAB_SIZE + TINY.inner);
    for (let g = 0; g < TINY.inner; g++) expectSameFloats(rowOf(rows, g, H), rowOf(pre, g, H), `pre row ${g}`);
    const riskStart = meta(info, 'qwen3guard.response.risk_row') as number;
    expect(riskStart).toBe(VOCAB_SIZE + TINY.inner);
    const scales = meta(info, 'qwen3guard.response.risk_scale_log2') as number[];
    const pairs = await readRowsF32(output, info, 'token_embd.weight', riskStart, riskStart + 2 * RISK_LABELS.length);
    for (let r = 0; r < RISK_LABELS.length; r++) {
      const plus = rowOf(pairs, 2 * r, H);
      expect(plus.some((v) => v !== 0)).toBe(true);
      expectSameFloats(rowOf(pairs, 2 * r + 1, H), plus.map((v) => -v), `-risk row ${r}`);
      // A power-of-two scale: dividing it out leaves float32 values (no rounding happened).
      const unscaled = plus.map((v) => v / 2 ** scales[r]);
      expectSameFloats(Float32Array.from(unscaled), unscaled, `risk row ${r} scale`);
    }
  });
});

// ---------------------------------------------------------------------------------------------------------

describe('f16 encoding', () => {
  it('converts exact values', () => {
    const cases: Array<[number, number]> = [
      [0, 0x0000],
      [-0, 0x8000],
      [1, 0x3c00],
      [-2, 0xc000],
      [0.5, 0x3800],
      [65504, 0x7bff], // largest finite
      [-65504, 0xfbff],
      [2 ** -14, 0x0400], // smallest normal
      [6.1035e-5, 0x0400], // rounds up to it
      [2 ** -24, 0x0001], // smallest subnormal
      [5.96e-8, 0x0001],
      [1023 * 2 ** -24, 0x03ff], // largest subnormal
      [0.1, 0x2e66],
      [1 / 3, 0x3555],
    ];
    for (const [value, half] of cases) {
      expect(floatToHalf(value), `floatToHalf(${value})`).toBe(half);
      if (Number.isFinite(halfToFloat(half))) expect(Object.is(halfToFloat(floatToHalf(value)), halfToFloat(half))).toBe(true);
    }
    expect(halfToFloat(0x3c00)).toBe(1);
    expect(halfToFloat(0xc000)).toBe(-2);
    expect(halfToFloat(0x7bff)).toBe(65504);
    expect(halfToFloat(0x0400)).toBe(2 ** -14);
    expect(halfToFloat(0x0001)).toBe(2 ** -24);
    expect(halfToFloat(0x2e66)).toBe(0.0999755859375);
    expect(Object.is(halfToFloat(0x8000), -0)).toBe(true);
  });

  it('overflows to infinity and keeps NaN', () => {
    expect(floatToHalf(65519)).toBe(0x7bff); // below the midpoint to 2^16
    expect(floatToHalf(65520)).toBe(0x7c00); // the midpoint: ties to even, i.e. up to infinity
    expect(floatToHalf(1e6)).toBe(0x7c00);
    expect(floatToHalf(-1e6)).toBe(0xfc00);
    expect(floatToHalf(Infinity)).toBe(0x7c00);
    expect(floatToHalf(-Infinity)).toBe(0xfc00);
    expect(halfToFloat(0x7c00)).toBe(Infinity);
    expect(halfToFloat(0xfc00)).toBe(-Infinity);
    expect((floatToHalf(NaN) & 0x7c00) === 0x7c00 && (floatToHalf(NaN) & 0x3ff) !== 0).toBe(true);
    expect(halfToFloat(0x7e00)).toBeNaN();
    expect(floatToHalf(2 ** -26)).toBe(0); // below half the smallest subnormal
    expect(Object.is(halfToFloat(floatToHalf(-(2 ** -26))), -0)).toBe(true);
  });

  it('rounds ties to even, for normals and subnormals', () => {
    const ulp1 = 2 ** -10; // spacing of halves in [1, 2)
    expect(floatToHalf(1 + ulp1 / 2)).toBe(0x3c00); // tie between 0x3c00 (even) and 0x3c01
    expect(floatToHalf(1 + (3 * ulp1) / 2)).toBe(0x3c02); // tie between 0x3c01 and 0x3c02 (even)
    expect(floatToHalf(1 + ulp1 / 2 + 2 ** -20)).toBe(0x3c01); // just above the tie
    expect(floatToHalf(2049)).toBe(floatToHalf(2048)); // integers above 2048 are 2 apart
    expect(halfToFloat(floatToHalf(2051))).toBe(2052);
    expect(floatToHalf(2 ** -25)).toBe(0x0000); // tie between 0 (even) and the smallest subnormal
    expect(floatToHalf(3 * 2 ** -25)).toBe(0x0002); // tie between 0x0001 and 0x0002 (even)
    expect(floatToHalf(5 * 2 ** -25)).toBe(0x0002); // tie between 0x0002 (even) and 0x0003
    expect(floatToHalf(2 ** -14 - 2 ** -25)).toBe(0x0400); // largest subnormal + half a step rounds up into the normals
    expect(floatToHalf(2047.5 * 2 ** -10)).toBe(0x4000); // a mantissa carry bumps the exponent
  });

  it('round-trips every finite half and matches an independent rounding on random floats', () => {
    for (let h = 0; h < 0x10000; h++) {
      const value = halfToFloat(h);
      if (Number.isNaN(value)) continue;
      if (floatToHalf(value) !== h) expect(floatToHalf(value), `half 0x${h.toString(16)}`).toBe(h);
    }
    // roundTrip(F16) is the fixture writer's own float -> half -> float, written independently.
    const values = new Float32Array(20000);
    for (let i = 0; i < values.length; i++) {
      const magnitude = 2 ** (((i * 7919) % 44) - 28); // 2^-28 .. 2^15: zero, subnormals, normals
      values[i] = (i % 2 ? -1 : 1) * magnitude * (1 + ((i * 104729) % 9973) / 9973);
    }
    const expected = roundTrip(values, 'F16');
    const actual = values.map((v) => halfToFloat(floatToHalf(v)));
    expectSameFloats(actual, expected, 'random floats');
    // encodeTensorData('F16') writes the same halves, little-endian.
    const encoded = encodeTensorData(values.subarray(0, 64), 'F16');
    const view = new DataView(encoded.buffer);
    for (let i = 0; i < 64; i++) expect(view.getUint16(2 * i, true)).toBe(floatToHalf(values[i]));
  });
});

describe('q8_0 encoding', () => {
  it('stores d = max|x| / 127 as f16 and q = round(x / d), halves away from zero', () => {
    // d = 1: x / d is x itself, so the ties are exact.
    const block = new Float32Array(32);
    block.set([127, 2.5, -2.5, 0.5, -0.5, 1.5, -1.5, -126.5, 3.49, -3.51, 0.25, -0.75]);
    const bytes = quantizeQ8_0(block);
    expect(bytes.byteLength).toBe(34);
    const view = new DataView(bytes.buffer);
    expect(view.getUint16(0, true)).toBe(0x3c00);
    const q = Array.from(new Int8Array(bytes.buffer, 2, 32));
    expect(q.slice(0, 12)).toEqual([127, 3, -3, 1, -1, 2, -2, -127, 3, -4, 0, -1]);
    expect(q.slice(12).every((v) => v === 0)).toBe(true);
  });

  it('scales by the largest magnitude, negative or positive, block by block', () => {
    // Block 0: max |x| = 6.35 (negative) -> d = 0.05; block 1: all zero; block 2: max 0.127 -> d = 0.001.
    const values = new Float32Array(96);
    for (let j = 0; j < 32; j++) values[j] = ((j % 8) - 4) * 0.6;
    values[5] = -6.35;
    for (let j = 0; j < 32; j++) values[64 + j] = j === 31 ? 0.127 : (j - 16) * 0.00313; // q = (j - 16) x 3.13, no ties
    const bytes = quantizeQ8_0(values);
    expect(bytes.byteLength).toBe(3 * 34);
    const view = new DataView(bytes.buffer);
    const d0 = Math.fround(Math.fround(6.35) / 127);
    expect(view.getUint16(0, true)).toBe(floatToHalf(d0));
    expect(Math.abs(halfToFloat(view.getUint16(0, true)) - 0.05)).toBeLessThan(0.05 * 2 ** -10);
    const q0 = new Int8Array(bytes.buffer, 2, 32);
    expect(q0[5]).toBe(-127);
    for (let j = 0; j < 32; j++) if (j !== 5) expect(q0[j], `q[${j}]`).toBe(Math.round(Math.abs(values[j]) / 0.05) * Math.sign(values[j]));
    // An all-zero block has d = 0 and zero quants.
    expect(view.getUint16(34, true)).toBe(0);
    expect(new Int8Array(bytes.buffer, 36, 32).every((v) => v === 0)).toBe(true);
    const d2 = Math.fround(Math.fround(0.127) / 127);
    expect(view.getUint16(68, true)).toBe(floatToHalf(d2));
    const q2 = new Int8Array(bytes.buffer, 70, 32);
    expect(q2[31]).toBe(127);
    for (let j = 0; j < 31; j++) expect(q2[j], `q[${j}]`).toBe(Math.round((j - 16) * 3.13));
    // Dequantized values are within half a step of the input.
    for (let j = 0; j < 32; j++) expect(Math.abs(q0[j] * halfToFloat(view.getUint16(0, true)) - values[j])).toBeLessThan(0.03);
    expect(encodeTensorData(values, 'Q8_0')).toEqual(bytes);
  });
});

// ---------------------------------------------------------------------------------------------------------

describe('q8_0 conversion output', () => {
  const tensors = randomTensors(TINY, 31);
  const H = TINY.hidden;
  // Label maps in an order other than the defaults: the GGUF must keep the config's order.
  const queryRisk = ['Unsafe', 'Safe', 'Controversial'];
  const responseCategories = [...RESPONSE_CATEGORIES].reverse();
  let checkpoint: string;
  let output: string;
  let info: GgufInfo;
  const progress: ConvertProgress[] = [];
  let result: Awaited<ReturnType<typeof convertCheckpoint>>;

  beforeAll(async () => {
    checkpoint = join(root, 'q8', 'ckpt');
    await writeCheckpoint(checkpoint, TINY, tensors);
    const config = { ...configJson(TINY), query_risk_level_map: asMap(queryRisk), response_category_map: asMap(responseCategories) };
    await writeFile(join(checkpoint, 'config.json'), JSON.stringify(config, null, 2));
    output = join(root, 'q8', 'model.gguf');
    // No type: q8_0 is the default.
    result = await convertCheckpoint({ checkpoint, output, onProgress: (p) => progress.push(p) });
    info = await ggufInfo(output);
  });

  it('describes a qwen3 model with the config dimensions', () => {
    expect(meta(info, 'general.architecture')).toBe('qwen3');
    expect(meta(info, 'general.name')).toBe('ckpt');
    expect(meta(info, 'general.file_type')).toBe(7);
    expect(meta(info, 'general.quantization_version')).toBe(2);
    expect(meta(info, 'qwen3.context_length')).toBe(8192);
    expect(meta(info, 'qwen3.embedding_length')).toBe(TINY.hidden);
    expect(meta(info, 'qwen3.block_count')).toBe(TINY.layers);
    expect(meta(info, 'qwen3.feed_forward_length')).toBe(TINY.intermediate);
    expect(meta(info, 'qwen3.attention.head_count')).toBe(TINY.heads);
    expect(meta(info, 'qwen3.attention.head_count_kv')).toBe(TINY.kvHeads);
    expect(meta(info, 'qwen3.attention.key_length')).toBe(TINY.headDim);
    expect(meta(info, 'qwen3.attention.value_length')).toBe(TINY.headDim);
    expect(meta(info, 'qwen3.rope.freq_base')).toBe(1e6);
    expect(meta(info, 'qwen3.attention.layer_norm_rms_epsilon')).toBe(Math.fround(1e-6));
  });

  it('carries the tokenizer, padded to every vocabulary row, and the chat template', async () => {
    const tokens = meta(info, 'tokenizer.ggml.tokens') as string[];
    const types = meta(info, 'tokenizer.ggml.token_type') as number[];
    expect(meta(info, 'tokenizer.ggml.model')).toBe('gpt2');
    expect(meta(info, 'tokenizer.ggml.pre')).toBe('qwen2');
    expect(tokens.length).toBe(TOTAL_ROWS);
    expect(types.length).toBe(TOTAL_ROWS);
    expect(tokens[151645]).toBe('<|im_end|>');
    expect(types[151645]).toBe(3); // CONTROL
    expect(tokens[0]).toBe('!');
    expect(types[0]).toBe(1); // NORMAL
    expect(tokens[TOTAL_ROWS - 1]).toBe(`[PAD${TOTAL_ROWS - 1}]`);
    expect(types[TOTAL_ROWS - 1]).toBe(5); // UNUSED
    expect(new Set(tokens).size, 'token texts are unique').toBe(TOTAL_ROWS);
    expect((meta(info, 'tokenizer.ggml.merges') as string[]).length).toBeGreaterThan(100000);
    expect(meta(info, 'tokenizer.ggml.eos_token_id')).toBe(151645);
    expect(meta(info, 'tokenizer.ggml.bos_token_id')).toBe(151643);
    expect(meta(info, 'tokenizer.ggml.padding_token_id')).toBe(151643);
    expect(meta(info, 'tokenizer.ggml.add_bos_token')).toBe(false);
    const { chat_template } = JSON.parse(await readFile(join(TOKENIZER_DIR, 'tokenizer_config.json'), 'utf8')) as { chat_template: string };
    expect(meta(info, 'tokenizer.chat_template')).toBe(chat_template);
  });

  it('records the guard heads in the config order, with rows and scales of the right sizes', () => {
    const G = TINY.inner;
    expect(meta(info, 'qwen3guard.format_version')).toBe(GUARD_FORMAT_VERSION);
    expect(meta(info, 'qwen3guard.vocab_size')).toBe(VOCAB_SIZE);
    expect(meta(info, 'qwen3guard.guard_inner_size')).toBe(G);
    expect(meta(info, 'qwen3guard.norm_epsilon')).toBe(Math.fround(1e-6));
    expect(meta(info, 'qwen3guard.response.risk_labels')).toEqual(RISK_LABELS);
    expect(meta(info, 'qwen3guard.response.category_labels')).toEqual(responseCategories);
    expect(meta(info, 'qwen3guard.query.risk_labels')).toEqual(queryRisk);
    expect(meta(info, 'qwen3guard.query.category_labels')).toEqual(QUERY_CATEGORIES);
    let row = VOCAB_SIZE;
    for (const [path, categories] of [['response', RESPONSE_CATEGORIES.length], ['query', QUERY_CATEGORIES.length]] as const) {
      const key = (name: string) => `qwen3guard.${path}.${name}`;
      expect(meta(info, key('pre_row'))).toBe(row);
      expect(meta(info, key('pre_scale_log2'))).toBeUndefined();
      row += G;
      for (const [kind, count] of [['risk', 3], ['category', categories]] as const) {
        expect(meta(info, key(`${kind}_row`)), key(`${kind}_row`)).toBe(row);
        const scales = meta(info, key(`${kind}_scale_log2`)) as number[];
        expect(scales.length, key(`${kind}_scale_log2`)).toBe(count);
        expect(scales.every((e) => Number.isInteger(e))).toBe(true);
        row += 2 * count;
      }
      expect((meta(info, key('norm_weight')) as number[]).length).toBe(G);
      expect((meta(info, key('risk_head')) as number[]).length).toBe(3 * G);
      expect((meta(info, key('category_head')) as number[]).length).toBe(categories * G);
    }
    expect(row).toBe(TOTAL_ROWS);
    // The f32 head matrices are the checkpoint's, exactly.
    const norm = sourceTensor(tensors, 'query_risk_level_category_layernorm.weight').data;
    expectSameFloats(Float32Array.from(meta(info, 'qwen3guard.query.norm_weight') as number[]), norm, 'query norm_weight');
    const head = sourceTensor(tensors, 'category_head.weight').data;
    expectSameFloats(Float32Array.from(meta(info, 'qwen3guard.response.category_head') as number[]), head, 'response category_head');
  });

  it('has the tied embedding with the guard rows, no output.weight, and q8_0 matrices', () => {
    const names = info.tensorInfo!.map((t) => t.name);
    expect(names).not.toContain('output.weight');
    expect(names.length).toBe(2 + 11 * TINY.layers);
    expect(new Set(names).size).toBe(names.length);
    const embed = tensorInfo(info, 'token_embd.weight');
    expect(embed.dimensions.map(Number)).toEqual([TINY.hidden, VOCAB_SIZE + 2 * TINY.inner + 2 * (3 + 8 + 3 + 9)]);
    expect(embed.ggmlType).toBe(GGML.Q8_0);
    const q = TINY.heads * TINY.headDim;
    const kv = TINY.kvHeads * TINY.headDim;
    const expected: Record<string, [number[], number]> = {
      'output_norm.weight': [[H], GGML.F32],
      'blk.1.attn_norm.weight': [[H], GGML.F32],
      'blk.1.attn_q.weight': [[H, q], GGML.Q8_0],
      'blk.1.attn_k.weight': [[H, kv], GGML.Q8_0],
      'blk.1.attn_v.weight': [[H, kv], GGML.Q8_0],
      'blk.1.attn_output.weight': [[q, H], GGML.Q8_0],
      'blk.1.attn_q_norm.weight': [[TINY.headDim], GGML.F32],
      'blk.1.attn_k_norm.weight': [[TINY.headDim], GGML.F32],
      'blk.1.ffn_norm.weight': [[H], GGML.F32],
      'blk.1.ffn_gate.weight': [[H, TINY.intermediate], GGML.Q8_0],
      'blk.1.ffn_up.weight': [[H, TINY.intermediate], GGML.Q8_0],
      'blk.1.ffn_down.weight': [[TINY.intermediate, H], GGML.Q8_0],
    };
    for (const [name, [dims, type]] of Object.entries(expected)) {
      const t = tensorInfo(info, name);
      expect(t.dimensions.map(Number), name).toEqual(dims);
      expect(t.ggmlType, name).toBe(type);
    }
  });

  it('quantizes the data of every kind of row in place', async () => {
    const embed = sourceTensor(tensors, 'model.embed_tokens.weight').data;
    for (const row of [0, 65535, 65536, VOCAB_SIZE - 1]) {
      const bytes = await readRowBytes(output, info, 'token_embd.weight', row, row + 1);
      expect(bytes.equals(quantizeQ8_0(rowOf(embed, row, H))), `token_embd row ${row}`).toBe(true);
    }
    // The query path's W_pre rows.
    const pre = sourceTensor(tensors, 'query_risk_level_category_pre.weight').data;
    const start = meta(info, 'qwen3guard.query.pre_row') as number;
    for (const g of [0, TINY.inner - 1]) {
      const bytes = await readRowBytes(output, info, 'token_embd.weight', start + g, start + g + 1);
      expect(bytes.equals(quantizeQ8_0(rowOf(pre, g, H))), `pre row ${g}`).toBe(true);
    }
    const down = sourceTensor(tensors, 'model.layers.1.mlp.down_proj.weight');
    const downBytes = await readRowBytes(output, info, 'blk.1.ffn_down.weight', 0, down.shape[0]);
    expect(downBytes.equals(quantizeQ8_0(down.data)), 'blk.1.ffn_down.weight').toBe(true);
    const norm = sourceTensor(tensors, 'model.layers.0.input_layernorm.weight').data;
    expectSameFloats(await readRowsF32(output, info, 'blk.0.attn_norm.weight', 0, 1), norm, 'blk.0.attn_norm.weight');
  });

  it('reports its result and progress', () => {
    expect(result.output).toBe(output);
    expect(result.bytes).toBe(statSync(output).size);
    expect(result.tensors).toBe(2 + 11 * TINY.layers);
    expect(result.vocabularyRows).toBe(TOTAL_ROWS);
    expect(progress.length).toBeGreaterThan(result.tensors);
    expect(progress[0].tensor).toBe('token_embd.weight');
    expect(progress.at(-1)!.tensor).toBe(`blk.${TINY.layers - 1}.ffn_down.weight`);
    for (let i = 1; i < progress.length; i++) expect(progress[i].bytesWritten).toBeGreaterThanOrEqual(progress[i - 1].bytesWritten);
    expect(progress.every((p) => p.totalBytes === result.bytes)).toBe(true);
    // The last event reports the whole file (bytes still in the writer's buffer included).
    expect(progress.at(-1)!.bytesWritten).toBe(result.bytes);
    expect(progress[0].bytesWritten).toBeLessThan(result.bytes);
    expect(temporaries(dirname(output))).toEqual([]);
  });
});

// ---------------------------------------------------------------------------------------------------------

describe('conversion errors', () => {
  const tensors = randomTensors(TINY, 41);
  let base: string;
  let out: string;
  let variantCount = 0;

  beforeAll(async () => {
    base = join(root, 'errors', 'base');
    await writeCheckpoint(base, TINY, tensors);
    out = join(root, 'errors', 'out');
    await mkdir(out);
  });

  /**
   * A checkpoint folder derived from the base one: `config` replaces config.json (null leaves it out), `tensors`
   * are written instead of linking the base weights, `omit` leaves files out.
   */
  async function variant(options: { config?: Record<string, unknown> | null; tensors?: NamedTensor[]; shape?: Shape; omit?: string[] } = {}): Promise<string> {
    const dir = join(root, 'errors', `variant-${++variantCount}`);
    await mkdir(dir);
    const omit = new Set(options.omit ?? []);
    if (options.config !== null) await writeFile(join(dir, 'config.json'), JSON.stringify(options.config ?? configJson(options.shape ?? TINY)));
    for (const file of ['tokenizer.json', 'tokenizer_config.json']) {
      if (!omit.has(file)) await symlink(join(TOKENIZER_DIR, file), join(dir, file));
    }
    if (options.tensors) await writeSafetensors(dir, options.tensors, 'F32');
    else await symlink(join(base, 'model.safetensors'), join(dir, 'model.safetensors'));
    return dir;
  }

  /** Rewrites a safetensors file's header (data unchanged) through `edit`. */
  async function editHeader(file: string, edit: (header: Record<string, { dtype: string; shape: number[]; data_offsets: number[] }>) => void): Promise<void> {
    const bytes = await readFile(file);
    const length = Number(bytes.readBigUInt64LE(0));
    const header = JSON.parse(bytes.subarray(8, 8 + length).toString('utf8'));
    edit(header);
    let json = Buffer.from(JSON.stringify(header), 'utf8');
    json = Buffer.concat([json, Buffer.alloc((8 - (json.length % 8)) % 8, 0x20)]);
    const prefix = Buffer.alloc(8);
    prefix.writeBigUInt64LE(BigInt(json.length));
    await writeFile(file, Buffer.concat([prefix, json, bytes.subarray(8 + length)]));
  }

  const target = () => join(out, `model-${variantCount}.gguf`);

  /** After a failed conversion: nothing at the target, no temporary file beside it. */
  function expectNothingWritten(output: string): void {
    expect(existsSync(output), `${output} must not exist`).toBe(false);
    expect(temporaries(dirname(output))).toEqual([]);
  }

  it('rejects a config that is not Qwen3Guard-Stream', async () => {
    const dir = await variant({ config: { ...configJson(TINY), architectures: ['Qwen3ForCausalLM'] } });
    const output = target();
    await expectConvertError({ checkpoint: dir, output }, literal(join(dir, 'config.json')), /is not a Qwen3Guard-Stream config/, /Qwen3ForCausalLM/);
    expectNothingWritten(output);
  });

  it('rejects a folder without config.json', async () => {
    const dir = await variant({ config: null });
    await expectConvertError({ checkpoint: dir, output: target() }, literal(dir), /has no config\.json/);
  });

  it('rejects a config with a missing or invalid field', async () => {
    const { hidden_size: _, ...config } = configJson(TINY);
    const dir = await variant({ config });
    await expectConvertError({ checkpoint: dir, output: target() }, literal(join(dir, 'config.json')), /"hidden_size"/);
    const bad = await variant({ config: { ...configJson(TINY), num_key_value_heads: 3 } });
    await expectConvertError({ checkpoint: bad, output: target() }, literal(join(bad, 'config.json')), /multiple of num_key_value_heads/);
  });

  it('rejects an unknown output type', async () => {
    await expectConvertError({ checkpoint: base, output: target(), type: 'q4_k' as never }, /unknown output type "q4_k"/, /f32, f16, q8_0, q4_0/);
  });

  it('names a missing tensor', async () => {
    const dir = await variant({ tensors: tensors.filter((t) => t.name !== 'risk_level_head.weight') });
    const output = target();
    await expectConvertError({ checkpoint: dir, output, type: 'f32' }, literal(dir), /is missing tensor risk_level_head\.weight/, /\[3,32\]/);
    expectNothingWritten(output);
  });

  it('names a mis-shaped tensor with both shapes', async () => {
    const name = 'model.layers.0.self_attn.q_proj.weight';
    const wrong = tensors.map((t) => (t.name === name ? { name, shape: [96, TINY.hidden], data: t.data.subarray(0, 96 * TINY.hidden) } : t));
    const dir = await variant({ tensors: wrong });
    await expectConvertError(
      { checkpoint: dir, output: target(), type: 'f32' },
      literal(join(dir, 'model.safetensors')),
      literal(`tensor ${name} has shape [96,64], expected [128,64]`),
    );
  });

  it('names a missing tokenizer.json or tokenizer_config.json', async () => {
    const noTokenizer = await variant({ omit: ['tokenizer.json'] });
    const output = target();
    await expectConvertError({ checkpoint: noTokenizer, output, type: 'f32' }, literal(noTokenizer), /is missing tokenizer\.json/);
    expectNothingWritten(output);
    const noConfig = await variant({ omit: ['tokenizer_config.json'] });
    await expectConvertError({ checkpoint: noConfig, output: target(), type: 'f32' }, literal(noConfig), /is missing tokenizer_config\.json/);
  });

  it.each([
    ['I32', 'model.layers.0.self_attn.q_proj.weight'],
    ['F64', 'model.norm.weight'],
  ])('rejects a needed tensor of dtype %s', async (dtype, name) => {
    const dir = await variant({ tensors });
    const file = join(dir, 'model.safetensors');
    await editHeader(file, (header) => {
      header[name].dtype = dtype;
    });
    const output = target();
    await expectConvertError({ checkpoint: dir, output, type: 'f32' }, literal(file), literal(`tensor ${name} has unsupported dtype ${dtype}`), /F32, F16 and BF16/);
    expectNothingWritten(output);
  });

  it('ignores an unsupported dtype in a tensor it does not need', async () => {
    const dir = await variant({ tensors: [...tensors, { name: 'lm_head.extra', shape: [4], data: new Float32Array(4) }] });
    await editHeader(join(dir, 'model.safetensors'), (header) => {
      header['lm_head.extra'].dtype = 'I32';
    });
    const output = target();
    await convertCheckpoint({ checkpoint: dir, output, type: 'f16' });
    expect(existsSync(output)).toBe(true);
  });

  it('rejects a target in a folder that does not exist', async () => {
    const output = join(out, 'no-such-folder', 'model.gguf');
    await expectConvertError({ checkpoint: base, output }, literal(output), /cannot be written/, literal(`folder ${dirname(output)} does not exist`));
  });

  it('rejects a target whose folder is a file', async () => {
    const file = join(out, 'a-file');
    await writeFile(file, 'not a folder');
    const output = join(file, 'model.gguf');
    await expectConvertError({ checkpoint: base, output, type: 'f32' }, literal(output), /cannot be written/);
  });

  it('rejects a target that is a folder', async () => {
    const output = join(out, 'a-folder.gguf');
    await mkdir(output);
    await expectConvertError({ checkpoint: base, output }, literal(output), /is a folder/);
  });

  const isRoot = process.getuid?.() === 0;
  it.skipIf(isRoot)('rejects a target in a read-only folder (chmod; skipped as root, whom file modes do not stop)', async () => {
    const folder = join(out, 'read-only');
    await mkdir(folder);
    await chmod(folder, 0o555);
    const output = join(folder, 'model.gguf');
    await expectConvertError({ checkpoint: base, output, type: 'f32' }, literal(output), /cannot be written/, /not writable/);
    expectNothingWritten(output);
  });

  it.runIf(process.platform === 'linux' && existsSync('/proc/self'))('rejects a target in a folder where no file can be created (/proc, even as root)', async () => {
    const output = `/proc/qwen3guard-convert-test-${process.pid}.gguf`;
    await expectConvertError({ checkpoint: base, output, type: 'f32' }, literal(output), /cannot be written/);
  });

  it('asks for f16 or f32 when q8_0 does not fit the hidden size', async () => {
    const shape = { ...TINY, hidden: 48 };
    const dir = join(root, 'errors', 'hidden-48');
    await writeCheckpoint(dir, shape, randomTensors(shape, 43));
    const output = join(out, 'hidden-48.gguf');
    await expectConvertError({ checkpoint: dir, output, type: 'q8_0' }, literal(join(dir, 'config.json')), /hidden_size = 48 is not a multiple of 32/, /use --type f16 or f32/);
    expectNothingWritten(output);
    // The advice works.
    await convertCheckpoint({ checkpoint: dir, output, type: 'f16' });
    const info = await ggufInfo(output);
    expect(tensorInfo(info, 'token_embd.weight').dimensions.map(Number)).toEqual([48, VOCAB_SIZE + GUARD_ROWS]);
    expect(tensorInfo(info, 'token_embd.weight').ggmlType).toBe(GGML.F16);
  });

  it('names a shard truncated before the conversion', async () => {
    const dir = join(root, 'errors', 'cut-before');
    await writeCheckpoint(dir, TINY, tensors, { shards: 3 });
    const shard = join(dir, 'model-00002-of-00003.safetensors');
    truncateSync(shard, statSync(shard).size - 100);
    const output = join(out, 'cut-before.gguf');
    await expectConvertError({ checkpoint: dir, output, type: 'f32' }, literal(shard), /is truncated/);
    expectNothingWritten(output);
  });

  it('leaves nothing behind when a shard turns out truncated midway', async () => {
    const dir = join(root, 'errors', 'cut-midway');
    await writeCheckpoint(dir, TINY, tensors, { shards: 3 });
    const index = JSON.parse(await readFile(join(dir, 'model.safetensors.index.json'), 'utf8')) as { weight_map: Record<string, string> };
    // A layer tensor: read after the embedding, i.e. after the header and much data went to the temporary file.
    const shard = join(dir, index.weight_map['model.layers.1.mlp.up_proj.weight']);
    expect(index.weight_map['model.embed_tokens.weight']).not.toBe(index.weight_map['model.layers.1.mlp.up_proj.weight']);
    const folder = join(out, 'midway');
    await mkdir(folder);
    const output = join(folder, 'model.gguf');
    let seenTemporary: string | undefined;
    let writtenBefore = 0;
    await expectConvertError(
      {
        checkpoint: dir,
        output,
        type: 'f32',
        onProgress: (p) => {
          if (seenTemporary) return;
          [seenTemporary] = temporaries(folder);
          writtenBefore = seenTemporary ? statSync(join(folder, seenTemporary)).size : 0;
          truncateSync(shard, 1000);
        },
      },
      literal(shard),
      /truncated: tensor model\.layers\.\d\.\S+ ends past the end of the file/,
    );
    expect(seenTemporary, 'a temporary file was being written').toMatch(/^\.model\.gguf\..*\.tmp$/);
    expect(writtenBefore).toBeGreaterThan(1 << 20);
    expect(await readdir(folder)).toEqual([]);
  });

  it('leaves an existing target untouched when the conversion fails midway', async () => {
    const folder = join(out, 'keep');
    await mkdir(folder);
    const output = join(folder, 'model.gguf');
    await writeFile(output, 'previous model');
    const error = await convertCheckpoint({
      checkpoint: base,
      output,
      type: 'f32',
      onProgress: () => {
        throw new Error('cancelled');
      },
    }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect((error as Error).message).toBe('cancelled');
    expect(await readFile(output, 'utf8')).toBe('previous model');
    expect(await readdir(folder)).toEqual(['model.gguf']);
  });
});

// ---------------------------------------------------------------------------------------------------------

describe('peak memory', () => {
  it('stays far below the checkpoint size: tensors are converted in pieces', async () => {
    const dir = join(root, 'memory');
    const large = { ...TINY, hidden: 256 };
    await writeCheckpoint(join(dir, 'warmup'), TINY, randomTensors(TINY, 51, true));
    await writeCheckpoint(join(dir, 'large'), large, randomTensors(large, 52, true));
    const checkpointBytes = (await stat(join(dir, 'large', 'model.safetensors'))).size;
    expect(checkpointBytes).toBeGreaterThan(150e6); // the embedding alone: 151936 x 256 x 4 bytes

    const { stdout } = await promisify(execFile)(
      process.execPath,
      ['--import', 'tsx', MEMORY_CHILD, join(dir, 'warmup'), join(dir, 'large'), dir, 'f32'],
      { cwd: REPO_ROOT, maxBuffer: 1 << 20 },
    );
    const report = JSON.parse(stdout.trim().split('\n').at(-1)!) as { startKiB: number; afterWarmupKiB: number; afterLargeKiB: number; largeBytes: number };
    expect(report.largeBytes).toBeGreaterThan(checkpointBytes);
    // The measure is live: the warm-up conversion itself raised the peak (tokenizer metadata: 100+ MiB).
    expect(report.afterWarmupKiB - report.startKiB, JSON.stringify(report)).toBeGreaterThan(50 * 1024);
    // The warm-up peak covers what does not grow with the model (runtime, ~150k-token tokenizer metadata);
    // holding the large model's tensors would add at least their size on top of it.
    const growth = (report.afterLargeKiB - report.afterWarmupKiB) * 1024;
    expect(growth, `peak RSS grew by ${(growth / 2 ** 20).toFixed(1)} MiB for a ${(checkpointBytes / 2 ** 20).toFixed(0)} MiB checkpoint (${JSON.stringify(report)})`).toBeLessThan(
      0.5 * checkpointBytes,
    );
  }, 60_000);
});

describe('cancellation', () => {
  it('stops on an abort signal, leaving nothing at the target or beside it', async () => {
    const { tinyRandomCheckpoint } = await import('./fixtures/cache.js');
    const out = await mkdtemp(join(tmpdir(), 'qwen3guard-abort-'));
    try {
      const controller = new AbortController();
      const conversion = convertCheckpoint({
        checkpoint: await tinyRandomCheckpoint(),
        output: join(out, 'model.gguf'),
        type: 'f32',
        signal: controller.signal,
        onProgress: () => controller.abort(new Error('stopped by the user')),
      });
      await expect(conversion).rejects.toThrow('stopped by the user');
      expect(await readdir(out)).toEqual([]);
    } finally {
      await rm(out, { recursive: true, force: true });
    }
  });
});
