import { IM_END, RESPONSE_TEMPLATE, renderConversation } from '../format/template.js';
import { GuardStateError } from '../guard/errors.js';
import { GuardInputError } from '../guard/input-validation.js';
import type { GuardMessage, ResponsePart, TokenVerdict } from '../guard/types.js';
import type { TokenizerHost } from './guard-tokenizer.js';
import { freshPart, reasoningClosing, scaffold, textItems, type Item, type PartText } from './response-text.js';

export type Phase = 'new' | 'prompted' | ResponsePart | 'ended' | 'disposed';
/** Phases in which text of a part may come: reasoning only before the answer. */
export const PART_PHASES: Record<ResponsePart, Phase[]> = { reasoning: ['prompted', 'reasoning'], answer: ['prompted', 'reasoning', 'answer'] };

/** The conversation as `checkPrompt` evaluates it: NFC messages, their ids with the response's opening, and where the verdict is read. */
export interface PromptIds {
  /** The messages, NFC-normalized (for the history form of the finished turn). */
  messages: GuardMessage[];
  /** The conversation, its closing newline and the response's opening `<|im_start|>assistant\n<think>`. */
  ids: number[];
  /** Index in `ids` of the `<|im_end|>` closing the last user turn: the query head's verdict is read there. */
  verdictIndex: number;
}

/** Renders and tokenizes the conversation (NFC) as the local engine evaluates it; any backend reading the same heads sends these ids. */
export function promptIds(host: TokenizerHost, messages: readonly GuardMessage[]): PromptIds {
  const normalized = messages.map((m) => ({ ...m, content: m.content.normalize('NFC'), reasoning: m.reasoning?.normalize('NFC') }));
  const { pieces, verdictPiece } = renderConversation(normalized);
  const before = host.tokenizePieces(pieces.slice(0, verdictPiece));
  const after = host.tokenizePieces([...pieces.slice(verdictPiece + 1), ...RESPONSE_TEMPLATE.opening]);
  return { messages: normalized, ids: [...before, host.specialId(IM_END), ...after], verdictIndex: before.length };
}

/**
 * What `rollbackTo(last)` keeps: the sequence up to just after `last` (the response's start for null) and the
 * scored tokens up to it; a token that is not one of this response's scored ones is refused.
 */
export function rollbackPoint(last: TokenVerdict | null, state: { scored: number; fed: number; responseStart: number }): { keepFed: number; keepScored: number } {
  const keepFed = last ? last.position + 1 : state.responseStart;
  const keepScored = last ? last.index + 1 : 0;
  if (keepScored > state.scored || keepFed > state.fed || keepFed < state.responseStart) {
    throw new GuardInputError(`rollbackTo: token ${last?.index} is not a scored token of this response`);
  }
  return { keepFed, keepScored };
}

/**
 * Where a session stands in the template: its phase, each part's text state, and the tokens each call adds
 * (the scaffold before a part, the text's own tokens, the closing ones). Pure: it evaluates nothing, so the
 * local engine's session and a serving engine's session turn the same calls into the same tokens.
 */
export class ResponseCursor {
  phase: Phase = 'new';
  readonly parts: Record<ResponsePart, PartText> = { reasoning: freshPart(), answer: freshPart() };

  constructor(private readonly host: TokenizerHost) {}

  /** The phase and the parts' state, for `restore` after a call that failed before it changed anything else. */
  save(): { phase: Phase; parts: Record<ResponsePart, PartText> } {
    return { phase: this.phase, parts: { reasoning: { ...this.parts.reasoning }, answer: { ...this.parts.answer } } };
  }

  restore(saved: { phase: Phase; parts: Record<ResponsePart, PartText> }): void {
    if (this.phase === 'disposed') return;
    this.phase = saved.phase;
    Object.assign(this.parts.reasoning, saved.parts.reasoning);
    Object.assign(this.parts.answer, saved.parts.answer);
  }

  /** Throws a GuardStateError unless the session is in one of `allowed`, saying why the call is out of turn. */
  expectPhase(allowed: Phase[], what: string): void {
    if (this.phase === 'disposed') throw new GuardStateError(`${what}: this GuardSession was disposed`);
    if (!allowed.includes(this.phase)) {
      const hint = this.phase === 'new' ? 'call checkPrompt(messages) first' : this.phase === 'ended' ? 'the response has ended' : `the session is in its ${this.phase} phase`;
      throw new GuardStateError(`${what}: ${hint}`);
    }
  }

  /**
   * The tokens of `appendText(part, text, { final, ahead })`: the scaffold the part needs first, then the
   * text's (scored); the part's state moves past them. `ahead`: the tokens of the text after, as speculated now
   * (the state does not move for them; none once the part is closed).
   */
  append(part: ResponsePart, text: string, final: boolean, ahead?: string): { items: Item[]; ahead: Item[] } {
    const items = this.openPart(part);
    const { items: textTokens, state } = textItems(this.host, this.parts[part], part, text, final);
    this.parts[part] = state;
    return { items: [...items, ...textTokens], ahead: ahead && !state.closed ? textItems(this.host, state, part, ahead, false).items : [] };
  }

  /** The tokens `speculate(part, text)` evaluates ahead (nothing moves), or null when the part is closed. */
  speculation(part: ResponsePart, text: string): Item[] | null {
    this.expectPhase(PART_PHASES[part], 'speculate');
    if (part === 'reasoning' && this.parts.reasoning.closed) return null;
    return [...this.openingItems(part), ...textItems(this.host, this.parts[part], part, text, false).items];
  }

  /** The tokens of `end()`: what the answer still needs, then the closing `<|im_end|>\n`, scored and marked `closing`. */
  closing(): Item[] {
    const items = this.openPart('answer');
    if (!this.parts.answer.started) items.push(...scaffold(this.host, [{ text: RESPONSE_TEMPLATE.answerPrefix }]));
    for (const id of [this.host.specialId(IM_END), ...this.host.tokenizeText(RESPONSE_TEMPLATE.closing)]) items.push({ id, scored: true, part: 'answer', closing: true });
    return items;
  }

  /** Scaffold that must precede tokens of `part`, moving the phase forward. */
  openPart(part: ResponsePart): Item[] {
    const what = part === 'reasoning' ? 'appending reasoning' : 'appending the answer';
    this.expectPhase(PART_PHASES[part], what);
    if (part === 'reasoning' && this.parts.reasoning.closed) throw new GuardStateError(`${what}: the reasoning was already ended with final: true`);
    const items = this.openingItems(part);
    if (part === 'answer') this.parts.reasoning.closed = true;
    this.phase = part;
    return items;
  }

  /** Part state and phase as right after the scored token `last` (null: the response's start), for `rollbackTo`. */
  rollback(last: TokenVerdict | null): void {
    const part = last?.part;
    if (part !== 'answer') Object.assign(this.parts.reasoning, part === 'reasoning' ? { started: true, consumed: last!.end ?? this.parts.reasoning.consumed, closed: false } : freshPart());
    Object.assign(this.parts.answer, part === 'answer' ? { started: true, consumed: last!.end ?? this.parts.answer.consumed, closed: false } : freshPart());
    this.phase = last?.closing ? 'ended' : (part ?? 'prompted');
  }

  /** The scaffold before `part`'s tokens: an empty thinking block is the template's "\n\n", an open one gets its closing newline. */
  private openingItems(part: ResponsePart): Item[] {
    if (part !== 'answer' || this.phase === 'answer' || this.parts.reasoning.closed) return [];
    return reasoningClosing(this.host, !this.parts.reasoning.started);
  }
}
