import type { PromptVerdict, RiskLevel } from '../guard/types.js';
import type { PromptCategory, ResponseCategory } from '../format/labels.js';
import { expected } from '../shared/validation.js';
import { z } from 'zod';

/**
 * What happens when the guard flags text.
 * - allow: nothing (the label is ignored);
 * - flag: pass the text through and report it;
 * - redact: replace the flagged span with a mask and go on (responses only; meant for PII);
 * - rewrite: drop the flagged text and everything after it, emit a replacement text, stop the upstream;
 * - abort: drop the flagged text and everything after it, stop the upstream, end the stream;
 * - continue: drop the flagged text (and the held-back lead-in), stop the upstream, and ask the model to continue
 *   after the released text with an intervention, in the same stream (responses only; CARE, see the README).
 */
export const ACTIONS = ['allow', 'flag', 'redact', 'rewrite', 'abort', 'continue'] as const;
export type Action = (typeof ACTIONS)[number];
export const STOP_ACTIONS: readonly Action[] = ['rewrite', 'abort'];
/** What a failure closed does to the text: the Unsafe action when it stops the text (rewrite, abort), else abort. */
export const failClosedAction = (unsafe: Action): Action => (STOP_ACTIONS.includes(unsafe) ? unsafe : 'abort');

const action = z.enum(ACTIONS);
const RESPONSE_ONLY: readonly Action[] = ['redact', 'continue'];
const promptAction = z.enum(ACTIONS).refine((a) => !RESPONSE_ONLY.includes(a), {
  error: (issue) => `"${String(issue.input)}" applies to responses only: use allow, flag, rewrite or abort for the prompt`,
});

/** What a flagged response span is, for replacement and mask functions. */
export interface FlaggedSpan {
  riskLevel: RiskLevel;
  category: string | null;
  part: 'reasoning' | 'answer';
  /** Index of the token at which the span was flagged (-1 when the guard failed). */
  tokenIndex: number;
  /** Where the span starts in its part's text: what precedes it was released. */
  charOffset: number;
  /** The span's text when it was flagged (later tokens of a redacted span are masked with it). */
  text: string;
}

/** Text produced from a verdict: a fixed string or a function of the verdict. */
const textOrFunction = <A>() =>
  z.union([z.string(), z.custom<(arg: A) => string>((v) => typeof v === 'function')], { error: expected('a string or a function returning a string') });

const riskActions = (a: typeof action | typeof promptAction) =>
  z.object({ Unsafe: a.optional(), Controversial: a.optional() }).strict();

const commonPolicy = {
  /** strict: Controversial gets the Unsafe action; loose: Controversial is allowed. Risk and category actions override. */
  mode: z.enum(['strict', 'loose']).optional(),
};

export const promptPolicySchema = z
  .object({
    ...commonPolicy,
    actions: riskActions(promptAction).optional(),
    /** Per-category actions, by the checkpoint's category names (e.g. "Jailbreak", "PII"). */
    categories: z.record(z.string(), promptAction).optional(),
    /** Wait for the prompt verdict before calling the model (saves upstream cost on blocked prompts, adds latency). */
    waitForVerdict: z.boolean().optional(),
    /** Refusal emitted when the prompt is rewritten. */
    refusal: textOrFunction<PromptVerdict | null>().optional(),
    /** Send the system message to the guard as context (default: no; it is the app's own text). */
    includeSystem: z.boolean().optional(),
  })
  .strict();

export const responsePolicySchema = z
  .object({
    ...commonPolicy,
    actions: riskActions(action).optional(),
    categories: z.record(z.string(), action).optional(),
    /** Consecutive tokens with the same non-Safe label that flag the response (the official rule uses 2). */
    debounce: z.number().int().min(1).max(16).optional(),
    /** hold: release a character only once it is confirmed (zero leak). optimistic: release at once, report leaks. */
    release: z.enum(['hold', 'optimistic']).optional(),
    /** Replacement emitted when the response is rewritten. */
    replacement: textOrFunction<FlaggedSpan>().optional(),
    /** Text that replaces a redacted span. */
    mask: textOrFunction<FlaggedSpan>().optional(),
    /** Moderate reasoning (in the thinking position). Default true. */
    reasoning: z.boolean().optional(),
    /** Moderate tool-call inputs (held until the whole call is confirmed). Default false. */
    toolInput: z.boolean().optional(),
    /** continue: the instruction the model gets to continue after the released text. Default: CARE's introspection. */
    intervention: textOrFunction<FlaggedSpan>().optional(),
    /** continue: new upstream calls per response before the fallback. Default 5 (as CARE). */
    attempts: z.number().int().min(1).max(10).optional(),
    /** Tokens kept back behind the guard's verdicts, so a rollback also drops the lead-in. Default: 6 with a continue action, else 0 (see the README). */
    holdBack: z.number().int().min(0).max(256).optional(),
    /** continue: what the attempts run out into, with the configured replacement (rewrite) or without (abort). */
    fallback: z.enum(['rewrite', 'abort']).optional(),
    /** continue: how the partial answer reaches the model: quoted in the instruction, or as a trailing assistant message. */
    continuation: z.enum(['quote', 'assistant-prefix']).optional(),
  })
  .strict();

/**
 * A text option per request: a string only. `providerOptions` is JSON data (it may come from a client or a
 * config file), so a function there is refused with where it belongs instead.
 */
const requestText = (policy: 'prompt' | 'response', name: string) =>
  z.string({
    error: (issue) =>
      typeof issue.input === 'function'
        ? `a function cannot be passed per request (providerOptions is JSON data): give ${policy}.${name} a function at construction, qwen3GuardMiddleware({ ${policy}: { ${name} } }), or a string here`
        : expected('a string')(issue),
  });

/** Options a single request may override through `providerOptions.qwen3guard`: JSON only. */
export const requestOverrideSchema = z
  .object({
    /** false skips moderation for this request. */
    enabled: z.boolean().optional(),
    prompt: promptPolicySchema.extend({ refusal: requestText('prompt', 'refusal').optional() }).optional(),
    response: responsePolicySchema
      .extend({
        replacement: requestText('response', 'replacement').optional(),
        mask: requestText('response', 'mask').optional(),
        intervention: requestText('response', 'intervention').optional(),
      })
      .optional(),
    fail: z.enum(['closed', 'open']).optional(),
    /**
     * The app's own id of the conversation (a chat id): a remote guard keeps the turns of one conversation on
     * one server by it, and telemetry reports it as `gen_ai.conversation.id`. Never derived from the text.
     */
    conversationId: z.string().min(1).max(256).optional(),
  })
  .strict();

/**
 * Actions by category name. The checkpoint's names autocomplete; any string type-checks (a checkpoint may
 * rename them) and is checked against the guard's labels once the guard is known.
 */
export type CategoryActions<C extends string> = Partial<Record<C | (string & {}), Action>>;

type WithCategories<T, C extends string> = Omit<T, 'categories'> & { categories?: CategoryActions<C> };

export type PromptPolicyInput = WithCategories<z.input<typeof promptPolicySchema>, PromptCategory>;
export type ResponsePolicyInput = WithCategories<z.input<typeof responsePolicySchema>, ResponseCategory>;
type RequestInput = z.input<typeof requestOverrideSchema>;

/**
 * `providerOptions.qwen3guard` of one request: JSON data only (texts are strings; functions go at
 * construction). Assignable to the AI SDK's provider options without a cast.
 */
export type Qwen3GuardRequestOptions = Omit<RequestInput, 'prompt' | 'response'> & {
  prompt?: WithCategories<NonNullable<RequestInput['prompt']>, PromptCategory>;
  response?: WithCategories<NonNullable<RequestInput['response']>, ResponseCategory>;
};
/** @deprecated the same as `Qwen3GuardRequestOptions` (per request, texts are strings). */
export type RequestOverride = Qwen3GuardRequestOptions;
