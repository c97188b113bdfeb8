import type { PromptVerdict, RiskLevel } from '../guard/types.js';
import { describeValue, OptionsError } from '../shared/validation.js';
import type { Action, FlaggedSpan, PromptPolicyInput, ResponsePolicyInput } from './schema.js';

export type { FlaggedSpan };

/** The app's functions a policy calls. */
export type PolicyFunction = 'refusal' | 'replacement' | 'mask' | 'intervention';

/**
 * Failures of the app's policy functions during one request, shared by its prompt and response policy: each
 * function's first failure is reported, and the metadata says that one happened.
 */
export class PolicyFailures {
  private readonly reported = new Set<PolicyFunction>();
  constructor(private readonly report: (error: unknown, fn: PolicyFunction) => void = () => undefined) {}

  get failed(): boolean {
    return this.reported.size > 0;
  }

  add(error: unknown, fn: PolicyFunction): void {
    if (this.reported.has(fn)) return;
    this.reported.add(fn);
    this.report(error, fn);
  }
}

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
  failures: PolicyFailures;
}

export interface ResolvedResponsePolicy extends RiskPolicy {
  debounce: number;
  release: 'hold' | 'optimistic';
  replacement: (span: FlaggedSpan) => string;
  mask: (span: FlaggedSpan) => string;
  reasoning: boolean;
  toolInput: boolean;
  /** Some action is `continue` (then the options below apply). */
  continues: boolean;
  intervention: (span: FlaggedSpan) => string;
  attempts: number;
  holdBack: number;
  fallback: 'rewrite' | 'abort';
  continuation: 'quote' | 'assistant-prefix';
  failures: PolicyFailures;
}

export const DEFAULT_REFUSAL = "I can't help with that request.";
export const DEFAULT_REPLACEMENT = "I can't continue with this response.";
export const DEFAULT_MASK = '[redacted]';

/**
 * CARE's introspection intervention (arXiv 2509.06982), adapted: the model corrects itself briefly and goes on
 * from where its answer was cut. The partial answer goes with it (quoted, or as the assistant's own message).
 */
export const DEFAULT_INTERVENTION =
  'Your previous response was cut off because it was turning unsafe. Think about why it was unsafe, then continue it from exactly where it stops, ' +
  'without repeating it: start with a brief self-correction such as "...oh, I\'m sorry, I just realized I shouldn\'t go into that." and go on with a safe, helpful answer.';
/** Default hold-back with a continue action, in tokens: see the README ("On-the-fly intervention"). */
export const DEFAULT_HOLD_BACK = 6;

/** The default replacement, set apart from answer text already shown. */
const defaultReplacement = (span: FlaggedSpan) => (span.part === 'answer' && span.charOffset > 0 ? '\n\n' : '') + DEFAULT_REPLACEMENT;
/** The default mask keeps the span's leading space, so words stay apart. */
const defaultMask = (span: FlaggedSpan) => (/^\s*/.exec(span.text)?.[0] ?? '') + DEFAULT_MASK;

/**
 * A text option as a function. The app's function is called as a callback is: if it throws or returns
 * anything but a string, the failure is reported and the default text (with its formatting) stands in.
 */
function asFunction<T>(name: PolicyFunction, value: unknown, fallback: (arg: T) => string, failures: PolicyFailures): (arg: T) => string {
  if (typeof value === 'string') return () => value;
  if (typeof value !== 'function') return fallback;
  const where = name === 'refusal' ? 'prompt.refusal' : `response.${name}`;
  return (arg) => {
    let text: unknown;
    try {
      text = (value as (arg: T) => unknown)(arg);
    } catch (error) {
      failures.add(error, name);
      return fallback(arg);
    }
    if (typeof text === 'string') return text;
    // An async function's promise is not awaited (the text is needed now); its rejection must not go unhandled.
    if (text instanceof Promise) text.catch(() => undefined);
    failures.add(new TypeError(`${where} returned ${describeValue(text)}, expected a string (the default text was used)`), name);
    return fallback(arg);
  };
}

function riskPolicy(base: PromptPolicyInput | ResponsePolicyInput = {}, override: PromptPolicyInput | ResponsePolicyInput = {}): RiskPolicy {
  return {
    mode: override.mode ?? base.mode ?? 'strict',
    actions: { Unsafe: 'rewrite', ...base.actions, ...override.actions } as RiskPolicy['actions'],
    // Names are checked against the guard's labels elsewhere (checkCategories); undefined entries read as unset.
    categories: { ...base.categories, ...override.categories } as Record<string, Action>,
  };
}

/** `failures` collects the request's policy-function failures (one per request, shared with its response policy). */
export function resolvePromptPolicy(base?: PromptPolicyInput, override?: PromptPolicyInput, failures = new PolicyFailures()): ResolvedPromptPolicy {
  const merged = { ...base, ...override };
  return {
    ...riskPolicy(base, override),
    waitForVerdict: merged.waitForVerdict ?? false,
    refusal: asFunction<PromptVerdict | null>('refusal', merged.refusal, () => DEFAULT_REFUSAL, failures),
    includeSystem: merged.includeSystem ?? false,
    failures,
  };
}

export function resolveResponsePolicy(base?: ResponsePolicyInput, override?: ResponsePolicyInput, failures = new PolicyFailures()): ResolvedResponsePolicy {
  const merged = { ...base, ...override };
  const risk = riskPolicy(base, override);
  const continues = [risk.actions.Unsafe, risk.actions.Controversial, ...Object.values(risk.categories)].includes('continue');
  const release = merged.release ?? 'hold';
  if (continues && release === 'optimistic') {
    throw new OptionsError(
      "Invalid options: response.release: the 'continue' action needs release 'hold' (an optimistic release has already sent the text that a rollback takes back)",
    );
  }
  return {
    ...risk,
    debounce: merged.debounce ?? 2,
    release,
    replacement: asFunction<FlaggedSpan>('replacement', merged.replacement, defaultReplacement, failures),
    mask: asFunction<FlaggedSpan>('mask', merged.mask, defaultMask, failures),
    reasoning: merged.reasoning ?? true,
    toolInput: merged.toolInput ?? false,
    continues,
    intervention: asFunction<FlaggedSpan>('intervention', merged.intervention, () => DEFAULT_INTERVENTION, failures),
    attempts: merged.attempts ?? 5,
    holdBack: merged.holdBack ?? (continues ? DEFAULT_HOLD_BACK : 0),
    fallback: merged.fallback ?? 'rewrite',
    continuation: merged.continuation ?? 'quote',
    failures,
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
