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
   * UTF-16 [start, end) spans of `ids` within `text`, which they tokenize. A token that ends inside a
   * character extends to the character's end; one that starts inside a character starts after it.
   */
  spans(text: string, ids: readonly number[]): Array<[number, number]> {
    // UTF-16 offset of each UTF-8 byte boundary.
    const encoded = Buffer.from(text, 'utf8');
    const offsetAtByte = new Int32Array(encoded.length + 1);
    let byte = 0;
    let offset = 0;
    for (const ch of text) {
      const width = Buffer.byteLength(ch, 'utf8');
      for (let k = 0; k < width; k++) offsetAtByte[byte + k] = k === 0 ? offset : -1;
      byte += width;
      offset += ch.length;
    }
    offsetAtByte[encoded.length] = offset;
    const roundUp = (b: number) => {
      while (offsetAtByte[b] < 0) b++;
      return offsetAtByte[b];
    };
    const spans: Array<[number, number]> = [];
    let at = 0;
    for (const id of ids) {
      const next = Math.min(encoded.length, at + this.bytes(id).length);
      spans.push([roundUp(at), roundUp(next)]);
      at = next;
    }
    return spans;
  }
}
