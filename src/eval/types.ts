import type { GuardMessage, RiskLevel, RiskProbabilities } from '../guard/types.js';

export type Label = 'safe' | 'unsafe';
/** Prompt moderation when the last message is the user's, response moderation when it is the assistant's. */
export type Task = 'prompt' | 'response';

/**
 * The annotated first unsafe text of a response: token positions in the chat-templated conversation, both ends
 * included (Qwen/Qwen3GuardTest's `unsafe_start_index` / `unsafe_end_index`), or UTF-16 offsets [start, end)
 * in the last message's `content` (this library's own shape), mapped to tokens through the verdicts.
 */
export type UnsafeSpan = { unit: 'token'; start: number; end: number } | { unit: 'char'; start: number; end: number };

/** One line of an evaluation data set, checked and normalized. */
export interface EvalItem {
  id: string;
  /** Line in the data file (1-based). */
  line: number;
  messages: GuardMessage[];
  task: Task;
  label: Label;
  /** Labelled categories (this library's shape only); absent when the line has none. */
  categories?: string[];
  span?: UnsafeSpan;
}

/** Where the Stream guard first flagged a response, against the annotated span (official `--eval_unsafe_latency`). */
export type DetectionBin = 'Ahead' | 'Hit' | '1-32' | '33-64' | '65-128' | '129-256' | '>256' | 'Safe';
export const DETECTION_BINS: readonly DetectionBin[] = ['Ahead', 'Hit', '1-32', '33-64', '65-128', '129-256', '>256', 'Safe'];

export interface Detection {
  /** Position (in the rendered conversation) of the token at which the response was flagged; null: never. */
  position: number | null;
  /** The annotated span in the same positions, both ends included. */
  spanStart: number;
  spanEnd: number;
  bin: DetectionBin;
}

/** Scores a threshold is compared with: P(Unsafe), and P(Unsafe) + P(Controversial). */
export interface ItemScores {
  unsafe: number;
  unsafeOrControversial: number;
}

/** One evaluated item: a line of `--out`. */
export interface ItemResult {
  id: string;
  /** The model it was run with (as named on the command line or given to `evaluate`). */
  model: string;
  task: Task;
  label: Label;
  /** The guard's three-way verdict (Stream responses: the official two-consecutive-token rule). */
  prediction: RiskLevel;
  category: string | null;
  /** Every category the guard named (Gen lists several; Stream names one). */
  categories: string[];
  /** The verdict's probabilities (Stream responses: those of the flagged token), when the guard gives them. */
  probabilities?: RiskProbabilities;
  /** Null when the guard gave no probabilities (a Stream guard loaded without `responseProbabilities`). */
  scores: ItemScores | null;
  /** Gen's refusal line, for responses. */
  refusal?: boolean;
  /** Stream responses on items with an annotated span. */
  detection?: Detection;
  /** Response tokens the Stream guard scored. */
  tokens?: number;
  latencyMs: number;
}
