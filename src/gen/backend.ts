import type { Piece } from '../format/template.js';

/**
 * Where Qwen3Guard-Gen runs. The classifier (template, verdict, grammar, parsing, mapping) is the same for every
 * backend; a backend only scores next tokens and continues text. The local one runs node-llama-cpp; a serving
 * engine (an OpenAI-compatible completions endpoint) can implement the same two calls.
 */
export interface GenBackend {
  /** 'local' or the kind of remote backend. */
  readonly kind: string;
  /** The model as telemetry names it (`Qwen3Guard-Gen-0.6B`), where the backend knows it. */
  readonly modelName?: string;
  /** Token counts, where the backend keeps them (the local one does). */
  readonly stats?: GenStats;
  /** Reserves one slot (locally: a context sequence) for the calls of one check; waits while all are in use. */
  open(signal?: AbortSignal): Promise<GenSlot>;
  dispose(): Promise<void>;
}

/** The calls of one check. `pieces` are the rendered template followed by the model's output so far. */
export interface GenSlot {
  /**
   * Scores of the first token of each of `options` as the next token after `pieces`: logits or
   * log-probabilities (only their differences are used: a softmax over them gives the probabilities).
   */
  nextScores(pieces: readonly Piece[], options: readonly string[]): Promise<number[]>;
  /**
   * The greedy continuation of `pieces` under a GBNF grammar, at most `maxTokens` tokens. It ends where the
   * grammar can end and the model ends its answer, or once the text ends with `stopAfter` (which it includes).
   */
  generate(pieces: readonly Piece[], request: { grammar: string; maxTokens: number; stopAfter?: string }): Promise<string>;
  /** Frees the slot for the next check. */
  release(): void;
}

export interface GenStats {
  /** Tokens evaluated (prefill, the model's own output fed back, generated tokens). */
  evaluatedTokens: number;
  /** Tokens found in a sequence's KV cache instead of evaluated again (the shared instructions, mostly). */
  reusedTokens: number;
  /** Tokens generated under a grammar (category lists). */
  generatedTokens: number;
}
