import type { Token } from 'node-llama-cpp';
import { END_THINK, RESPONSE_TEMPLATE, renderConversation } from '../format/template.js';
import type { GuardMessage } from '../guard/types.js';
import type { SessionHost } from './session-host.js';

/**
 * The conversation with a finished response (`response`: its fed ids after the opening, nothing speculated) as
 * an earlier assistant turn, as the next turn renders it when the client sends the answer back unchanged:
 * `<|im_start|>assistant\n{answer}<|im_end|>\n`, no think block.
 */
export function historyIds(host: SessionHost, messages: GuardMessage[], response: readonly number[], ended: boolean): number[] {
  // An ended response finishes with the closing `<|im_end|>\n`, which the history form writes itself.
  const closing = ended ? 1 + host.tokenizeText(RESPONSE_TEMPLATE.closing).length : 0;
  const answer = response.slice(0, response.length - closing);
  const answerStart = answer.indexOf(host.specialId(END_THINK));
  const text = answerStart < 0 ? '' : host.model.detokenize(answer.slice(answerStart + 1) as Token[], false);
  const content = text.startsWith(RESPONSE_TEMPLATE.answerPrefix) ? text.slice(RESPONSE_TEMPLATE.answerPrefix.length) : text;
  // A user turn after the answer makes it an earlier turn; its own pieces (<|im_start|>, user\n, <|im_end|>, \n) are cut.
  const { pieces } = renderConversation([...messages, { role: 'assistant', content }, { role: 'user', content: '' }]);
  return host.tokenizePieces(pieces.slice(0, -4));
}
