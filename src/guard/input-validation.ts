import { describeValue as describe, listOf } from '../shared/validation.js';
import type { GuardMessage, ResponsePart } from './types.js';

/** A call to the engine's public API with arguments it cannot take; nothing was evaluated. */
export class GuardInputError extends TypeError {
  override readonly name = 'GuardInputError';
}

const ROLES = ['system', 'user', 'assistant', 'tool'] as const;
const PARTS: readonly ResponsePart[] = ['reasoning', 'answer'];

/** Checks `checkPrompt`'s conversation before anything is evaluated. */
export function validateMessages(messages: unknown): asserts messages is readonly GuardMessage[] {
  if (!Array.isArray(messages) || messages.length === 0) {
    throw new GuardInputError(`checkPrompt: messages must be a non-empty array of { role, content }, got ${Array.isArray(messages) ? 'an empty array' : describe(messages)}`);
  }
  messages.forEach((m: unknown, i) => {
    const at = `checkPrompt: messages[${i}]`;
    if (typeof m !== 'object' || m === null) throw new GuardInputError(`${at} must be an object { role, content }, got ${describe(m)}`);
    const { role, content, reasoning } = m as Record<string, unknown>;
    if (!ROLES.includes(role as GuardMessage['role'])) throw new GuardInputError(`${at}.role must be ${listOf(ROLES)}, got ${describe(role)}`);
    if (typeof content !== 'string') throw new GuardInputError(`${at}.content must be a string (the turn's text; pass '' for none), got ${describe(content)}`);
    if (reasoning !== undefined && typeof reasoning !== 'string') throw new GuardInputError(`${at}.reasoning must be a string or absent, got ${describe(reasoning)}`);
  });
}

export function validatePart(part: unknown, what: string): asserts part is ResponsePart {
  if (!PARTS.includes(part as ResponsePart)) throw new GuardInputError(`${what}: part must be ${listOf(PARTS)}, got ${describe(part)}`);
}

export function validateText(text: unknown, what: string): asserts text is string {
  if (typeof text !== 'string') throw new GuardInputError(`${what}: text must be a string, got ${describe(text)}`);
}

/** Input ids must be rows of the real vocabulary: the rows after it hold the guard's heads, not embeddings. */
export function validateTokenIds(ids: unknown, vocabSize: number, what: string): asserts ids is readonly number[] {
  if (!Array.isArray(ids)) throw new GuardInputError(`${what}: ids must be an array of token ids, got ${describe(ids)}`);
  const bad = ids.findIndex((id) => !Number.isInteger(id) || id < 0 || id >= vocabSize);
  if (bad >= 0) throw new GuardInputError(`${what}: ids[${bad}] is ${describe(ids[bad])}, not a token id of the Qwen3 vocabulary (whole numbers 0 to ${vocabSize - 1})`);
}
