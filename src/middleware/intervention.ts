import type { LanguageModelV4Prompt, LanguageModelV4StreamPart } from '@ai-sdk/provider';
import type { ResponsePart } from '../guard/types.js';

/**
 * On-the-fly intervention (the `continue` action, after CARE): the request that lets the model continue a
 * response from its released text, and the transform that splices the continuation into the stream already
 * going out. Pure functions and one explicit state per continuation.
 */

/** The response so far as the client saw it: the part that was flagged, and its released text. */
export interface PartialResponse {
  part: ResponsePart;
  text: string;
}

export type ContinuationKind = 'quote' | 'assistant-prefix';

/**
 * The conversation, then the intervention. quote (any chat API): the instruction quotes the partial response,
 * as CARE's introspection prompt does. assistant-prefix (APIs that continue a trailing assistant message): the
 * instruction as a user turn, then the partial response as the assistant's own, unfinished message.
 */
export function continuationPrompt(prompt: LanguageModelV4Prompt, partial: PartialResponse, instruction: string, kind: ContinuationKind): LanguageModelV4Prompt {
  if (kind === 'quote') {
    const quoted = partial.text ? `\n\nYour prior response so far:\n<response>\n${partial.text}\n</response>` : '\n\nYour prior response so far is empty.';
    return [...prompt, { role: 'user', content: [{ type: 'text', text: instruction + quoted }] }];
  }
  const prefix = partial.text ? [{ role: 'assistant' as const, content: [{ type: partial.part === 'reasoning' ? ('reasoning' as const) : ('text' as const), text: partial.text }] }] : [];
  return [...prompt, { role: 'user', content: [{ type: 'text', text: instruction }] }, ...prefix];
}

type BlockType = 'text' | 'reasoning';

export interface ContinuationOptions {
  /** Numbers the attempt: ids of new blocks get it as a suffix, so they never reuse an id already closed downstream. */
  attempt: number;
  /** Blocks still open downstream, by type: the continuation's first block of that type goes on in it. */
  open: Partial<Record<BlockType, string>>;
  /** quote: the released text that a continuation may start by repeating (stripped), joined with a space if needed. */
  repeat: PartialResponse | null;
  /** Hears of the text stripped as a repeat, once. */
  onStripped?: (text: string) => void;
}

/**
 * Adapts a continuation's parts to the stream already going out: its own stream start and response metadata
 * are dropped (the stream has them), its first text (reasoning) block goes on in the one left open, other
 * blocks get fresh ids, and with `repeat` a restatement of the released text at its start is stripped.
 */
export class ContinuationSplice {
  private readonly ids = new Map<string, string>();
  private readonly open: Partial<Record<BlockType, string>>;
  /** Set until the continuation's start is known to repeat the released text or not. */
  private strip: { type: BlockType; target: string; released: string } | null;
  private buffer = '';
  private bufferId = '';
  /** Text dropped as a repeat of the released text. */
  stripped = '';

  constructor(private readonly options: ContinuationOptions) {
    this.open = { ...options.open };
    const repeat = options.repeat;
    this.strip = repeat?.text ? { type: repeat.part === 'reasoning' ? 'reasoning' : 'text', target: repeat.text.trimStart(), released: repeat.text } : null;
  }

  /** Blocks left open downstream that the continuation never went on in (to close at the end). */
  get unused(): string[] {
    return Object.values(this.open);
  }

  /** The parts to send on for one continuation part (none, one, or a flushed repeat buffer and the part). */
  map(part: LanguageModelV4StreamPart): LanguageModelV4StreamPart[] {
    if (part.type === 'stream-start' || part.type === 'response-metadata') return [];
    const type = blockType(part.type);
    if (!type || !('id' in part)) return part.type === 'finish' ? [...this.flush(), part] : [part];
    if (part.type === `${type}-start`) {
      const adopted = this.open[type];
      delete this.open[type];
      this.ids.set(part.id, adopted ?? `${part.id}-c${this.options.attempt}`);
      if (adopted) return [];
    }
    const id = this.ids.get(part.id) ?? `${part.id}-c${this.options.attempt}`;
    if (part.type === `${type}-delta` && this.strip?.type === type && 'delta' in part) {
      this.bufferId = id;
      return this.stripDelta(part.delta).map((delta) => ({ ...part, id, delta }));
    }
    return [...(part.type === `${type}-end` ? this.flush() : []), { ...part, id }];
  }

  /** Holds the start while it may still be a repeat of the released text; once decided, lets text through. */
  private stripDelta(delta: string): string[] {
    const strip = this.strip!;
    this.buffer += delta;
    const candidate = this.buffer.trimStart();
    if (strip.target.startsWith(candidate) && candidate.length < strip.target.length) return [];
    this.strip = null;
    const text = this.buffer;
    this.buffer = '';
    if (candidate.startsWith(strip.target)) {
      this.stripped = text.slice(0, text.length - candidate.length + strip.target.length);
      this.options.onStripped?.(this.stripped);
      return [candidate.slice(strip.target.length)].filter(Boolean);
    }
    return [joined(strip.released, text)];
  }

  /** A block or the stream ends while the start was held: it was no repeat after all. */
  private flush(): LanguageModelV4StreamPart[] {
    const strip = this.strip;
    if (!strip || !this.buffer) return [];
    const delta = joined(strip.released, this.buffer);
    this.strip = null;
    this.buffer = '';
    return [{ type: `${strip.type}-delta`, id: this.bufferId, delta }];
  }
}

/** A quoted continuation is a new fragment: keep it apart from released text that ends in a word. */
function joined(released: string, text: string): string {
  return /\S$/.test(released) && /^\S/.test(text) ? ` ${text}` : text;
}

function blockType(type: LanguageModelV4StreamPart['type']): BlockType | null {
  return type.startsWith('text-') ? 'text' : type.startsWith('reasoning-') ? 'reasoning' : null;
}
