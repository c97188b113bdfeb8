import type { Attributes } from '@opentelemetry/api';
import { HmacKey } from '../shared/hmac.js';
import { ATTR, HMAC_PREFIX } from './conventions.js';

/**
 * What a check's span may say about the text it checked: nothing by default; the text itself with
 * `recordContent`; an HMAC-SHA256 of it with a key (Web Crypto, so the Edge build has it too). The content is
 * serialized once (JSON, no Unicode normalization) and the HMAC is over that string's UTF-8 bytes, so a
 * collector can recompute it from a stored copy of the same messages.
 */
export class ContentRecorder {
  private readonly key: HmacKey | null;

  constructor(
    private readonly recordContent: boolean,
    hmacKey: string | Uint8Array | undefined,
  ) {
    this.key = hmacKey === undefined ? null : new HmacKey(hmacKey);
  }

  /** Whether a check needs its content at all. */
  get wanted(): boolean {
    return this.recordContent || this.key !== null;
  }

  /** The content attributes of `content` (a hash takes a moment: Web Crypto is asynchronous). */
  async attributes(content: unknown): Promise<Attributes> {
    const text = JSON.stringify(content);
    const attributes: Attributes = {};
    if (this.recordContent) attributes[ATTR.contentInputValue] = text;
    if (this.key) attributes[ATTR.contentInputHash] = HMAC_PREFIX + hex(await this.key.sign(text));
    return attributes;
  }
}

const hex = (bytes: Uint8Array) => Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
