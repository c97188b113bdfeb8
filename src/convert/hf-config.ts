import { readFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { z } from 'zod';
import { ConvertError } from './errors.js';
import { isGenTemplate } from '../format/variant.js';
import { DEFAULT_QUERY_CATEGORIES, DEFAULT_RESPONSE_CATEGORIES, DEFAULT_RISK_LABELS } from '../format/labels.js';

export const GUARD_ARCHITECTURE = 'Qwen3ForGuardModel';
/** Qwen3Guard-Gen is a plain Qwen3 causal LM; its tokenizer_config.json carries the moderation template. */
export const GEN_ARCHITECTURE = 'Qwen3ForCausalLM';

const positiveInt = z.number().int().positive();
const labelMap = z.record(z.string().regex(/^\d+$/), z.string()).optional();

const configSchema = z.object({
  architectures: z.array(z.string()),
  hidden_size: positiveInt,
  num_hidden_layers: positiveInt,
  num_attention_heads: positiveInt,
  num_key_value_heads: positiveInt,
  head_dim: positiveInt.optional(),
  intermediate_size: positiveInt,
  vocab_size: positiveInt,
  rms_norm_eps: z.number().positive(),
  rope_theta: z.number().positive(),
  max_position_embeddings: positiveInt,
  tie_word_embeddings: z.boolean().optional(),
  guard_inner_size: positiveInt,
  num_risk_level: positiveInt.optional(),
  num_category: positiveInt.optional(),
  num_query_risk_level: positiveInt.optional(),
  num_query_category: positiveInt.optional(),
  response_risk_level_map: labelMap,
  response_category_map: labelMap,
  query_risk_level_map: labelMap,
  query_category_map: labelMap,
  hidden_act: z.literal('silu').optional(),
  attention_bias: z.literal(false).optional(),
  rope_scaling: z.null().optional(),
});

/** The backbone parts of a `config.json` the converter needs, with defaults resolved. */
export interface BackboneConfig {
  hiddenSize: number;
  layers: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  intermediateSize: number;
  vocabSize: number;
  epsilon: number;
  ropeTheta: number;
  contextLength: number;
  /** The output matrix is the embedding matrix (0.6B, 4B); false: a separate `lm_head.weight` (8B). */
  tiedEmbeddings: boolean;
}

/** The parts of a Qwen3Guard-Stream `config.json` the converter needs, with defaults resolved. */
export interface GuardConfig extends BackboneConfig {
  innerSize: number;
  response: { riskLabels: string[]; categoryLabels: string[] };
  query: { riskLabels: string[]; categoryLabels: string[] };
}

function labels(map: Record<string, string> | undefined, count: number | undefined, fallback: readonly string[], file: string, key: string): string[] {
  if (map) {
    const size = Object.keys(map).length;
    const list = Array.from({ length: size }, (_, i) => map[String(i)]);
    if (list.some((label) => label === undefined)) {
      throw new ConvertError(file, `"${key}" must have keys "0".."${size - 1}"`);
    }
    if (count !== undefined && count !== size) {
      throw new ConvertError(file, `"${key}" has ${size} labels but the config says ${count}`);
    }
    return list;
  }
  const n = count ?? fallback.length;
  if (n > fallback.length) throw new ConvertError(file, `"${key}" is missing and ${n} labels have no default names`);
  return fallback.slice(0, n);
}

/** A checkpoint's config: Stream (the guard heads) or Gen (a plain causal LM with the moderation template). */
export type CheckpointConfig = ({ variant: 'stream' } & GuardConfig) | ({ variant: 'gen' } & BackboneConfig);

export async function readCheckpointConfig(dir: string): Promise<CheckpointConfig> {
  const file = `${dir}/config.json`;
  if (!existsSync(file)) throw new ConvertError(dir, 'has no config.json: expected a Hugging Face Qwen3Guard-Stream checkpoint folder');
  let json: unknown;
  try {
    json = JSON.parse(await readFile(file, 'utf8'));
  } catch (error) {
    throw new ConvertError(file, `is not valid JSON (${(error as Error).message})`);
  }
  const architectures = (json as { architectures?: unknown }).architectures;
  const gen = Array.isArray(architectures) && architectures.includes(GEN_ARCHITECTURE) && (await hasGenTemplate(dir));
  if (!gen && (!Array.isArray(architectures) || !architectures.includes(GUARD_ARCHITECTURE))) {
    throw new ConvertError(
      file,
      `is not a Qwen3Guard-Stream config: "architectures" is ${JSON.stringify(architectures ?? null)}, expected ["${GUARD_ARCHITECTURE}"]` +
        ` (or ["${GEN_ARCHITECTURE}"] for Qwen3Guard-Gen, whose tokenizer_config.json holds the moderation template; this one does not)`,
    );
  }
  const parsed = (gen ? configSchema.extend({ guard_inner_size: positiveInt.optional() }) : configSchema).safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new ConvertError(file, `field "${issue.path.join('.')}": ${issue.message}`);
  }
  const c = parsed.data;
  const headDim = c.head_dim ?? c.hidden_size / c.num_attention_heads;
  if (!Number.isInteger(headDim)) throw new ConvertError(file, 'has no "head_dim" and hidden_size is not divisible by num_attention_heads');
  if (c.num_attention_heads % c.num_key_value_heads !== 0) {
    throw new ConvertError(file, 'num_attention_heads must be a multiple of num_key_value_heads');
  }
  const backbone: BackboneConfig = {
    hiddenSize: c.hidden_size,
    layers: c.num_hidden_layers,
    heads: c.num_attention_heads,
    kvHeads: c.num_key_value_heads,
    headDim,
    intermediateSize: c.intermediate_size,
    vocabSize: c.vocab_size,
    epsilon: c.rms_norm_eps,
    ropeTheta: c.rope_theta,
    contextLength: c.max_position_embeddings,
    tiedEmbeddings: c.tie_word_embeddings ?? true,
  };
  if (gen) return { variant: 'gen', ...backbone };
  const config: GuardConfig = {
    ...backbone,
    // Stream has no lm_head (8B's config says untied): its output rows are token_embd's, guard rows included.
    tiedEmbeddings: true,
    innerSize: c.guard_inner_size!,
    response: {
      riskLabels: labels(c.response_risk_level_map, c.num_risk_level, DEFAULT_RISK_LABELS, file, 'response_risk_level_map'),
      categoryLabels: labels(c.response_category_map, c.num_category, DEFAULT_RESPONSE_CATEGORIES, file, 'response_category_map'),
    },
    query: {
      riskLabels: labels(c.query_risk_level_map, c.num_query_risk_level, DEFAULT_RISK_LABELS, file, 'query_risk_level_map'),
      categoryLabels: labels(c.query_category_map, c.num_query_category, DEFAULT_QUERY_CATEGORIES, file, 'query_category_map'),
    },
  };
  for (const [path, head] of [['response', config.response], ['query', config.query]] as const) {
    // The decision rule and policies speak of these three levels; any other naming would be misread.
    const sorted = [...head.riskLabels].sort().join(',');
    if (sorted !== 'Controversial,Safe,Unsafe') {
      throw new ConvertError(file, `"${path}_risk_level_map" must name exactly Safe, Unsafe and Controversial, got ${JSON.stringify(head.riskLabels)}`);
    }
  }
  return { variant: 'stream', ...config };
}

async function hasGenTemplate(dir: string): Promise<boolean> {
  try {
    return isGenTemplate((JSON.parse(await readFile(`${dir}/tokenizer_config.json`, 'utf8')) as { chat_template?: unknown }).chat_template);
  } catch {
    return false;
  }
}
