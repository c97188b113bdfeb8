import { open, type FileHandle } from 'node:fs/promises';
import { byteSize, GgmlType, type GgmlTypeName } from './ggml-types.js';

/** GGUF metadata value types (format v3). */
const KvType = { U8: 0, I8: 1, U16: 2, I16: 3, U32: 4, I32: 5, F32: 6, BOOL: 7, STRING: 8, ARRAY: 9, U64: 10, I64: 11, F64: 12 } as const;

export type GgufScalarType = 'u32' | 'i32' | 'u64' | 'f32' | 'f64' | 'bool' | 'string';
export type GgufValue =
  | { type: 'u32' | 'i32' | 'u64' | 'f32' | 'f64'; value: number }
  | { type: 'bool'; value: boolean }
  | { type: 'string'; value: string }
  | { type: 'array'; itemType: 'string'; value: readonly string[] }
  | { type: 'array'; itemType: 'u32' | 'i32' | 'f32'; value: ArrayLike<number> };

export interface GgufTensorSpec {
  name: string;
  /** ggml order: ne[0] is the fastest-varying dimension (a PyTorch [out, in] matrix is [in, out]). */
  ne: readonly number[];
  type: GgmlTypeName;
}

const ALIGNMENT = 32;

/** Little-endian byte sink that batches small writes. */
class ByteSink {
  private chunks: Uint8Array[] = [];
  private size = 0;
  constructor(private readonly flushAt: number, private readonly onFlush: (data: Uint8Array) => Promise<void>) {}

  /** Bytes accepted but not yet flushed. */
  get buffered(): number {
    return this.size;
  }

  bytes(data: Uint8Array): Promise<void> | void {
    this.chunks.push(data);
    this.size += data.byteLength;
    if (this.size >= this.flushAt) return this.flush();
  }
  async flush(): Promise<void> {
    if (this.size === 0) return;
    const data = Buffer.concat(this.chunks, this.size);
    this.chunks = [];
    this.size = 0;
    await this.onFlush(data);
  }
}

function encodeString(text: string): Uint8Array {
  const body = Buffer.from(text, 'utf8');
  const out = Buffer.alloc(8 + body.byteLength);
  out.writeBigUInt64LE(BigInt(body.byteLength), 0);
  body.copy(out, 8);
  return out;
}

function scalar(type: 'u32' | 'i32' | 'u64' | 'f32' | 'f64', value: number): Uint8Array {
  const out = Buffer.alloc(type === 'u64' || type === 'f64' ? 8 : 4);
  if (type === 'u32') out.writeUInt32LE(value);
  else if (type === 'i32') out.writeInt32LE(value);
  else if (type === 'u64') out.writeBigUInt64LE(BigInt(value));
  else if (type === 'f32') out.writeFloatLE(value);
  else out.writeDoubleLE(value);
  return out;
}

const kvTypeOf: Record<GgufScalarType, number> = {
  u32: KvType.U32, i32: KvType.I32, u64: KvType.U64, f32: KvType.F32, f64: KvType.F64, bool: KvType.BOOL, string: KvType.STRING,
};

function encodeValue(value: GgufValue): Uint8Array {
  return Buffer.concat(encodeValueParts(value));
}

function encodeValueParts(value: GgufValue): Uint8Array[] {
  const u32 = (n: number) => scalar('u32', n);
  switch (value.type) {
    case 'string':
      return [u32(KvType.STRING), encodeString(value.value)];
    case 'bool':
      return [u32(KvType.BOOL), Uint8Array.of(value.value ? 1 : 0)];
    case 'array': {
      const head = [u32(KvType.ARRAY), u32(kvTypeOf[value.itemType]), scalar('u64', value.value.length)];
      if (value.itemType === 'string') return head.concat((value.value as readonly string[]).map(encodeString));
      const nums = value.value as ArrayLike<number>;
      const body = Buffer.alloc(nums.length * 4);
      for (let i = 0; i < nums.length; i++) {
        if (value.itemType === 'f32') body.writeFloatLE(nums[i], i * 4);
        else if (value.itemType === 'u32') body.writeUInt32LE(nums[i], i * 4);
        else body.writeInt32LE(nums[i], i * 4);
      }
      return [...head, body];
    }
    default:
      return [u32(kvTypeOf[value.type]), scalar(value.type, value.value)];
  }
}

/**
 * Writes a GGUF v3 file front to back: the header (metadata and tensor infos, whose sizes are known from
 * the shapes) first, then each tensor's data in declared order, handed over in as many pieces as the caller
 * likes. Nothing but the current piece is held in memory.
 */
export class GgufWriter {
  private readonly sink: ByteSink;
  private position = 0;
  private tensorIndex = 0;
  private writtenInTensor = 0;
  private readonly sizes: number[];
  private readonly dataStart: number;
  private readonly headerBytes: Uint8Array;

  private constructor(
    private readonly file: FileHandle,
    private readonly tensors: readonly GgufTensorSpec[],
    metadata: ReadonlyMap<string, GgufValue>,
  ) {
    this.sink = new ByteSink(8 << 20, async (data) => {
      await this.file.write(data, 0, data.byteLength, this.position);
      this.position += data.byteLength;
    });
    this.sizes = tensors.map((t) => byteSize(t.type, t.ne.reduce((a, b) => a * b, 1)));
    const header = this.encodeHeader(metadata);
    this.dataStart = align(header.byteLength);
    this.headerBytes = Buffer.concat([header, Buffer.alloc(this.dataStart - header.byteLength)]);
  }

  static async create(path: string, metadata: ReadonlyMap<string, GgufValue>, tensors: readonly GgufTensorSpec[]): Promise<GgufWriter> {
    const file = await open(path, 'w');
    const writer = new GgufWriter(file, tensors, metadata);
    await writer.sink.bytes(writer.headerBytes);
    return writer;
  }

  /** Total size of the finished file in bytes. */
  get totalBytes(): number {
    let offset = this.dataStart;
    for (const size of this.sizes) offset = align(offset) + size;
    return offset;
  }

  /** Bytes of the file handed over so far (the last few MB may still be buffered): totalBytes once all data is in. */
  get bytesWritten(): number {
    return this.position + this.sink.buffered;
  }

  private encodeHeader(metadata: ReadonlyMap<string, GgufValue>): Buffer {
    const parts: Uint8Array[] = [Buffer.from('GGUF', 'ascii'), scalar('u32', 3), scalar('u64', this.tensors.length), scalar('u64', metadata.size)];
    for (const [key, value] of metadata) parts.push(encodeString(key), encodeValue(value));
    let offset = 0;
    this.tensors.forEach((tensor, i) => {
      parts.push(encodeString(tensor.name), scalar('u32', tensor.ne.length));
      for (const n of tensor.ne) parts.push(scalar('u64', n));
      parts.push(scalar('u32', GgmlType[tensor.type]), scalar('u64', offset));
      offset = align(offset + this.sizes[i]);
    });
    return Buffer.concat(parts);
  }

  /** Appends the next piece of the current tensor's data; pieces must add up to the tensor's exact size. */
  async write(tensorName: string, data: Uint8Array): Promise<void> {
    const tensor = this.tensors[this.tensorIndex];
    if (!tensor || tensor.name !== tensorName) {
      throw new Error(`GGUF writer: expected data for ${tensor?.name ?? 'no more tensors'}, got ${tensorName}`);
    }
    const size = this.sizes[this.tensorIndex];
    if (this.writtenInTensor + data.byteLength > size) {
      throw new Error(`GGUF writer: ${tensorName} takes ${size} bytes, got more`);
    }
    await this.sink.bytes(data);
    this.writtenInTensor += data.byteLength;
    if (this.writtenInTensor === size) {
      this.tensorIndex++;
      this.writtenInTensor = 0;
      const pad = align(size) - size;
      if (pad > 0 && this.tensorIndex < this.tensors.length) await this.sink.bytes(new Uint8Array(pad));
    }
  }

  /** Flushes and closes; fails if any tensor's data is missing. */
  async finish(): Promise<void> {
    await this.sink.flush();
    if (this.tensorIndex !== this.tensors.length) {
      throw new Error(`GGUF writer: no data was written for ${this.tensors[this.tensorIndex].name}`);
    }
    await this.file.sync();
    await this.file.close();
  }

  /** Closes the file without checks (after a failure). */
  async abandon(): Promise<void> {
    await this.file.close().catch(() => undefined);
  }
}

function align(n: number): number {
  return Math.ceil(n / ALIGNMENT) * ALIGNMENT;
}
