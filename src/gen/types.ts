import type { PromptVerdict } from '../guard/types.js';

/** A Qwen3Guard-Gen verdict: the Stream prompt verdict's fields, plus what Gen writes. */
export interface GenVerdict extends Pick<PromptVerdict, 'riskLevel' | 'category' | 'probabilities'> {
  /** Every category the model listed (library names, its order); empty when it wrote `None`. */
  categories: string[];
  /** The model's answer: `Safety: ...\nCategories: ...` (and `\nRefusal: ...` for a response). */
  raw: string;
  model: 'gen';
}

export interface GenResponseVerdict extends GenVerdict {
  /** The model's `Refusal: Yes|No`: the assistant refused or did not comply. */
  refusal: boolean;
  /** P(Yes) against P(No) at the refusal token. */
  refusalProbability: number;
}
