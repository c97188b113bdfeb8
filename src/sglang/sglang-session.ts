import type { TokenizerHost } from '../engine/guard-tokenizer.js';
import { PART_PHASES, promptIds, ResponseCursor, rollbackPoint } from '../engine/response-cursor.js';
import { itemVerdict, type Item } from '../engine/response-text.js';
import { count } from '../engine/stats.js';
import { validateMessages, validatePart, validateText } from '../guard/input-validation.js';
import { zeroCounts, type SessionOptions, type StreamGuardSession, type TokenCounts } from '../guard/stream-guard.js';
import type { GuardMessage, PromptVerdict, ResponsePart, TokenVerdict } from '../guard/types.js';
import type { ConversationKeys } from '../remote/conversation-key.js';
import { anySignal } from '../shared/abort.js';
import { ROUTING_KEY_HEADER } from './generate.js';
import { promptVerdict, tokenLabels, type SglangHeads } from './heads.js';
import type { PositionedStates } from './positions.js';
import type { StatesClient } from './states-client.js';

/** What a session needs of its guard, once the heads and the tokenizer are loaded. */
export interface SglangRuntime {
  readonly tokenizer: TokenizerHost;
  readonly heads: SglangHeads;
  readonly client: StatesClient;
  readonly keys: ConversationKeys;
  /** The guard's counts. */
  readonly stats: TokenCounts;
  closed(session: SglangSession): void;
}

/**
 * One conversation on an SGLang server. The ids are the local engine's (the same rendering and scaffold, through
 * ResponseCursor and the export's tokenizer); each call that scores tokens is one `/generate` with the whole
 * sequence so far, and the server's radix cache makes it cost only what is new. The server keeps no session:
 * `rollbackTo` only forgets tokens here, `dispose` only ends the calls in flight. Calls are serialized; a call that
 * fails changes nothing (its tokens are not taken), though the middleware ends the stream on it anyway.
 *
 * No speculation (`GuardInfo.speculate` is false): on a serving engine, tokens within one request cost next to
 * nothing and round trips and states (a row of `hidden_size` numbers per token) are what costs, and text
 * evaluated ahead saves neither: the next append brings new text, so it needs its request anyway.
 * `speculate` checks its arguments and does nothing; `appendText`'s `ahead` is not evaluated.
 */
export class SglangSession implements StreamGuardSession {
  readonly counts: TokenCounts = zeroCounts();
  private readonly cursor: ResponseCursor;
  /** The sequence so far: the conversation, the response's opening, the response's tokens. */
  private ids: number[] = [];
  /** Index in `ids` of the response's first token (after the opening). */
  private responseStart = 0;
  private scoredCount = 0;
  private queue: Promise<unknown> = Promise.resolve();
  /** The routing key, once the conversation is known. */
  private readonly headers: Record<string, string> = {};
  /** Aborts requests in flight when the session is disposed. */
  private readonly abort = new AbortController();
  private readonly signal: AbortSignal;

  constructor(
    private readonly runtime: SglangRuntime,
    private readonly options: SessionOptions,
  ) {
    this.cursor = new ResponseCursor(runtime.tokenizer);
    this.signal = anySignal(options.signal, this.abort.signal);
  }

  /** Token ids of the conversation so far (the response's included), as sent to the server. */
  get tokenIds(): readonly number[] {
    return this.ids;
  }

  /**
   * The prompt verdict: one request that ends at the last user turn's `<|im_end|>` (the last position of a
   * request is never served from the cache), read with the query head; a long one is sent first without states
   * (StatesCall.lastOnly), so that the answer carries the verdict's row only. With `knownVerdict` nothing is
   * sent: the conversation goes with the first request of the response.
   */
  checkPrompt(messages: readonly GuardMessage[], options: { knownVerdict?: PromptVerdict } = {}): Promise<PromptVerdict> {
    return this.serial(async () => {
      validateMessages(messages);
      this.cursor.expectPhase(['new'], 'checkPrompt');
      const { ids, verdictIndex } = promptIds(this.runtime.tokenizer, messages);
      this.headers[ROUTING_KEY_HEADER] = await this.runtime.keys.of(messages, this.options.conversationId);
      let verdict = options.knownVerdict;
      if (!verdict) {
        const states = await this.request(ids.slice(0, verdictIndex + 1), verdictIndex, 'the prompt check', true);
        verdict = this.read(() => promptVerdict(this.runtime.heads, states.at(verdictIndex)), 'the prompt check');
      }
      this.ids = ids;
      this.responseStart = ids.length;
      this.cursor.phase = 'prompted';
      return verdict;
    });
  }

  appendText(part: ResponsePart, text: string, options: { final?: boolean; ahead?: string } = {}): Promise<TokenVerdict[]> {
    return this.serial(() => {
      validatePart(part, 'appendText');
      validateText(text, 'appendText');
      if (options.ahead !== undefined) validateText(options.ahead, 'appendText (ahead)');
      return this.score(() => this.cursor.append(part, text, options.final === true).items, 'an append');
    });
  }

  speculate(part: ResponsePart, text: string): Promise<void> {
    return this.serial(async () => {
      validatePart(part, 'speculate');
      validateText(text, 'speculate');
      this.cursor.expectPhase(PART_PHASES[part], 'speculate');
    });
  }

  end(): Promise<TokenVerdict[]> {
    return this.serial(async () => {
      const verdicts = await this.score(() => this.cursor.closing(), 'the end of the response');
      this.cursor.phase = 'ended';
      return verdicts;
    });
  }

  /** Forgets the tokens after `last`: the server's cache keeps the prefix, the next request diverges after it. */
  rollbackTo(last: TokenVerdict | null): Promise<void> {
    return this.serial(async () => {
      this.cursor.expectPhase(['prompted', 'reasoning', 'answer', 'ended'], 'rollbackTo');
      const { keepFed, keepScored } = rollbackPoint(last, { scored: this.scoredCount, fed: this.ids.length, responseStart: this.responseStart });
      this.ids.length = keepFed;
      this.scoredCount = keepScored;
      this.cursor.rollback(last);
    });
  }

  async countTokens(text: string): Promise<number> {
    validateText(text, 'countTokens');
    return this.runtime.tokenizer.tokenizeText(text).length;
  }

  /** Ends the requests in flight; the server keeps the conversation in its cache. Safe to call more than once. */
  async dispose(): Promise<void> {
    if (this.cursor.phase === 'disposed') return;
    this.cursor.phase = 'disposed';
    this.abort.abort(new Error('This GuardSession was disposed'));
    this.runtime.closed(this);
    await this.queue;
  }

  /**
   * Sends the sequence with `items` (from `next`, which moves the cursor) and scores them. Items without a
   * scored token (a closed empty reasoning) need no request: they go with the next one.
   */
  private async score(next: () => Item[], what: string): Promise<TokenVerdict[]> {
    const saved = this.cursor.save();
    try {
      const items = next();
      const first = this.ids.length;
      const inputIds = [...this.ids, ...items.map((item) => item.id)];
      const scoredAt = items.findIndex((item) => item.scored);
      const states = scoredAt < 0 ? null : await this.request(inputIds, first + scoredAt, what);
      let index = this.scoredCount;
      const verdicts = this.read(() => items.flatMap((item, k) => (item.scored ? [itemVerdict(item, index++, first + k, tokenLabels(this.runtime.heads, states!.at(first + k)))] : [])), what);
      this.ids = inputIds;
      this.scoredCount += verdicts.length;
      count('scoredTokens', verdicts.length, this.runtime.stats, this.counts);
      return verdicts;
    } catch (error) {
      this.cursor.restore(saved);
      throw error;
    }
  }

  /** The states of `inputIds` from `from` on, counted. */
  private async request(inputIds: readonly number[], from: number, what: string, lastOnly = false): Promise<PositionedStates> {
    const { states, evaluated, reused } = await this.runtime.client.states({ inputIds, from, headers: this.headers, signal: this.signal, what, lastOnly });
    count('evaluatedTokens', evaluated, this.runtime.stats, this.counts);
    count('reusedTokens', reused, this.runtime.stats, this.counts);
    return states;
  }

  /** Applies the heads; a state they refuse (not post-norm: a server launched otherwise) is the server's failure. */
  private read<T>(apply: () => T, what: string): T {
    try {
      return apply();
    } catch (error) {
      throw this.runtime.client.unusable(error, what);
    }
  }

  private serial<T>(task: () => Promise<T>): Promise<T> {
    const run = this.queue.then(task);
    this.queue = run.catch(() => undefined);
    return run;
  }
}
