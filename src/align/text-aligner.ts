import { extendsTail, forcedCut, isHighSurrogate, scanPieces, type Boundary, type TailRun } from './pretokenizer.js';

/**
 * The most text an aligner holds back. An unbroken run longer than this (a very long word, CJK without
 * punctuation, a repeated symbol, a whitespace run) is cut at fixed offsets instead of waiting for its end, so
 * holding and scanning stay bounded per delta. BPE only changes the tokens at a cut, and a Qwen3 token is far
 * shorter than 256 characters, so a cut costs one or two tokens differing from the model's own per 256
 * characters of such a run; a word or a line of normal text never comes close.
 */
export const MAX_HELD_CHARS = 256;

/** Text released to the guard. */
export interface AlignedChunk {
  text: string;
  /**
   * The chunk ends at a forced cut inside an overlong run: tokenize it apart from the text after it. Other
   * chunk ends are piece boundaries, where joining chunks gives the same tokens.
   */
  cut: boolean;
}

/**
 * Decides, for one part of a streamed response (reasoning or answer), which received text can go to the guard:
 * deltas may split a word, a UTF-8 character (as a lone surrogate) or a base letter from its combining mark,
 * and later text could still re-tokenize the tail. `push` returns the text that became final, `flush` the rest
 * at the end of the part. Concatenated, the returned chunks are the received text, and tokenizing them one by
 * one (the template prefix before the part's first text) gives the same tokens however the text was split
 * into deltas: the tokens of the whole text, unless a run was longer than `MAX_HELD_CHARS`.
 *
 * Why forced cuts are split-invariant: they are placed by a rule on the text alone. `anchor` is the last
 * anchor boundary (see `Boundary`) or forced cut; when no anchor follows it within the window, the cut goes
 * at the last grapheme boundary at most `MAX_HELD_CHARS - 1` past it, and the text after the cut is scanned
 * afresh from there. Every anchor inside the window is known once the code point at the window's end has
 * arrived (a trailing lone high surrogate waits for its pair), and so is every grapheme boundary there (breaks
 * depend on the characters before, never after); that is exactly when the cut is made, so the deltas' sizes
 * never change where it falls. Non-anchor boundaries (after a newline) may be found late, but only move the
 * release point, never the anchor. A big delta is processed in slices, as if it had arrived in smaller ones.
 */
export class TextAligner {
  private pending = '';
  private started = false;
  /** The last anchor or forced cut, as an offset in `pending` (negative once text after it was released). */
  private anchor = 0;
  /** Length of `pending` covered by the last scan, and how its last piece may grow without a new scan. */
  private scanned = 0;
  private tail: TailRun | null = null;

  /** @param prefix template text that precedes the part and is tokenized with its first text. */
  constructor(private readonly prefix: string) {}

  /** Characters received but not yet released to the guard (at most `MAX_HELD_CHARS`). */
  get held(): number {
    return this.pending.length;
  }

  /** The text received but not yet released: it may still re-tokenize when more text comes. */
  get pendingText(): string {
    return this.pending;
  }

  push(delta: string): AlignedChunk[] {
    const out: AlignedChunk[] = [];
    for (let i = 0; i < delta.length; i += MAX_HELD_CHARS) {
      this.pending += delta.slice(i, i + MAX_HELD_CHARS);
      this.release(out, false);
    }
    return out;
  }

  flush(): AlignedChunk[] {
    const out: AlignedChunk[] = [];
    this.release(out, true);
    this.emit(out, this.pending.length, false);
    return out;
  }

  /** Releases every stable prefix and forced cut of `pending`; `final` when no more text will come. */
  private release(out: AlignedChunk[], final: boolean): void {
    const window = MAX_HELD_CHARS - 1;
    for (;;) {
      let end = this.pending.length;
      if (!final && end > 0 && isHighSurrogate(this.pending.charCodeAt(end - 1))) end--;
      let boundaries: Boundary[] = [];
      if (!extendsTail(this.tail, this.pending.slice(this.scanned, end))) {
        // Until the part's first text goes out, the template prefix shares its first piece.
        const lead = this.started ? '' : this.prefix;
        const scan = scanPieces(lead + this.pending.slice(0, end));
        boundaries = scan.boundaries.map((b) => ({ at: b.at - lead.length, anchor: b.anchor })).filter((b) => b.at > 0);
        this.tail = scan.tail;
      }
      this.scanned = end;
      let stable = 0;
      let forced = false;
      for (const { at, anchor } of boundaries) {
        forced = at - this.anchor > window;
        if (forced) break;
        stable = at;
        if (anchor) this.anchor = at;
      }
      forced ||= end - this.anchor > window;
      this.emit(out, stable, false);
      if (!forced) return;
      this.emit(out, forcedCut(this.pending, this.anchor, this.anchor + window), true);
      this.anchor = 0;
      this.scanned = 0;
      this.tail = null;
    }
  }

  private emit(out: AlignedChunk[], length: number, cut: boolean): void {
    if (length > 0) {
      const text = this.pending.slice(0, length);
      this.pending = this.pending.slice(length);
      this.anchor -= length;
      this.scanned -= length;
      // The template drops a part's leading newlines, so its prefix joins the first other character.
      if (/[^\n]/.test(text)) this.started = true;
      const last = out.at(-1);
      if (last && !last.cut) last.text += text;
      else out.push({ text, cut: false });
    }
    if (cut && length > 0) out.at(-1)!.cut = true;
  }
}
