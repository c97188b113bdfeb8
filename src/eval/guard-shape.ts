import type { GuardMessage, PromptVerdict, ResponsePart, TokenVerdict } from '../guard/types.js';
import type { GenResponseVerdict, GenVerdict } from '../gen/types.js';

/**
 * The Stream guard as the evaluation sees it: only these calls, so that a remote guard (a client of a guard
 * service) can be evaluated exactly like the local `Qwen3Guard`, which satisfies this shape as it is.
 */
export interface EvalStreamGuard {
  createSession(options?: { signal?: AbortSignal }): Promise<EvalStreamSession>;
}

export interface EvalStreamSession {
  checkPrompt(messages: readonly GuardMessage[]): Promise<Pick<PromptVerdict, 'riskLevel' | 'category' | 'probabilities'>>;
  /** Verdicts carry `position` (index in the whole rendered conversation) and, for text input, `start`/`end`. */
  appendText(part: ResponsePart, text: string, options?: { final?: boolean }): Promise<TokenVerdict[]>;
  end(): Promise<TokenVerdict[]>;
  dispose(): Promise<void>;
}

/** Qwen3Guard-Gen as the evaluation and the reward see it (`Qwen3GuardGen`, local or remote). */
export interface EvalGenGuard {
  checkPrompt(messages: readonly GuardMessage[], options?: { mode?: 'raw'; signal?: AbortSignal }): Promise<GenVerdict>;
  checkResponse(messages: readonly GuardMessage[], options?: { mode?: 'raw'; signal?: AbortSignal }): Promise<GenResponseVerdict>;
}

export type EvalGuard = EvalStreamGuard | EvalGenGuard;
export type GuardKind = 'stream' | 'gen';

/** Which of the two shapes a guard has; null when it has neither. */
export function guardKind(guard: unknown): GuardKind | null {
  if (typeof guard !== 'object' || guard === null) return null;
  const g = guard as Record<string, unknown>;
  if (typeof g.createSession === 'function') return 'stream';
  if (typeof g.checkPrompt === 'function' && typeof g.checkResponse === 'function') return 'gen';
  return null;
}
