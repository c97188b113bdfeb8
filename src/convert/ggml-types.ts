/** ggml tensor types this project writes, with their GGUF type ids. */
export const GgmlType = { F32: 0, F16: 1, Q4_0: 2, Q8_0: 8 } as const;
export type GgmlTypeName = keyof typeof GgmlType;

/** Output types the converter offers (`--type`). */
export const OUTPUT_TYPES = ['f32', 'f16', 'q8_0', 'q4_0'] as const;
export type OutputType = (typeof OUTPUT_TYPES)[number];

/** Values per block of both quantized types (ggml's QK8_0 and QK4_0). */
export const QUANT_BLOCK = 32;
/** Bytes per block: an f16 scale, then 32 int8 (Q8_0) or 32 nibbles (Q4_0). */
const BLOCK_BYTES = { Q8_0: 2 + QUANT_BLOCK, Q4_0: 2 + QUANT_BLOCK / 2 } as const;

/** Bytes taken by `count` consecutive values (whole rows) of a tensor of this type. */
export function byteSize(type: GgmlTypeName, count: number): number {
  switch (type) {
    case 'F32':
      return count * 4;
    case 'F16':
      return count * 2;
    case 'Q8_0':
    case 'Q4_0':
      if (count % QUANT_BLOCK !== 0) throw new Error(`${type} needs a multiple of ${QUANT_BLOCK} values, got ${count}`);
      return (count / QUANT_BLOCK) * BLOCK_BYTES[type];
  }
}

interface TypePlan {
  matrix: GgmlTypeName;
  /** `token_embd`: the embedding, the tied vocabulary projection and the folded guard rows (guard-rows.ts). */
  embedding: GgmlTypeName;
  /** GGUF `general.file_type` (llama_ftype): 0 ALL_F32, 1 MOSTLY_F16, 7 MOSTLY_Q8_0, 2 MOSTLY_Q4_0. */
  fileType: number;
}

const PLANS: Record<OutputType, TypePlan> = {
  f32: { matrix: 'F32', embedding: 'F32', fileType: 0 },
  f16: { matrix: 'F16', embedding: 'F16', fileType: 1 },
  q8_0: { matrix: 'Q8_0', embedding: 'Q8_0', fileType: 7 },
  // token_embd stays Q8_0, as llama.cpp's own quantizer keeps the output/embedding tensor at a higher type:
  // the folded guard rows in it decide the labels. Measured against the f32 GGUF on the tiny random fixture
  // (test/convert-q4.test.ts): everything Q4_0 gave 136/170 token labels and 3/5 prompt verdicts; Q4_0
  // layers with a Q8_0 token_embd 142/170 and 5/5 (the planted fixture: all equal either way).
  q4_0: { matrix: 'Q4_0', embedding: 'Q8_0', fileType: 2 },
};

/** The ggml type of the layers' 2-D weight matrices (norms always stay F32). */
export function matrixType(output: OutputType): GgmlTypeName {
  return PLANS[output].matrix;
}

/** The ggml type of `token_embd`, which also holds the folded guard rows. */
export function embeddingType(output: OutputType): GgmlTypeName {
  return PLANS[output].embedding;
}

/** GGUF `general.file_type` values (llama_ftype) for each output type. */
export function fileTypeId(output: OutputType): number {
  return PLANS[output].fileType;
}

/** Whether an output type stores tensors in blocks of QUANT_BLOCK values along each row. */
export function isBlockQuantized(output: OutputType): boolean {
  return matrixType(output) === 'Q8_0' || matrixType(output) === 'Q4_0';
}
