import { zeroCounts, type TokenCounts } from '../guard/stream-guard.js';

/** The local engine's counters: the token work every guard reports, and the engine's own. */
export interface GuardStats extends TokenCounts {
  /** Evaluation calls of sessions (each one decode per batch; a long text is split to bound output memory). */
  evaluations: number;
  /** Tokens whose label came from a top-k that missed a pair (the value then reads 0); expected 0. */
  inexactTokens: number;
  /** Times a session's oldest tokens were dropped to fit the context. */
  contextShifts: number;
  /** KV cells moved by those shifts (a RoPE re-rotation of cached keys, not a re-evaluation). */
  shiftedTokens: number;
}

export const zeroStats = (): GuardStats => ({ ...zeroCounts(), evaluations: 0, inexactTokens: 0, contextShifts: 0, shiftedTokens: 0 });

/** Adds `n` to a counter of the guard's stats and of the session's counts at once. */
export function count(key: keyof TokenCounts, n: number, ...targets: TokenCounts[]): void {
  for (const target of targets) target[key] += n;
}
