/** The chat endpoint on the Node.js runtime, with the guard in this process (lib/model.ts). */
import { chatResponse } from '../../../lib/chat-response';
import { chatModel } from '../../../lib/model';

export function POST(req: Request): Promise<Response> {
  return chatResponse(req, chatModel());
}
