/** Which Qwen3Guard a GGUF holds. */
export type GuardVariant = 'stream' | 'gen' | 'unknown';

type Tree = Record<string, unknown>;

/** Words of Gen's moderation template that no ordinary chat template has. */
const GEN_TEMPLATE_MARKS = ["THE LAST USER's query", '<BEGIN UNSAFE CONTENT CATEGORIES>'];

/** Whether a chat template is Gen's moderation template. */
export const isGenTemplate = (template: unknown): boolean => typeof template === 'string' && GEN_TEMPLATE_MARKS.every((m) => template.includes(m));

/**
 * The variant of a GGUF from its parsed metadata (node-llama-cpp nests keys by dots): Stream files made by
 * `qwen3guard convert` carry `qwen3guard.*` keys; Gen is a plain `qwen3` whose chat template holds the
 * moderation task (ours and community conversions keep it) or whose `general.name` says Guard-Gen.
 */
export function detectVariant(metadata: unknown): GuardVariant {
  const root = (metadata ?? {}) as Tree;
  if (root.qwen3guard !== undefined) return 'stream';
  const general = (root.general ?? {}) as Tree;
  if (general.architecture !== 'qwen3') return 'unknown';
  if (isGenTemplate(((root.tokenizer ?? {}) as Tree).chat_template)) return 'gen';
  if (typeof general.name === 'string' && /guard[-_ ]?gen/i.test(general.name)) return 'gen';
  return 'unknown';
}

/** The message for a file of the other variant, naming the loader to use. */
export function wrongVariantMessage(path: string, found: GuardVariant, wanted: 'stream' | 'gen'): string {
  if (found === 'gen') return `${path} is a Qwen3Guard-Gen model: use Qwen3GuardGen.load (Qwen3Guard.load reads Qwen3Guard-Stream GGUFs)`;
  if (found === 'stream') return `${path} is a Qwen3Guard-Stream model: use Qwen3Guard.load (Qwen3GuardGen.load reads Qwen3Guard-Gen GGUFs)`;
  return wanted === 'gen'
    ? `${path} is not a Qwen3Guard-Gen GGUF (a qwen3 model whose chat template is Gen's moderation template): convert the checkpoint with \`qwen3guard convert\` or use a community Qwen3Guard-Gen GGUF`
    : `${path} is not a Qwen3Guard model`;
}
