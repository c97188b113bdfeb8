import type { GuardMessage } from '../guard/types.js';

/** A piece of a message's text and where it starts in the text it was cut from (null: it came from elsewhere). */
export interface TextPart {
  text: string;
  offset: number | null;
}

const THINK = '<think>';
const END_THINK = '</think>';

/**
 * Splits a response into thinking and answer as the Qwen3 chat template does: with a `</think>`, the thinking is
 * what precedes the first one (after the last `<think>` before it) and the answer what follows the last one;
 * without one there is no thinking. `unclosed: 'thinking'` reads an unclosed `<think>` (a generation cut off
 * while it reasoned) as thinking to the end, with an empty answer: a judge must still see that text.
 */
export function splitThinking(text: string, options: { unclosed?: 'answer' | 'thinking' } = {}): { thinking: TextPart | null; answer: TextPart } {
  const close = text.indexOf(END_THINK);
  if (close < 0) {
    const open = text.indexOf(THINK);
    if (open < 0 || options.unclosed !== 'thinking') return { thinking: null, answer: { text, offset: 0 } };
    return { thinking: { text: text.slice(open + THINK.length), offset: open + THINK.length }, answer: { text: '', offset: text.length } };
  }
  const open = text.lastIndexOf(THINK, close);
  const start = open < 0 ? 0 : open + THINK.length;
  const after = text.lastIndexOf(END_THINK) + END_THINK.length;
  return { thinking: { text: text.slice(start, close), offset: start }, answer: { text: text.slice(after), offset: after } };
}

/** The reasoning and the answer of an assistant message: its `reasoning` field, else a think block in its content. */
export function messageParts(message: GuardMessage): { thinking: TextPart | null; answer: TextPart } {
  if (message.reasoning !== undefined) return { thinking: { text: message.reasoning, offset: null }, answer: { text: message.content, offset: 0 } };
  return splitThinking(message.content);
}

/**
 * Messages as Qwen3Guard-Gen reads them: its template writes an assistant turn's content as it is, so a
 * `reasoning` field goes back in front of the answer as the think block it came from (as the official
 * eval_gen.py shows Gen the data's content, think block included).
 */
export function withInlineThinking(messages: readonly GuardMessage[]): GuardMessage[] {
  return messages.map(({ reasoning, ...m }) => (reasoning === undefined ? m : { ...m, content: `${THINK}\n${reasoning}\n${END_THINK}\n\n${m.content}` }));
}
