import { open, readFile, type FileHandle } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { ConvertError } from './errors.js';
import { decodeToFloat32, SOURCE_DTYPES, sourceDtypeBytes, type SourceDtype } from './numeric.js';

export interface TensorEntry {
  name: string;
  file: string;
  dtype: SourceDtype;
  shape: number[];
  /** Absolute byte offset of the data in `file`. */
  offset: number;
}

const SINGLE = 'model.safetensors';
const INDEX = 'model.safetensors.index.json';

/**
 * A Hugging Face safetensors checkpoint (one file, or shards listed by the index), read tensor by tensor and
 * row range by row range so that memory stays near the piece being converted.
 */
export class SafetensorsCheckpoint {
  private readonly handles = new Map<string, FileHandle>();

  private constructor(readonly tensors: ReadonlyMap<string, TensorEntry>) {}

  static async open(dir: string): Promise<SafetensorsCheckpoint> {
    const files = await checkpointFiles(dir);
    const tensors = new Map<string, TensorEntry>();
    for (const file of files) {
      for (const entry of await readHeader(file)) tensors.set(entry.name, entry);
    }
    return new SafetensorsCheckpoint(tensors);
  }

  /** Reads rows [start, end) of a tensor (the first dimension counts rows) as float32. */
  async readRows(entry: TensorEntry, start: number, end: number): Promise<Float32Array> {
    const rowValues = entry.shape.slice(1).reduce((a, b) => a * b, 1);
    const rowBytes = rowValues * sourceDtypeBytes(entry.dtype);
    const length = (end - start) * rowBytes;
    const buffer = Buffer.allocUnsafe(length);
    const handle = await this.handle(entry.file);
    const { bytesRead } = await handle.read(buffer, 0, length, entry.offset + start * rowBytes);
    if (bytesRead !== length) throw new ConvertError(entry.file, `truncated: tensor ${entry.name} ends past the end of the file`);
    return decodeToFloat32(buffer, entry.dtype);
  }

  async readAll(entry: TensorEntry): Promise<Float32Array> {
    return this.readRows(entry, 0, entry.shape[0] ?? 1);
  }

  private async handle(file: string): Promise<FileHandle> {
    let handle = this.handles.get(file);
    if (!handle) {
      handle = await open(file, 'r');
      this.handles.set(file, handle);
    }
    return handle;
  }

  async close(): Promise<void> {
    await Promise.all([...this.handles.values()].map((h) => h.close()));
    this.handles.clear();
  }
}

async function checkpointFiles(dir: string): Promise<string[]> {
  const indexPath = join(dir, INDEX);
  if (existsSync(indexPath)) {
    let index: { weight_map?: Record<string, string> };
    try {
      index = JSON.parse(await readFile(indexPath, 'utf8'));
    } catch (error) {
      throw new ConvertError(indexPath, `is not valid JSON (${(error as Error).message})`);
    }
    if (!index.weight_map || typeof index.weight_map !== 'object') {
      throw new ConvertError(indexPath, 'has no "weight_map": expected {"weight_map": {tensor name: shard file}}');
    }
    const shards = [...new Set(Object.values(index.weight_map))].map((name) => join(dir, name));
    for (const shard of shards) {
      if (!existsSync(shard)) throw new ConvertError(shard, `is listed in ${INDEX} but missing`);
    }
    return shards;
  }
  const single = join(dir, SINGLE);
  if (!existsSync(single)) {
    throw new ConvertError(dir, `has no weights: expected ${SINGLE} or ${INDEX} with its shards`);
  }
  return [single];
}

async function readHeader(file: string): Promise<TensorEntry[]> {
  const handle = await open(file, 'r');
  try {
    const { size } = await handle.stat();
    const lengthBytes = Buffer.alloc(8);
    await handle.read(lengthBytes, 0, 8, 0);
    const headerLength = Number(lengthBytes.readBigUInt64LE(0));
    if (size < 8 || headerLength <= 0 || 8 + headerLength > size) {
      throw new ConvertError(file, 'is not a safetensors file (bad header length)');
    }
    const headerBytes = Buffer.alloc(headerLength);
    await handle.read(headerBytes, 0, headerLength, 8);
    let header: Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
    try {
      header = JSON.parse(headerBytes.toString('utf8'));
    } catch {
      throw new ConvertError(file, 'is not a safetensors file (header is not JSON)');
    }
    const dataStart = 8 + headerLength;
    const entries: TensorEntry[] = [];
    for (const [name, info] of Object.entries(header)) {
      if (name === '__metadata__') continue;
      const [begin, end] = info.data_offsets;
      const count = info.shape.reduce((a, b) => a * b, 1);
      if (!SOURCE_DTYPES.includes(info.dtype as SourceDtype)) {
        // Only fail for tensors the converter reads; the caller checks names. Record the dtype as given.
        entries.push({ name, file, dtype: info.dtype as SourceDtype, shape: info.shape, offset: dataStart + begin });
        continue;
      }
      if (end - begin !== count * sourceDtypeBytes(info.dtype as SourceDtype)) {
        throw new ConvertError(file, `tensor ${name} has data_offsets that do not match its shape ${JSON.stringify(info.shape)} and dtype ${info.dtype}`);
      }
      if (dataStart + end > size) {
        throw new ConvertError(file, `is truncated: tensor ${name} ends at byte ${dataStart + end} but the file has ${size} bytes (download it again)`);
      }
      entries.push({ name, file, dtype: info.dtype as SourceDtype, shape: info.shape, offset: dataStart + begin });
    }
    return entries;
  } finally {
    await handle.close();
  }
}
