import { access, rename, stat, unlink } from 'node:fs/promises';
import { constants } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import { ConvertError } from './errors.js';
import { readCheckpointConfig, type BackboneConfig, type GuardConfig } from './hf-config.js';
import { SafetensorsCheckpoint, type TensorEntry } from './safetensors.js';
import { readTokenizerMetadata } from './tokenizer-metadata.js';
import { GgufWriter, type GgufTensorSpec, type GgufValue } from './gguf-writer.js';
import { encodeTensorData, SOURCE_DTYPES } from './numeric.js';
import { embeddingType, fileTypeId, isBlockQuantized, matrixType, OUTPUT_TYPES, QUANT_BLOCK, type GgmlTypeName, type OutputType } from './ggml-types.js';
import { guardRows, HEAD_TENSOR_NAMES, scaledPairs, type HeadWeights } from './guard-rows.js';
import { GUARD_FORMAT_VERSION, GuardKeys, HEAD_PATHS } from '../format/guard-metadata.js';

export interface ConvertProgress {
  tensor: string;
  bytesWritten: number;
  totalBytes: number;
}

export interface ConvertOptions {
  /** Folder of the Hugging Face checkpoint. */
  checkpoint: string;
  /** Target .gguf path; written through a temporary file and renamed when complete. */
  output: string;
  type?: OutputType;
  onProgress?: (progress: ConvertProgress) => void;
  /** Cancels the conversion; the temporary file is removed and the target left as it was. */
  signal?: AbortSignal;
}

export interface ConvertResult {
  output: string;
  bytes: number;
  tensors: number;
  vocabularyRows: number;
}

const NO_HEAD = { riskLabels: [], categoryLabels: [] };

/** Values read per piece of a tensor: bounds memory to a few tens of MB whatever the model size. */
const PIECE_VALUES = 4 << 20;

interface TensorPlan {
  spec: GgufTensorSpec;
  /** Source tensor and its expected PyTorch shape. */
  source: string;
  shape: number[];
}

function planTensors(config: BackboneConfig, type: OutputType): TensorPlan[] {
  const { hiddenSize: H, heads, kvHeads, headDim, intermediateSize: I } = config;
  const matrix = matrixType(type);
  const plans: TensorPlan[] = [];
  const add = (name: string, source: string, shape: number[], tensorType: GgmlTypeName) =>
    plans.push({ spec: { name, ne: [...shape].reverse(), type: tensorType }, source, shape });
  add('output_norm.weight', 'model.norm.weight', [H], 'F32');
  for (let i = 0; i < config.layers; i++) {
    const hf = `model.layers.${i}`;
    const blk = `blk.${i}`;
    add(`${blk}.attn_norm.weight`, `${hf}.input_layernorm.weight`, [H], 'F32');
    add(`${blk}.attn_q.weight`, `${hf}.self_attn.q_proj.weight`, [heads * headDim, H], matrix);
    add(`${blk}.attn_k.weight`, `${hf}.self_attn.k_proj.weight`, [kvHeads * headDim, H], matrix);
    add(`${blk}.attn_v.weight`, `${hf}.self_attn.v_proj.weight`, [kvHeads * headDim, H], matrix);
    add(`${blk}.attn_output.weight`, `${hf}.self_attn.o_proj.weight`, [H, heads * headDim], matrix);
    add(`${blk}.attn_q_norm.weight`, `${hf}.self_attn.q_norm.weight`, [headDim], 'F32');
    add(`${blk}.attn_k_norm.weight`, `${hf}.self_attn.k_norm.weight`, [headDim], 'F32');
    add(`${blk}.ffn_norm.weight`, `${hf}.post_attention_layernorm.weight`, [H], 'F32');
    add(`${blk}.ffn_gate.weight`, `${hf}.mlp.gate_proj.weight`, [I, H], matrix);
    add(`${blk}.ffn_up.weight`, `${hf}.mlp.up_proj.weight`, [I, H], matrix);
    add(`${blk}.ffn_down.weight`, `${hf}.mlp.down_proj.weight`, [H, I], matrix);
  }
  // Untied (Gen-8B): llama.cpp reads the output matrix from output.weight, else from token_embd.
  if (!config.tiedEmbeddings) add('output.weight', 'lm_head.weight', [config.vocabSize, H], matrix);
  return plans;
}

function requireTensor(checkpoint: SafetensorsCheckpoint, dir: string, name: string, shape: number[]): TensorEntry {
  const entry = checkpoint.tensors.get(name);
  if (!entry) throw new ConvertError(dir, `is missing tensor ${name} (shape ${JSON.stringify(shape)}): is the checkpoint complete?`);
  if (!SOURCE_DTYPES.includes(entry.dtype)) {
    throw new ConvertError(entry.file, `tensor ${name} has unsupported dtype ${entry.dtype}: only F32, F16 and BF16 are supported`);
  }
  if (entry.shape.length !== shape.length || entry.shape.some((n, i) => n !== shape[i])) {
    throw new ConvertError(entry.file, `tensor ${name} has shape ${JSON.stringify(entry.shape)}, expected ${JSON.stringify(shape)} from config.json`);
  }
  return entry;
}

async function checkWritable(output: string): Promise<void> {
  const dir = dirname(output);
  try {
    await access(dir, constants.W_OK);
  } catch (error) {
    throw new ConvertError(output, `cannot be written: folder ${dir} ${(error as NodeJS.ErrnoException).code === 'ENOENT' ? 'does not exist' : 'is not writable'}`);
  }
  const existing = await stat(output).catch(() => undefined);
  if (existing?.isDirectory()) throw new ConvertError(output, 'is a folder: give a file path such as model.gguf');
}

/**
 * Converts a Qwen3Guard checkpoint into one self-contained GGUF, tensor by tensor, through a temporary file
 * that is renamed into place only when complete. Stream: the qwen3 backbone, the tokenizer, the chat template
 * and the guard heads (see format/guard-metadata.ts). Gen: a plain qwen3 model (tokenizer and moderation
 * template included) that llama.cpp and any GGUF runtime load as an ordinary model.
 */
export async function convertCheckpoint(options: ConvertOptions): Promise<ConvertResult> {
  const type = options.type ?? 'q8_0';
  if (!OUTPUT_TYPES.includes(type)) throw new ConvertError(options.output, `unknown output type "${type}": use one of ${OUTPUT_TYPES.join(', ')}`);
  const dir = resolve(options.checkpoint);
  const output = resolve(options.output);
  const checkpointConfig = await readCheckpointConfig(dir);
  const config: GuardConfig = checkpointConfig.variant === 'gen' ? { ...checkpointConfig, innerSize: 0, response: NO_HEAD, query: NO_HEAD } : checkpointConfig;
  const gen = checkpointConfig.variant === 'gen';
  const { hiddenSize: H, innerSize: G } = config;
  if (isBlockQuantized(type)) {
    for (const [what, n] of [['hidden_size', H], ['intermediate_size', config.intermediateSize], ['num_attention_heads x head_dim', config.heads * config.headDim]] as const) {
      if (n % QUANT_BLOCK !== 0) throw new ConvertError(`${dir}/config.json`, `${what} = ${n} is not a multiple of ${QUANT_BLOCK}, which ${type} needs: use --type f16 or f32`);
    }
  }
  await checkWritable(output);

  const checkpoint = await SafetensorsCheckpoint.open(dir);
  const temporary = `${dirname(output)}/.${basename(output)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  let writer: GgufWriter | undefined;
  try {
    const plans = planTensors(config, type);
    const entries = new Map(plans.map((p) => [p.source, requireTensor(checkpoint, dir, p.source, p.shape)]));
    const embed = requireTensor(checkpoint, dir, 'model.embed_tokens.weight', [config.vocabSize, H]);

    // |h| <= max|final norm weight| * sqrt(H): bounds the guard rows' logits (see scaledPairs).
    let maxNorm = 0;
    for (const g of await checkpoint.readAll(entries.get('model.norm.weight')!)) maxNorm = Math.max(maxNorm, Math.abs(g));
    const hiddenBound = Math.max(maxNorm, 1e-6) * Math.sqrt(H);

    // Heads are small (G x H): load them whole, check shapes, fold.
    const rows: Float32Array[] = [];
    const rowStart: Record<string, number> = {};
    let nextRow = config.vocabSize;
    const headMetadata: Array<[string, GgufValue]> = [];
    for (const path of gen ? [] : HEAD_PATHS) {
      const names = HEAD_TENSOR_NAMES[path];
      const { riskLabels, categoryLabels } = config[path];
      const nr = riskLabels.length;
      const nc = categoryLabels.length;
      const heads: HeadWeights = {
        pre: await checkpoint.readAll(requireTensor(checkpoint, dir, names.pre, [G, H])),
        norm: await checkpoint.readAll(requireTensor(checkpoint, dir, names.norm, [G])),
        risk: await checkpoint.readAll(requireTensor(checkpoint, dir, names.risk, [nr, G])),
        category: await checkpoint.readAll(requireTensor(checkpoint, dir, names.category, [nc, G])),
      };
      const folded = guardRows(heads, nr, nc, G, H);
      const scales: Record<string, Int32Array> = {};
      rowStart[`${path}.pre`] = nextRow;
      rows.push(folded.pre);
      nextRow += G;
      for (const kind of ['risk', 'category'] as const) {
        const pairs = scaledPairs(folded[kind], H, embeddingType(type), hiddenBound);
        rowStart[`${path}.${kind}`] = nextRow;
        scales[kind] = pairs.scaleLog2;
        rows.push(pairs.values);
        nextRow += pairs.values.length / H;
      }
      headMetadata.push(
        [GuardKeys.riskLabels(path), { type: 'array', itemType: 'string', value: riskLabels }],
        [GuardKeys.categoryLabels(path), { type: 'array', itemType: 'string', value: categoryLabels }],
        [GuardKeys.preRow(path), { type: 'u32', value: rowStart[`${path}.pre`] }],
        [GuardKeys.riskRow(path), { type: 'u32', value: rowStart[`${path}.risk`] }],
        [GuardKeys.categoryRow(path), { type: 'u32', value: rowStart[`${path}.category`] }],
        [GuardKeys.riskScale(path), { type: 'array', itemType: 'i32', value: scales.risk }],
        [GuardKeys.categoryScale(path), { type: 'array', itemType: 'i32', value: scales.category }],
        [GuardKeys.normWeight(path), { type: 'array', itemType: 'f32', value: heads.norm }],
        [GuardKeys.riskHead(path), { type: 'array', itemType: 'f32', value: heads.risk }],
        [GuardKeys.categoryHead(path), { type: 'array', itemType: 'f32', value: heads.category }],
      );
    }
    const totalRows = nextRow;
    const tokenizer = await readTokenizerMetadata(dir, totalRows);

    const metadata = new Map<string, GgufValue>([
      ['general.architecture', { type: 'string', value: 'qwen3' }],
      ['general.name', { type: 'string', value: basename(dir) }],
      ['general.file_type', { type: 'u32', value: fileTypeId(type) }],
      ...(isBlockQuantized(type) ? ([['general.quantization_version', { type: 'u32', value: 2 }]] as const) : []),
      ['qwen3.context_length', { type: 'u32', value: config.contextLength }],
      ['qwen3.embedding_length', { type: 'u32', value: H }],
      ['qwen3.block_count', { type: 'u32', value: config.layers }],
      ['qwen3.feed_forward_length', { type: 'u32', value: config.intermediateSize }],
      ['qwen3.attention.head_count', { type: 'u32', value: config.heads }],
      ['qwen3.attention.head_count_kv', { type: 'u32', value: config.kvHeads }],
      ['qwen3.attention.key_length', { type: 'u32', value: config.headDim }],
      ['qwen3.attention.value_length', { type: 'u32', value: config.headDim }],
      ['qwen3.rope.freq_base', { type: 'f32', value: config.ropeTheta }],
      ['qwen3.attention.layer_norm_rms_epsilon', { type: 'f32', value: config.epsilon }],
      ...tokenizer.entries,
      // Gen is a plain qwen3 file: no guard keys (the variant is read from its moderation template).
      ...(gen
        ? []
        : [
            [GuardKeys.formatVersion, { type: 'u32', value: GUARD_FORMAT_VERSION }],
            [GuardKeys.vocabSize, { type: 'u32', value: config.vocabSize }],
            [GuardKeys.innerSize, { type: 'u32', value: G }],
            [GuardKeys.epsilon, { type: 'f32', value: config.epsilon }],
            ...headMetadata,
          ]),
    ] as Array<[string, GgufValue]>);

    const embedSpec: GgufTensorSpec = { name: 'token_embd.weight', ne: [H, totalRows], type: embeddingType(type) };
    try {
      writer = await GgufWriter.create(temporary, metadata, [embedSpec, ...plans.map((p) => p.spec)]);
    } catch (error) {
      // access(W_OK) above can pass where no file can be created: a file as the folder (ENOTDIR), /proc, ACLs, root.
      if (!(error as NodeJS.ErrnoException).code) throw error;
      throw new ConvertError(output, `cannot be written: creating the temporary file ${temporary} failed (${(error as Error).message})`);
    }
    const progress = (tensor: string) => {
      options.signal?.throwIfAborted();
      options.onProgress?.({ tensor, bytesWritten: writer!.bytesWritten, totalBytes: writer!.totalBytes });
    };

    const rowsPerPiece = Math.max(1, Math.floor(PIECE_VALUES / H));
    for (let start = 0; start < config.vocabSize; start += rowsPerPiece) {
      const end = Math.min(config.vocabSize, start + rowsPerPiece);
      await writer.write(embedSpec.name, encodeTensorData(await checkpoint.readRows(embed, start, end), embedSpec.type));
      progress(embedSpec.name);
    }
    for (const values of rows) await writer.write(embedSpec.name, encodeTensorData(values, embedSpec.type));

    for (const plan of plans) {
      const entry = entries.get(plan.source)!;
      const rowCount = plan.shape.length === 1 ? 1 : plan.shape[0];
      const width = plan.shape.length === 1 ? plan.shape[0] : plan.shape[1];
      const perPiece = Math.max(1, Math.floor(PIECE_VALUES / width));
      for (let start = 0; start < rowCount; start += perPiece) {
        const end = Math.min(rowCount, start + perPiece);
        const values = plan.shape.length === 1 ? await checkpoint.readAll(entry) : await checkpoint.readRows(entry, start, end);
        await writer.write(plan.spec.name, encodeTensorData(values, plan.spec.type));
      }
      progress(plan.spec.name);
    }
    await writer.finish();
    const bytes = writer.totalBytes;
    writer = undefined;
    await rename(temporary, output);
    return { output, bytes, tensors: plans.length + 1, vocabularyRows: totalRows };
  } catch (error) {
    await writer?.abandon();
    await unlink(temporary).catch(() => undefined);
    if (error instanceof ConvertError) throw error;
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOSPC' || code === 'EACCES' || code === 'EROFS' || code === 'EDQUOT') {
      throw new ConvertError(output, `could not be written (${(error as Error).message})`);
    }
    throw error;
  } finally {
    await checkpoint.close();
  }
}
