import type { LanguageModelV4StreamPart, LanguageModelV4Usage } from '@ai-sdk/provider';

export type FinishPart = Extract<LanguageModelV4StreamPart, { type: 'finish' }>;

/** Usage of a request that was stopped or never made: unknown, not zero. */
export const EMPTY_USAGE: LanguageModelV4Usage = {
  inputTokens: { total: undefined, noCache: undefined, cacheRead: undefined, cacheWrite: undefined },
  outputTokens: { total: undefined, text: undefined, reasoning: undefined },
};

/** The finish reason of everything the guard stopped (never an error: `streamRetries` would re-run the request). */
export const CONTENT_FILTER = { unified: 'content-filter', raw: 'qwen3guard' } as const;

/** A text block of the guard's own (a refusal, a replacement): start, one delta, end. */
export function textBlock(id: string, text: string): LanguageModelV4StreamPart[] {
  return [
    { type: 'text-start', id },
    { type: 'text-delta', id, delta: text },
    { type: 'text-end', id },
  ];
}

/**
 * Reads an upstream into `take` while `live()` (mapped by `map`); an upstream that ends without a finish part
 * finishes as "other". Rejects with the upstream's error.
 */
export async function readParts(
  reader: ReadableStreamDefaultReader<LanguageModelV4StreamPart>,
  live: () => boolean,
  map: (part: LanguageModelV4StreamPart) => LanguageModelV4StreamPart[],
  take: (part: LanguageModelV4StreamPart) => void,
): Promise<void> {
  let finished = false;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    if (!live()) return;
    for (const part of map(value)) {
      finished ||= part.type === 'finish';
      take(part);
    }
  }
  if (live() && !finished) take({ type: 'finish', usage: EMPTY_USAGE, finishReason: { unified: 'other', raw: undefined } });
}
