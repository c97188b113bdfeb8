import { QUANT_BLOCK, type GgmlTypeName } from './ggml-types.js';

// Scratch views for bit-level float conversions.
const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** IEEE half -> float, exact. */
export function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 0x1f) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

/** float -> IEEE half with round-to-nearest-even, as ggml's GGML_FP32_TO_FP16 does. */
export function floatToHalf(value: number): number {
  f32[0] = value;
  const x = u32[0];
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    const half = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const mid = 1 << (shift - 1);
    return sign | (half + (rem > mid || (rem === mid && half & 1) ? 1 : 0));
  }
  const half = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  // A carry out of the mantissa correctly bumps the exponent (and rounds to infinity at the top).
  return sign | (half + (rem > 0x1000 || (rem === 0x1000 && half & 1) ? 1 : 0));
}

/** Source dtypes a safetensors checkpoint may hold. */
export type SourceDtype = 'F32' | 'F16' | 'BF16';
export const SOURCE_DTYPES: readonly SourceDtype[] = ['F32', 'F16', 'BF16'];

export function sourceDtypeBytes(dtype: SourceDtype): number {
  return dtype === 'F32' ? 4 : 2;
}

let halfTable: Float32Array | undefined;

/** Decodes little-endian raw tensor bytes into float32 (the host is little-endian: x64 and arm64). */
export function decodeToFloat32(bytes: Uint8Array, dtype: SourceDtype): Float32Array {
  // Copy into a fresh, aligned buffer so typed views can be used whatever the source offset.
  const own = new Uint8Array(bytes).buffer; // Buffer#slice would share (a pool of) memory
  if (dtype === 'F32') return new Float32Array(own);
  const halves = new Uint16Array(own);
  const out = new Float32Array(halves.length);
  if (dtype === 'BF16') {
    const bits = new Uint32Array(out.buffer);
    for (let i = 0; i < halves.length; i++) bits[i] = halves[i] << 16;
    return out;
  }
  if (!halfTable) {
    halfTable = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) halfTable[h] = halfToFloat(h);
  }
  for (let i = 0; i < halves.length; i++) out[i] = halfTable[halves[i]];
  return out;
}

/** Encodes float values (whole rows) as raw ggml tensor bytes of the given type. */
export function encodeTensorData(values: ArrayLike<number>, type: GgmlTypeName): Uint8Array {
  const n = values.length;
  if (type === 'F32') {
    const out = new Uint8Array(n * 4);
    const view = new DataView(out.buffer);
    for (let i = 0; i < n; i++) view.setFloat32(i * 4, values[i], true);
    return out;
  }
  if (type === 'F16') {
    const out = new Uint8Array(n * 2);
    const view = new DataView(out.buffer);
    for (let i = 0; i < n; i++) view.setUint16(i * 2, floatToHalf(values[i]), true);
    return out;
  }
  return type === 'Q4_0' ? quantizeQ4_0(values) : quantizeQ8_0(values);
}

/** Q8_0 as ggml's quantize_row_q8_0_ref: per block of 32, d = max|x|/127 stored as f16, q = round(x/d). */
export function quantizeQ8_0(values: ArrayLike<number>): Uint8Array {
  const blocks = values.length / QUANT_BLOCK;
  const out = new Uint8Array(blocks * (QUANT_BLOCK + 2));
  const view = new DataView(out.buffer);
  for (let b = 0; b < blocks; b++) {
    const base = b * QUANT_BLOCK;
    let amax = 0;
    for (let j = 0; j < QUANT_BLOCK; j++) amax = Math.max(amax, Math.abs(values[base + j]));
    const d = Math.fround(amax / 127);
    const id = d ? Math.fround(1 / d) : 0;
    const at = b * (QUANT_BLOCK + 2);
    view.setUint16(at, floatToHalf(d), true);
    for (let j = 0; j < QUANT_BLOCK; j++) {
      const x = Math.fround(values[base + j] * id);
      // roundf: halves away from zero
      view.setInt8(at + 2 + j, Math.sign(x) * Math.round(Math.abs(x)));
    }
  }
  return out;
}

/**
 * Q4_0 as ggml's quantize_row_q4_0_ref: per block of 32, the value of largest magnitude `max` (signed, the
 * first one on ties) gives d = max / -8, stored as f16, and q = min(15, trunc(x / d + 8.5)) in f32
 * arithmetic; byte j holds element j in its low nibble and element j + 16 in its high one.
 */
export function quantizeQ4_0(values: ArrayLike<number>): Uint8Array {
  const half = QUANT_BLOCK / 2;
  const blocks = values.length / QUANT_BLOCK;
  const out = new Uint8Array(blocks * (half + 2));
  const view = new DataView(out.buffer);
  const code = (x: number, id: number) => Math.min(15, Math.trunc(Math.fround(Math.fround(x * id) + 8.5)));
  for (let b = 0; b < blocks; b++) {
    const base = b * QUANT_BLOCK;
    let amax = 0;
    let max = 0;
    for (let j = 0; j < QUANT_BLOCK; j++) {
      const v = values[base + j];
      if (amax < Math.abs(v)) {
        amax = Math.abs(v);
        max = v;
      }
    }
    const d = Math.fround(max / -8);
    const id = d ? Math.fround(1 / d) : 0;
    const at = b * (half + 2);
    view.setUint16(at, floatToHalf(d), true);
    for (let j = 0; j < half; j++) out[at + 2 + j] = code(values[base + j], id) | (code(values[base + half + j], id) << 4);
  }
  return out;
}
