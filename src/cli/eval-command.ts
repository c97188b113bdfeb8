import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { readDataset } from '../eval/dataset.js';
import { evaluate, type EvalProgress, type EvaluateResult } from '../eval/evaluate.js';
import { fetchHubDataset, parseHubDataset } from '../eval/hf-dataset.js';
import { loadLocalGuard, loadRemoteGuard, type GuardLoadOptions, type LoadedGuard, type RemoteGuardFactory } from '../eval/load-guard.js';
import { progressText } from '../eval/progress.js';
import { renderReport } from '../eval/report/html.js';
import { appendResult, readResults, ResultsFileError } from '../eval/results-file.js';
import { summaryTable } from '../eval/table.js';
import type { EvalItem, ItemResult } from '../eval/types.js';
import { CommandError, EVAL_HELP, parseCommandLine, parseCount, parseThreads, UsageError } from './args.js';
import { resolveModelArg } from './model-file.js';
import { ProgressLine } from './render.js';

export interface EvalArgs {
  model: string;
  data: string;
  out?: string;
  summary?: string;
  report?: string;
  compare?: string;
  limit?: number;
  concurrency: number;
  threads?: number;
  cache?: string;
  probabilities: boolean;
}

/** Reads `eval`'s arguments; null when help was asked for. */
export function parseEvalArgs(args: string[]): EvalArgs | null {
  const { values } = parseCommandLine({
    args,
    allowPositionals: false,
    strict: true,
    options: {
      model: { type: 'string', short: 'm' },
      data: { type: 'string', short: 'd' },
      out: { type: 'string', short: 'o' },
      summary: { type: 'string' },
      report: { type: 'string' },
      compare: { type: 'string' },
      limit: { type: 'string' },
      concurrency: { type: 'string' },
      threads: { type: 'string' },
      cache: { type: 'string' },
      'no-probabilities': { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) return null;
  if (values.model === undefined) throw new UsageError('missing --model <name|file.gguf>');
  if (values.data === undefined) throw new UsageError('missing --data <file.jsonl|hf:owner/name:split>');
  return {
    model: values.model,
    data: values.data,
    out: values.out,
    summary: values.summary,
    report: values.report,
    compare: values.compare,
    limit: parseCount('--limit', values.limit),
    concurrency: parseCount('--concurrency', values.concurrency) ?? 1,
    threads: parseThreads(values.threads),
    cache: values.cache,
    probabilities: !values['no-probabilities'],
  };
}

export interface EvalHooks {
  /** The client of a remote guard service, for `--model <url>` (see RemoteGuardFactory). */
  remoteGuard?: RemoteGuardFactory;
}

async function loadGuard(spec: string, options: GuardLoadOptions, hooks: EvalHooks): Promise<LoadedGuard> {
  if (/^https?:\/\//i.test(spec)) return (hooks.remoteGuard ?? loadRemoteGuard)(spec, options);
  return loadLocalGuard(await resolveModelArg(spec), options);
}

/** Progress on stderr: a bar with the time left on a terminal, else a plain line every 10 s. */
function progressReporter(model: string): { update(p: EvalProgress): void; done(): void } {
  const started = performance.now();
  let first: number | undefined;
  const line = process.stderr.isTTY ? new ProgressLine(process.stderr) : undefined;
  let lastPlain = started;
  return {
    update(p) {
      first ??= p.done;
      const text = progressText(p, first, performance.now() - started, line !== undefined);
      if (line) line.update(`${model}: ${text}`, p.done + p.failed === p.total);
      else if (performance.now() - lastPlain >= 10_000) {
        lastPlain = performance.now();
        process.stderr.write(`qwen3guard eval: ${model}: ${text}\n`);
      }
    },
    done: () => line?.clear(),
  };
}

async function loadItems(args: EvalArgs, signal: AbortSignal): Promise<{ items: EvalItem[]; skipped: number; all: Set<string> }> {
  const hub = parseHubDataset(args.data);
  const path = hub ? await fetchHubDataset(hub, { cacheDir: args.cache && join(args.cache, 'datasets'), signal }) : args.data;
  const dataset = await readDataset(path).catch((error: NodeJS.ErrnoException) => {
    throw error.code === 'ENOENT' ? new CommandError(`--data ${args.data}: no such file`) : error;
  });
  for (const p of dataset.problems) process.stderr.write(`qwen3guard eval: ${args.data}, line ${p.line}: ${p.message} (skipped)\n`);
  const items = args.limit ? dataset.items.slice(0, args.limit) : dataset.items;
  if (!items.length) throw new CommandError(`${args.data}: no usable items`);
  return { items, skipped: dataset.problems.length, all: new Set(dataset.items.map((i) => i.id)) };
}

async function earlierResults(out: string | undefined, ids: Set<string>): Promise<ItemResult[]> {
  if (!out) return [];
  const done = await readResults(out).catch((error: unknown) => {
    throw error instanceof ResultsFileError ? new CommandError(error.message) : error;
  });
  const stranger = done.find((r) => !ids.has(r.id));
  if (stranger) throw new CommandError(`${out} holds a result for item '${stranger.id}', which this data does not have: it was written for other data; give --out a new file`);
  return done;
}

/** `qwen3guard eval`: the table on stdout, progress and bad lines on stderr; exit 130 when interrupted. */
export async function runEval(argv: string[], hooks: EvalHooks = {}): Promise<number> {
  const args = parseEvalArgs(argv);
  if (!args) {
    process.stdout.write(`${EVAL_HELP}\n`);
    return 0;
  }
  const interrupt = new AbortController();
  // `on`, not `once`: a signal-exit handler (loaded with node-llama-cpp) re-raises a SIGINT that no other
  // listener is left to handle, which kills the process before the finished items are reported. A second
  // Ctrl-C quits at once.
  const onSigint = () => (interrupt.signal.aborted ? process.exit(130) : interrupt.abort(new Error('interrupted')));
  process.on('SIGINT', onSigint);
  try {
    const { items, skipped, all } = await loadItems(args, interrupt.signal);
    const done = await earlierResults(args.out, all);
    const runs: EvaluateResult[] = [];
    for (const model of [args.model, ...(args.compare ? [args.compare] : [])]) {
      const loaded = await loadGuard(model, { concurrency: args.concurrency, threads: args.threads, probabilities: args.probabilities }, hooks);
      const progress = progressReporter(model);
      try {
        const run = await evaluate({
          guard: loaded.guard,
          items,
          model,
          data: args.data,
          concurrency: args.concurrency,
          signal: interrupt.signal,
          done,
          skippedLines: skipped,
          onResult: args.out ? (r) => appendResult(args.out!, r) : undefined,
          onFailure: (f) => process.stderr.write(`qwen3guard eval: ${model}: item '${f.id}' (line ${f.line}) failed: ${f.message}\n`),
          onProgress: (p) => progress.update(p),
        });
        runs.push(run);
        if (run.interrupted) {
          const kept = args.out ? `every finished item is in ${args.out}: run the same command to resume` : 'pass --out FILE to keep finished items for a resumed run';
          process.stderr.write(`qwen3guard eval: interrupted; ${kept}\n`);
          return 130;
        }
      } finally {
        progress.done();
        await loaded.dispose();
      }
    }
    const summaries = runs.map((r) => r.summary);
    process.stdout.write(summaryTable(summaries));
    if (args.summary) await writeFile(args.summary, `${JSON.stringify({ models: summaries }, null, 2)}\n`);
    if (args.report) await writeFile(args.report, renderReport({ summaries, items, results: runs.map((r) => r.results) }));
    return 0;
  } catch (error) {
    if (!interrupt.signal.aborted) throw error;
    process.stderr.write('qwen3guard eval: interrupted\n');
    return 130;
  } finally {
    process.off('SIGINT', onSigint);
  }
}
