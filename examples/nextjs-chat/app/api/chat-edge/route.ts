/** The same chat endpoint on the Edge runtime, with the guard as a service (lib/edge-model.ts). */
import { chatResponse } from '../../../lib/chat-response';
import { edgeChatModel } from '../../../lib/edge-model';

export const runtime = 'edge';

export function POST(req: Request): Promise<Response> {
  return chatResponse(req, edgeChatModel());
}
