import type { LanguageModelV4Content, LanguageModelV4GenerateResult } from '@ai-sdk/provider';
import { failClosedAction, type Action } from '../policy/schema.js';
import type { ResolvedResponsePolicy } from '../policy/resolve.js';
import { CONTENT_FILTER, EMPTY_USAGE } from './stream-parts.js';
import { flagInfo, guardMetadata, verdictInfo } from './metadata.js';
import type { ModerationContext } from './options.js';
import type { TextRange } from './output-queue.js';
import { safeCall } from './callbacks.js';
import type { PromptCheck } from './prompt-check.js';
import { ResponseModeration } from './response-moderation.js';
import { ResponseTelemetry } from './telemetry-hooks.js';


/** The generate result for a blocked prompt: the refusal (rewrite) or nothing (abort). */
export function blockedResult(check: PromptCheck, refusal: string, policy: ResolvedResponsePolicy): LanguageModelV4GenerateResult {
  const content: LanguageModelV4Content[] = check.action === 'rewrite' && refusal ? [{ type: 'text', text: refusal }] : [];
  return {
    content,
    finishReason: CONTENT_FILTER,
    usage: EMPTY_USAGE,
    providerMetadata: { qwen3guard: guardMetadata({ check, moderation: null, policy, leakedChars: 0 }) },
    warnings: [],
  };
}

/**
 * `generateText`: the same policy on the complete result, through the same moderation as a stream (text in,
 * then what is decided out). A stop keeps the text before the flagged span, then the replacement (rewrite);
 * later parts (tool calls) are dropped.
 */
export async function moderateGenerated(context: ModerationContext, check: PromptCheck, result: LanguageModelV4GenerateResult): Promise<LanguageModelV4GenerateResult> {
  const { policy } = context;
  let failure: unknown;
  const telemetry = context.telemetry ? new ResponseTelemetry(context.telemetry, policy, context.fail) : null;
  telemetry?.start(check);
  if (!check.session) {
    const metadata = guardMetadata({ check, moderation: null, policy, leakedChars: 0 });
    telemetry?.end({ metadata: () => metadata, moderation: null, failure: undefined });
    return { ...result, providerMetadata: { ...result.providerMetadata, qwen3guard: metadata } };
  }
  const moderation = new ResponseModeration(check.session, policy, {
    onChange: () => undefined,
    onFlag: (event) => safeCall(context.onResponseFlag, flagInfo(moderation, event, 0, context.startedAt)),
    onError: (error) => {
      failure = error;
      safeCall(context.onError, error, { phase: 'response', fail: context.fail });
    },
  }, check.guard?.info.speculate ?? false);
  try {
    // Reasoning first (the thinking position), then the answer, as the template orders them.
    const ranges = new Map<LanguageModelV4Content, TextRange>();
    const ordered = [...result.content.filter((c) => c.type === 'reasoning'), ...result.content.filter((c) => c.type !== 'reasoning')];
    for (const part of ordered) {
      if (part.type === 'reasoning' && policy.reasoning) ranges.set(part, moderation.append('reasoning', part.text));
      else if (part.type === 'text') ranges.set(part, moderation.append('answer', part.text));
      else if (part.type === 'tool-call' && policy.toolInput) {
        const at = moderation.startToolInput();
        ranges.set(part, { part: 'answer', start: at, end: moderation.append('answer', part.input).end });
      }
    }
    await moderation.finish();

    const stop = moderation.stopped;
    const failedClosed = failure !== undefined && context.fail === 'closed';
    if (failure !== undefined && context.fail === 'open') return withMetadata(result, result.content, result.finishReason, null);
    const content: LanguageModelV4Content[] = [];
    let cut = false;
    for (const part of result.content) {
      const range = ranges.get(part);
      if (cut) break;
      if (failedClosed && range) {
        cut = true;
        break;
      }
      if (!range) {
        content.push(part);
        continue;
      }
      const source = part.type === 'tool-call' ? part.input : (part as { text: string }).text;
      const { text, upTo } = moderation.render(range.part, range.start, range.start, source);
      if (part.type === 'tool-call') {
        const whole = upTo >= range.end && moderation.segments(range.part, range.start, range.end).every((s) => s.status === 'pass');
        if (whole) content.push(part);
        else cut = true;
        continue;
      }
      if (text) content.push({ ...part, text } as LanguageModelV4Content);
      if (upTo < range.end) cut = true;
    }
    const stopAction = stop?.action ?? (failedClosed ? failClosedAction(policy.actions.Unsafe) : null);
    if (stopAction === 'rewrite') {
      const replacement = policy.replacement(stop ? moderation.span(stop) : moderation.failureSpan());
      if (replacement) content.push({ type: 'text', text: replacement });
    }
    return withMetadata(result, content, stopAction ? CONTENT_FILTER : result.finishReason, stopAction);
  } finally {
    await check.session.dispose().catch(() => undefined);
  }

  function withMetadata(base: LanguageModelV4GenerateResult, content: LanguageModelV4Content[], finishReason: LanguageModelV4GenerateResult['finishReason'], stopped: Action | null): LanguageModelV4GenerateResult {
    safeCall(context.onResponseVerdict, verdictInfo(moderation, context.startedAt));
    const qwen3guard = guardMetadata({ check, moderation, policy, leakedChars: 0, error: failure });
    if (stopped) telemetry?.stopped(stopped);
    telemetry?.end({ metadata: () => qwen3guard, moderation, failure });
    return { ...base, content, finishReason, providerMetadata: { ...base.providerMetadata, qwen3guard } };
  }
}
