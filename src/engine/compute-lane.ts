import type { Llama, LlamaContext } from 'node-llama-cpp';

/**
 * Decodes of different llama.cpp contexts take turns on the CPU when their threads would not fit its cores. Each
 * context runs `threads` (default: every math core) threads that spin at the graph's barriers, so two contexts
 * decoding at once on too few cores both slow down far past their share: two contexts of the 0.6B guard, 2
 * threads each on 2 cores, took 15.0 s at once against 6.2 s one after the other (4-token chunks; 3.4 s against
 * 2.0 s at 64, `npm run bench:contexts`). It happens whenever a Stream guard and a local Gen classifier (or two
 * guards) share a process: Gen's prompt check runs while the Stream session reads the same conversation.
 *
 * Contexts whose threads fit the cores together run at once. Tasks of one context run together (node-llama-cpp
 * batches concurrent sequences of a context into one decode). A task of a context that does not fit waits until
 * enough running ones end; while one waits, new tasks queue behind it (even those of a running context), so no
 * context starves. Tasks must be leaf decodes: a task waiting on another context's task might never be admitted.
 */
export class ComputeLane {
  /** Running tasks per context. */
  private readonly running = new Map<LlamaContext, number>();
  private threadsInUse = 0;
  private readonly queue: Array<{ owner: LlamaContext; start: () => void }> = [];
  /** Times a context was admitted after waiting for others (a measure of how often contexts met). */
  handovers = 0;

  constructor(
    /** The math cores the contexts share. */
    readonly cores: number,
  ) {}

  /** Runs `task` (a decode on `owner`) once `owner`'s threads fit beside the running contexts'. */
  async run<T>(owner: LlamaContext, task: () => Promise<T>): Promise<T> {
    if (this.queue.length === 0 && this.fits(owner)) this.admit(owner);
    else await new Promise<void>((start) => this.queue.push({ owner, start }));
    try {
      return await task();
    } finally {
      this.leave(owner);
    }
  }

  private fits(owner: LlamaContext): boolean {
    return this.running.has(owner) || this.running.size === 0 || this.threadsInUse + owner.idealThreads <= this.cores;
  }

  private admit(owner: LlamaContext): void {
    const tasks = this.running.get(owner) ?? 0;
    if (tasks === 0) this.threadsInUse += owner.idealThreads;
    this.running.set(owner, tasks + 1);
  }

  private leave(owner: LlamaContext): void {
    const tasks = this.running.get(owner)! - 1;
    if (tasks > 0) {
      this.running.set(owner, tasks);
      return;
    }
    this.running.delete(owner);
    this.threadsInUse -= owner.idealThreads;
    // Waiting contexts are admitted in order while they fit; all waiting tasks of one start together, as they would have batched.
    while (this.queue.length > 0 && this.fits(this.queue[0].owner)) {
      const next = this.queue[0].owner;
      if (!this.running.has(next)) this.handovers++;
      const starting = this.queue.filter((q) => q.owner === next);
      this.queue.splice(0, this.queue.length, ...this.queue.filter((q) => q.owner !== next));
      for (const q of starting) {
        this.admit(next);
        q.start();
      }
    }
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
  if (!lane) lanes.set(llama, (lane = new ComputeLane(llama.cpuMathCores)));
  return lane;
}

/** Runs a decode of `context` in its lane (directly when there is none). */
export function inLane<T>(lane: ComputeLane | null, context: LlamaContext, task: () => Promise<T>): Promise<T> {
  return lane ? lane.run(context, task) : task();
}
