import type { GuardMessage } from '../guard/types.js';
import { HmacKey } from '../shared/hmac.js';

/** An app's conversation id that can go in a header as it is (anything else is hashed first). */
const HEADER_SAFE = /^[A-Za-z0-9._:@-]{1,128}$/;

function base64url(bytes: Uint8Array): string {
  let binary = '';
  for (const b of bytes) binary += String.fromCharCode(b);
  return btoa(binary).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

/**
 * Names conversations for a load balancer's consistent hashing, so that every turn of one conversation reaches
 * the guard instance that holds its KV cache. Web Crypto only (it runs in Edge runtimes too).
 */
export class ConversationKeys {
  private readonly key: HmacKey;

  /**
   * The keys of a client's options: `routingSecret`, else derived from `apiKey` (app instances that share a
   * server fleet share it), else random per process (then only one process keeps conversations together).
   */
  static fromOptions(options: { routingSecret?: string; apiKey?: string }): ConversationKeys {
    const { routingSecret, apiKey } = options;
    return new ConversationKeys(routingSecret ?? (apiKey ? `qwen3guard-routing\u0000${apiKey}` : null));
  }

  /** `secret`: the HMAC key's text; null draws a random one (consistent within this process only). */
  constructor(secret: string | null) {
    this.key = new HmacKey(secret ?? crypto.getRandomValues(new Uint8Array(32)));
  }

  /**
   * The app's own conversation id when it gave one (hashed too if it cannot go in a header as is), else a keyed
   * hash of the conversation's opening (its messages up to the first user turn), which every later turn repeats.
   * Never the text, and never a plain hash of it: a plain hash of a short first message could be guessed back.
   */
  async of(messages: readonly GuardMessage[], conversationId?: string): Promise<string> {
    if (conversationId !== undefined && HEADER_SAFE.test(conversationId)) return conversationId;
    const firstUser = messages.findIndex((m) => m.role === 'user');
    const opening = messages.slice(0, firstUser < 0 ? 1 : firstUser + 1).map((m) => [m.role, m.content.normalize('NFC')]);
    const input = conversationId !== undefined ? `id\u0000${conversationId}` : `messages\u0000${JSON.stringify(opening)}`;
    const mac = await this.key.sign(input);
    return `h.${base64url(mac.subarray(0, 16))}`;
  }
}
