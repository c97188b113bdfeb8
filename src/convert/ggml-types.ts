/** ggml tensor types this project writes, with their GGUF type ids. */
export const GgmlType = { F32: 0, F16: 1, Q8_0: 8 } as const;
export type GgmlTypeName = keyof typeof GgmlType;

/** Output types the converter offers (`--type`). */
export const OUTPUT_TYPES = ['f32', 'f16', 'q8_0'] as const;
export type OutputType = (typeof OUTPUT_TYPES)[number];

export const Q8_0_BLOCK = 32;
const Q8_0_BLOCK_BYTES = 2 + Q8_0_BLOCK;

/** Bytes taken by `count` consecutive values (whole rows) of a tensor of this type. */
export function byteSize(type: GgmlTypeName, count: number): number {
  switch (type) {
    case 'F32':
      return count * 4;
    case 'F16':
      return count * 2;
    case 'Q8_0':
      if (count % Q8_0_BLOCK !== 0) throw new Error(`Q8_0 needs a multiple of ${Q8_0_BLOCK} values, got ${count}`);
      return (count / Q8_0_BLOCK) * Q8_0_BLOCK_BYTES;
  }
}

/** The ggml type a 2-D weight matrix gets for a given output type (norms always stay F32). */
export function matrixType(output: OutputType): GgmlTypeName {
  return output === 'f32' ? 'F32' : output === 'f16' ? 'F16' : 'Q8_0';
}

/** GGUF `general.file_type` values (llama_ftype) for each output type. */
export function fileTypeId(output: OutputType): number {
  return output === 'f32' ? 0 : output === 'f16' ? 1 : 7;
}
