import { PROMPT_CATEGORIES, type PromptCategory } from '../format/labels.js';

/**
 * Category names as Qwen3Guard-Gen writes them (the template's list, in its order), each mapped to the name the
 * Stream guard reports (format/labels.ts, the names of RESPONSE_CATEGORIES / PROMPT_CATEGORIES). Gen's names
 * are the published ones, so the map is one to one and the same spelling; it is written out so that a change on
 * either side breaks the type check instead of a verdict. Response moderation has no Jailbreak.
 */
export const GEN_CATEGORY_MAP = {
  Violent: 'Violent',
  'Non-violent Illegal Acts': 'Non-violent Illegal Acts',
  'Sexual Content or Sexual Acts': 'Sexual Content or Sexual Acts',
  PII: 'PII',
  'Suicide & Self-Harm': 'Suicide & Self-Harm',
  'Unethical Acts': 'Unethical Acts',
  'Politically Sensitive Topics': 'Politically Sensitive Topics',
  'Copyright Violation': 'Copyright Violation',
  Jailbreak: 'Jailbreak',
} as const satisfies Record<string, PromptCategory>;

export type GenCategoryName = keyof typeof GEN_CATEGORY_MAP;

/** Gen's prompt categories in the template's order. */
export const GEN_PROMPT_CATEGORIES = Object.keys(GEN_CATEGORY_MAP) as GenCategoryName[];
/** Gen's response categories: the prompt ones but Jailbreak. */
export const GEN_RESPONSE_CATEGORIES = GEN_PROMPT_CATEGORIES.filter((c) => c !== 'Jailbreak');

// Every library category has a Gen name: nothing the Stream guard reports is unreachable from Gen.
for (const name of PROMPT_CATEGORIES) {
  if (!Object.values(GEN_CATEGORY_MAP).includes(name)) throw new Error(`Gen category map lacks ${name}`);
}
