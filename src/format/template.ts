/** A conversation turn as the guard sees it. Content is plain text: markers in it stay text. */
export interface GuardMessage {
  role: 'system' | 'user' | 'assistant' | 'tool';
  content: string;
  /** Reasoning of an assistant turn after the last user turn (placed in the thinking block). */
  reasoning?: string;
}

/**
 * The published Qwen3 chat template (tokenizer_config.json of Qwen3Guard-Stream), rendered as pieces: the
 * template's own markers are special tokens, everything between them is one plain-text segment, tokenized on
 * its own with special-token parsing off, exactly as Hugging Face splits the rendered string at added tokens.
 * User and model text can therefore never produce a marker.
 */
export type Piece = { special: string } | { text: string };

export const IM_START = '<|im_start|>';
export const IM_END = '<|im_end|>';
export const THINK = '<think>';
export const END_THINK = '</think>';
const TOOL_RESPONSE = '<tool_response>';
const END_TOOL_RESPONSE = '</tool_response>';
export const SPECIAL_MARKERS = [IM_START, IM_END, THINK, END_THINK, TOOL_RESPONSE, END_TOOL_RESPONSE] as const;

const stripNewlines = (s: string) => s.replace(/^\n+|\n+$/g, '');
const lstripNewlines = (s: string) => s.replace(/^\n+/, '');

/** The template's handling of an assistant turn whose text still holds a think block. */
function splitThink(content: string): { content: string; reasoning: string } {
  if (!content.includes(END_THINK)) return { content, reasoning: '' };
  const parts = content.split(END_THINK);
  const before = parts[0].replace(/\n+$/, '');
  const reasoning = lstripNewlines(before.split(THINK).at(-1) ?? '');
  return { content: lstripNewlines(parts.at(-1) ?? ''), reasoning };
}

export interface RenderedConversation {
  pieces: Piece[];
  /** Index in `pieces` of the `<|im_end|>` closing the last user turn: where the prompt verdict is read. */
  verdictPiece: number;
}

/**
 * Renders the conversation up to and including the last message, as the template does with
 * `add_generation_prompt=false`.
 *
 * One deliberate difference: the published template takes a user message whose text starts with
 * `<tool_response>` and ends with `</tool_response>` for a tool result, which would let a user's own text
 * move the verdict to an earlier turn or remove it. Here only the `tool` role is a tool result: user text is
 * always a user turn. Without any user turn the template's fallback applies (the last message counts as the
 * query: no think block on earlier assistant turns) and the verdict is read at the conversation's last `<|im_end|>`.
 */
export function renderConversation(messages: readonly GuardMessage[]): RenderedConversation {
  if (messages.length === 0) throw new Error('renderConversation: the conversation is empty; give at least one message');
  let lastQuery = messages.findLastIndex((m) => m.role === 'user');
  const hasQuery = lastQuery >= 0;
  if (!hasQuery) lastQuery = messages.length - 1;

  const pieces: Piece[] = [];
  let verdictPiece = -1;
  // Plain text is accumulated so that text between two markers stays one segment.
  const text = (t: string) => {
    const last = pieces.at(-1);
    if (last && 'text' in last) last.text += t;
    else if (t) pieces.push({ text: t });
  };
  const special = (s: string) => pieces.push({ special: s });

  messages.forEach((m, i) => {
    if (m.role === 'system' && i !== 0) {
      special(IM_START);
      text(`system\n${m.content}`);
      special(IM_END);
      text('\n');
    } else if (m.role === 'system' || m.role === 'user') {
      special(IM_START);
      text(`${m.role}\n${m.content}`);
      special(IM_END);
      if (hasQuery && i === lastQuery) verdictPiece = pieces.length - 1;
      text('\n');
    } else if (m.role === 'assistant') {
      const split = m.reasoning !== undefined ? { content: m.content, reasoning: m.reasoning } : splitThink(m.content);
      special(IM_START);
      const last = i === messages.length - 1;
      if (i > lastQuery && (last || split.reasoning)) {
        text('assistant\n');
        special(THINK);
        text(`\n${stripNewlines(split.reasoning)}\n`);
        special(END_THINK);
        text(`\n\n${lstripNewlines(split.content)}`);
      } else {
        text(`assistant\n${split.content}`);
      }
      special(IM_END);
      text('\n');
    } else {
      // tool: consecutive tool messages share one user turn
      if (i === 0 || messages[i - 1].role !== 'tool') {
        special(IM_START);
        text('user');
      }
      text('\n');
      special(TOOL_RESPONSE);
      text(`\n${m.content}\n`);
      special(END_TOOL_RESPONSE);
      if (i === messages.length - 1 || messages[i + 1].role !== 'tool') {
        special(IM_END);
        text('\n');
      }
    }
  });
  if (!hasQuery) verdictPiece = pieces.findLastIndex((p) => 'special' in p && p.special === IM_END);
  return { pieces, verdictPiece };
}

/** Plain text around the response parts (after the conversation's last `<|im_end|>\n`). */
export const RESPONSE_TEMPLATE = {
  /** Evaluated with the prompt, as it does not depend on the response: `<|im_start|>assistant\n<think>`. */
  opening: [{ special: IM_START }, { text: 'assistant\n' }, { special: THINK }] as Piece[],
  /** The reasoning segment is `\n{reasoning}\n` (reasoning stripped of outer newlines). */
  reasoningPrefix: '\n',
  reasoningSuffix: '\n',
  /** The answer segment is `\n\n{answer}` (answer stripped of leading newlines), after `</think>`. */
  answerPrefix: '\n\n',
  /** Text after the closing `<|im_end|>`: the rendered conversation ends with it, and it is scored too. */
  closing: '\n',
} as const;
