import { z } from 'zod';
import { Qwen3GuardGen } from '../gen/classifier.js';
import type { GenResponseVerdict } from '../gen/types.js';
import { guardOptionsSchema } from '../guard/options.js';
import { isStreamGuard, type StreamGuard } from '../guard/stream-guard.js';
import type { ResponseDecision } from '../policy/decision.js';
import type { PromptVerdict, ResponsePart, RiskLevel } from '../guard/types.js';
import { promptPolicySchema, responsePolicySchema, type Action, type PromptPolicyInput, type ResponsePolicyInput } from '../policy/schema.js';
import type { PolicyFunction, ResolvedResponsePolicy } from '../policy/resolve.js';
import { telemetryOptionsSchema } from '../telemetry/options.js';
import type { RequestTelemetry } from '../telemetry/guard-telemetry.js';
import type { Component } from '../telemetry/guardrail-check.js';

export interface PromptVerdictInfo {
  verdict: PromptVerdict;
  action: Action;
  /** Which model gave the verdict: the Stream guard, or Gen (`gen.prompt`). */
  decidedBy: 'stream' | 'gen';
  /** The verdict came from the per-conversation cache (a later step of a tool loop, a retry). */
  cached: boolean;
  /** Time from the request to the verdict. */
  latencyMs: number;
}

export interface ResponseFlagInfo {
  riskLevel: RiskLevel;
  category: string | null;
  action: Action;
  part: ResponsePart;
  /** Index among the scored response tokens, and character offset in the part's text. */
  tokenIndex: number;
  charOffset: number | null;
  /** Characters of the flagged span already sent downstream (0 in hold mode). */
  leakedChars: number;
  /** Time from the request to the flag. */
  latencyMs: number;
}

export interface ResponseVerdictInfo {
  /** The official decision over all scored tokens (Controversial reported as such). */
  decision: ResponseDecision;
  /** The strongest action taken on the response. */
  action: Action | 'none';
  scoredTokens: number;
  latencyMs: number;
}

/** One flag handled by the `continue` action: a rollback and a new upstream call, or the fallback. */
export interface InterventionInfo {
  /** Which attempt this flag started (1 for the first continuation); with the fallback, the attempts made + 1. */
  attempt: number;
  /** What happens now: a new upstream call, or the fallback (the attempts are spent). */
  next: 'continue' | 'rewrite' | 'abort';
  riskLevel: RiskLevel;
  category: string | null;
  part: ResponsePart;
  /** The released text of the flagged part that stays (characters as the client saw them). */
  keptChars: number;
  /** Response tokens the rollback dropped: the flagged span, the held-back lead-in, what followed (0 with the fallback). */
  tokensDiscarded: number;
  /** Time from the request to the flag. */
  latencyMs: number;
}

/** Gen's verdict on a complete response (`gen.response` 'report' or 'hold'). */
export interface GenVerdictInfo {
  verdict: GenResponseVerdict;
  /** The response policy's action for the verdict: taken in hold mode (and in generateText with 'hold'), only reported with 'report'. */
  action: Action;
  /** Time from the request to the verdict. */
  latencyMs: number;
}

/**
 * Where an `onError` error came from. load: the guard could not be loaded (each request that fails for it);
 * prompt, response: the guard failed on this request; policy: the app's `function` (refusal, replacement,
 * mask) threw or returned something other than a string, and the default text was used.
 */
export interface GuardErrorInfo {
  phase: 'load' | 'prompt' | 'response' | 'policy';
  /** With phase 'policy': which of the app's functions failed. */
  function?: PolicyFunction;
  fail: 'closed' | 'open';
}

/** A request's telemetry, and the guards its checks are made by (as far as known when a check starts). */
export interface RequestHooks {
  telemetry: RequestTelemetry;
  stream(): Component;
  gen(): Component;
}

/** What moderating one response needs beyond the guard session: the request's merged policy and callbacks. */
export interface ModerationContext {
  policy: ResolvedResponsePolicy;
  fail: 'closed' | 'open';
  /** When the request started (performance.now()), for latencies. */
  startedAt: number;
  onResponseFlag?: (info: ResponseFlagInfo) => void;
  onResponseVerdict?: (info: ResponseVerdictInfo) => void;
  onError?: (error: unknown, info: GuardErrorInfo) => void;
  onIntervention?: (info: InterventionInfo) => void;
  /** This request's guardrail spans and metrics (null when telemetry is off). */
  telemetry?: RequestHooks | null;
}

const callback = <T extends (...args: never[]) => unknown>(name: string) =>
  z.custom<T>((v) => typeof v === 'function', { message: `${name} must be a function` }).optional();

const genInstance = z.custom<Qwen3GuardGen | Promise<Qwen3GuardGen>>((v) => v instanceof Qwen3GuardGen || v instanceof Promise, {
  message: 'expected a Qwen3GuardGen (from Qwen3GuardGen.load or Qwen3GuardGen.remote) or a promise of one',
});

/** Qwen3Guard-Gen where it fits: whole-text checks, more accurate than Stream, not incremental. */
export const genMiddlewareSchema = z
  .object({
    classifier: genInstance,
    /** The prompt verdict comes from Gen instead of Stream (the Stream guard then moderates only the response). */
    prompt: z.boolean().default(false),
    /**
     * A Gen check of the complete response: 'report' puts its verdict in the finish metadata (the answer streams
     * as usual); 'hold' holds the whole answer until the verdict, then releases it or acts per the response policy.
     */
    response: z.enum(['off', 'report', 'hold']).default('off'),
  })
  .strict()
  .refine((g) => g.prompt || g.response !== 'off', { message: "gen checks nothing: set prompt: true, or response: 'report' or 'hold'" });

const guardInstance = z.custom<StreamGuard | Promise<StreamGuard>>((v) => isStreamGuard(v) || v instanceof Promise, {
  message: 'expected a Qwen3Guard (from Qwen3Guard.load or Qwen3Guard.remote) or a promise of one',
});

export const middlewareOptionsSchema = z
  .object({
    /** A guard (local or remote), shared by every wrapped model and request. */
    guard: guardInstance.optional(),
    /** Or a GGUF path, loaded once on first use. */
    modelPath: z.string().min(1).optional(),
    /** Or a model pulled by `qwen3guard pull` ('qwen3guard-stream-0.6b'), loaded from the cache on first use. */
    model: z.string().min(1).optional(),
    /** Load options when `modelPath` or `model` is given. */
    guardOptions: guardOptionsSchema.omit({ modelPath: true, model: true }).partial().optional(),
    prompt: promptPolicySchema.optional(),
    response: responsePolicySchema.optional(),
    /** closed: a guard failure stops the answer as an Unsafe one would; open: the answer goes on unmoderated. */
    fail: z.enum(['closed', 'open']).default('closed'),
    /** Prompt verdicts kept per conversation (tool-loop steps and retries do not re-check). */
    promptCacheSize: z.number().int().min(0).max(100_000).default(256),
    onPromptVerdict: callback<(info: PromptVerdictInfo) => void>('onPromptVerdict'),
    onResponseFlag: callback<(info: ResponseFlagInfo) => void>('onResponseFlag'),
    onResponseVerdict: callback<(info: ResponseVerdictInfo) => void>('onResponseVerdict'),
    onError: callback<(error: unknown, info: GuardErrorInfo) => void>('onError'),
    /** Each flag the `continue` action handles (a rollback and a new attempt, or the fallback). */
    onIntervention: callback<(info: InterventionInfo) => void>('onIntervention'),
    /** Qwen3Guard-Gen for the prompt and/or the complete response; alone (no Stream guard) or beside one. */
    gen: genMiddlewareSchema.optional(),
    /** Gen's verdict on each complete response. */
    onGenVerdict: callback<(info: GenVerdictInfo) => void>('onGenVerdict'),
    /** OpenTelemetry spans and metrics of every check, through the API (a no-op until the app registers an SDK). */
    telemetry: telemetryOptionsSchema.prefault({}),
  })
  .strict()
  .refine((o) => {
    const given = [o.guard, o.modelPath, o.model].filter((v) => v !== undefined).length;
    return given === 1 || (given === 0 && o.gen !== undefined);
  }, {
    message:
      "give either guard (a loaded Qwen3Guard) or modelPath (a GGUF loaded on first use) or model (a pulled model such as 'qwen3guard-stream-0.6b'), exactly one (or none, with gen alone)",
    path: ['guard'],
  })
  .refine((o) => o.guardOptions === undefined || o.guard === undefined, {
    message: 'guardOptions apply only with modelPath or model (a guard passed in is already loaded)',
    path: ['guardOptions'],
  });

export type Qwen3GuardMiddlewareOptions = Omit<z.input<typeof middlewareOptionsSchema>, 'prompt' | 'response'> & {
  prompt?: PromptPolicyInput;
  response?: ResponsePolicyInput;
};
export type ResolvedMiddlewareOptions = z.output<typeof middlewareOptionsSchema>;
