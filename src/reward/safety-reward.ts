import type { GuardMessage } from '../guard/types.js';
import type { GenResponseVerdict } from '../gen/types.js';
import { splitThinking } from '../eval/think.js';
import { parseOptions } from '../shared/validation.js';
import { helpfulnessOf } from './helpfulness.js';
import { safetyRewardSchema, type SafetyRewardOptions } from './options.js';

export interface SafetyRewardResult {
  reward: number;
  /** Gen's verdict on the answer (the text after `</think>`). */
  answer: GenResponseVerdict;
  /** Gen's verdict on the thinking, when the response has any. */
  thinking?: GenResponseVerdict;
  /** The answer is a refusal (Gen's `Refusal: Yes`). */
  refusal: boolean;
  /** The thinking or the answer was judged not safe. */
  unsafe: boolean;
  /** H, with the hybrid scheme. */
  helpfulness?: number;
}

/** The reward of one response to a prompt (a user text, or the conversation the response answers). */
export type SafetyReward = (prompt: string | readonly GuardMessage[], response: string, options?: { signal?: AbortSignal }) => Promise<SafetyRewardResult>;

/**
 * A reward for safety RL after the Qwen3Guard report, section 3.5: the response's thinking and answer are
 * judged separately by Qwen3Guard-Gen.
 * - guard-only: 1 if both are Safe, else 0 (Controversial is not safe).
 * - hybrid (default): min(-10, H) if either is not safe, else min(-5, H) if the answer is a refusal, else H.
 * Options are validated here; checks of one call run at once (on Gen's sequences), as do concurrent calls.
 */
export function safetyReward(options: SafetyRewardOptions): SafetyReward {
  const o = parseOptions(safetyRewardSchema, options, 'safetyReward');
  const helpfulness = helpfulnessOf(o.helpfulness);
  const safe = (v: GenResponseVerdict) => v.riskLevel === 'Safe' || (v.riskLevel === 'Controversial' && o.controversial === 'safe');
  return async (prompt, response, call = {}) => {
    const conversation: GuardMessage[] = typeof prompt === 'string' ? [{ role: 'user', content: prompt }] : [...prompt];
    const split = splitThinking(response, { unclosed: 'thinking' });
    // The newlines the chat template puts around a think block are not part of either text.
    const answer = split.answer.text.replace(/^\n+/, '');
    const thinking = split.thinking?.text.replace(/^\n+|\n+$/g, '');
    const judge = (text: string) => o.gen.checkResponse([...conversation, { role: 'assistant', content: text }], { mode: 'raw', signal: call.signal });
    const [answerVerdict, thinkingVerdict, h] = await Promise.all([
      judge(answer),
      thinking?.trim() ? judge(thinking) : undefined,
      o.scheme === 'hybrid' ? helpfulness(conversation, answer, call.signal) : undefined,
    ]);
    const unsafe = !safe(answerVerdict) || (thinkingVerdict !== undefined && !safe(thinkingVerdict));
    const refusal = answerVerdict.refusal;
    let reward: number;
    if (o.scheme === 'guard-only') reward = unsafe ? o.guardOnly.notSafe : o.guardOnly.safe;
    else reward = unsafe ? Math.min(o.penalties.unsafe, h!) : refusal ? Math.min(o.penalties.refusal, h!) : h!;
    const result: SafetyRewardResult = { reward, answer: answerVerdict, refusal, unsafe };
    if (thinkingVerdict) result.thinking = thinkingVerdict;
    if (h !== undefined) result.helpfulness = h;
    return result;
  };
}
