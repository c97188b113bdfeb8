import type { Token } from 'node-llama-cpp';
import { RESPONSE_TEMPLATE } from '../format/template.js';
import { validateMessages, validatePart, validateText, validateTokenIds } from '../guard/input-validation.js';
import { zeroCounts, type StreamGuardSession, type TokenCounts } from '../guard/stream-guard.js';
import type { GuardMessage, PromptVerdict, ResponsePart, TokenVerdict } from '../guard/types.js';
import { headFromPre } from './heads.js';
import { foldedReadout, preReadout, readHead, readItem, readValues, type Readout } from './readout.js';
import { promptIds, ResponseCursor, rollbackPoint } from './response-cursor.js';
import { itemVerdict, scaffold, type Item } from './response-text.js';
import type { SequencePool } from './sequence-pool.js';
import type { SessionHost } from './session-host.js';
import { SessionSequence } from './session-sequence.js';
import { SpeculatedCells } from './speculated-cells.js';
import { historyIds } from './history.js';
import { count } from './stats.js';

/**
 * One conversation on its own sequence. `checkPrompt` evaluates the conversation and reads the query head at
 * the last user turn's `<|im_end|>`; the response then streams in through `appendText` / `appendTokens`,
 * each token evaluated once through the KV cache, chunks in one decode. Calls are serialized.
 */
export class GuardSession implements StreamGuardSession {
  readonly counts: TokenCounts = zeroCounts();
  /** The phase and the parts' text: which tokens each call adds. */
  private readonly cursor: ResponseCursor;
  private scoredCount = 0;
  private queue: Promise<unknown> = Promise.resolve();
  private readonly seq: SessionSequence;
  /** The conversation as rendered by `checkPrompt` (NFC), for the history form of the finished turn. */
  private messages: GuardMessage[] = [];
  /** Index in `fed` of the response's first token (after the opening). */
  private responseFed = 0;
  private readonly responseRead: Readout;
  private readonly queryRead: Readout;
  private readonly tentative: SpeculatedCells;
  /** A speculation started after a call returned failed: the next call reports it. */
  private speculationFailure: { error: unknown } | null = null;

  constructor(
    readonly guard: SessionHost,
    private readonly pool: SequencePool,
  ) {
    const { response, query, innerSize } = guard.layout;
    const folded = [response, query].reduce((n, h) => n + h.risk.scaleLog2.length + h.category.scaleLog2.length, 0);
    this.responseRead = guard.options.responseProbabilities ? preReadout(response, innerSize) : foldedReadout(response, folded);
    this.queryRead = preReadout(query, innerSize);
    this.cursor = new ResponseCursor(guard);
    this.seq = new SessionSequence(guard, pool, this.counts, () => this.cursor.phase === 'disposed');
    this.tentative = new SpeculatedCells(this.seq, [guard.stats, this.counts]);
  }

  /** Response tokens scored so far. */
  get scoredTokens(): number {
    return this.scoredCount;
  }

  /** Token ids of the conversation so far, found in the KV cache or evaluated (also what a context shift dropped). */
  get tokenIds(): readonly number[] {
    return this.seq.fed;
  }

  private serial<T>(task: () => Promise<T>): Promise<T> {
    const run = this.queue.then(task);
    this.queue = run.catch(() => undefined);
    return run;
  }

  /**
   * Evaluates the conversation (earlier turns and the last user turn, NFC-normalized) and returns the prompt
   * verdict read at the `<|im_end|>` that closes the last user turn. The response's opening
   * (`<|im_start|>assistant\n<think>`) goes in the same decode, so the first response text decodes less.
   * A prefix that a kept sequence already holds (an earlier turn of the same conversation) is not evaluated
   * again; the verdict's `<|im_end|>` always is, unless `knownVerdict` (a verdict cached for this same
   * conversation prefix) is given: it is returned, and only the tokens the cache lacks are evaluated.
   */
  checkPrompt(messages: readonly GuardMessage[], options: { knownVerdict?: PromptVerdict } = {}): Promise<PromptVerdict> {
    return this.serial(async () => {
      validateMessages(messages);
      this.cursor.expectPhase(['new'], 'checkPrompt');
      const { messages: normalized, ids, verdictIndex } = promptIds(this.guard, messages);
      this.messages = normalized;
      const { knownVerdict } = options;
      // The verdict needs the logits of its own token: keep at most the prefix before it.
      const keep = await this.seq.take(ids, knownVerdict ? ids.length : verdictIndex);
      const items = ids.slice(keep).map((id, k) => (keep + k === verdictIndex && !knownVerdict ? readItem(id, this.queryRead) : (id as Token)));
      const outputs = items.length ? await this.seq.evaluate(items) : [];
      this.cursor.phase = 'prompted';
      this.seq.responseStart = this.seq.sequence.nextTokenIndex;
      this.responseFed = this.seq.fed.length;
      if (knownVerdict) return knownVerdict;
      const z = readValues(outputs[verdictIndex - keep], this.queryRead, () => this.guard.stats.inexactTokens++)[0];
      const head = headFromPre(this.guard.layout.query, z, this.guard.layout.epsilon);
      return {
        riskLevel: head.riskLevel,
        category: head.riskLevel === 'Safe' ? null : head.category,
        probabilities: head.probabilities,
        categoryProbabilities: head.categoryProbabilities,
      };
    });
  }

  /**
   * Appends response text to a part (reasoning goes in the thinking block, before the answer). The text is
   * normalized to NFC as the model's tokenizer does. Chunk boundaries must not change the tokenization (the
   * aligner guarantees it); pass `final` with the last reasoning chunk so the template's closing newline is
   * tokenized with it. Returns the new tokens' verdicts, with offsets in this part's text as given.
   */
  appendText(part: ResponsePart, text: string, options: { final?: boolean; ahead?: string } = {}): Promise<TokenVerdict[]> {
    return this.serial(async () => {
      validatePart(part, 'appendText');
      validateText(text, 'appendText');
      if (options.ahead !== undefined) validateText(options.ahead, 'appendText (ahead)');
      const { items, ahead } = this.cursor.append(part, text, options.final === true, options.ahead);
      return this.score(items, ahead);
    });
  }

  /**
   * Evaluates `text` ahead, as if appended to `part` now, without appending it: the tail of a streamed text
   * that later text may still re-tokenize. When the text is appended (with `appendText`, in one call or
   * several), the tokens it starts with that were evaluated here are not evaluated again; tokens that came out
   * differently are erased from the KV cache (its last cells: cheap). Verdicts come only from `appendText`, so
   * nothing is decided on text that may change. `speculate('answer', '')` right after the prompt evaluates the
   * answer's scaffold (the empty thinking block) while the upstream model has not answered yet.
   * `appendText(part, text, { ahead })` does the same for the text after `text`: in the same decode when `text`
   * needs one, else right after its verdicts are returned.
   */
  speculate(part: ResponsePart, text: string): Promise<void> {
    return this.serial(async () => {
      validatePart(part, 'speculate');
      validateText(text, 'speculate');
      const items = this.cursor.speculation(part, text);
      if (items) await this.speculateItems(items);
    });
  }

  /** Appends response token ids (for an upstream that shares the Qwen3 tokenizer): every id is scored. */
  appendTokens(part: ResponsePart, ids: readonly number[]): Promise<TokenVerdict[]> {
    return this.serial(async () => {
      validatePart(part, 'appendTokens');
      validateTokenIds(ids, this.guard.layout.vocabSize, 'appendTokens');
      const items = this.cursor.openPart(part);
      const state = this.cursor.parts[part];
      if (!state.started && ids.length) {
        const prefix = part === 'reasoning' ? RESPONSE_TEMPLATE.reasoningPrefix : RESPONSE_TEMPLATE.answerPrefix;
        items.push(...scaffold(this.guard, [{ text: prefix }]));
        state.started = true;
      }
      items.push(...ids.map((id) => ({ id, scored: true, part })));
      return this.score(items);
    });
  }

  /**
   * Ends the response: evaluates the closing `<|im_end|>\n` as the last scored tokens. The official evaluation
   * (eval/eval_stream.py) scores every position to the end of the rendered conversation, which ends with that
   * pair, so it settles the debounce of the final content token and can itself complete a run. Returns their
   * verdicts (marked `closing`).
   */
  end(): Promise<TokenVerdict[]> {
    return this.serial(async () => {
      const verdicts = await this.score(this.cursor.closing());
      this.cursor.phase = 'ended';
      return verdicts;
    });
  }

  /**
   * Takes the response back to just after the scored token `last` (null: to the response's start): the cells and
   * `fed` tokens after it are erased (the last cells only, never the conversation), and text appended next
   * continues from there, as if nothing had followed `last`. For an on-the-fly intervention, which keeps the
   * released text and lets the upstream continue it: nothing kept is evaluated again. Evaluation stats keep
   * counting what was evaluated; the erased tokens are not counted anywhere.
   */
  rollbackTo(last: TokenVerdict | null): Promise<void> {
    return this.serial(async () => {
      this.cursor.expectPhase(['prompted', 'reasoning', 'answer', 'ended'], 'rollbackTo');
      const { seq } = this;
      if (seq.broken) throw new Error('rollbackTo: an evaluation failed, the cells no longer match the response');
      const { keepFed, keepScored } = rollbackPoint(last, { scored: this.scoredCount, fed: seq.fed.length, responseStart: this.responseFed });
      // The cells hold the last fed tokens (a context shift only erased older ones), speculated ones included.
      const erase = seq.fed.length - keepFed;
      if (seq.sequence.nextTokenIndex - erase < seq.responseStart) throw new Error('rollbackTo: a context shift already erased text that would remain');
      await seq.eraseLast(erase);
      this.tentative.clear(); // speculated cells came after the kept ones: erased with them
      this.scoredCount = keepScored;
      // Part state as right after `last`: its part open, with its text consumed up to the token's end.
      this.cursor.rollback(last);
    });
  }

  async countTokens(text: string): Promise<number> {
    return this.guard.tokenizeText(text).length;
  }

  /**
   * Frees the sequence for the next session. It keeps its KV cache (up to the first context shift) for the next
   * turn of the conversation; after a response, the finished turn is re-rendered in the background in the
   * form the next turn's template gives it. Safe to call more than once, also while a call is running.
   */
  async dispose(): Promise<void> {
    const { phase } = this.cursor;
    if (phase === 'disposed') return;
    this.cursor.phase = 'disposed';
    await this.queue;
    const { seq } = this;
    if (!seq.entry) return this.pool.unreserve();
    // Speculated cells are not the conversation: they go (as stale cells) when the sequence is taken again.
    const held = seq.broken ? null : seq.fed.slice(0, Math.min(seq.firstShift, seq.fed.length - this.tentative.length));
    const responded = phase === 'reasoning' || phase === 'answer' || phase === 'ended';
    const target = held && responded && this.pool.reuse ? historyIds(this.guard, this.messages, seq.fed.slice(this.responseFed, seq.fed.length - this.tentative.length), phase === 'ended') : undefined;
    await this.pool.give(seq.entry, held, target, (n) => (this.guard.stats.evaluatedTokens += n));
  }

  /** Evaluates items after the committed tokens as speculated ones, keeping the speculated tokens they start with. */
  private async speculateItems(items: Item[]): Promise<void> {
    const kept = this.tentative.match(items);
    if (kept === items.length) return;
    await this.tentative.drop(kept);
    const rest = items.slice(kept);
    this.tentative.add(rest, await this.seq.evaluateItems(rest, this.responseRead));
  }

  /** Evaluates and scores `items`; `ahead` (speculated text after them) goes in the same decode when one is needed. */
  private async score(items: Item[], ahead: Item[] = []): Promise<TokenVerdict[]> {
    if (this.speculationFailure) throw this.speculationFailure.error;
    const first = this.seq.fed.length - this.tentative.length;
    const kept = this.tentative.match(items);
    const outputs = this.tentative.commit(kept);
    if (kept < items.length) {
      // Tokens past the speculated ones: the speculation was wrong from there.
      await this.tentative.drop(0);
      const rest = items.slice(kept);
      const evaluated = await this.seq.evaluateItems([...rest, ...ahead], this.responseRead);
      outputs.push(...evaluated.slice(0, rest.length));
      this.tentative.add(ahead, evaluated.slice(rest.length));
    } else if (ahead.length) {
      // Everything was speculated: the verdicts go back now, the text ahead is evaluated right after.
      this.serial(() => this.speculateItems(ahead)).catch((error: unknown) => (this.speculationFailure ??= { error }));
    }
    const { layout } = this.guard;
    const verdicts: TokenVerdict[] = [];
    items.forEach((item, k) => {
      if (!item.scored) return;
      const head = readHead(layout.response, outputs[k], this.responseRead, layout.epsilon, () => this.guard.stats.inexactTokens++);
      verdicts.push(itemVerdict(item, this.scoredCount++, first + k, head));
    });
    count('scoredTokens', verdicts.length, this.guard.stats, this.counts);
    return verdicts;
  }
}
