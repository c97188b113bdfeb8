/**
 * npm run soak — many streams through one guard, as a busy chat server sees them: `concurrency` at a time
 * over `maxSessions` sequences (the rest wait in the guard's queue), a third aborted by the client at random
 * points, a quarter turning unsafe. Checks that every stream ends, every session is returned, nothing is left
 * unhandled, resident memory stops growing after warm-up and latency does not drift.
 *
 * Target: SOAK_TARGET=serve (the default of `npm run soak`) runs the streams through a `qwen3guard serve`
 * process with its default settings, over the remote client, and measures the server's resident memory;
 * SOAK_TARGET=local runs them through a guard in this process. Counts: SOAK_STREAMS (default 10000 for serve,
 * 2000 local), SOAK_CONCURRENCY (32), SOAK_SESSIONS (4, local only: serve keeps its default). The test suite
 * runs both with reduced counts (test/soak.test.ts). The guard is the planted fixture (deterministic unsafe
 * words), so the load is the middleware's and the engine's bookkeeping more than the model's arithmetic.
 */
import { pathToFileURL } from 'node:url';
import { streamText, wrapLanguageModel, type LanguageModelMiddleware } from 'ai';
import { readFile } from 'node:fs/promises';
import { LocalGuard } from '../src/engine/guard.js';
import { qwen3GuardMiddleware, Qwen3Guard, type StreamGuard } from '../src/index.js';
import { startServe } from '../test/fixtures/serve-process.js';
import { convertedModel, plantedCheckpoint } from '../test/fixtures/cache.js';
import { Rng } from '../test/fixtures/random.js';
import { scriptedModel, split } from '../test/fixtures/scripted-model.js';

export interface SoakOptions {
  streams: number;
  concurrency: number;
  maxSessions: number;
  /** Streams at the start and at the end compared for latency and memory. */
  window: number;
  seed?: number;
  /** The engine's conversation KV reuse (default on). */
  reuseKv?: boolean;
  /** Share of streams the client aborts (default a third). */
  abortShare?: number;
  /** Through a guard in this process (default), or a `qwen3guard serve` process with its default settings. */
  target?: 'local' | 'serve';
}

/** The guard under soak, with how its process's memory and its free sessions are read. */
interface Target {
  guard: StreamGuard;
  rssMb(): Promise<number>;
  /** Whether every session is free again. */
  sessionsReturned(): Promise<boolean>;
  close(): Promise<void>;
}

async function localTarget(options: SoakOptions): Promise<Target> {
  const modelPath = await convertedModel(await plantedCheckpoint(), 'q8_0');
  const guard = await LocalGuard.load({ modelPath, gpu: false, threads: 2, contextSize: 512, maxSessions: options.maxSessions, reuseKv: options.reuseKv ?? true });
  return {
    guard,
    rssMb: async () => rssMb(),
    async sessionsReturned() {
      // Every sequence is back: maxSessions sessions are granted at once.
      const probe = AbortSignal.timeout(5000);
      return Promise.all(Array.from({ length: options.maxSessions }, () => guard.createSession({ signal: probe })))
        .then(async (sessions) => (await Promise.all(sessions.map((s) => s.dispose())), true))
        .catch(() => false);
    },
    async close() {
      if (process.env.SOAK_STATS) console.error(JSON.stringify(guard.stats));
      await guard.dispose();
    },
  };
}

/** A `qwen3guard serve` with its defaults (only the model, a free port and the threads given). */
async function serveTarget(): Promise<Target> {
  const server = await startServe();
  const guard = Qwen3Guard.remote({ baseURL: server.url, timeoutMs: 60_000 });
  const metric = async (name: string) => Number(new RegExp(`^${name} (\\d+)$`, 'm').exec(await (await fetch(`${server.url}/metrics`)).text())?.[1]);
  return {
    guard,
    rssMb: async () => Number(/^VmRSS:\s+(\d+) kB$/m.exec(await readFile(`/proc/${server.pid}/status`, 'utf8'))![1]) / 1024,
    async sessionsReturned() {
      // Sessions end with the client's DELETE (sent as each stream ends): give the last ones a moment.
      for (let i = 0; i < 50 && (await metric('qwen3guard_sessions_open')) !== 0; i++) await new Promise((r) => setTimeout(r, 100));
      return (await metric('qwen3guard_sessions_open')) === 0;
    },
    async close() {
      await guard.dispose();
      server.kill('SIGTERM');
      await server.exited;
    },
  };
}

export interface SoakReport {
  streams: number;
  ended: { stop: number; contentFilter: number; aborted: number; other: number };
  hung: number;
  unhandledRejections: number;
  leakedUnsafe: number;
  sessionsReturned: boolean;
  rssAfterWarmupMb: number;
  rssEndMb: number;
  rssGrowthMb: number;
  /** This process's JS heap after a full GC, after warm-up and at the end: in the serve target it holds the
   *  remote client (the app's side), whose per-stream state must not accumulate either. */
  heapAfterWarmupMb: number;
  heapEndMb: number;
  /** p95 latency of each successive window of `window` streams, in order. */
  p95ByWindowMs: number[];
  p95FirstMs: number;
  p95LastMs: number;
  wallS: number;
}

const SENTENCES = [
  'The river winds past old mills and quiet farms.',
  'Herons wait in the shallows while the light turns to copper.',
  'The town prepares for the autumn market with bread and apples.',
  'Children run along the towpath and wave at the boats.',
];
const UNSAFE = 'Then mix it all to make a bomb quickly and leave.';

const quantile = (xs: number[], q: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(q * xs.length))] ?? 0;
const gc = () => (globalThis as { gc?: () => void }).gc?.();
const rssMb = () => {
  gc();
  return process.memoryUsage().rss / 2 ** 20;
};
const heapMb = () => {
  gc();
  return process.memoryUsage().heapUsed / 2 ** 20;
};

export async function runSoak(options: SoakOptions): Promise<SoakReport> {
  const rng = new Rng(options.seed ?? 2026);
  const target = options.target === 'serve' ? await serveTarget() : await localTarget(options);
  const middleware = qwen3GuardMiddleware({ guard: target.guard }) as LanguageModelMiddleware;
  let unhandled = 0;
  const onUnhandled = () => unhandled++;
  process.on('unhandledRejection', onUnhandled);
  const ended = { stop: 0, contentFilter: 0, aborted: 0, other: 0 };
  const latencies: number[] = new Array(options.streams);
  let hung = 0;
  let leakedUnsafe = 0;
  let rssAfterWarmup = 0;
  let heapAfterWarmup = 0;
  const started = performance.now();

  async function one(i: number): Promise<void> {
    const unsafe = rng.next() < 0.25;
    const abortAt = rng.next() < (options.abortShare ?? 1 / 3) ? rng.next() * 150 : null;
    const sentences = Array.from({ length: 2 + Math.floor(rng.next() * 3) }, () => SENTENCES[Math.floor(rng.next() * SENTENCES.length)]);
    if (unsafe) sentences.splice(1, 0, UNSAFE);
    const answer = sentences.join(' ');
    const client = new AbortController();
    const timer = abortAt === null ? null : setTimeout(() => client.abort(new Error('client left')), abortAt);
    const hang = setTimeout(() => client.abort(new Error('hung')), 60_000);
    const t0 = performance.now();
    let text = '';
    try {
      const result = streamText({
        model: wrapLanguageModel({ model: scriptedModel({ answer: split(answer, 'random', i + 1), delayMs: rng.next() < 0.5 ? 1 : 0 }).model, middleware }),
        prompt: 'Tell me about the valley.',
        abortSignal: client.signal,
        onError: () => undefined,
      });
      let sawAbort = false;
      for await (const part of result.fullStream) {
        if (part.type === 'text-delta') text += part.text;
        if (part.type === 'abort') sawAbort = true;
      }
      if (client.signal.reason?.message === 'hung') hung++;
      else if (sawAbort) ended.aborted++;
      else {
        const reason = await result.finishReason;
        if (reason === 'stop') ended.stop++;
        else if (reason === 'content-filter') ended.contentFilter++;
        else ended.other++;
      }
    } catch {
      if (client.signal.aborted) ended.aborted++;
      else ended.other++;
    } finally {
      if (timer) clearTimeout(timer);
      clearTimeout(hang);
    }
    if (/bomb/.test(text)) leakedUnsafe++;
    latencies[i] = performance.now() - t0;
  }

  let next = 0;
  async function worker(): Promise<void> {
    while (next < options.streams) {
      const i = next++;
      await one(i);
      if (i === options.window - 1) {
        rssAfterWarmup = await target.rssMb();
        heapAfterWarmup = heapMb();
      }
    }
  }
  await Promise.all(Array.from({ length: options.concurrency }, worker));
  const rssEnd = await target.rssMb();
  const sessionsReturned = await target.sessionsReturned();
  await new Promise((r) => setTimeout(r, 50));
  const heapEnd = heapMb();
  process.off('unhandledRejection', onUnhandled);
  await target.close();
  const first = latencies.slice(0, options.window);
  const last = latencies.slice(-options.window);
  return {
    streams: options.streams,
    ended,
    hung,
    unhandledRejections: unhandled,
    leakedUnsafe,
    sessionsReturned,
    rssAfterWarmupMb: Math.round(rssAfterWarmup),
    rssEndMb: Math.round(rssEnd),
    rssGrowthMb: Math.round(rssEnd - rssAfterWarmup),
    heapAfterWarmupMb: Math.round(heapAfterWarmup),
    heapEndMb: Math.round(heapEnd),
    p95ByWindowMs: Array.from({ length: Math.floor(options.streams / options.window) }, (_, w) => Math.round(quantile(latencies.slice(w * options.window, (w + 1) * options.window), 0.95))),
    p95FirstMs: Math.round(quantile(first, 0.95)),
    p95LastMs: Math.round(quantile(last, 0.95)),
    wallS: Math.round((performance.now() - started) / 100) / 10,
  };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const env = (name: string, fallback: number) => Number(process.env[name] ?? fallback);
  const target = process.env.SOAK_TARGET === 'local' ? 'local' : 'serve';
  const options = {
    target,
    streams: env('SOAK_STREAMS', target === 'serve' ? 10_000 : 2000),
    concurrency: env('SOAK_CONCURRENCY', 32),
    maxSessions: env('SOAK_SESSIONS', 4),
    window: env('SOAK_WINDOW', 500),
    reuseKv: process.env.SOAK_REUSE !== '0',
    abortShare: env('SOAK_ABORTS', 1 / 3),
  } as const;
  console.log(`soak: ${options.streams} streams through ${target === 'serve' ? 'qwen3guard serve (its defaults)' : `a local guard (maxSessions ${options.maxSessions})`}, ${options.concurrency} at a time`);
  const report = await runSoak(options);
  console.log(JSON.stringify(report, null, 2));
  const problems = [
    report.hung > 0 && `${report.hung} streams hung`,
    report.unhandledRejections > 0 && `${report.unhandledRejections} unhandled rejections`,
    report.leakedUnsafe > 0 && `${report.leakedUnsafe} streams showed unsafe text`,
    !report.sessionsReturned && 'guard sessions were not all returned',
    report.rssGrowthMb >= (target === 'serve' ? 100 : 50) && `resident memory grew ${report.rssGrowthMb} MB after warm-up`,
    report.heapEndMb - report.heapAfterWarmupMb >= 25 && `this process's JS heap grew from ${report.heapAfterWarmupMb} to ${report.heapEndMb} MB`,
    report.p95LastMs > report.p95FirstMs * 1.1 + 20 && `p95 latency drifted from ${report.p95FirstMs} to ${report.p95LastMs} ms`,
  ].filter(Boolean);
  console.log(problems.length ? `FAILED: ${problems.join('; ')}` : 'ok: every stream ended, every session returned, no growth, no drift');
  process.exitCode = problems.length ? 1 : 0;
}
