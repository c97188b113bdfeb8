/** The chat page; `?route=edge` talks to the Edge route (guard as a service) instead of the Node.js one (guard in process). */
import { Chat } from './chat';

export default async function Page({ searchParams }: { searchParams: Promise<{ route?: string }> }) {
  const { route } = await searchParams;
  return <Chat api={route === 'edge' ? '/api/chat-edge' : '/api/chat'} />;
}
