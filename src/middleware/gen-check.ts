import type { LanguageModelV4Content, LanguageModelV4GenerateResult, LanguageModelV4StreamPart } from '@ai-sdk/provider';
import type { GuardMessage, PromptVerdict } from '../guard/types.js';
import { Qwen3GuardGen } from '../gen/classifier.js';
import { actionFor, type ResolvedResponsePolicy } from '../policy/resolve.js';
import { failClosedAction, type Action } from '../policy/schema.js';
import { describeValue, OptionsError } from '../shared/validation.js';
import type { GenResponseVerdict } from '../gen/types.js';
import type { Qwen3GuardGenMetadata, Qwen3GuardMetadata } from './metadata-types.js';
import type { GenVerdictInfo, GuardErrorInfo, RequestHooks } from './options.js';
import { safeCall } from './callbacks.js';
import { genFailed } from './failures.js';
import { CONTENT_FILTER, textBlock, type FinishPart } from './stream-parts.js';
import { genCheckEnd } from './telemetry-checks.js';


/**
 * The middleware's Gen classifier, given or awaited once from a promise. A rejected promise (or one that does
 * not resolve to a Qwen3GuardGen) is kept: every request that needs Gen fails with it, under `fail`.
 */
export class GenLoader {
  private readonly ready: Promise<Qwen3GuardGen>;
  /** The classifier once known (telemetry names it): at once when given, else once the promise resolved. */
  loaded: Qwen3GuardGen | null;

  constructor(given: Qwen3GuardGen | Promise<Qwen3GuardGen>) {
    this.loaded = given instanceof Qwen3GuardGen ? given : null;
    this.ready = Promise.resolve(given).then(
      (gen) => {
        if (!(gen instanceof Qwen3GuardGen)) {
          throw genFailed(new OptionsError(`Invalid options: gen.classifier: the promise resolved to ${describeValue(gen)}, expected a Qwen3GuardGen`));
        }
        this.loaded = gen;
        return gen;
      },
      (reason: unknown) => Promise.reject(genFailed(reason)),
    );
    this.ready.catch(() => undefined); // requests get the error
  }

  get(): Promise<Qwen3GuardGen> {
    return this.ready;
  }
}

/** Gen's prompt verdict in the Stream verdict's shape (Gen has no category probabilities). Rejects with a Gen failure. */
export async function genPromptVerdict(gen: GenLoader, messages: GuardMessage[], signal: AbortSignal): Promise<PromptVerdict> {
  try {
    const classifier = await gen.get();
    // Controversial as itself: the prompt policy's mode and actions decide, as for Stream's verdicts.
    const verdict = await classifier.checkPrompt(messages, { mode: 'raw', signal });
    return { riskLevel: verdict.riskLevel, category: verdict.category, probabilities: verdict.probabilities, categoryProbabilities: {} };
  } catch (error) {
    if (signal.aborted) throw error;
    throw genFailed(error);
  }
}

export interface GenResponseContext {
  gen: GenLoader;
  mode: 'report' | 'hold';
  policy: ResolvedResponsePolicy;
  fail: 'closed' | 'open';
  /** The conversation as the guard reads it (the response is appended as the last assistant turn). */
  messages: GuardMessage[];
  startedAt: number;
  signal: AbortSignal;
  onGenVerdict?: (info: GenVerdictInfo) => void;
  onError?: (error: unknown, info: GuardErrorInfo) => void;
  telemetry?: RequestHooks | null;
}

/** What Gen decided on a complete response, or how it failed; null when there was nothing to check. */
type GenOutcome = { metadata: Qwen3GuardGenMetadata; verdict: GenResponseVerdict; action: Action } | { error: Error; action: Action } | null;

/** The action on a Gen verdict in hold mode: a whole answer cannot be continued (the fallback) or partly masked (the mask replaces it). */
function holdAction(action: Action, policy: ResolvedResponsePolicy): Action {
  return action === 'continue' ? policy.fallback : action;
}

/** Checks the complete answer with Gen, in its own guardrail span. Never rejects: a failure comes back with the fail mode's action. */
async function checkAnswer(context: GenResponseContext, answer: string): Promise<GenOutcome> {
  if (!answer) return null;
  const hooks = context.telemetry;
  const span = hooks?.telemetry.check('output', hooks.gen(), { gen: true });
  const outcome = await classifyAnswer(context, answer);
  if (span && hooks) span.end(genCheckEnd(outcome, answer, hooks.gen().model));
  return outcome;
}

async function classifyAnswer(context: GenResponseContext, answer: string): Promise<GenOutcome> {
  try {
    const classifier = await context.gen.get();
    const verdict = await classifier.checkResponse([...context.messages, { role: 'assistant', content: answer }], { mode: 'raw', signal: context.signal });
    const action = actionFor(context.policy, verdict.riskLevel, verdict.category);
    const latencyMs = performance.now() - context.startedAt;
    safeCall(context.onGenVerdict, { verdict, action, latencyMs });
    const metadata: Qwen3GuardGenMetadata = {
      riskLevel: verdict.riskLevel,
      category: verdict.category,
      categories: verdict.categories,
      refusal: verdict.refusal,
      action,
      decidedBy: 'gen',
      latencyMs: Math.round(latencyMs * 10) / 10,
    };
    return { metadata, verdict, action: context.mode === 'hold' ? holdAction(action, context.policy) : 'allow' };
  } catch (error) {
    if (context.signal.aborted) return null;
    const failure = genFailed(error);
    safeCall(context.onError, failure, { phase: 'response', fail: context.fail });
    // Failing closed stops a held answer as an Unsafe one would; a reported answer is already out.
    const unsafe = holdAction(context.policy.actions.Unsafe, context.policy);
    const action: Action = context.mode === 'hold' && context.fail === 'closed' ? failClosedAction(unsafe) : 'allow';
    return { error: failure, action };
  }
}

const ORDER: Array<Action | 'none'> = ['none', 'allow', 'flag', 'redact', 'continue', 'rewrite', 'abort'];

/** Provider metadata with Gen's verdict (or failure) in the guard's, and, when Gen stopped the answer, its action. */
function withGen(providerMetadata: FinishPart['providerMetadata'], outcome: GenOutcome, stopped: Action | null): FinishPart['providerMetadata'] {
  const metadata = providerMetadata?.qwen3guard as Qwen3GuardMetadata | undefined;
  if (!metadata) return providerMetadata;
  const next: Qwen3GuardMetadata = { ...metadata, gen: outcome && 'metadata' in outcome ? outcome.metadata : null };
  if (stopped && ORDER.indexOf(stopped) > ORDER.indexOf(next.action)) next.action = stopped;
  if (outcome && 'error' in outcome && !next.error) next.error = { code: 'gen-failed' };
  return { ...providerMetadata, qwen3guard: next };
}

/** A stopped answer's replacement: rewrite's replacement, redact's mask (the whole answer is the span), abort's nothing. */
function replacementText(policy: ResolvedResponsePolicy, action: Action, outcome: NonNullable<GenOutcome>, answer: string): string {
  const riskLevel = 'metadata' in outcome ? outcome.metadata.riskLevel : 'Unsafe';
  const category = 'metadata' in outcome ? outcome.metadata.category : null;
  const span = { riskLevel, category, part: 'answer' as const, tokenIndex: 'metadata' in outcome ? 0 : -1, charOffset: 0, text: answer };
  if (action === 'rewrite') return policy.replacement(span);
  if (action === 'redact') return policy.mask(span);
  return '';
}

const stops = (action: Action) => action === 'rewrite' || action === 'abort' || action === 'redact';
const GEN_TEXT_ID = 'qwen3guard-gen';

/**
 * Gen on a moderated stream's complete answer. 'report': parts pass as they come; the finish waits for Gen's
 * verdict and carries it. 'hold': every part but the stream's opening ones waits for the verdict, then all are
 * released, or the answer is replaced per the response policy. An answer the Stream guard or the prompt check
 * already stopped (a content-filter finish) is not checked again.
 */
export function genStream(upstream: ReadableStream<LanguageModelV4StreamPart>, context: GenResponseContext): ReadableStream<LanguageModelV4StreamPart> {
  let answer = '';
  const held: LanguageModelV4StreamPart[] = [];
  return upstream.pipeThrough(
    new TransformStream<LanguageModelV4StreamPart, LanguageModelV4StreamPart>({
      async transform(part, controller) {
        if (part.type === 'text-delta') answer += part.delta;
        if (part.type !== 'finish') {
          if (context.mode === 'hold' && part.type !== 'stream-start' && part.type !== 'response-metadata') held.push(part);
          else controller.enqueue(part);
          return;
        }
        const outcome = part.finishReason.unified === 'content-filter' ? null : await checkAnswer(context, answer);
        const action = outcome?.action ?? 'allow';
        if (!stops(action)) {
          for (const h of held.splice(0)) controller.enqueue(h);
          controller.enqueue({ ...part, providerMetadata: withGen(part.providerMetadata, outcome, null) });
          return;
        }
        // Held, so nothing of the answer went out: the replacement (if any) is the whole answer.
        held.length = 0;
        const text = replacementText(context.policy, action, outcome!, answer);
        if (text) for (const block of textBlock(GEN_TEXT_ID, text)) controller.enqueue(block);
        controller.enqueue({ ...part, finishReason: CONTENT_FILTER, providerMetadata: withGen(part.providerMetadata, outcome, action) });
      },
    }),
  );
}

/** Gen on a generateText result: its verdict in the metadata; with 'hold', the answer replaced when the policy says so. */
export async function genGenerated(result: LanguageModelV4GenerateResult, context: GenResponseContext): Promise<LanguageModelV4GenerateResult> {
  const answer = result.content.flatMap((c) => (c.type === 'text' ? [c.text] : [])).join('');
  const outcome = result.finishReason.unified === 'content-filter' ? null : await checkAnswer(context, answer);
  const action = outcome?.action ?? 'allow';
  if (!stops(action)) return { ...result, providerMetadata: withGen(result.providerMetadata, outcome, null) };
  const text = replacementText(context.policy, action, outcome!, answer);
  // As in a held stream, nothing of the stopped answer stays (its reasoning and tool calls neither).
  const content: LanguageModelV4Content[] = text ? [{ type: 'text', text }] : [];
  return { ...result, content, finishReason: CONTENT_FILTER, providerMetadata: withGen(result.providerMetadata, outcome, action) };
}
