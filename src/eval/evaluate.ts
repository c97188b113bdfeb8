import { z } from 'zod';
import { describeValue, parseOptions } from '../shared/validation.js';
import { guardKind, type EvalGenGuard, type EvalGuard, type EvalStreamGuard } from './guard-shape.js';
import { runGenItem, runStreamItem } from './run-item.js';
import { summarize, type EvalSummary } from './summary.js';
import type { EvalItem, ItemResult } from './types.js';

/** An item whose evaluation failed (the guard threw, or its span covers no token); it is not in the results. */
export interface ItemFailure {
  id: string;
  line: number;
  message: string;
}

export interface EvalProgress {
  /** Items with a result (those resumed included). */
  done: number;
  failed: number;
  total: number;
}

const fn = (what: string) => z.custom<(...args: never[]) => unknown>((f) => typeof f === 'function', { error: (issue) => `must be a function (${what}), got ${describeValue(issue.input)}` });

const evaluateSchema = z
  .object({
    /** A Stream guard (`Qwen3Guard`, or anything with its `createSession` shape) or Qwen3Guard-Gen. */
    guard: z.custom<EvalGuard>((g) => guardKind(g) !== null, {
      error: (issue) => `must be a Stream guard (createSession) or a Qwen3Guard-Gen (checkPrompt and checkResponse), got ${describeValue(issue.input)}`,
    }),
    items: z.array(z.custom<EvalItem>((i) => typeof i === 'object' && i !== null && typeof (i as EvalItem).id === 'string', { error: 'must be items as parseDataset returns them' })),
    /** The name results and the summary carry. */
    model: z.string().min(1).default('model'),
    /** Where the items came from (shown in the summary). */
    data: z.string().optional(),
    /** Items evaluated at once: give the guard as many sequences (`maxSessions`) for them to run in the same decodes. */
    concurrency: z.number().int().min(1).max(256).default(1),
    signal: z.custom<AbortSignal>((s) => s instanceof AbortSignal, { error: 'must be an AbortSignal' }).optional(),
    /** Results of an earlier run with this model (resume): their items are not evaluated again. */
    done: z.array(z.custom<ItemResult>((r) => typeof r === 'object' && r !== null)).default([]),
    /** Lines of the data that were skipped as bad (counted in the summary). */
    skippedLines: z.number().int().min(0).default(0),
    /** Each finished item, as it finishes (the CLI appends it to `--out`); awaited; a throw stops the run. */
    onResult: fn('(result) => void').optional(),
    onFailure: fn('(failure) => void').optional(),
    onProgress: fn('(progress) => void').optional(),
  })
  .strict();

export type EvaluateOptions = z.input<typeof evaluateSchema> & {
  onResult?: (result: ItemResult) => void | Promise<void>;
  onFailure?: (failure: ItemFailure) => void;
  onProgress?: (progress: EvalProgress) => void;
};

export interface EvaluateResult {
  summary: EvalSummary;
  /** In the items' order, resumed ones included. */
  results: ItemResult[];
  failures: ItemFailure[];
  /** The signal stopped the run: the summary covers the items finished so far. */
  interrupted: boolean;
}

/**
 * Evaluates a guard on labelled items: each item's verdict, then the summary (Unsafe-class scores both ways,
 * confusion matrix, per-category scores, detection positions, threshold sweep, timing). Items run
 * `concurrency` at a time; an abort stops starting new ones, and what finished is kept.
 */
export async function evaluate(options: EvaluateOptions): Promise<EvaluateResult> {
  const o = parseOptions(evaluateSchema, options, 'evaluate');
  const onResult = options.onResult;
  const kind = guardKind(o.guard)!;
  const run = (item: EvalItem) =>
    kind === 'stream' ? runStreamItem(o.guard as EvalStreamGuard, item, o.model, o.signal) : runGenItem(o.guard as EvalGenGuard, item, o.model, o.signal);
  const ids = new Set(o.items.map((i) => i.id));
  const results = new Map<string, ItemResult>();
  for (const r of o.done) if (ids.has(r.id) && r.model === o.model) results.set(r.id, r);
  const pending = o.items.filter((i) => !results.has(i.id));
  const thisRun: ItemResult[] = [];
  const failures: ItemFailure[] = [];
  const progress = () => options.onProgress?.({ done: results.size, failed: failures.length, total: o.items.length });
  let next = 0;
  let fatal = false;
  const worker = async () => {
    while (!o.signal?.aborted && !fatal && next < pending.length) {
      const item = pending[next++];
      let result: ItemResult;
      try {
        result = await run(item);
      } catch (error) {
        if (o.signal?.aborted) break;
        const failure = { id: item.id, line: item.line, message: error instanceof Error ? error.message : String(error) };
        failures.push(failure);
        options.onFailure?.(failure);
        progress();
        continue;
      }
      results.set(item.id, result);
      thisRun.push(result);
      try {
        await onResult?.(result);
      } catch (error) {
        fatal = true;
        throw error;
      }
      progress();
    }
  };
  const started = performance.now();
  progress();
  await Promise.all(Array.from({ length: Math.min(o.concurrency, pending.length) }, worker));
  const ordered = o.items.flatMap((i) => results.get(i.id) ?? []);
  const summary = summarize({
    model: o.model,
    variant: kind,
    data: o.data,
    items: o.items,
    results: ordered,
    thisRun,
    wallMs: performance.now() - started,
    skippedLines: o.skippedLines,
    failed: failures.length,
  });
  return { summary, results: ordered, failures, interrupted: o.signal?.aborted === true };
}
