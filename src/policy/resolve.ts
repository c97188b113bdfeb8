import type { PromptVerdict, RiskLevel } from '../engine/types.js';
import type { Action, FlaggedSpan, PromptPolicyInput, ResponsePolicyInput } from './schema.js';

export type { FlaggedSpan };


interface RiskPolicy {
  mode: 'strict' | 'loose';
  actions: { Unsafe: Action; Controversial?: Action };
  categories: Record<string, Action>;
}

export interface ResolvedPromptPolicy extends RiskPolicy {
  waitForVerdict: boolean;
  /** The verdict is null when the guard failed and the request fails closed. */
  refusal: (verdict: PromptVerdict | null) => string;
  includeSystem: boolean;
}

export interface ResolvedResponsePolicy extends RiskPolicy {
  debounce: number;
  release: 'hold' | 'optimistic';
  replacement: (span: FlaggedSpan) => string;
  mask: (span: FlaggedSpan) => string;
  reasoning: boolean;
  toolInput: boolean;
}

export const DEFAULT_REFUSAL = "I can't help with that request.";
export const DEFAULT_REPLACEMENT = "I can't continue with this response.";
export const DEFAULT_MASK = '[redacted]';

/** The default replacement, set apart from answer text already shown. */
const defaultReplacement = (span: FlaggedSpan) => (span.part === 'answer' && span.charOffset > 0 ? '\n\n' : '') + DEFAULT_REPLACEMENT;
/** The default mask keeps the span's leading space, so words stay apart. */
const defaultMask = (span: FlaggedSpan) => (/^\s*/.exec(span.text)?.[0] ?? '') + DEFAULT_MASK;

const asFunction = <T>(value: string | ((arg: T) => string) | undefined, fallback: string | ((arg: T) => string)) =>
  typeof value === 'function' ? (value as (arg: T) => string) : value !== undefined ? () => value : typeof fallback === 'function' ? fallback : () => fallback;

function riskPolicy(base: PromptPolicyInput | ResponsePolicyInput = {}, override: PromptPolicyInput | ResponsePolicyInput = {}): RiskPolicy {
  return {
    mode: override.mode ?? base.mode ?? 'strict',
    actions: { Unsafe: 'rewrite', ...base.actions, ...override.actions } as RiskPolicy['actions'],
    categories: { ...base.categories, ...override.categories },
  };
}

export function resolvePromptPolicy(base?: PromptPolicyInput, override?: PromptPolicyInput): ResolvedPromptPolicy {
  const merged = { ...base, ...override };
  return {
    ...riskPolicy(base, override),
    waitForVerdict: merged.waitForVerdict ?? false,
    refusal: asFunction<PromptVerdict | null>(merged.refusal as never, DEFAULT_REFUSAL),
    includeSystem: merged.includeSystem ?? false,
  };
}

export function resolveResponsePolicy(base?: ResponsePolicyInput, override?: ResponsePolicyInput): ResolvedResponsePolicy {
  const merged = { ...base, ...override };
  return {
    ...riskPolicy(base, override),
    debounce: merged.debounce ?? 2,
    release: merged.release ?? 'hold',
    replacement: asFunction<FlaggedSpan>(merged.replacement as never, defaultReplacement),
    mask: asFunction<FlaggedSpan>(merged.mask as never, defaultMask),
    reasoning: merged.reasoning ?? true,
    toolInput: merged.toolInput ?? false,
  };
}

/**
 * The action for a verdict: the category's action, else the risk level's, else the mode's default
 * (strict: Controversial is handled as Unsafe; loose: Controversial is allowed).
 */
export function actionFor(policy: RiskPolicy, riskLevel: RiskLevel, category: string | null): Action {
  if (riskLevel === 'Safe') return 'allow';
  const byCategory = category === null ? undefined : policy.categories[category];
  if (byCategory) return byCategory;
  if (riskLevel === 'Unsafe') return policy.actions.Unsafe;
  return policy.actions.Controversial ?? (policy.mode === 'strict' ? policy.actions.Unsafe : 'allow');
}
