import { GUARD_FORMAT_VERSION, HEAD_PATHS, type GuardLayout, type HeadLayout, type HeadPath } from '../format/guard-metadata.js';
import { isRiskLevel } from '../format/labels.js';
import { GuardModelError } from '../guard/errors.js';
import { detectVariant, wrongVariantMessage } from '../format/variant.js';

type Tree = Record<string, unknown>;

/** Reads the guard's head layout from a GGUF's parsed metadata (node-llama-cpp nests keys by dots). */
export function readGuardLayout(metadata: unknown, modelPath: string): GuardLayout {
  const root = (metadata as Tree)?.qwen3guard as Tree | undefined;
  const notGuard = () =>
    detectVariant(metadata) === 'gen'
      ? new GuardModelError(wrongVariantMessage(modelPath, 'gen', 'stream'))
      : new GuardModelError(
          `${modelPath} is not a Qwen3Guard-Stream GGUF made by \`qwen3guard convert\` (no qwen3guard.* metadata). ` +
            'Convert the Hugging Face checkpoint with: qwen3guard convert <checkpoint-dir> -o model.gguf',
        );
  if (!root) throw notGuard();
  const version = root.format_version;
  if (version !== GUARD_FORMAT_VERSION) {
    throw new GuardModelError(
      `${modelPath} has guard format version ${String(version)}, this library reads version ${GUARD_FORMAT_VERSION}: convert the checkpoint again with this version`,
    );
  }
  const num = (tree: Tree, key: string, where: string): number => {
    const value = tree[key];
    if (typeof value !== 'number') throw new GuardModelError(`${modelPath}: metadata qwen3guard.${where}${key} is missing`);
    return value;
  };
  const list = <T>(tree: Tree, key: string, where: string): T[] => {
    const value = tree[key];
    if (!Array.isArray(value)) throw new GuardModelError(`${modelPath}: metadata qwen3guard.${where}${key} is missing`);
    return value as T[];
  };
  const innerSize = num(root, 'guard_inner_size', '');
  const head = (path: HeadPath): HeadLayout => {
    const tree = root[path] as Tree | undefined;
    if (!tree) throw notGuard();
    const where = `${path}.`;
    const riskLabels = list<string>(tree, 'risk_labels', where);
    const categoryLabels = list<string>(tree, 'category_labels', where);
    if (!riskLabels.every(isRiskLevel)) throw new GuardModelError(`${modelPath}: unexpected risk labels ${JSON.stringify(riskLabels)}`);
    const block = (kind: 'risk' | 'category', count: number) => {
      const scaleLog2 = Int32Array.from(list<number>(tree, `${kind}_scale_log2`, where));
      if (scaleLog2.length !== count) throw new GuardModelError(`${modelPath}: qwen3guard.${where}${kind}_scale_log2 has ${scaleLog2.length} entries, expected ${count}`);
      return { start: num(tree, `${kind}_row`, where), scaleLog2 };
    };
    return {
      riskLabels,
      categoryLabels,
      preRow: num(tree, 'pre_row', where),
      risk: block('risk', riskLabels.length),
      category: block('category', categoryLabels.length),
      normWeight: Float64Array.from(list<number>(tree, 'norm_weight', where)),
      riskHead: Float64Array.from(list<number>(tree, 'risk_head', where)),
      categoryHead: Float64Array.from(list<number>(tree, 'category_head', where)),
    };
  };
  const [response, query] = HEAD_PATHS.map(head);
  return {
    formatVersion: version,
    vocabSize: num(root, 'vocab_size', ''),
    innerSize,
    epsilon: num(root, 'norm_epsilon', ''),
    response,
    query,
  };
}
