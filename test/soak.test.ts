import { describe, expect, it } from 'vitest';
import { runSoak, type SoakReport } from '../bench/soak.js';

/**
 * `npm run soak` with reduced counts: many streams through one guard, a third aborted at random points, a
 * quarter unsafe. Correctness holds at any count; memory and latency drift are judged by the full run
 * (BENCHMARKS.md), since a few hundred streams on a shared CI machine are too few for them.
 */
function expectSound(report: SoakReport): void {
  expect(report.hung).toBe(0);
  expect(report.unhandledRejections).toBe(0);
  expect(report.leakedUnsafe).toBe(0);
  expect(report.sessionsReturned).toBe(true);
  expect(report.ended.stop + report.ended.contentFilter + report.ended.aborted).toBe(report.streams);
  expect(report.ended.contentFilter).toBeGreaterThan(0);
  expect(report.ended.aborted).toBeGreaterThan(0);
}

describe('soak (reduced)', () => {
  it('through qwen3guard serve: every stream ends, every session is freed on the server, no unsafe text', async () => {
    expectSound(await runSoak({ target: 'serve', streams: 120, concurrency: 16, maxSessions: 4, window: 40, seed: 12 }));
  });

  it('in process: ends every stream, returns every session, leaves nothing unhandled and shows no unsafe text', async () => {
    expectSound(await runSoak({ streams: 160, concurrency: 16, maxSessions: 4, window: 40, seed: 11 }));
  });
});
