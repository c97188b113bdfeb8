import type { RiskLevel } from '../format/labels.js';

/** How Controversial is counted: as itself (the report's three-way output), as Unsafe (strict) or as Safe (loose). */
export type DecisionMode = 'raw' | 'strict' | 'loose';

export interface LabeledToken {
  riskLevel: RiskLevel;
  category: string | null;
}

export interface ResponseDecision {
  riskLevel: RiskLevel;
  /** Index of the token at which the response is flagged (the last of the run), or null when Safe. */
  tokenIndex: number | null;
  /** Category of that token, or null when Safe. */
  category: string | null;
}

export interface DecisionOptions {
  /** Consecutive tokens with the same non-Safe label needed to flag; the official rule uses 2. */
  debounce?: number;
  mode?: DecisionMode;
}

/** Index of the token completing the first run of `debounce` consecutive `level` labels, or -1. */
function firstRun(tokens: readonly LabeledToken[], level: RiskLevel, debounce: number): number {
  let run = 0;
  for (let i = 0; i < tokens.length; i++) {
    run = tokens[i].riskLevel === level ? run + 1 : 0;
    if (run >= debounce) return i;
  }
  return -1;
}

/**
 * The official response decision rule (Qwen3Guard technical report section 4.4, `consecutive_unsafe` in
 * eval/eval_stream.py): a response is flagged at token i when tokens i-1 and i carry the same non-Safe label;
 * an Unsafe run anywhere outranks a Controversial one; the flagged token's category is the response's.
 * Strict mode then reads Controversial as Unsafe, loose mode as Safe.
 */
export function decideResponse(tokens: readonly LabeledToken[], options: DecisionOptions = {}): ResponseDecision {
  const debounce = options.debounce ?? 2;
  if (!Number.isInteger(debounce) || debounce < 1) throw new RangeError(`debounce must be a whole number >= 1, got ${debounce}`);
  const mode = options.mode ?? 'raw';
  const unsafe = firstRun(tokens, 'Unsafe', debounce);
  if (unsafe >= 0) return { riskLevel: 'Unsafe', tokenIndex: unsafe, category: tokens[unsafe].category };
  const controversial = firstRun(tokens, 'Controversial', debounce);
  if (controversial < 0 || mode === 'loose') return { riskLevel: 'Safe', tokenIndex: null, category: null };
  return { riskLevel: mode === 'strict' ? 'Unsafe' : 'Controversial', tokenIndex: controversial, category: tokens[controversial].category };
}
