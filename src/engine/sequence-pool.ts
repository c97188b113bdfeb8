import type { LlamaContext, LlamaContextSequence, Token } from 'node-llama-cpp';
import { GuardBusyError } from '../guard/errors.js';
import { Permits } from '../shared/permits.js';
import { inLane, type ComputeLane } from './compute-lane.js';

/** Length of the common prefix of two id lists. */
export function commonPrefix(a: readonly number[], b: readonly number[]): number {
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a[i] === b[i]) i++;
  return i;
}

/**
 * A match shorter than this is what any two conversations share (`<|im_start|>user\n` and the like): the
 * newcomer is another conversation, and takes the least recently used sequence instead of the best match.
 */
const MIN_MATCH = 8;
/** Tokens per decode of background work: a session that needs the sequence waits at most one such decode. */
const BACKGROUND_CHUNK = 16;
/**
 * Background work decodes only once no session has evaluated for this long: a streamed response evaluates every
 * few tens of milliseconds, so the work waits for the end of the stream instead of slowing each chunk down.
 */
const QUIET_MS = 50;

export interface PooledSequence {
  readonly sequence: LlamaContextSequence;
  /**
   * Token ids of cells [0, held.length): exactly what evaluating them from position 0 leaves (no shifted cells).
   * Cells past it (up to `sequence.nextTokenIndex`) are stale and erased when the sequence is taken.
   */
  held: number[];
  lastUsed: number;
  /** Running background work: `cancel` stops it after its current decode. */
  background: { done: Promise<void>; cancel: () => void } | null;
}

/**
 * The guard's `maxSessions` sequences, and the KV cache each keeps after its session: a later session whose
 * conversation starts with the same token ids takes it and evaluates only the rest. A session reserves one
 * sequence when it is created (so `maxSessions` bounds sessions and KV memory) and takes the best-matching
 * idle one once its token ids are known (in `checkPrompt`).
 */
export class SequencePool {
  private readonly idle = new Set<PooledSequence>();
  /** Reservations: one per sequence, held by a session from its creation to its end. */
  private readonly reservations: Permits;
  private clock = 0;
  private closed = false;
  /** Sessions' evaluations in flight, and when the last one ended. */
  private active = 0;
  private lastActive = 0;

  constructor(
    private readonly context: LlamaContext,
    private readonly size: number,
    /** false: sequences are cleared when given back (no reuse). */
    readonly reuse: boolean,
    /** Most sessions waiting for a reservation at once (undefined: no limit). */
    private readonly maxWaiting?: number,
    /** Where this context's decodes take turns with other contexts' (null: on a GPU, no turns). */
    private readonly lane: ComputeLane | null = null,
  ) {
    for (let i = 0; i < size; i++) this.idle.add({ sequence: context.getSequence(), held: [], lastUsed: 0, background: null });
    this.reservations = new Permits(size);
  }

  /** Sequences no session holds a reservation for. */
  get reservable(): number {
    return this.reservations.available;
  }

  /** Reserves a sequence for a new session; waits while all are reserved. */
  async reserve(signal?: AbortSignal): Promise<void> {
    if (this.closed) throw new Error('This Qwen3Guard was disposed');
    signal?.throwIfAborted();
    if (this.reservations.tryAcquire()) return;
    const waiting = this.reservations.waitingCount;
    if (this.maxWaiting !== undefined && waiting >= this.maxWaiting) {
      throw new GuardBusyError(
        `The guard is busy: all ${this.size} sessions (maxSessions) are in use and ${waiting} more wait for one (maxWaiting ${this.maxWaiting}). ` +
          'Raise maxSessions (more KV memory) or maxWaiting (longer waits), or shed load before the guard.',
      );
    }
    await this.reservations.wait(signal);
  }

  /** Returns a reservation (a session ends, with or without a sequence). */
  unreserve(): void {
    this.reservations.release();
  }

  /**
   * Takes, for a session holding a reservation, the idle sequence whose kept ids share the longest prefix with
   * `ids` (the same conversation; most recently used first), or else the least recently used one. Its
   * background work is stopped first. A reservation guarantees an idle sequence.
   */
  async take(ids: readonly number[]): Promise<PooledSequence> {
    let best: PooledSequence | undefined;
    let bestMatch = -1;
    for (const entry of this.idle) {
      const match = commonPrefix(entry.held, ids);
      if (match > bestMatch || (match === bestMatch && entry.lastUsed > best!.lastUsed)) [best, bestMatch] = [entry, match];
    }
    if (!best) throw new Error('No idle sequence: take() needs a reservation');
    if (bestMatch < MIN_MATCH) best = [...this.idle].reduce((a, b) => (b.lastUsed < a.lastUsed ? b : a));
    this.idle.delete(best);
    best.lastUsed = ++this.clock;
    if (best.background) {
      best.background.cancel();
      await best.background.done;
    }
    return best;
  }

  /** Keeps the first `keep` held cells and erases the rest (a whole clear when nothing is kept: erasing from 0 re-evaluates). */
  async trim(entry: PooledSequence, keep: number): Promise<void> {
    keep = Math.min(keep, entry.held.length);
    entry.held.length = keep;
    if (keep === 0) await entry.sequence.clearHistory();
    else if (keep < entry.sequence.nextTokenIndex) await entry.sequence.eraseContextTokenRanges([{ start: keep, end: entry.sequence.nextTokenIndex }]);
  }

  /**
   * Gives a sequence back with the ids its cells hold as a plain prefix (null: nothing reusable), and the
   * reservation with it. `target` starts background work that aligns the cells with those ids (the next
   * turn's rendering), at low priority and stoppable between decodes; `onEvaluated` counts its tokens.
   */
  async give(entry: PooledSequence, held: number[] | null, target?: readonly number[], onEvaluated?: (tokens: number) => void): Promise<void> {
    if (!this.reuse || held === null || this.closed) {
      entry.held = [];
      await entry.sequence.clearHistory().catch(() => undefined);
    } else {
      entry.held = held;
      if (target) this.startAlign(entry, target.slice(0, entry.sequence.contextSize - 2), onEvaluated);
    }
    this.idle.add(entry);
    this.unreserve();
  }

  /** Runs a session's evaluation: background work waits while it runs and shortly after. */
  async foreground<T>(task: () => Promise<T>): Promise<T> {
    this.active++;
    try {
      return await task();
    } finally {
      this.active--;
      this.lastActive = performance.now();
    }
  }

  /** Runs a session's decode: foreground work, in turn with other contexts' decodes on the CPU. */
  decode<T>(task: () => Promise<T>): Promise<T> {
    return this.foreground(() => inLane(this.lane, this.context, task));
  }

  private startAlign(entry: PooledSequence, target: readonly number[], onEvaluated?: (tokens: number) => void): void {
    let cancelled = false;
    let wake = () => {};
    /** Waits until no session has evaluated for QUIET_MS; false when cancelled meanwhile (a cancel wakes it at once). */
    const quiet = async () => {
      while (!cancelled && (this.active > 0 || performance.now() - this.lastActive < QUIET_MS)) {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, QUIET_MS).unref();
          wake = () => (clearTimeout(timer), resolve());
        });
      }
      return !cancelled;
    };
    const run = async () => {
      if (!(await quiet())) return;
      await this.trim(entry, commonPrefix(entry.held, target));
      while (entry.held.length < target.length && (await quiet())) {
        const chunk = target.slice(entry.held.length, entry.held.length + BACKGROUND_CHUNK);
        // The target fits the context, so no shift happens here.
        await inLane(this.lane, this.context, () => entry.sequence.evaluateWithoutGeneratingNewTokens(chunk as Token[], { evaluationPriority: 1 }));
        entry.held.push(...chunk);
        onEvaluated?.(chunk.length);
      }
    };
    // A failed decode leaves the held prefix as it was; later cells are erased when the sequence is taken.
    const done = run()
      .catch(() => undefined)
      .finally(() => {
        if (entry.background?.done === done) entry.background = null;
      });
    entry.background = {
      done,
      cancel: () => {
        cancelled = true;
        wake();
      },
    };
  }

  /** Resolves when no background work runs. */
  async settled(): Promise<void> {
    // Background timers are unref'd (they must not keep a finished process alive), but whoever awaits this does.
    const keepAlive = setInterval(() => {}, 1_000);
    try {
      for (const entry of this.idle) await entry.background?.done;
    } finally {
      clearInterval(keepAlive);
    }
  }

  /** Stops background work and fails waiting sessions (the guard is being disposed). */
  async close(): Promise<void> {
    this.closed = true;
    this.reservations.rejectWaiting(new Error('The Qwen3Guard was disposed while waiting for a free session'));
    for (const entry of this.idle) entry.background?.cancel();
    await this.settled();
  }
}
