import { HEAD_TENSOR_NAMES } from './guard-rows.js';
import { GuardKeys } from '../format/guard-metadata.js';

/**
 * The export folder for SGLang (`qwen3guard convert --for sglang`), shared by the writer (convert/sglang-export.ts)
 * and the reader (sglang/heads.ts).
 *
 * The guard's own files sit in a subfolder: with no `model.safetensors.index.json`, SGLang's loader reads every
 * `*.safetensors` of the model folder, and the head tensors must not reach Qwen3ForCausalLM.load_weights.
 */
export const GUARD_SUBDIR = 'qwen3guard';
export const HEADS_FILE = `${GUARD_SUBDIR}/heads.safetensors`;
/** A vocabulary-only GGUF: node-llama-cpp's tokenizer without the weights, for the `input_ids` SGLang gets. */
export const TOKENIZER_FILE = `${GUARD_SUBDIR}/tokenizer.gguf`;

export const HEADS_FORMAT = 'qwen3guard-sglang-heads';
export const HEADS_FORMAT_VERSION = 1;

/**
 * `__metadata__` keys of the heads file (safetensors metadata values are strings; lists are JSON): the GGUF's
 * names where the GGUF has the same fact.
 */
export const HeadsKeys = {
  format: 'qwen3guard.format',
  formatVersion: GuardKeys.formatVersion,
  hiddenSize: 'qwen3guard.hidden_size',
  innerSize: GuardKeys.innerSize,
  /** rms_norm_eps of config.json: the heads' RMSNorm and the backbone's final norm use it. */
  epsilon: GuardKeys.epsilon,
  riskLabels: GuardKeys.riskLabels,
  categoryLabels: GuardKeys.categoryLabels,
} as const;

/**
 * The backbone's final RMSNorm weight. SGLang returns the state after it (see docs/sglang.md); the reader uses
 * the weight to check that a state it is given really is post-norm: `h / g` then has an RMS of 1.
 */
export const FINAL_NORM_TENSOR = 'model.norm.weight';

/** Every tensor of the heads file, in file order: the four of each path (Hugging Face names), then the final norm. */
export const HEADS_FILE_TENSORS: readonly string[] = [...Object.values(HEAD_TENSOR_NAMES.response), ...Object.values(HEAD_TENSOR_NAMES.query), FINAL_NORM_TENSOR];
