import type { RemoteFailureCode } from '../guard/errors.js';
import type { ResponsePart, RiskLevel, RiskProbabilities } from '../guard/types.js';
import type { Action } from '../policy/schema.js';

/**
 * What `providerMetadata.qwen3guard.error.code` says went wrong. Metadata reaches browsers: it names the kind of
 * failure, never the error's text (server paths, internals); `onError` gets the error itself.
 */
export type GuardErrorCode = 'guard-load-failed' | 'guard-busy' | 'guard-failed' | 'gen-failed' | 'policy-function-failed' | RemoteFailureCode;

// Type aliases, not interfaces: only these are assignable to the AI SDK's JSONObject (an index signature).

/** One flag raised on the response, in order. */
export type Qwen3GuardFlagMetadata = {
  /** Index among the scored response tokens of the token that completed the flagged run. */
  tokenIndex: number;
  /** Where the flagged run starts in its part's text (null for the closing tokens). */
  charOffset: number | null;
  part: ResponsePart;
  riskLevel: RiskLevel;
  category: string | null;
  action: Action;
  /** Flags come from the Stream guard, token by token. */
  decidedBy: 'stream';
};

/** Qwen3Guard-Gen's verdict on the complete response (`gen.response` 'report' or 'hold'). */
export type Qwen3GuardGenMetadata = {
  riskLevel: RiskLevel;
  category: string | null;
  /** Every category Gen listed. */
  categories: string[];
  /** Gen's `Refusal: Yes`: the answer refuses or does not comply. */
  refusal: boolean;
  /** The response policy's action for the verdict (taken in hold mode, reported only in report mode). */
  action: Action;
  decidedBy: 'gen';
  /** Time from the request to the verdict. */
  latencyMs: number;
};

/** What the `continue` action did to the response (present once it handled a flag). */
export type Qwen3GuardInterventionMetadata = {
  /** New upstream calls made (continuations). */
  attempts: number;
  /** Response tokens the rollbacks dropped, never shown: flagged spans, held-back lead-ins, what followed. */
  tokensDiscarded: number;
  /** Tokens the client waited for without seeing them: the discarded ones and repeats of the released text stripped from a quoted continuation. */
  extraTokens: number;
  /** Time the output stood still: from each flag to the continuation's first released character (or the end). */
  extraMs: number;
  /**
   * continued: the last continuation ended the response; fallback-*: the attempts ran out (replacement, or none);
   * aborted: something else stopped the response during an attempt (another action, a guard failure).
   */
  outcome: 'continued' | 'fallback-rewrite' | 'fallback-abort' | 'aborted';
};

/**
 * `providerMetadata.qwen3guard` of the finish part (stream) or of the result (generate): what the guard
 * decided and did, JSON only.
 */
export type Qwen3GuardMetadata = {
  /** The prompt verdict; null when there was none (the guard failed, or the request had no user message). */
  prompt: {
    riskLevel: RiskLevel;
    category: string | null;
    probabilities: RiskProbabilities;
    action: Action;
    /** The verdict came from the per-conversation cache. */
    cached: boolean;
    /** Which model gave the verdict: the Stream guard, or Gen (`gen.prompt`). */
    decidedBy: 'stream' | 'gen';
    latencyMs: number;
  } | null;
  /** The official decision over the scored response tokens; null when no response was moderated. */
  response: {
    riskLevel: RiskLevel;
    category: string | null;
    tokenIndex: number | null;
    charOffset: number | null;
    part: ResponsePart | null;
  } | null;
  /** The strongest action taken: on the prompt when it stopped the request, else on the response. */
  action: Action | 'none';
  flags: Qwen3GuardFlagMetadata[];
  tokens: { scored: number; heldMax: number };
  /** How far the guard trailed the upstream per token, in ms; null without scored tokens. */
  guardLagMs: { p50: number; p95: number; max: number } | null;
  release: 'hold' | 'optimistic';
  /** Characters of flagged spans already sent downstream (optimistic release). */
  leakedChars: number;
  /** Present once the `continue` action handled a flag. */
  intervention?: Qwen3GuardInterventionMetadata;
  /** Gen's verdict on the complete response: present with `gen.response` 'report' or 'hold' (null when it was not checked or Gen failed). */
  gen?: Qwen3GuardGenMetadata | null;
  /** Present only when something failed: the kind of failure, never its text. */
  error?: { code: GuardErrorCode };
};
