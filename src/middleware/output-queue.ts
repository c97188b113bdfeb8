import type { LanguageModelV4StreamPart } from '@ai-sdk/provider';
import type { ResponsePart } from '../guard/types.js';
import type { ResponseModeration } from './response-moderation.js';

type DeltaPart = Extract<LanguageModelV4StreamPart, { type: 'text-delta' | 'reasoning-delta' | 'tool-input-delta' }>;

/** Where a moderated stream part's text sits in the guard's part text. */
export interface TextRange {
  part: ResponsePart;
  start: number;
  end: number;
}

type Entry =
  | { kind: 'part'; part: LanguageModelV4StreamPart }
  | { kind: 'text'; part: DeltaPart; range: TextRange; released: number }
  /** A moderated tool call: released whole once its input is confirmed, never in pieces. */
  | { kind: 'tool'; parts: LanguageModelV4StreamPart[]; range: TextRange; complete: boolean };

const BLOCK_ENDS: Record<string, LanguageModelV4StreamPart['type']> = {
  'text-start': 'text-end',
  'reasoning-start': 'reasoning-end',
  'tool-input-start': 'tool-input-end',
};

/**
 * Upstream parts in arrival order. Text of moderated parts leaves only as far as the moderation decided it,
 * so a part that follows held text (a tool call, a source, the next block) waits behind it. Explicit state
 * per stream; `release` is called whenever something may have changed.
 */
export class OutputQueue {
  private readonly entries: Entry[] = [];
  /** Blocks opened downstream and not yet closed, to close them when the stream stops early. */
  private readonly open = new Map<string, LanguageModelV4StreamPart['type']>();
  /** Per guard part, how far its text went out (for leak accounting). */
  readonly releasedUpTo: Record<ResponsePart, number> = { reasoning: 0, answer: 0 };
  /** Characters released downstream, masks included. */
  releasedChars = 0;
  /** Characters of moderated text received, waiting for verdicts (now, at most at once), dropped unreleased (a stop, a rollback). */
  receivedChars = 0;
  private heldChars = 0;
  heldCharsMax = 0;
  withheldChars = 0;
  /** Nothing leaves before the prompt verdict. */
  private gateOpen = false;

  constructor(
    private readonly moderation: () => ResponseModeration | null,
    private readonly emit: (part: LanguageModelV4StreamPart) => void,
    /** Release text on arrival (optimistic mode); moderation still runs and may stop the rest. */
    private optimistic: boolean,
  ) {}

  /** From now on everything goes out as it is (the guard failed and the request fails open). */
  bypass(): void {
    this.optimistic = true;
    this.bypassed = true;
    this.completeTools();
    this.release();
  }
  private bypassed = false;

  /** The response ended: tool calls still collecting (no tool-call part came) are complete as they are. */
  completeTools(): void {
    for (const entry of this.entries) if (entry.kind === 'tool') entry.complete = true;
  }

  push(entry: { part: LanguageModelV4StreamPart } | { part: DeltaPart; range: TextRange }): void {
    if ('range' in entry) {
      this.entries.push({ kind: 'text', part: entry.part, range: entry.range, released: entry.range.start });
      this.receivedChars += entry.range.end - entry.range.start;
      this.heldChars += entry.range.end - entry.range.start;
    } else this.entries.push({ kind: 'part', part: entry.part });
  }

  /** Starts a moderated tool call (its parts are collected until `completeTool`). */
  openTool(part: LanguageModelV4StreamPart, range: TextRange): void {
    this.entries.push({ kind: 'tool', parts: [part], range, complete: false });
  }

  /** The current (last) moderated tool call, to add parts and extend its text range. */
  currentTool(): Extract<Entry, { kind: 'tool' }> | undefined {
    const last = this.entries.findLast((e) => e.kind === 'tool');
    return last?.kind === 'tool' && !last.complete ? last : undefined;
  }

  /** Lets output flow (the prompt passed) and releases what is decided. */
  openGate(): void {
    this.gateOpen = true;
    this.release();
  }

  /** Emits everything at the head that is decided. */
  release(): void {
    if (!this.gateOpen) return;
    const moderation = this.moderation();
    while (this.entries.length > 0) {
      const head = this.entries[0];
      if (head.kind === 'part') {
        this.send(head.part);
      } else if (head.kind === 'text') {
        if (!moderation || !this.releaseText(head, moderation)) break;
      } else if (this.bypassed) {
        for (const part of head.parts) this.send(part);
      } else {
        if (!head.complete || !moderation) break;
        const segments = moderation.segments(head.range.part, head.range.start, head.range.end);
        const covered = segments.at(-1)?.end ?? head.range.start;
        if (covered < head.range.end && head.range.end > head.range.start) break;
        // A tool call goes out whole or not at all: a redaction inside its input drops it.
        if (segments.every((s) => s.status === 'pass')) for (const part of head.parts) this.send(part);
        this.releasedUpTo[head.range.part] = Math.max(this.releasedUpTo[head.range.part], head.range.end);
      }
      this.entries.shift();
    }
    this.heldCharsMax = Math.max(this.heldCharsMax, this.heldChars);
  }

  /** Releases the decided text of a text entry; true when it is fully out. */
  private releaseText(entry: Extract<Entry, { kind: 'text' }>, moderation: ResponseModeration): boolean {
    const { range } = entry;
    const before = entry.released;
    if (this.bypassed || (this.optimistic && !moderation.stopped)) {
      this.sendDelta(entry.part, entry.part.delta.slice(entry.released - range.start));
      entry.released = range.end;
    } else {
      const { text, upTo } = moderation.render(range.part, range.start, entry.released, entry.part.delta);
      this.sendDelta(entry.part, text);
      entry.released = upTo;
    }
    this.releasedUpTo[range.part] = Math.max(this.releasedUpTo[range.part], entry.released);
    this.heldChars -= entry.released - before;
    return entry.released >= range.end;
  }

  private sendDelta(part: DeltaPart, delta: string): void {
    if (!delta) return;
    this.releasedChars += delta.length;
    this.send({ ...part, delta });
  }

  private send(part: LanguageModelV4StreamPart): void {
    if ('id' in part && typeof part.id === 'string') {
      const end = BLOCK_ENDS[part.type];
      if (end) this.open.set(`${end}:${part.id}`, end);
      else this.open.delete(`${part.type}:${part.id}`);
    }
    this.emit(part);
  }

  /** Drops what is left (after a stop) and closes the blocks left open downstream. */
  discard(): void {
    this.dropPending();
    for (const [key, type] of this.open) {
      this.emit({ type, id: key.slice(type.length + 1) } as LanguageModelV4StreamPart);
    }
    this.open.clear();
  }

  /** Drops the entries not yet released, keeping the blocks open downstream (a continuation goes on in them). */
  dropPending(): void {
    this.entries.length = 0;
    this.withheldChars += this.heldChars;
    this.heldChars = 0;
  }

  /** The first open text and reasoning blocks downstream, by type, for a continuation to go on in; other open blocks are closed. */
  keepOpenBlocks(): { text?: string; reasoning?: string } {
    const kept: { text?: string; reasoning?: string } = {};
    for (const [key, type] of this.open) {
      const id = key.slice(type.length + 1);
      const kind = type === 'text-end' ? 'text' : type === 'reasoning-end' ? 'reasoning' : null;
      if (kind && kept[kind] === undefined) kept[kind] = id;
      else this.closeBlock(key, type);
    }
    return kept;
  }

  /** Closes these blocks downstream where they are open. */
  closeBlocks(ids: readonly string[]): void {
    for (const [key, type] of this.open) if (ids.includes(key.slice(type.length + 1))) this.closeBlock(key, type);
  }

  private closeBlock(key: string, type: LanguageModelV4StreamPart['type']): void {
    this.open.delete(key);
    this.emit({ type, id: key.slice(type.length + 1) } as LanguageModelV4StreamPart);
  }

  /** Whether a text block with this id is open downstream (a rewrite can continue it). */
  openTextBlock(): string | undefined {
    for (const [key, type] of this.open) if (type === 'text-end') return key.slice(type.length + 1);
    return undefined;
  }
}
