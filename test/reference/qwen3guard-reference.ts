/**
 * An independent float64 reference of Qwen3Guard-Stream (Qwen3 backbone + the two guard heads), straight from
 * the Hugging Face checkpoint files, for tests only. It recomputes the whole sequence: no KV cache, no
 * llama.cpp, nothing shared with src/.
 */
import { readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';

type Tensor = { shape: number[]; data: Float32Array };

function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

function readSafetensorsFile(file: string, into: Map<string, Tensor>) {
  const buf = readFileSync(file);
  const n = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8'));
  const base = 8 + n;
  for (const [name, info] of Object.entries<any>(header)) {
    if (name === '__metadata__') continue;
    const [b, e] = info.data_offsets;
    const raw = buf.subarray(base + b, base + e);
    const count = info.shape.reduce((a: number, c: number) => a * c, 1);
    const data = new Float32Array(count);
    const bits = new Uint32Array(1);
    const asFloat = new Float32Array(bits.buffer);
    for (let i = 0; i < count; i++) {
      if (info.dtype === 'F32') data[i] = raw.readFloatLE(i * 4);
      else if (info.dtype === 'BF16') {
        bits[0] = raw.readUInt16LE(i * 2) << 16;
        data[i] = asFloat[0];
      }
      else if (info.dtype === 'F16') data[i] = halfToFloat(raw.readUInt16LE(i * 2));
      else throw new Error(`reference: dtype ${info.dtype}`);
    }
    into.set(name, { shape: info.shape, data });
  }
}

export interface HeadOutput {
  riskLogits: number[];
  categoryLogits: number[];
  riskProbabilities: number[];
  categoryProbabilities: number[];
  risk: string;
  category: string;
}

export interface ReferenceOutput {
  response: HeadOutput;
  query: HeadOutput;
}

const softmax = (x: number[]) => {
  const m = Math.max(...x);
  const e = x.map((v) => Math.exp(v - m));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / s);
};
const argmax = (x: number[]) => x.reduce((best, v, i) => (v > x[best] ? i : best), 0);

export class Qwen3GuardReference {
  private readonly t = new Map<string, Tensor>();
  private readonly cfg: any;

  constructor(dir: string) {
    this.cfg = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
    const index = join(dir, 'model.safetensors.index.json');
    if (existsSync(index)) {
      const files = new Set<string>(Object.values(JSON.parse(readFileSync(index, 'utf8')).weight_map));
      for (const f of files) readSafetensorsFile(join(dir, f), this.t);
    } else readSafetensorsFile(join(dir, 'model.safetensors'), this.t);
  }

  private w(name: string): Float32Array {
    const t = this.t.get(name);
    if (!t) throw new Error(`reference: missing ${name}`);
    return t.data;
  }

  private rmsnorm(x: Float64Array, weight: Float32Array, offset = 0, length = x.length): void {
    let ss = 0;
    for (let i = 0; i < length; i++) ss += x[offset + i] ** 2;
    const inv = 1 / Math.sqrt(ss / length + this.cfg.rms_norm_eps);
    for (let i = 0; i < length; i++) x[offset + i] = weight[i] * x[offset + i] * inv;
  }

  /** y = W x for W [rows, cols] row-major. */
  private matvec(W: Float32Array, rows: number, cols: number, x: Float64Array): Float64Array {
    const y = new Float64Array(rows);
    for (let r = 0; r < rows; r++) {
      let acc = 0;
      const base = r * cols;
      for (let c = 0; c < cols; c++) acc += W[base + c] * x[c];
      y[r] = acc;
    }
    return y;
  }

  /** Post-final-norm hidden states for every position of `ids`. */
  hiddenStates(ids: number[]): Float64Array[] {
    const c = this.cfg;
    const H = c.hidden_size;
    const nh = c.num_attention_heads;
    const nkv = c.num_key_value_heads;
    const hd = c.head_dim ?? H / nh;
    const I = c.intermediate_size;
    const N = ids.length;
    const embed = this.w('model.embed_tokens.weight');
    const xs = ids.map((id) => Float64Array.from(embed.subarray(id * H, (id + 1) * H)));
    const invFreq = Array.from({ length: hd / 2 }, (_, i) => 1 / c.rope_theta ** ((2 * i) / hd));
    const rope = (v: Float64Array, offset: number, pos: number) => {
      for (let i = 0; i < hd / 2; i++) {
        const a = v[offset + i];
        const b = v[offset + i + hd / 2];
        const cos = Math.cos(pos * invFreq[i]);
        const sin = Math.sin(pos * invFreq[i]);
        v[offset + i] = a * cos - b * sin;
        v[offset + i + hd / 2] = b * cos + a * sin;
      }
    };
    for (let l = 0; l < c.num_hidden_layers; l++) {
      const p = `model.layers.${l}`;
      const qs: Float64Array[] = [];
      const ks: Float64Array[] = [];
      const vs: Float64Array[] = [];
      for (let n = 0; n < N; n++) {
        const h = Float64Array.from(xs[n]);
        this.rmsnorm(h, this.w(`${p}.input_layernorm.weight`));
        const q = this.matvec(this.w(`${p}.self_attn.q_proj.weight`), nh * hd, H, h);
        const k = this.matvec(this.w(`${p}.self_attn.k_proj.weight`), nkv * hd, H, h);
        const v = this.matvec(this.w(`${p}.self_attn.v_proj.weight`), nkv * hd, H, h);
        for (let a = 0; a < nh; a++) {
          this.rmsnorm(q, this.w(`${p}.self_attn.q_norm.weight`), a * hd, hd);
          rope(q, a * hd, n);
        }
        for (let a = 0; a < nkv; a++) {
          this.rmsnorm(k, this.w(`${p}.self_attn.k_norm.weight`), a * hd, hd);
          rope(k, a * hd, n);
        }
        qs.push(q);
        ks.push(k);
        vs.push(v);
      }
      const scale = 1 / Math.sqrt(hd);
      for (let n = 0; n < N; n++) {
        const out = new Float64Array(nh * hd);
        for (let a = 0; a < nh; a++) {
          const kv = Math.floor(a / (nh / nkv));
          const scores = new Float64Array(n + 1);
          let max = -Infinity;
          for (let m = 0; m <= n; m++) {
            let s = 0;
            for (let d = 0; d < hd; d++) s += qs[n][a * hd + d] * ks[m][kv * hd + d];
            scores[m] = s * scale;
            max = Math.max(max, scores[m]);
          }
          let total = 0;
          for (let m = 0; m <= n; m++) total += (scores[m] = Math.exp(scores[m] - max));
          for (let m = 0; m <= n; m++) {
            const wgt = scores[m] / total;
            for (let d = 0; d < hd; d++) out[a * hd + d] += wgt * vs[m][kv * hd + d];
          }
        }
        const o = this.matvec(this.w(`${p}.self_attn.o_proj.weight`), H, nh * hd, out);
        for (let i = 0; i < H; i++) xs[n][i] += o[i];
        const h = Float64Array.from(xs[n]);
        this.rmsnorm(h, this.w(`${p}.post_attention_layernorm.weight`));
        const g = this.matvec(this.w(`${p}.mlp.gate_proj.weight`), I, H, h);
        const u = this.matvec(this.w(`${p}.mlp.up_proj.weight`), I, H, h);
        for (let i = 0; i < I; i++) g[i] = (g[i] / (1 + Math.exp(-g[i]))) * u[i];
        const d = this.matvec(this.w(`${p}.mlp.down_proj.weight`), H, I, g);
        for (let i = 0; i < H; i++) xs[n][i] += d[i];
      }
    }
    for (const x of xs) this.rmsnorm(x, this.w('model.norm.weight'));
    return xs;
  }

  private head(h: Float64Array, prefix: '' | 'query_', riskMap: Record<string, string>, categoryMap: Record<string, string>): HeadOutput {
    const H = this.cfg.hidden_size;
    const G = this.cfg.guard_inner_size;
    const z = this.matvec(this.w(`${prefix}risk_level_category_pre.weight`), G, H, h);
    this.rmsnorm(z, this.w(`${prefix}risk_level_category_layernorm.weight`));
    const nr = Object.keys(riskMap).length;
    const nc = Object.keys(categoryMap).length;
    const riskLogits = [...this.matvec(this.w(`${prefix}risk_level_head.weight`), nr, G, z)];
    const categoryLogits = [...this.matvec(this.w(`${prefix}category_head.weight`), nc, G, z)];
    return {
      riskLogits,
      categoryLogits,
      riskProbabilities: softmax(riskLogits),
      categoryProbabilities: softmax(categoryLogits),
      risk: riskMap[String(argmax(riskLogits))],
      category: categoryMap[String(argmax(categoryLogits))],
    };
  }

  /** Both heads at every position. */
  run(ids: number[]): ReferenceOutput[] {
    const c = this.cfg;
    return this.hiddenStates(ids).map((h) => ({
      response: this.head(h, '', c.response_risk_level_map, c.response_category_map),
      query: this.head(h, 'query_', c.query_risk_level_map, c.query_category_map),
    }));
  }
}
