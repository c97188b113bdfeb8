import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GuardBusyError } from '../src/guard/errors.js';
import type { Qwen3GuardGen } from '../src/index.js';
import { Permits } from '../src/shared/permits.js';
import { plantedGen } from './fixtures/gen-models.js';

describe('Permits', () => {
  it('gives permits first come, first served, and takes an aborted waiter out of the queue', async () => {
    const permits = new Permits(1);
    expect(permits.tryAcquire()).toBe(true);
    expect(permits.tryAcquire()).toBe(false);
    const order: string[] = [];
    const abort = new AbortController();
    const first = permits.wait().then(() => order.push('first'));
    const aborted = permits.wait(abort.signal).then(() => order.push('aborted'));
    const third = permits.wait().then(() => order.push('third'));
    expect(permits.waitingCount).toBe(3);
    abort.abort(new Error('client left'));
    await expect(aborted).rejects.toThrow('client left');
    expect(permits.waitingCount).toBe(2);
    permits.release();
    await first;
    permits.release();
    await third;
    expect(order).toEqual(['first', 'third']);
    permits.release();
    expect(permits.available).toBe(1);
  });

  it('fails every waiter on rejectWaiting', async () => {
    const permits = new Permits(0);
    const waits = [permits.wait(), permits.wait()];
    permits.rejectWaiting(new Error('disposed'));
    for (const w of waits) await expect(w).rejects.toThrow('disposed');
    expect(permits.waitingCount).toBe(0);
  });
});

describe('a local Gen classifier with every sequence in use', () => {
  let gen: Qwen3GuardGen;
  beforeAll(async () => {
    gen = await plantedGen({ maxSessions: 1, maxWaiting: 1 });
  });
  afterAll(async () => {
    await gen?.dispose();
  });

  it('queues one check, refuses the next with GuardBusyError, and drops an aborted waiter', async () => {
    const conversation = [{ role: 'user' as const, content: 'Tell me about rivers.' }];
    const expected = await gen.checkPrompt(conversation);
    const running = gen.checkPrompt(conversation);
    const waiting = gen.checkPrompt(conversation);
    await expect(gen.checkPrompt(conversation)).rejects.toThrow(GuardBusyError);
    expect(await running).toEqual(expected);
    expect(await waiting).toEqual(expected);

    const abort = new AbortController();
    const busy = gen.checkPrompt(conversation);
    const aborted = gen.checkPrompt(conversation, { signal: abort.signal });
    abort.abort(new Error('client left'));
    await expect(aborted).rejects.toThrow('client left');
    expect(await busy).toEqual(expected);
    // The aborted waiter left no hole: the sequence is free again.
    expect(await gen.checkPrompt(conversation)).toEqual(expected);
  });
});
