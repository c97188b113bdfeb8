const encoder = new TextEncoder();

/**
 * An HMAC-SHA256 key over Web Crypto (Node, Edge runtimes and browsers have it): the remote client's
 * conversation keys and telemetry's content hashes. The key is imported once; signing is asynchronous.
 */
export class HmacKey {
  private readonly key: ReturnType<typeof crypto.subtle.importKey>;

  /** A string key is its UTF-8 bytes. */
  constructor(secret: string | Uint8Array) {
    const raw = typeof secret === 'string' ? encoder.encode(secret) : secret;
    this.key = crypto.subtle.importKey('raw', raw, { name: 'HMAC', hash: 'SHA-256' }, false, ['sign']);
  }

  /** The MAC of `text`'s UTF-8 bytes. */
  async sign(text: string): Promise<Uint8Array> {
    return new Uint8Array(await crypto.subtle.sign('HMAC', await this.key, encoder.encode(text)));
  }
}
