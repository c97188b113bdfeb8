/**
 * The raw UTF-8 bytes of each vocabulary token, from the GGUF's byte-level BPE token strings (GPT-2's
 * byte-to-unicode table). Detokenizing one token at a time loses bytes of split characters; this does not,
 * so token spans map back to exact character offsets.
 */
function byteDecoder(): Map<string, number> {
  const printable: number[] = [];
  for (let b = 33; b <= 126; b++) printable.push(b);
  for (let b = 161; b <= 172; b++) printable.push(b);
  for (let b = 174; b <= 255; b++) printable.push(b);
  const decoder = new Map<string, number>();
  let extra = 0;
  for (let b = 0; b < 256; b++) {
    if (printable.includes(b)) decoder.set(String.fromCharCode(b), b);
    else decoder.set(String.fromCharCode(256 + extra++), b);
  }
  return decoder;
}

export class TokenBytes {
  private readonly cache = new Map<number, Uint8Array>();
  private readonly decoder = byteDecoder();

  constructor(private readonly tokens: readonly string[]) {}

  bytes(id: number): Uint8Array {
    let bytes = this.cache.get(id);
    if (!bytes) {
      const text = this.tokens[id] ?? '';
      const out: number[] = [];
      for (const ch of text) {
        const b = this.decoder.get(ch);
        // Added tokens (<|im_end|>, ...) are stored as their literal text.
        if (b === undefined) out.push(...Buffer.from(ch, 'utf8'));
        else out.push(b);
      }
      bytes = Uint8Array.from(out);
      this.cache.set(id, bytes);
    }
    return bytes;
  }

  /**
   * Where each of `ids` (which tokenize `text`) sits in it: UTF-8 bytes [byteStart, byteEnd), and UTF-16
   * [start, end) for release. Character spans are contiguous and each character belongs to the token holding
   * its last byte, so a character split over several byte tokens is released with the last of them; the
   * tokens before it get an empty span at the character's start (they still gate its release).
   */
  spans(text: string, ids: readonly number[]): TokenSpan[] {
    // UTF-16 offset at each UTF-8 byte, rounded down to the character's start.
    const encoded = Buffer.from(text, 'utf8');
    const offsetAtByte = new Int32Array(encoded.length + 1);
    let byte = 0;
    let offset = 0;
    for (const ch of text) {
      const width = Buffer.byteLength(ch, 'utf8');
      offsetAtByte.fill(offset, byte, byte + width);
      byte += width;
      offset += ch.length;
    }
    offsetAtByte[encoded.length] = offset;
    const spans: TokenSpan[] = [];
    let at = 0;
    let charAt = 0;
    for (const id of ids) {
      const next = Math.min(encoded.length, at + this.bytes(id).length);
      const end = offsetAtByte[next];
      spans.push({ byteStart: at, byteEnd: next, start: charAt, end });
      at = next;
      charAt = end;
    }
    return spans;
  }
}

export interface TokenSpan {
  byteStart: number;
  byteEnd: number;
  start: number;
  end: number;
}
