import { open, type FileHandle } from 'node:fs/promises';

/** A tensor to write: its data comes later, in order, in as many pieces as the caller likes. */
export interface SafetensorsTensorSpec {
  name: string;
  /** safetensors dtype name (F32, F16, BF16, ...): the bytes are written as given. */
  dtype: string;
  shape: readonly number[];
  byteLength: number;
}

/**
 * Writes a safetensors file front to back: u64 header length, the JSON header (padded with spaces to a multiple
 * of 8, as the format recommends), then each tensor's raw little-endian bytes in declared order. Only the
 * current piece is held in memory, so a multi-gigabyte backbone streams through.
 */
export class SafetensorsWriter {
  private position: number;
  private index = 0;
  private written = 0;

  private constructor(
    private readonly file: FileHandle,
    private readonly tensors: readonly SafetensorsTensorSpec[],
    dataStart: number,
  ) {
    this.position = dataStart;
  }

  static async create(path: string, tensors: readonly SafetensorsTensorSpec[], metadata: Readonly<Record<string, string>> = {}): Promise<SafetensorsWriter> {
    const header: Record<string, unknown> = {};
    if (Object.keys(metadata).length) header.__metadata__ = metadata;
    let offset = 0;
    for (const tensor of tensors) {
      header[tensor.name] = { dtype: tensor.dtype, shape: tensor.shape, data_offsets: [offset, offset + tensor.byteLength] };
      offset += tensor.byteLength;
    }
    const json = Buffer.from(JSON.stringify(header), 'utf8');
    const padded = Buffer.concat([json, Buffer.alloc((8 - (json.length % 8)) % 8, 0x20)]);
    const length = Buffer.alloc(8);
    length.writeBigUInt64LE(BigInt(padded.length));
    const file = await open(path, 'w');
    try {
      await file.write(Buffer.concat([length, padded]), 0, 8 + padded.length, 0);
    } catch (error) {
      await file.close();
      throw error;
    }
    return new SafetensorsWriter(file, tensors, 8 + padded.length);
  }

  /** Appends the next piece of the current tensor's bytes; pieces must add up to its byteLength. */
  async write(name: string, data: Uint8Array): Promise<void> {
    const tensor = this.tensors[this.index];
    if (!tensor || tensor.name !== name) throw new Error(`safetensors writer: expected data for ${tensor?.name ?? 'no more tensors'}, got ${name}`);
    if (this.written + data.byteLength > tensor.byteLength) throw new Error(`safetensors writer: ${name} takes ${tensor.byteLength} bytes, got more`);
    await this.file.write(data, 0, data.byteLength, this.position);
    this.position += data.byteLength;
    this.written += data.byteLength;
    if (this.written === tensor.byteLength) {
      this.index++;
      this.written = 0;
    }
  }

  /** Closes the file; fails if a tensor's data is missing. */
  async finish(): Promise<void> {
    if (this.index !== this.tensors.length) {
      await this.file.close();
      throw new Error(`safetensors writer: no data was written for ${this.tensors[this.index].name}`);
    }
    await this.file.sync();
    await this.file.close();
  }

  /** Closes the file without checks (after a failure). */
  async abandon(): Promise<void> {
    await this.file.close().catch(() => undefined);
  }
}
