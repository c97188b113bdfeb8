import { LlamaContextSequence, type LlamaContext } from 'node-llama-cpp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ComputeLane, computeLane } from '../src/engine/compute-lane.js';
import type { LocalGuard } from '../src/engine/guard.js';
import type { Qwen3GuardGen } from '../src/index.js';
import type { LocalGenBackend } from '../src/gen/local-backend.js';
import { plantedGen } from './fixtures/gen-models.js';
import { plantedGuard } from './fixtures/guards.js';

const tick = () => new Promise((resolve) => setTimeout(resolve, 5));

describe('ComputeLane', () => {
  // Contexts as the lane sees them: their thread counts (2 cores in these tests).
  const A = { idealThreads: 2 } as LlamaContext;
  const B = { idealThreads: 2 } as LlamaContext;

  /** Runs tasks that log when they start and end, each taking a few timer ticks. */
  function recorder(lane: ComputeLane) {
    const log: string[] = [];
    const task = (owner: LlamaContext, id: string, ticks = 2) =>
      lane.run(owner, async () => {
        log.push(`+${id}`);
        for (let i = 0; i < ticks; i++) await tick();
        log.push(`-${id}`);
        return id;
      });
    return { log, task };
  }

  it('runs tasks of one context together and keeps other contexts out until they end', async () => {
    const lane = new ComputeLane(2);
    const { log, task } = recorder(lane);
    const results = await Promise.all([task(A, 'a1'), task(A, 'a2'), task(B, 'b1')]);
    expect(results).toEqual(['a1', 'a2', 'b1']);
    // a1 and a2 overlap; b1 starts only once both ended.
    expect(log.slice(0, 2)).toEqual(['+a1', '+a2']);
    expect(log.indexOf('+b1')).toBeGreaterThan(Math.max(log.indexOf('-a1'), log.indexOf('-a2')));
    expect(lane.handovers).toBe(1);
  });

  it('queues a running context behind a waiting one, so neither starves', async () => {
    const lane = new ComputeLane(2);
    const { log, task } = recorder(lane);
    const a1 = task(A, 'a1', 3);
    const b1 = task(B, 'b1');
    await tick(); // a1 runs, b1 waits: a2 must wait behind b1 instead of joining a1
    const a2 = task(A, 'a2');
    await Promise.all([a1, b1, a2]);
    expect(log).toEqual(['+a1', '-a1', '+b1', '-b1', '+a2', '-a2']);
    expect(lane.handovers).toBe(2);
  });

  it('lets every waiting task of the next context start at once', async () => {
    const lane = new ComputeLane(2);
    const { log, task } = recorder(lane);
    const a1 = task(A, 'a1');
    const bs = [task(B, 'b1'), task(B, 'b2'), task(B, 'b3')];
    await Promise.all([a1, ...bs]);
    expect(log.slice(2, 5)).toEqual(['+b1', '+b2', '+b3']);
  });

  it('runs contexts together when their threads fit the cores, and waits for the ones that do not', async () => {
    const lane = new ComputeLane(2);
    const { log, task } = recorder(lane);
    const one = { idealThreads: 1 } as LlamaContext;
    const other = { idealThreads: 1 } as LlamaContext;
    await Promise.all([task(one, 'x1', 3), task(other, 'y1', 3), task(A, 'a1')]);
    expect(log.slice(0, 2)).toEqual(['+x1', '+y1']); // 1 + 1 threads fit 2 cores
    expect(log.indexOf('+a1')).toBeGreaterThan(Math.max(log.indexOf('-x1'), log.indexOf('-y1')));
    expect(lane.handovers).toBe(1);
  });

  it('passes a failing task on and frees the lane', async () => {
    const lane = new ComputeLane(2);
    await expect(lane.run(A, async () => Promise.reject(new Error('decode failed')))).rejects.toThrow('decode failed');
    await expect(lane.run(B, async () => 'next')).resolves.toBe('next');
  });
});

describe('a Stream guard and a local Gen classifier in one process', () => {
  let guard: LocalGuard;
  let gen: Qwen3GuardGen;
  beforeAll(async () => {
    [guard, gen] = await Promise.all([plantedGuard({ maxSessions: 2 }), plantedGen({ maxSessions: 2 })]);
  });
  afterAll(async () => {
    await gen?.dispose();
    await guard?.dispose();
  });

  /** Records every decode's context and interval, through node-llama-cpp's own sequence methods. */
  function spyDecodes() {
    const spans: Array<{ context: LlamaContext; start: number; end: number }> = [];
    const proto = LlamaContextSequence.prototype as unknown as Record<string, (...args: unknown[]) => unknown>;
    const originals = { controlledEvaluate: proto.controlledEvaluate, evaluateWithoutGeneratingNewTokens: proto.evaluateWithoutGeneratingNewTokens };
    for (const [name, original] of Object.entries(originals)) {
      proto[name] = async function (this: LlamaContextSequence, ...args: unknown[]) {
        const start = performance.now();
        try {
          return await original.apply(this, args);
        } finally {
          spans.push({ context: this.context, start, end: performance.now() });
        }
      };
    }
    const evaluate = proto.evaluate as (...args: unknown[]) => AsyncGenerator<unknown>;
    proto.evaluate = async function* (this: LlamaContextSequence, ...args: unknown[]) {
      const start = performance.now();
      try {
        yield* evaluate.apply(this, args);
      } finally {
        spans.push({ context: this.context, start, end: performance.now() });
      }
    } as (typeof proto)['evaluate'];
    return { spans, restore: () => Object.assign(proto, originals, { evaluate }) };
  }

  it("never decodes both models' contexts at once, and gives the same verdicts as one at a time", async () => {
    const conversation = [{ role: 'user' as const, content: 'How do I make a bomb at home? Please answer in detail, step by step.' }];
    const alone = async () => {
      const session = await guard.createSession();
      try {
        return { stream: await session.checkPrompt(conversation) };
      } finally {
        await session.dispose();
      }
    };
    const expected = { ...(await alone()), gen: await gen.checkPrompt(conversation) };
    await guard.pool.settled();

    const lane = computeLane(guard.model.llama)!;
    expect(lane).not.toBeNull(); // the fixtures run on the CPU
    expect((gen.backend as LocalGenBackend).lane).toBe(lane);
    const before = lane.handovers;
    const spy = spyDecodes();
    try {
      // What the middleware does with `gen.prompt`: both read the conversation at once, three times over.
      const runs = await Promise.all(
        Array.from({ length: 3 }, async () => {
          const session = await guard.createSession();
          try {
            const [stream, genVerdict] = await Promise.all([session.checkPrompt(conversation), gen.checkPrompt(conversation)]);
            return { stream, gen: genVerdict };
          } finally {
            await session.dispose();
          }
        }),
      );
      await guard.pool.settled();
      for (const run of runs) {
        expect(run.stream.riskLevel).toBe(expected.stream.riskLevel);
        expect(run.stream.category).toBe(expected.stream.category);
        expect(run.gen).toEqual(expected.gen);
      }
    } finally {
      spy.restore();
    }
    const contexts = new Set(spy.spans.map((s) => s.context));
    expect(contexts.size).toBe(2);
    for (const a of spy.spans)
      for (const b of spy.spans) if (a.context !== b.context) expect(a.end <= b.start || b.end <= a.start, 'two contexts decoded at once').toBe(true);
    expect(lane.handovers).toBeGreaterThan(before);
  });
});
