import { decideResponse } from '../policy/decision.js';
import type { RiskProbabilities, TokenVerdict } from '../guard/types.js';
import type { GenResponseVerdict } from '../gen/types.js';
import type { EvalGenGuard, EvalStreamGuard, EvalStreamSession } from './guard-shape.js';
import { detectionBin, tokenSpan } from './detection.js';
import { messageParts, withInlineThinking } from './think.js';
import type { Detection, EvalItem, ItemResult, ItemScores } from './types.js';

/** An item the guard could not take (the span covers no token): it fails, and the run goes on. */
export class ItemError extends Error {
  override readonly name = 'ItemError';
}

const scoresOf = (p: RiskProbabilities): ItemScores => ({ unsafe: p.Unsafe, unsafeOrControversial: p.Unsafe + p.Controversial });

/**
 * A Stream response's score for the threshold sweep, consistent with the official two-consecutive-token rule:
 * the largest t at which two consecutive tokens both reach t, max over i of min(p[i-1], p[i]). Flagging at
 * threshold t when this score is >= t is the rule with "label non-Safe" replaced by "probability >= t".
 */
export function pairScore(values: readonly number[]): number {
  let best = 0;
  for (let i = 1; i < values.length; i++) best = Math.max(best, Math.min(values[i - 1], values[i]));
  return best;
}

function responseScores(verdicts: readonly TokenVerdict[]): ItemScores | null {
  if (!verdicts.every((v) => v.probabilities)) return null;
  return {
    unsafe: pairScore(verdicts.map((v) => v.probabilities!.Unsafe)),
    unsafeOrControversial: pairScore(verdicts.map((v) => v.probabilities!.Unsafe + v.probabilities!.Controversial)),
  };
}

function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw signal.reason;
}

/** The annotated span in conversation positions: as given (official), or the tokens covering its characters. */
function spanPositions(item: EvalItem, verdicts: readonly TokenVerdict[], offsets: Record<'reasoning' | 'answer', number | null>): [number, number] {
  const span = item.span!;
  if (span.unit === 'token') return [span.start, span.end];
  const located = verdicts.flatMap((v) => {
    const base = offsets[v.part];
    return v.start === undefined || v.end === undefined || base === null ? [] : [{ position: v.position, start: base + v.start, end: base + v.end }];
  });
  const positions = tokenSpan(located, span.start, span.end);
  if (!positions) throw new ItemError(`unsafeSpan {start: ${span.start}, end: ${span.end}} covers no scored token of the answer`);
  return positions;
}

async function streamResponse(session: EvalStreamSession, item: EvalItem, signal: AbortSignal | undefined) {
  const { thinking, answer } = messageParts(item.messages.at(-1)!);
  await session.checkPrompt(item.messages.slice(0, -1));
  const verdicts: TokenVerdict[] = [];
  if (thinking && thinking.text) {
    throwIfAborted(signal);
    verdicts.push(...(await session.appendText('reasoning', thinking.text, { final: true })));
  }
  throwIfAborted(signal);
  verdicts.push(...(await session.appendText('answer', answer.text)));
  verdicts.push(...(await session.end()));
  return { verdicts, offsets: { reasoning: thinking?.offset ?? null, answer: answer.offset } };
}

/** Runs one item on a Stream guard: the prompt verdict, or the response token by token and the official rule. */
export async function runStreamItem(guard: EvalStreamGuard, item: EvalItem, model: string, signal?: AbortSignal): Promise<ItemResult> {
  const started = performance.now();
  const session = await guard.createSession({ signal });
  try {
    throwIfAborted(signal);
    const result = { id: item.id, model, task: item.task, label: item.label };
    if (item.task === 'prompt') {
      const v = await session.checkPrompt(item.messages);
      const categories = v.category ? [v.category] : [];
      return { ...result, prediction: v.riskLevel, category: v.category, categories, probabilities: v.probabilities, scores: scoresOf(v.probabilities), latencyMs: performance.now() - started };
    }
    const { verdicts, offsets } = await streamResponse(session, item, signal);
    const decision = decideResponse(verdicts);
    const flagged = decision.tokenIndex === null ? null : verdicts[decision.tokenIndex];
    const out: ItemResult = {
      ...result,
      prediction: decision.riskLevel,
      category: decision.category,
      categories: decision.category ? [decision.category] : [],
      scores: responseScores(verdicts),
      tokens: verdicts.length,
      latencyMs: 0,
    };
    if (flagged?.probabilities) out.probabilities = flagged.probabilities;
    if (item.span) {
      const [spanStart, spanEnd] = spanPositions(item, verdicts, offsets);
      const position = flagged?.position ?? null;
      out.detection = { position, spanStart, spanEnd, bin: detectionBin(position, spanStart, spanEnd) } satisfies Detection;
    }
    out.latencyMs = performance.now() - started;
    return out;
  } finally {
    await session.dispose();
  }
}

/** Runs one item on Qwen3Guard-Gen: a whole-text check of the prompt or of the response (with its refusal line). */
export async function runGenItem(guard: EvalGenGuard, item: EvalItem, model: string, signal?: AbortSignal): Promise<ItemResult> {
  const started = performance.now();
  const messages = withInlineThinking(item.messages);
  const v = item.task === 'prompt' ? await guard.checkPrompt(messages, { mode: 'raw', signal }) : await guard.checkResponse(messages, { mode: 'raw', signal });
  const out: ItemResult = {
    id: item.id,
    model,
    task: item.task,
    label: item.label,
    prediction: v.riskLevel,
    category: v.category,
    categories: v.categories,
    probabilities: v.probabilities,
    scores: scoresOf(v.probabilities),
    latencyMs: 0,
  };
  if (item.task === 'response') out.refusal = (v as GenResponseVerdict).refusal;
  out.latencyMs = performance.now() - started;
  return out;
}
