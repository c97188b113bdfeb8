import type { LanguageModelV4Prompt } from '@ai-sdk/provider';
import type { GuardMessage } from '../guard/types.js';

const stringify = (value: unknown) => (typeof value === 'string' ? value : JSON.stringify(value));

/**
 * The AI SDK prompt as guard turns: text of user and assistant messages, assistant reasoning, tool calls and
 * results as text (the guard reads them as context). Files are not text and are left out. The system message
 * is the app's own instruction and is left out unless asked for.
 */
export function toGuardMessages(prompt: LanguageModelV4Prompt, includeSystem: boolean): GuardMessage[] {
  const messages: GuardMessage[] = [];
  for (const message of prompt) {
    switch (message.role) {
      case 'system':
        if (includeSystem) messages.push({ role: 'system', content: message.content });
        break;
      case 'user':
        messages.push({ role: 'user', content: message.content.flatMap((p) => (p.type === 'text' ? [p.text] : [])).join('\n') });
        break;
      case 'assistant': {
        let content = '';
        let reasoning = '';
        for (const part of message.content) {
          if (part.type === 'text') content += part.text;
          else if (part.type === 'reasoning') reasoning += part.text;
          else if (part.type === 'tool-call') content += `${content ? '\n' : ''}<tool_call>\n${JSON.stringify({ name: part.toolName, arguments: part.input })}\n</tool_call>`;
        }
        messages.push(reasoning ? { role: 'assistant', content, reasoning } : { role: 'assistant', content });
        break;
      }
      case 'tool':
        for (const part of message.content) {
          if (part.type === 'tool-result') messages.push({ role: 'tool', content: stringify('value' in part.output ? part.output.value : part.output) });
        }
        break;
    }
  }
  // Nothing the guard can read (files only, or only a system message left out): an empty user turn, so the
  // response is still moderated in its place.
  if (messages.length === 0) messages.push({ role: 'user', content: '' });
  return messages;
}

/** The conversation through the last user turn: all the prompt verdict depends on (the model is causal). */
export function promptKey(messages: readonly GuardMessage[]): string | null {
  const last = messages.findLastIndex((m) => m.role === 'user');
  return last < 0 ? null : JSON.stringify(messages.slice(0, last + 1).map((m) => [m.role, m.content, m.reasoning ?? null]));
}
