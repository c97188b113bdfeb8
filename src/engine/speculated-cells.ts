import type { ControlledEvaluateIndexOutput } from 'node-llama-cpp';
import type { TokenCounts } from '../guard/stream-guard.js';
import type { Item } from './response-text.js';
import type { SessionSequence } from './session-sequence.js';
import { count } from './stats.js';

type Output = ControlledEvaluateIndexOutput | undefined;

/**
 * Tokens evaluated ahead of the text given (`speculate`): the last cells of the sequence (and of `fed`), with
 * their outputs. A later call whose tokens start with them takes their outputs instead of evaluating again.
 */
export class SpeculatedCells {
  private cells: Array<{ item: Item; output: Output }> = [];

  constructor(
    private readonly seq: SessionSequence,
    /** The guard's stats and the session's counts. */
    private readonly counters: TokenCounts[],
  ) {}

  get length(): number {
    return this.cells.length;
  }

  /** How many of `items` the speculated tokens start with (same ids, scored alike, so the outputs hold). */
  match(items: Item[]): number {
    let n = 0;
    while (n < items.length && n < this.cells.length && this.cells[n].item.id === items[n].id && this.cells[n].item.scored === items[n].scored) n++;
    return n;
  }

  /** Takes the first `n` speculated tokens as committed, with their outputs. */
  commit(n: number): Output[] {
    return this.cells.splice(0, n).map((c) => c.output);
  }

  add(items: Item[], outputs: Output[]): void {
    this.cells.push(...items.map((item, k) => ({ item, output: outputs[k] })));
    count('speculatedTokens', items.length, ...this.counters);
  }

  /** Erases the speculated tokens after the first `keep`: the last cells of the sequence. */
  async drop(keep: number): Promise<void> {
    const drop = this.cells.length - keep;
    if (drop <= 0) return;
    await this.seq.eraseLast(drop);
    this.cells.length = keep;
    count('discardedTokens', drop, ...this.counters);
  }

  /** Forgets them: their cells were erased with others. */
  clear(): void {
    this.cells = [];
  }
}
