/** Risk levels the Qwen3Guard heads emit. */
export type RiskLevel = 'Safe' | 'Unsafe' | 'Controversial';
export const RISK_LEVELS: readonly RiskLevel[] = ['Safe', 'Unsafe', 'Controversial'];

/**
 * Fallback label orders, from QwenLM/Qwen3Guard `eval/eval_stream.py`. A checkpoint's own `config.json` maps
 * take precedence; these are used only where a map is absent.
 */
export const DEFAULT_RISK_LABELS: readonly string[] = ['Safe', 'Unsafe', 'Controversial'];
export const RESPONSE_CATEGORIES = [
  'Violent',
  'Sexual Content or Sexual Acts',
  'Suicide & Self-Harm',
  'Politically Sensitive Topics',
  'PII',
  'Copyright Violation',
  'Non-violent Illegal Acts',
  'Unethical Acts',
] as const;
/** Prompt (query head) categories: the response ones and Jailbreak. */
export const PROMPT_CATEGORIES = [...RESPONSE_CATEGORIES, 'Jailbreak'] as const;
export type ResponseCategory = (typeof RESPONSE_CATEGORIES)[number];
export type PromptCategory = (typeof PROMPT_CATEGORIES)[number];
export const DEFAULT_RESPONSE_CATEGORIES: readonly string[] = RESPONSE_CATEGORIES;
export const DEFAULT_QUERY_CATEGORIES: readonly string[] = PROMPT_CATEGORIES;

export function isRiskLevel(label: string): label is RiskLevel {
  return (RISK_LEVELS as readonly string[]).includes(label);
}
