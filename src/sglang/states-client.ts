import { z } from 'zod';
import { RemoteGuardError } from '../guard/errors.js';
import type { ServiceClient, ServiceLabels } from '../remote/service-client.js';
import { generateRequestBody, parseCachedTokens, parseGenerateAnswer } from './generate.js';
import { positionStates, SglangAnswerError, type PositionedStates } from './positions.js';

/** How the service client names an SGLang server in its errors. */
export const SGLANG_SERVER: ServiceLabels = {
  server: 'The SGLang server',
  hint: 'is baseURL an SGLang server (or sgl-model-gateway) launched as docs/sglang.md says, with --enable-return-hidden-states?',
  apiKey: "the server's --api-key",
};

export interface StatesCall {
  /** The whole sequence so far. */
  inputIds: readonly number[];
  /** First position whose state is needed: every one from it to the end is. */
  from: number;
  /** The routing key (and nothing else the session adds). */
  headers: Record<string, string>;
  signal?: AbortSignal;
  /** For messages: 'the prompt check'. */
  what: string;
  /**
   * Only the last position's state is needed (the prompt check): a long sequence is first sent without states,
   * so that the server computes and caches it and the states request finds all but its last position cached.
   * The answer then carries one row instead of one per token (about 10 KB instead of 10 MB for a 1,000-token
   * prompt on 0.6B), for one more round trip.
   */
  lastOnly?: boolean;
}

/** Sequences at least this long get the request without states first (`lastOnly`). */
export const WARM_UP_MIN_IDS = 64;

export interface StatesResult {
  states: PositionedStates;
  /** Positions the server computed for this call (a retried request's included). */
  evaluated: number;
  /** Positions the answer used found in the server's radix cache. */
  reused: number;
}

/** The retries of an answer whose needed states were cached: reuse capped at `from`, then a cache namespace of its own. */
const ATTEMPTS = ['plain', 'capped', 'salted'] as const;

/**
 * `/generate` for hidden states, through the guard's ServiceClient (its deadline per guard call, its retries of
 * network errors, 502-504 and 429, its error codes). Positions are mapped with `cached_tokens`; an answer that
 * cannot serve the call is a RemoteGuardError ('guard-unavailable'), never states at the wrong positions.
 *
 * When the server's cache served positions whose states are needed (it already ran these ids: a retry after a
 * lost answer, another session of the same conversation, a continuation that repeats what was rolled back),
 * the request goes again with the reuse capped at `from` (input logprobs from there: only the needed positions
 * are recomputed), and as a last resort with a fresh `cache_salt` (everything is).
 */
export class StatesClient {
  constructor(
    private readonly client: ServiceClient,
    private readonly hiddenSize: number,
  ) {}

  async states(call: StatesCall): Promise<StatesResult> {
    const { inputIds, from } = call;
    const startedAt = performance.now();
    let evaluated = 0;
    /** What the request without states found cached: the rest it computed itself. */
    let warmCached: number | null = null;
    if (call.lastOnly && inputIds.length >= WARM_UP_MIN_IDS && from === inputIds.length - 1) {
      const json = await this.client.call({ ...this.request(call, startedAt), body: generateRequestBody({ inputIds, hiddenStates: false }) });
      try {
        warmCached = parseCachedTokens(json);
      } catch (error) {
        throw this.unusable(error, call.what);
      }
      evaluated += Math.max(0, inputIds.length - warmCached);
    }
    for (const attempt of ATTEMPTS) {
      const body = generateRequestBody({
        inputIds,
        logprobStartLen: attempt === 'plain' ? undefined : from,
        cacheSalt: attempt === 'salted' ? crypto.randomUUID() : undefined,
      });
      const json = await this.client.call({ ...this.request(call, startedAt), body });
      try {
        const answer = parseGenerateAnswer(json);
        const cached = answer.cachedTokens;
        if (cached < inputIds.length) evaluated += inputIds.length - cached;
        return { states: positionStates({ inputLength: inputIds.length, from }, answer, this.hiddenSize), evaluated, reused: Math.min(cached, warmCached ?? cached) };
      } catch (error) {
        if (error instanceof SglangAnswerError && error.problem === 'cached' && attempt !== 'salted') continue;
        throw this.unusable(error, call.what);
      }
    }
    throw new Error('unreachable');
  }

  private request(call: StatesCall, startedAt: number) {
    return { method: 'POST', path: '/generate', headers: call.headers, schema: z.unknown(), idempotent: true, signal: call.signal, what: call.what, startedAt } as const;
  }

  /** An answer that cannot serve the call, as the guard's errors say it. */
  unusable(error: unknown, what: string): unknown {
    if (!(error instanceof Error) || error instanceof RemoteGuardError) return error;
    const failure = new RemoteGuardError(`${SGLANG_SERVER.server} at ${this.client.root} answered ${what} with states that cannot be used: ${error.message}`, 'guard-unavailable', 200);
    failure.cause = error;
    return failure;
  }
}
