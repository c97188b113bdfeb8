import type { Llama, LlamaContext } from 'node-llama-cpp';

/**
 * Decodes of different llama.cpp contexts take turns on the CPU. Each context runs `threads` (default: every math
 * core) threads that spin at the graph's barriers, so two contexts decoding at once oversubscribe the cores and
 * both slow down far past their share: two contexts of the 0.6B guard, 2 threads each on 2 cores, took 15.2 s at
 * once against 6.3 s one after the other (4-token chunks; 3.5 s against 2.4 s at 64). It happens whenever a Stream
 * guard and a local Gen classifier (or two guards) share a process: Gen's prompt check runs while the Stream
 * session reads the same conversation.
 *
 * Tasks of one context run together (node-llama-cpp batches concurrent sequences of a context into one decode).
 * A task of another context waits until the running ones end; while one waits, new tasks of the running context
 * queue behind it, so neither side starves. Tasks must be leaf decodes: a task waiting on another context's task
 * would never be granted.
 */
export class ComputeLane {
  private owner: LlamaContext | null = null;
  private running = 0;
  private readonly queue: Array<{ owner: LlamaContext; start: () => void }> = [];
  /** Times the lane passed from one context to another (a measure of how often contexts met). */
  handovers = 0;

  /** Runs `task` (a decode on `owner`) once no other context's decode runs. */
  async run<T>(owner: LlamaContext, task: () => Promise<T>): Promise<T> {
    if (this.owner === null || (this.owner === owner && this.queue.length === 0)) {
      this.owner = owner;
      this.running++;
    } else {
      await new Promise<void>((start) => this.queue.push({ owner, start }));
    }
    try {
      return await task();
    } finally {
      this.leave();
    }
  }

  private leave(): void {
    if (--this.running > 0) return;
    const next = this.queue[0];
    if (!next) {
      this.owner = null;
      return;
    }
    // The next context's queued tasks all start together, as they would have batched.
    if (next.owner !== this.owner) this.handovers++;
    this.owner = next.owner;
    const starting = this.queue.filter((q) => q.owner === next.owner);
    this.queue.splice(0, this.queue.length, ...this.queue.filter((q) => q.owner !== next.owner));
    this.running = starting.length;
    for (const q of starting) q.start();
  }
}

const lanes = new WeakMap<Llama, ComputeLane>();

/**
 * The lane of a Llama's contexts on the CPU; null on a GPU, where contexts share the device's own queue and the
 * CPU threads mostly wait.
 */
export function computeLane(llama: Llama): ComputeLane | null {
  if (llama.gpu !== false) return null;
  let lane = lanes.get(llama);
  if (!lane) lanes.set(llama, (lane = new ComputeLane()));
  return lane;
}

/** Runs a decode of `context` in its lane (directly when there is none). */
export function inLane<T>(lane: ComputeLane | null, context: LlamaContext, task: () => Promise<T>): Promise<T> {
  return lane ? lane.run(context, task) : task();
}
