import type { ControlledEvaluateIndexOutput, ControlledEvaluateInputItem, LlamaContextSequence, Token } from 'node-llama-cpp';
import type { TokenCounts } from '../guard/stream-guard.js';
import { readItem, type Readout } from './readout.js';
import type { Item } from './response-text.js';
import { commonPrefix, type PooledSequence, type SequencePool } from './sequence-pool.js';
import type { SessionHost } from './session-host.js';
import { count } from './stats.js';

/** Most scored tokens per decode: bounds llama.cpp's output buffer (see `evaluateItems`). */
export const OUTPUTS_PER_DECODE = 64;

/**
 * A session's sequence and the token ids fed to it: every evaluation, erasure and context shift goes through
 * here, so that `fed` always says what the cells hold (or `broken` says they may not).
 */
export class SessionSequence {
  /** Every token fed, in order: the rendered conversation so far (template tokens included). */
  readonly fed: number[] = [];
  /** Sequence index where the response starts: a context shift keeps everything before it. */
  responseStart = 0;
  /** Sequence index of the first cell a context shift erased: the cells from there on are no plain prefix. */
  firstShift = Infinity;
  /** An evaluation failed: the cells no longer match `fed`. */
  broken = false;
  /** The sequence, taken from the pool by `take`. */
  entry: PooledSequence | null = null;

  constructor(
    private readonly host: SessionHost,
    private readonly pool: SequencePool,
    /** The session's own counts (the guard's stats are counted too). */
    private readonly counts: TokenCounts,
    private readonly disposed: () => boolean,
  ) {}

  get sequence(): LlamaContextSequence {
    if (!this.entry) throw new Error('This GuardSession has no sequence yet: call checkPrompt(messages) first');
    return this.entry.sequence;
  }

  /** Takes the sequence that kept the longest prefix of `ids` and keeps at most `limit` of it; returns how many were kept. */
  async take(ids: readonly number[], limit: number): Promise<number> {
    this.entry = await this.pool.take(ids);
    const keep = Math.min(commonPrefix(this.entry.held, ids), limit);
    this.broken = true; // until the cells are known to hold the kept prefix
    await this.pool.trim(this.entry, keep);
    this.broken = false;
    this.fed.push(...ids.slice(0, keep));
    count('reusedTokens', keep, this.host.stats, this.counts);
    return keep;
  }

  /**
   * Evaluates items, reading the scored ones' head values. llama.cpp keeps an output buffer as large as the most
   * outputs a decode ever had (a full vocabulary row of logits each, about 1.5 MB per token for Qwen3's
   * vocabulary, never given back): a long text goes in decodes of at most OUTPUTS_PER_DECODE outputs, which
   * costs little speed past 64-token chunks.
   */
  async evaluateItems(items: Item[], read: Readout): Promise<Array<ControlledEvaluateIndexOutput | undefined>> {
    const outputs: Array<ControlledEvaluateIndexOutput | undefined> = [];
    for (let at = 0; at < items.length; ) {
      let end = at;
      for (let scored = 0; end < items.length && (scored < OUTPUTS_PER_DECODE || !items[end].scored); end++) if (items[end].scored) scored++;
      const group = items.slice(at, end);
      outputs.push(...(await this.evaluate(group.map((item) => (item.scored ? readItem(item.id, read) : (item.id as Token))))));
      at = end;
    }
    return outputs;
  }

  /** Erases the last `count` cells and their `fed` tokens (cheap: never from index 0). */
  async eraseLast(count: number): Promise<void> {
    if (count <= 0) return;
    const sequence = this.sequence;
    const end = sequence.nextTokenIndex;
    this.broken = true; // until the cells are known to match `fed` again
    await this.pool.foreground(() => sequence.eraseContextTokenRanges([{ start: end - count, end }]));
    this.broken = false;
    this.fed.length -= count;
  }

  /** One controlledEvaluate: one decode per batch; a full context drops the oldest tokens after the first. */
  async evaluate(items: ControlledEvaluateInputItem[]) {
    if (this.disposed()) throw new Error('This GuardSession was disposed');
    const { stats } = this.host;
    const contextSize = this.host.context.contextSize;
    const sequence = this.sequence;
    const options: Parameters<LlamaContextSequence['controlledEvaluate']>[1] = {
      contextShift: {
        // Free a quarter of the context at once so that shifts stay rare. Drop the oldest response tokens and
        // keep the conversation the verdicts depend on, unless it fills half the context itself (then drop its
        // oldest tokens). Never erase token 0 (the attention sink), so nothing is re-evaluated.
        size: Math.max(1, Math.floor(contextSize / 4)),
        strategy: ({ sequence, size }) => {
          const start = this.responseStart > 0 && this.responseStart <= contextSize / 2 ? this.responseStart : 1;
          const end = Math.min(sequence.nextTokenIndex, start + size);
          this.firstShift = Math.min(this.firstShift, start);
          stats.contextShifts++;
          stats.shiftedTokens += sequence.nextTokenIndex - end;
          return [{ start, end }];
        },
      },
    };
    const outputs = await this.pool.decode(() => sequence.controlledEvaluate(items, options)).catch((error: unknown) => {
      this.broken = true;
      throw error;
    });
    for (const item of items) this.fed.push(typeof item === 'number' ? item : item[0]);
    count('evaluatedTokens', items.length, stats, this.counts);
    stats.evaluations++;
    return outputs;
  }
}
