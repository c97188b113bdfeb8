import { z } from 'zod';
import { SglangAnswerError, type StatesAnswer } from './positions.js';

/**
 * The `/generate` exchange with a stock SGLang server (fields of GenerateReqInput and of the answer's
 * `meta_info`, as read at the commit docs/sglang.md names).
 */
export interface GenerateRequest {
  /** The ids to evaluate: the whole sequence so far (the server's radix cache finds the prefix it holds). */
  inputIds: readonly number[];
  rid?: string;
  /**
   * A cache namespace: a new salt matches no cached prefix, so every position is recomputed. For the retry of
   * an answer whose needed states were cached (SglangAnswerError 'cached'), when capping the reuse did not help.
   */
  cacheSalt?: string;
  /**
   * Caps the server's prefix reuse at this many tokens (SGLang's `_compute_max_prefix_len` caps it at
   * `logprob_start_len` when input logprobs are asked for), so that every position from it on is recomputed:
   * the cheap retry of an answer whose needed states were cached. The logprobs themselves are not used.
   */
  logprobStartLen?: number;
  /** false: no states (the server computes and caches the ids, the answer says only how many it found cached). */
  hiddenStates?: false;
}

/**
 * The header sgl-model-gateway's `consistent_hashing` policy routes by: every request of a conversation then
 * reaches the server whose radix cache holds its prefix.
 */
export const ROUTING_KEY_HEADER = 'X-SMG-Routing-Key';

/**
 * The JSON body: one generated token (the least SGLang computes; the state of every input position it
 * recomputes comes back in `meta_info.hidden_states`), greedy, not streamed, no logprobs unless
 * `logprobStartLen` asks for input logprobs to cap the cache reuse.
 */
export function generateRequestBody(request: GenerateRequest): Record<string, unknown> {
  return {
    input_ids: [...request.inputIds],
    sampling_params: { max_new_tokens: 1, temperature: 0 },
    return_hidden_states: request.hiddenStates ?? true,
    stream: false,
    ...(request.rid === undefined ? {} : { rid: request.rid }),
    ...(request.cacheSalt === undefined ? {} : { cache_salt: request.cacheSalt }),
    ...(request.logprobStartLen === undefined ? {} : { return_logprob: true, logprob_start_len: request.logprobStartLen, top_logprobs_num: 0 }),
  };
}

const answerSchema = z.object({
  meta_info: z.looseObject({
    cached_tokens: z.number().int().nonnegative(),
    hidden_states: z.array(z.unknown()).min(1),
  }),
});

const cachedSchema = z.object({ meta_info: z.looseObject({ cached_tokens: z.number().int().nonnegative() }) });

/** `meta_info.cached_tokens` of an answer to a request without states. */
export function parseCachedTokens(body: unknown): number {
  const parsed = cachedSchema.safeParse(body);
  if (!parsed.success) throw new SglangAnswerError('malformed', `/generate answer: ${parsed.error.issues[0].path.join('.') || 'the answer'}: ${parsed.error.issues[0].message}`);
  return parsed.data.meta_info.cached_tokens;
}

/** The parts of a `/generate` answer the heads need; the states' shape is checked by positionStates. */
export function parseGenerateAnswer(body: unknown): StatesAnswer {
  const parsed = answerSchema.safeParse(body);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const field = issue.path.join('.') || 'the answer';
    const hint = issue.path.includes('hidden_states') ? ' (the server must be launched with --enable-return-hidden-states)' : '';
    throw new SglangAnswerError('malformed', `/generate answer: ${field}: ${issue.message}${hint}`);
  }
  return { cachedTokens: parsed.data.meta_info.cached_tokens, hiddenStates: parsed.data.meta_info.hidden_states };
}
