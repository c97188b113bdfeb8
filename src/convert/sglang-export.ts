import { copyFile, mkdir, open, readdir, readFile, rename, rm, rmdir, stat, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { ConvertProgress } from './convert.js';
import { ConvertError } from './errors.js';
import { HEAD_TENSOR_NAMES } from './guard-rows.js';
import { readCheckpointConfig, type GuardConfig } from './hf-config.js';
import { encodeTensorData, SOURCE_DTYPES, sourceDtypeBytes } from './numeric.js';
import { qwen3BackboneTensors } from './qwen3-tensors.js';
import { SafetensorsCheckpoint, type TensorEntry } from './safetensors.js';
import { SafetensorsWriter } from './safetensors-writer.js';
import { writeTokenizerGguf } from './tokenizer-gguf.js';
import { HEAD_PATHS } from '../format/guard-metadata.js';
import { FINAL_NORM_TENSOR, GUARD_SUBDIR, HEADS_FILE, HEADS_FORMAT, HEADS_FORMAT_VERSION, HeadsKeys, TOKENIZER_FILE } from './sglang-heads-format.js';

/** As the GGUF converter reports it (one progress line serves both); `tensor` may name a file of qwen3guard/. */
export type SglangExportProgress = ConvertProgress;

export interface SglangExportOptions {
  /** Folder of the Hugging Face Qwen3Guard-Stream checkpoint. */
  checkpoint: string;
  /** Folder to create; it must not exist or be empty. Written as a sibling temporary folder, renamed when complete. */
  output: string;
  onProgress?: (progress: SglangExportProgress) => void;
  /** Cancels the export; the temporary folder is removed. */
  signal?: AbortSignal;
}

export interface SglangExportResult {
  output: string;
  /** Bytes of backbone weights written (the safetensors shards). */
  backboneBytes: number;
  /** Files written, relative to `output`. */
  files: string[];
}

/** Keys of the guard's config.json that belong to its heads: they go to the heads file, not to Qwen3ForCausalLM. */
const GUARD_CONFIG_KEYS = [
  'auto_map',
  'guard_inner_size',
  'num_risk_level',
  'num_category',
  'num_query_risk_level',
  'num_query_category',
  'response_risk_level_map',
  'response_category_map',
  'query_risk_level_map',
  'query_category_map',
];
/** Tokenizer files SGLang's tokenizer manager may read; the first two are required (the converter needs them too). */
const TOKENIZER_FILES = ['tokenizer.json', 'tokenizer_config.json', 'vocab.json', 'merges.txt', 'special_tokens_map.json', 'added_tokens.json', 'generation_config.json'];
const SINGLE = 'model.safetensors';
const INDEX = 'model.safetensors.index.json';
/** Bytes copied per read: bounds memory whatever the model size. */
const PIECE_BYTES = 16 << 20;

function checkTensor(entry: TensorEntry | undefined, dir: string, name: string, shape: readonly number[]): TensorEntry {
  if (!entry) throw new ConvertError(dir, `is missing tensor ${name} (shape ${JSON.stringify(shape)}): is the checkpoint complete?`);
  if (!SOURCE_DTYPES.includes(entry.dtype)) throw new ConvertError(entry.file, `tensor ${name} has unsupported dtype ${entry.dtype}: only F32, F16 and BF16 are supported`);
  if (entry.shape.length !== shape.length || entry.shape.some((n, i) => n !== shape[i])) {
    throw new ConvertError(entry.file, `tensor ${name} has shape ${JSON.stringify(entry.shape)}, expected ${JSON.stringify(shape)} from config.json`);
  }
  return entry;
}

async function prepareOutput(output: string): Promise<void> {
  const existing = await stat(output).catch(() => undefined);
  if (existing && !existing.isDirectory()) throw new ConvertError(output, 'exists and is not a folder: give the folder to create');
  if (existing && (await readdir(output)).length > 0) throw new ConvertError(output, 'exists and is not empty: remove it or give another folder');
  if (existing) await rmdir(output);
  const parent = dirname(output);
  if (!existsSync(parent)) throw new ConvertError(output, `cannot be written: folder ${parent} does not exist`);
}

/**
 * Writes a Hugging Face folder that stock SGLang serves as an ordinary `Qwen3ForCausalLM`: the guard's backbone
 * weights byte for byte (names as SGLang's qwen3.py loads them, the source's sharding kept), a config.json with
 * `architectures: ["Qwen3ForCausalLM"]` and tied embeddings (the guard has no lm_head), and the tokenizer files.
 * In `qwen3guard/`: the heads file (the eight head tensors and the final norm in F32, the epsilon and the label
 * maps of config.json in its metadata) and a vocabulary-only GGUF that tokenizes as the guard's own GGUF does.
 */
export async function exportForSglang(options: SglangExportOptions): Promise<SglangExportResult> {
  const dir = resolve(options.checkpoint);
  const output = resolve(options.output);
  const checkpointConfig = await readCheckpointConfig(dir);
  if (checkpointConfig.variant !== 'stream') {
    throw new ConvertError(`${dir}/config.json`, 'is a Qwen3Guard-Gen checkpoint: it is a plain Qwen3ForCausalLM already, serve it as it is (see "Gen on a serving engine")');
  }
  const config: GuardConfig = checkpointConfig;
  const rawConfig = JSON.parse(await readFile(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
  await prepareOutput(output);

  const checkpoint = await SafetensorsCheckpoint.open(dir);
  const temporary = join(dirname(output), `.${basename(output)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  try {
    const backbone = qwen3BackboneTensors(config).map(({ name, shape }) => checkTensor(checkpoint.tensors.get(name), dir, name, shape));
    const G = config.innerSize;
    const heads = HEAD_PATHS.flatMap((path) => {
      const names = HEAD_TENSOR_NAMES[path];
      const shapes: Array<[string, number[]]> = [
        [names.pre, [G, config.hiddenSize]],
        [names.norm, [G]],
        [names.risk, [config[path].riskLabels.length, G]],
        [names.category, [config[path].categoryLabels.length, G]],
      ];
      return shapes.map(([name, shape]) => checkTensor(checkpoint.tensors.get(name), dir, name, shape));
    });
    const known = new Set([...backbone, ...heads].map((t) => t.name));
    const unknown = [...checkpoint.tensors.keys()].filter((name) => !known.has(name));
    if (unknown.length) throw new ConvertError(dir, `has tensors a Qwen3Guard-Stream checkpoint does not: ${unknown.slice(0, 5).join(', ')}${unknown.length > 5 ? ', ...' : ''}`);

    await mkdir(join(temporary, GUARD_SUBDIR), { recursive: true });
    const bytesOf = (t: TensorEntry) => t.shape.reduce((a, b) => a * b, 1) * sourceDtypeBytes(t.dtype);
    const totalBytes = backbone.reduce((n, t) => n + bytesOf(t), 0);
    let bytesWritten = 0;
    const progress = (tensor: string) => {
      options.signal?.throwIfAborted();
      options.onProgress?.({ tensor, bytesWritten, totalBytes });
    };

    // One output shard per source file that holds backbone tensors, named as the source names it.
    const sources = [...new Set(backbone.map((t) => t.file))];
    const shardName = (file: string) => (sources.length === 1 ? SINGLE : basename(file));
    const weightMap: Record<string, string> = {};
    for (const source of sources) {
      const tensors = backbone.filter((t) => t.file === source).sort((a, b) => a.offset - b.offset);
      const writer = await SafetensorsWriter.create(
        join(temporary, shardName(source)),
        tensors.map((t) => ({ name: t.name, dtype: t.dtype, shape: t.shape, byteLength: bytesOf(t) })),
        { format: 'pt' },
      );
      const handle = await open(source, 'r');
      try {
        for (const tensor of tensors) {
          for (let at = 0; at < bytesOf(tensor); at += PIECE_BYTES) {
            const piece = Buffer.allocUnsafe(Math.min(PIECE_BYTES, bytesOf(tensor) - at));
            const { bytesRead } = await handle.read(piece, 0, piece.length, tensor.offset + at);
            if (bytesRead !== piece.length) throw new ConvertError(source, `truncated: tensor ${tensor.name} ends past the end of the file`);
            await writer.write(tensor.name, piece);
            bytesWritten += piece.length;
            progress(tensor.name);
          }
          weightMap[tensor.name] = shardName(source);
        }
        await writer.finish();
      } catch (error) {
        await writer.abandon();
        throw error;
      } finally {
        await handle.close();
      }
    }
    const files = sources.map(shardName);
    if (sources.length > 1) {
      await writeFile(join(temporary, INDEX), `${JSON.stringify({ metadata: { total_size: totalBytes }, weight_map: weightMap }, null, 2)}\n`);
      files.push(INDEX);
    }

    const servedConfig: Record<string, unknown> = { ...rawConfig, architectures: ['Qwen3ForCausalLM'], model_type: 'qwen3', tie_word_embeddings: true };
    for (const key of GUARD_CONFIG_KEYS) delete servedConfig[key];
    await writeFile(join(temporary, 'config.json'), `${JSON.stringify(servedConfig, null, 2)}\n`);
    files.push('config.json');
    for (const name of TOKENIZER_FILES) {
      if (!existsSync(join(dir, name))) continue;
      await copyFile(join(dir, name), join(temporary, name));
      files.push(name);
    }

    await writeHeads(checkpoint, [...heads, checkTensor(checkpoint.tensors.get(FINAL_NORM_TENSOR), dir, FINAL_NORM_TENSOR, [config.hiddenSize])], config, join(temporary, HEADS_FILE));
    progress(HEADS_FILE);
    await writeTokenizerGguf(dir, config.vocabSize, join(temporary, TOKENIZER_FILE));
    progress(TOKENIZER_FILE);
    files.push(HEADS_FILE, TOKENIZER_FILE);

    await rename(temporary, output);
    return { output, backboneBytes: totalBytes, files };
  } catch (error) {
    await rm(temporary, { recursive: true, force: true });
    if (error instanceof ConvertError) throw error;
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOSPC' || code === 'EACCES' || code === 'EROFS' || code === 'EDQUOT') throw new ConvertError(output, `could not be written (${(error as Error).message})`);
    throw error;
  } finally {
    await checkpoint.close();
  }
}

/** The heads file: every tensor in F32 (the heads run in float32 on the client), the config's maps in the metadata. */
async function writeHeads(checkpoint: SafetensorsCheckpoint, tensors: TensorEntry[], config: GuardConfig, file: string): Promise<void> {
  const metadata: Record<string, string> = {
    [HeadsKeys.format]: HEADS_FORMAT,
    [HeadsKeys.formatVersion]: String(HEADS_FORMAT_VERSION),
    [HeadsKeys.hiddenSize]: String(config.hiddenSize),
    [HeadsKeys.innerSize]: String(config.innerSize),
    [HeadsKeys.epsilon]: String(config.epsilon),
  };
  for (const path of HEAD_PATHS) {
    metadata[HeadsKeys.riskLabels(path)] = JSON.stringify(config[path].riskLabels);
    metadata[HeadsKeys.categoryLabels(path)] = JSON.stringify(config[path].categoryLabels);
  }
  const count = (t: TensorEntry) => t.shape.reduce((a, b) => a * b, 1);
  const writer = await SafetensorsWriter.create(
    file,
    tensors.map((t) => ({ name: t.name, dtype: 'F32', shape: t.shape, byteLength: count(t) * 4 })),
    metadata,
  );
  try {
    for (const tensor of tensors) await writer.write(tensor.name, encodeTensorData(await checkpoint.readAll(tensor), 'F32'));
    await writer.finish();
  } catch (error) {
    await writer.abandon();
    throw error;
  }
}
