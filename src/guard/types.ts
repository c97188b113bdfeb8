import type { RiskLevel } from '../format/labels.js';
import type { GuardMessage } from '../format/template.js';

export type { GuardMessage, RiskLevel };

export type RiskProbabilities = Record<RiskLevel, number>;

export interface PromptVerdict {
  riskLevel: RiskLevel;
  /** The query head's category; null where the prompt is Safe (the category is trained only on unsafe data). */
  category: string | null;
  probabilities: RiskProbabilities;
  categoryProbabilities: Record<string, number>;
}

/** Which thinking position a response token sits in. */
export type ResponsePart = 'reasoning' | 'answer';

export interface TokenVerdict {
  /** Index among the scored response tokens (reasoning and answer together). */
  index: number;
  /** Index of the token in the whole rendered conversation (template tokens included). */
  position: number;
  id: number;
  part: ResponsePart;
  riskLevel: RiskLevel;
  /** Category of a non-Safe token, else null. */
  category: string | null;
  /** Exact probabilities of the three levels: a local guard's when loaded with `responseProbabilities`, an SGLang guard's always. */
  probabilities?: RiskProbabilities;
  /** One of the closing `<|im_end|>\n` tokens scored by `end()` (they cover no text). */
  closing?: true;
  /** UTF-16 offsets [start, end) in the text given to `appendText` for this part (text input only). */
  start?: number;
  end?: number;
}
