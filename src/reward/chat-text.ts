import type { GuardMessage } from '../guard/types.js';

const TURN = /<\|im_start\|>(system|user|assistant|tool)\n([\s\S]*?)(<\|im_end\|>|$)/g;
const TRAILING_SPECIAL = /(?:\s*(?:<\|im_end\|>|<\|endoftext\|>))+\s*$/;

/**
 * The conversation of a prompt as RL trainers send it: text the chat template rendered (ChatML, Qwen's), or
 * plain text (one user message). The generation prompt at its end (an open assistant turn, `<think>` block
 * and all) is not a turn of the conversation and is left out.
 */
export function promptMessages(prompt: string): GuardMessage[] {
  const turns = [...prompt.matchAll(TURN)];
  if (!turns.length) return [{ role: 'user', content: prompt }];
  const messages = turns.filter((t) => t[3] !== '').map((t) => ({ role: t[1] as GuardMessage['role'], content: t[2] }));
  return messages.length ? messages : [{ role: 'user', content: prompt }];
}

/** A response decoded with its special tokens, without the end-of-turn tokens after it. */
export const stripEndTokens = (response: string): string => response.replace(TRAILING_SPECIAL, '');
