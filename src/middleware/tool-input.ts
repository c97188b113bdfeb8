import type { LanguageModelV4StreamPart } from '@ai-sdk/provider';
import type { OutputQueue } from './output-queue.js';
import type { ResponseModeration } from './response-moderation.js';

/**
 * Routes a tool-call part when tool inputs are moderated: the input joins the answer text after a line break,
 * and the call is held whole until its input is confirmed. Returns false for other parts.
 */
export function routeToolPart(queue: OutputQueue, moderation: ResponseModeration, part: LanguageModelV4StreamPart): boolean {
  const tool = queue.currentTool();
  if (part.type === 'tool-input-start') {
    const at = moderation.startToolInput();
    queue.openTool(part, { part: 'answer', start: at, end: at });
  } else if (part.type === 'tool-input-delta' && tool) {
    tool.parts.push(part);
    tool.range.end = moderation.append('answer', part.delta).end;
  } else if (part.type === 'tool-input-end' && tool) {
    tool.parts.push(part);
  } else if (part.type === 'tool-call') {
    if (tool && tool.parts[0].type === 'tool-input-start' && tool.parts[0].id === part.toolCallId) {
      tool.parts.push(part);
      tool.complete = true;
    } else {
      // A call without streamed input: moderate its input as a whole.
      const at = moderation.startToolInput();
      const range = moderation.append('answer', part.input);
      queue.openTool(part, { part: 'answer', start: at, end: range.end });
      queue.currentTool()!.complete = true;
    }
  } else return false;
  return true;
}
