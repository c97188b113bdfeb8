import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import { HEAD_TENSOR_NAMES } from '../convert/guard-rows.js';
import { decodeToFloat32, SOURCE_DTYPES, sourceDtypeBytes, type SourceDtype } from '../convert/numeric.js';
import { headFromPre, type HeadResult } from '../engine/heads.js';
import { HEAD_PATHS, type HeadLayout, type HeadPath } from '../format/guard-metadata.js';
import { isRiskLevel } from '../format/labels.js';
import type { PromptVerdict, TokenVerdict } from '../guard/types.js';
import { FINAL_NORM_TENSOR, HEADS_FORMAT, HEADS_FORMAT_VERSION, HeadsKeys } from '../convert/sglang-heads-format.js';

/** One head path, float32 as stored, PyTorch [out, in] layout. */
export interface SglangHead {
  riskLabels: string[];
  categoryLabels: string[];
  /** W_pre [G x H]. */
  pre: Float32Array;
  /** What headFromPre reads: the RMSNorm weight and both linear heads (float64 copies of the float32 values). */
  layout: HeadLayout;
}

/** The contents of a heads file (`qwen3guard convert --for sglang`). */
export interface SglangHeads {
  hiddenSize: number;
  innerSize: number;
  epsilon: number;
  /** The backbone's final RMSNorm weight g [H]: a post-norm state h has rms(h / g) = 1. */
  finalNorm: Float32Array;
  response: SglangHead;
  query: SglangHead;
}

export class SglangHeadsError extends Error {
  override readonly name = 'SglangHeadsError';
}

const numeric = z.string().regex(/^[0-9.eE+-]+$/).transform(Number).pipe(z.number().positive());
const labels = z.string().transform((text, ctx) => {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    ctx.addIssue({ code: 'custom', message: 'is not JSON' });
    return z.NEVER;
  }
}).pipe(z.array(z.string()).min(1));
const metadataSchema = z.object({
  [HeadsKeys.format]: z.literal(HEADS_FORMAT),
  [HeadsKeys.formatVersion]: z.literal(String(HEADS_FORMAT_VERSION)),
  [HeadsKeys.hiddenSize]: numeric.pipe(z.number().int()),
  [HeadsKeys.innerSize]: numeric.pipe(z.number().int()),
  [HeadsKeys.epsilon]: numeric,
  ...Object.fromEntries(HEAD_PATHS.flatMap((p) => [[HeadsKeys.riskLabels(p), labels], [HeadsKeys.categoryLabels(p), labels]])),
});
const entrySchema = z.object({
  dtype: z.enum(SOURCE_DTYPES),
  shape: z.array(z.number().int().nonnegative()),
  data_offsets: z.tuple([z.number().int().nonnegative(), z.number().int().nonnegative()]),
});

/** Parses a heads file's bytes; every problem names the file and the field. */
export function parseHeadsFile(bytes: Uint8Array, source = 'the heads file'): SglangHeads {
  const fail = (problem: string): never => {
    throw new SglangHeadsError(`${source}: ${problem}`);
  };
  const buffer = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (buffer.length < 8) fail('is not a safetensors file (too short)');
  const headerLength = Number(buffer.readBigUInt64LE(0));
  if (8 + headerLength > buffer.length) fail('is not a safetensors file (bad header length)');
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(buffer.subarray(8, 8 + headerLength).toString('utf8'));
  } catch {
    return fail('is not a safetensors file (header is not JSON)');
  }
  const meta = metadataSchema.safeParse(header.__metadata__ ?? {});
  if (!meta.success) {
    const issue = meta.error.issues[0];
    fail(`metadata ${issue.path.join('.')}: ${issue.message} (was it written by \`qwen3guard convert --for sglang\` of this version?)`);
  }
  const m = meta.data! as Record<string, unknown>;
  const H = m[HeadsKeys.hiddenSize] as number;
  const G = m[HeadsKeys.innerSize] as number;
  const dataStart = 8 + headerLength;
  const tensor = (name: string, shape: number[]): Float32Array => {
    const parsed = entrySchema.safeParse(header[name]);
    if (!parsed.success) return fail(`has no tensor ${name} (or its header entry is malformed)`);
    const { dtype, shape: stored, data_offsets: [begin, end] } = parsed.data;
    if (stored.length !== shape.length || stored.some((n, i) => n !== shape[i])) fail(`tensor ${name} has shape ${JSON.stringify(stored)}, expected ${JSON.stringify(shape)}`);
    const count = shape.reduce((a, b) => a * b, 1);
    if (end - begin !== count * sourceDtypeBytes(dtype as SourceDtype) || dataStart + end > buffer.length) fail(`tensor ${name} has data_offsets that do not match its shape or the file's size`);
    return decodeToFloat32(buffer.subarray(dataStart + begin, dataStart + end), dtype as SourceDtype);
  };
  const head = (path: HeadPath): SglangHead => {
    const riskLabels = m[HeadsKeys.riskLabels(path)] as string[];
    const categoryLabels = m[HeadsKeys.categoryLabels(path)] as string[];
    if (!riskLabels.every(isRiskLevel)) fail(`metadata ${HeadsKeys.riskLabels(path)} must name Safe, Unsafe and Controversial, got ${JSON.stringify(riskLabels)}`);
    const names = HEAD_TENSOR_NAMES[path];
    return {
      riskLabels,
      categoryLabels,
      pre: tensor(names.pre, [G, H]),
      // headFromPre reads labels, the norm weight and both heads; the GGUF row fields have no meaning here.
      layout: {
        riskLabels,
        categoryLabels,
        normWeight: Float64Array.from(tensor(names.norm, [G])),
        riskHead: Float64Array.from(tensor(names.risk, [riskLabels.length, G])),
        categoryHead: Float64Array.from(tensor(names.category, [categoryLabels.length, G])),
        preRow: -1,
        risk: { start: -1, scaleLog2: new Int32Array(0) },
        category: { start: -1, scaleLog2: new Int32Array(0) },
      },
    };
  };
  return { hiddenSize: H, innerSize: G, epsilon: m[HeadsKeys.epsilon] as number, finalNorm: tensor(FINAL_NORM_TENSOR, [H]), response: head('response'), query: head('query') };
}

export async function readHeadsFile(path: string): Promise<SglangHeads> {
  return parseHeadsFile(await readFile(path), path);
}

/** rms(h / g) over the components where g is not 0: 1 (to float rounding) for a state after the final norm. */
export function postNormRms(heads: SglangHeads, state: ArrayLike<number>): number {
  let sum = 0;
  let n = 0;
  for (let i = 0; i < heads.hiddenSize; i++) {
    const g = heads.finalNorm[i];
    if (g === 0) continue;
    sum += (state[i] / g) ** 2;
    n++;
  }
  return Math.sqrt(sum / Math.max(1, n));
}

/** Generous for bf16 serving (a relative rounding of 2^-8 per value); a pre-norm residual stream is far off. */
const POST_NORM_TOLERANCE = 0.05;

/**
 * One path's head on a hidden state: z = W_pre h from the float32 weights and state (accumulated in float64),
 * then RMSNorm, both linear heads and softmax as the engine finishes them (engine/heads.ts). Refuses a state of
 * the wrong width or one that is not after the final norm, which would give confident nonsense.
 */
export function applyHead(heads: SglangHeads, path: HeadPath, state: ArrayLike<number>): Required<HeadResult> {
  const { hiddenSize: H, innerSize: G } = heads;
  if (state.length !== H) throw new RangeError(`applyHead: the hidden state has ${state.length} values, the heads expect ${H}`);
  const rms = postNormRms(heads, state);
  if (!(Math.abs(rms - 1) <= POST_NORM_TOLERANCE)) {
    throw new SglangHeadsError(`applyHead: the hidden state is not the backbone's post-norm output (rms(h / g) = ${rms.toPrecision(4)}, expected 1): see docs/sglang.md for the server's flags`);
  }
  const { pre, layout } = heads[path];
  const z = new Float64Array(G);
  for (let k = 0; k < G; k++) {
    let acc = 0;
    const row = k * H;
    for (let j = 0; j < H; j++) acc += pre[row + j] * state[j];
    z[k] = acc;
  }
  return headFromPre(layout, z, heads.epsilon);
}

/** The prompt verdict from the state at the last user turn's `<|im_end|>` (the query head), as the engine gives it. */
export function promptVerdict(heads: SglangHeads, state: ArrayLike<number>): PromptVerdict {
  const head = applyHead(heads, 'query', state);
  return { riskLevel: head.riskLevel, category: head.riskLevel === 'Safe' ? null : head.category, probabilities: head.probabilities, categoryProbabilities: head.categoryProbabilities };
}

/** A response token's label fields of a TokenVerdict (the response head); the caller knows its index and position. */
export function tokenLabels(heads: SglangHeads, state: ArrayLike<number>): Pick<TokenVerdict, 'riskLevel' | 'category' | 'probabilities'> {
  const head = applyHead(heads, 'response', state);
  return { riskLevel: head.riskLevel, category: head.riskLevel === 'Safe' ? null : head.category, probabilities: head.probabilities };
}
