import { stablePrefixLength } from './pretokenizer.js';

/**
 * Decides, for one part of a streamed response (reasoning or answer), which received text can go to the guard:
 * deltas may split a word, a UTF-8 character (as a lone surrogate) or a base letter from its combining mark,
 * and later text could still re-tokenize the tail. `push` returns the text that became final, `flush` the rest
 * at the end of the part. Concatenated, the returned chunks are the received text, and tokenizing them one by
 * one gives the tokens of the whole text.
 */
export class TextAligner {
  private pending = '';
  private started = false;

  /** @param prefix template text that precedes the part and is tokenized with its first text. */
  constructor(private readonly prefix: string) {}

  /** Characters received but not yet released to the guard. */
  get held(): number {
    return this.pending.length;
  }

  push(delta: string): string {
    this.pending += delta;
    // Until the part's first text goes out, the template prefix shares its first piece.
    const lead = this.started ? '' : this.prefix;
    const stable = stablePrefixLength(lead + this.pending) - lead.length;
    if (stable <= 0) return '';
    return this.take(stable);
  }

  flush(): string {
    return this.take(this.pending.length);
  }

  private take(length: number): string {
    const out = this.pending.slice(0, length);
    this.pending = this.pending.slice(length);
    // The template drops a part's leading newlines, so its prefix joins the first other character.
    if (/[^\n]/.test(out)) this.started = true;
    return out;
  }
}
