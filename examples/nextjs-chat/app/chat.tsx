'use client';
/** The chat: each answer comes with its fate under the guard (from the message's metadata). `api` is the route it posts to. */
import { useChat } from '@ai-sdk/react';
import { DefaultChatTransport } from 'ai';
import { useState, type FormEvent } from 'react';
import { fateOf, type ChatMessage } from '../lib/verdict';
import { Answer } from './answer';

export function Chat({ api }: { api: string }) {
  const [transport] = useState(() => new DefaultChatTransport<ChatMessage>({ api }));
  const { messages, sendMessage, status, error } = useChat<ChatMessage>({ transport });
  const [input, setInput] = useState('');
  const busy = status === 'submitted' || status === 'streaming';

  function submit(event: FormEvent) {
    event.preventDefault();
    if (!input.trim() || busy) return;
    void sendMessage({ text: input });
    setInput('');
  }

  return (
    <main>
      <h1>Guarded chat</h1>
      <p className="route" data-testid="route">
        via <code>{api}</code>
      </p>
      <ol className="messages">
        {messages.map((message) => {
          const text = message.parts.map((p) => (p.type === 'text' ? p.text : '')).join('');
          if (message.role === 'user') {
            return (
              <li key={message.id} className="user" data-testid="user">
                {text}
              </li>
            );
          }
          const verdict = message.metadata?.qwen3guard;
          return (
            <li key={message.id} className="assistant" data-testid="assistant">
              {verdict ? <Answer fate={fateOf(text, verdict)} /> : <p className="answer">{text}</p>}
            </li>
          );
        })}
      </ol>
      {error && <p className="error">The request failed: {error.message}</p>}
      <form onSubmit={submit}>
        <input value={input} onChange={(e) => setInput(e.target.value)} placeholder="Ask something" aria-label="Message" autoFocus />
        <button type="submit" disabled={busy}>
          Send
        </button>
      </form>
    </main>
  );
}
