import { OUTPUT_TYPES, type OutputType } from '../convert/ggml-types.js';

/** Sizes of the published Qwen3Guard-Stream checkpoints, as `qwen3guard pull` spells them. */
export const MODEL_SIZES = ['0.6B', '4B', '8B'] as const;
export type ModelSize = (typeof MODEL_SIZES)[number];

export const DEFAULT_TYPE: OutputType = 'q8_0';

/** The published variants: Stream (token-level heads) and Gen (a generative classifier). */
export type ModelVariant = 'stream' | 'gen';

/** The hub repository of a published checkpoint. */
export const publishedRepo = (variant: ModelVariant, size: ModelSize) => `Qwen/Qwen3Guard-${variant === 'gen' ? 'Gen' : 'Stream'}-${size}`;

/** What to pull: a hub repository, and the official size and variant when it is one of the published checkpoints. */
export interface ModelSource {
  repo: string;
  size: ModelSize | null;
  variant?: ModelVariant;
}

const REPO = /^[A-Za-z0-9][A-Za-z0-9._-]*\/[A-Za-z0-9][A-Za-z0-9._-]*$/;

/** `0.6B` (Stream), `gen-0.6B` (Gen; any case) or `owner/repo`; null when it is none of them. */
export function parseModelSource(spec: string): ModelSource | null {
  const lower = spec.toLowerCase();
  const variant: ModelVariant = lower.startsWith('gen-') ? 'gen' : 'stream';
  const size = MODEL_SIZES.find((s) => s.toLowerCase() === (variant === 'gen' ? lower.slice(4) : lower));
  if (size) return { repo: publishedRepo(variant, size), size, variant };
  return REPO.test(spec) && !spec.includes('..') ? { repo: spec, size: null } : null;
}

/** The cache name of a repository's checkpoint: its name lowercased (`qwen3guard-stream-0.6b`). */
export function baseName(repo: string): string {
  return repo.slice(repo.indexOf('/') + 1).toLowerCase();
}

/** The GGUF file name in the cache: `qwen3guard-stream-0.6b-q8_0.gguf`. */
export function ggufName(repo: string, type: OutputType): string {
  return `${baseName(repo)}-${type}.gguf`;
}

export interface ModelName {
  /** `qwen3guard-stream-0.6b` */
  base: string;
  type: OutputType;
  /** The published size the name stands for, when it is one. */
  size: ModelSize | null;
  /** The published checkpoint's variant, with `size`. */
  variant: ModelVariant | null;
}

const NAME = /^[a-z0-9][a-z0-9._-]*$/;

/**
 * `qwen3guard-stream-0.6b`, `qwen3guard-gen-0.6b-f16`: the type suffix is optional (q8_0); `gen-0.6b` is short
 * for `qwen3guard-gen-0.6b`. Null when malformed.
 */
export function parseModelName(name: string): ModelName | null {
  const lower = name.toLowerCase();
  // A file name belongs in modelPath: 'guard.gguf' is not the name of a cached 'guard.gguf-q8_0.gguf'.
  if (!NAME.test(lower) || lower.includes('..') || lower.endsWith('.gguf')) return null;
  const type = OUTPUT_TYPES.find((t) => lower.endsWith(`-${t}`));
  const stem = type ? lower.slice(0, -type.length - 1) : lower;
  if (!stem) return null;
  const base = /^gen-/.test(stem) && MODEL_SIZES.some((s) => `gen-${s.toLowerCase()}` === stem) ? `qwen3guard-${stem}` : stem;
  for (const variant of ['stream', 'gen'] as const) {
    const size = MODEL_SIZES.find((s) => `qwen3guard-${variant}-${s.toLowerCase()}` === base);
    if (size) return { base, type: type ?? DEFAULT_TYPE, size, variant };
  }
  return { base, type: type ?? DEFAULT_TYPE, size: null, variant: null };
}
