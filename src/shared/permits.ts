/**
 * A count of permits and a first-come queue of those waiting for one: a guard's sequences, a local Gen model's
 * sequences, a remote Gen's concurrent requests. A waiter whose signal aborts leaves the queue; a permit given
 * back goes to the first waiter, else back to the count.
 */
export class Permits {
  private readonly waiting: Array<{ grant: () => void; reject: (error: unknown) => void }> = [];

  constructor(private free: number) {}

  /** Permits free now. */
  get available(): number {
    return this.free;
  }

  /** How many wait for a permit (a caller may refuse a newcomer past a limit instead of queueing it). */
  get waitingCount(): number {
    return this.waiting.length;
  }

  /** Takes a free permit; false when none is free. */
  tryAcquire(): boolean {
    if (this.free === 0) return false;
    this.free--;
    return true;
  }

  /** Waits in the queue for a permit; rejects with the signal's reason when it aborts first. */
  wait(signal?: AbortSignal): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const waiter = {
        grant: () => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        },
        reject,
      };
      const onAbort = () => {
        const at = this.waiting.indexOf(waiter);
        if (at >= 0) this.waiting.splice(at, 1);
        reject(signal!.reason);
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.waiting.push(waiter);
    });
  }

  /** Gives a permit back: to the first waiter, else to the count. */
  release(): void {
    const next = this.waiting.shift();
    if (next) next.grant();
    else this.free++;
  }

  /** Fails everyone waiting (the owner is being disposed). */
  rejectWaiting(error: Error): void {
    for (const waiter of this.waiting.splice(0)) waiter.reject(error);
  }
}
