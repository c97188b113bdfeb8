import type { GuardMessage, PromptVerdict, ResponsePart, TokenVerdict } from './types.js';

/**
 * The Stream guard as the middleware uses it, whatever runs it: the in-process engine (`Qwen3Guard.load`), a
 * `qwen3guard serve` over HTTP (`Qwen3Guard.remote`), or a serving engine. `Symbol.for`, so that guards made by
 * another copy of this package are recognized too.
 */
export const STREAM_GUARD = Symbol.for('ai-sdk-qwen3guard.stream-guard');

/** One head's labels, in the checkpoint's own names. */
export interface HeadLabels {
  risk: string[];
  categories: string[];
}

/** What a guard is, known once it can be used. */
export interface GuardInfo {
  /** The model, as telemetry and logs name it (`Qwen3Guard-Stream-0.6B`). */
  model: string;
  /** The query head's labels (the prompt verdict) and the response head's. */
  prompt: HeadLabels;
  response: HeadLabels;
  /** Sessions evaluate streamed text ahead of its being final (`speculate`); without it the middleware does not ask. */
  speculate: boolean;
}

/** Token work, for a guard in all and for one session. */
export interface TokenCounts {
  /** Tokens evaluated by the backbone (scaffold and background re-renders of finished turns included). */
  evaluatedTokens: number;
  /** Conversation tokens found in a kept KV cache instead of evaluated again. */
  reusedTokens: number;
  /** Response tokens evaluated ahead of their text being complete (`speculate`). */
  speculatedTokens: number;
  /** Speculated tokens that came out otherwise once the text was complete, and were erased. */
  discardedTokens: number;
  /** Response tokens scored. */
  scoredTokens: number;
}

export const zeroCounts = (): TokenCounts => ({ evaluatedTokens: 0, reusedTokens: 0, speculatedTokens: 0, discardedTokens: 0, scoredTokens: 0 });

export interface SessionOptions {
  signal?: AbortSignal;
  /** The app's own id of the conversation: a remote guard routes its turns to one server by it. */
  conversationId?: string;
}

/**
 * One conversation: the prompt check, then the response as it streams. Calls are serialized in the order made.
 * See the local engine's `GuardSession` for each call's exact meaning.
 */
export interface StreamGuardSession {
  /** Reads the conversation; the verdict is the query head's at the last user turn's `<|im_end|>`. */
  checkPrompt(messages: readonly GuardMessage[], options?: { knownVerdict?: PromptVerdict }): Promise<PromptVerdict>;
  /** Appends final response text to a part and returns the new tokens' verdicts; `ahead` is evaluated ahead. */
  appendText(part: ResponsePart, text: string, options?: { final?: boolean; ahead?: string }): Promise<TokenVerdict[]>;
  /** Evaluates text ahead, without verdicts, for a later `appendText` that starts with it. */
  speculate(part: ResponsePart, text: string): Promise<void>;
  /** Scores the closing `<|im_end|>\n`: the end of the response. */
  end(): Promise<TokenVerdict[]>;
  /** Takes the response back to just after the scored token `last` (null: to its start), for a continuation. */
  rollbackTo(last: TokenVerdict | null): Promise<void>;
  /** Tokens the guard's tokenizer makes of `text` (plain text, markers included as text). */
  countTokens(text: string): Promise<number>;
  /** Frees the session (its conversation stays cached for its next turn). Safe to call more than once. */
  dispose(): Promise<void>;
  /** This session's token work so far. */
  readonly counts: TokenCounts;
}

export interface StreamGuard {
  readonly [STREAM_GUARD]: true;
  readonly variant: 'stream';
  /** local: in this process; remote: a `qwen3guard serve`; sglang: a stock SGLang server with the heads applied here. */
  readonly kind: 'local' | 'remote' | 'sglang';
  /** What the guard is, once known: at once for a local guard; a remote one knows it once `ready` resolved. */
  readonly info: GuardInfo | null;
  /** Resolves with `info` once the guard can be used: a remote guard asks its server (and again after a failure). */
  ready(options?: { signal?: AbortSignal }): Promise<GuardInfo>;
  /** Starts a session for one conversation. */
  createSession(options?: SessionOptions): Promise<StreamGuardSession>;
  /** Token work of every session so far. */
  readonly stats: TokenCounts;
  dispose(): Promise<void>;
}

export const isStreamGuard = (value: unknown): value is StreamGuard =>
  typeof value === 'object' && value !== null && (value as Partial<StreamGuard>)[STREAM_GUARD] === true;
