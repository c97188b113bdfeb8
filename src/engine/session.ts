import type { ControlledEvaluateIndexOutput, ControlledEvaluateInputItem, LlamaContextSequence, Token } from 'node-llama-cpp';
import type { HeadLayout, RowBlock } from '../format/guard-metadata.js';
import type { Qwen3Guard } from './guard.js';
import { headFromPre, labelsFromFolded, pairIds, readPairs, readRows, type HeadResult } from './heads.js';
import { commonPrefix, type PooledSequence, type SequencePool } from './sequence-pool.js';
import { END_THINK, IM_END, RESPONSE_TEMPLATE, renderConversation, type Piece } from '../format/template.js';
import type { GuardMessage, PromptVerdict, ResponsePart, TokenVerdict } from '../guard/types.js';
import { normalizeNfc } from '../shared/nfc.js';
import { validateMessages, validatePart, validateText, validateTokenIds } from '../guard/input-validation.js';

/** A token to evaluate; `scored` ones get a verdict. */
interface Item {
  id: number;
  scored: boolean;
  part?: ResponsePart;
  start?: number;
  end?: number;
  /** One of the closing `<|im_end|>\n` tokens (no text). */
  closing?: true;
}

type Phase = 'new' | 'prompted' | ResponsePart | 'ended' | 'disposed';
/** Phases in which text of a part may come: reasoning only before the answer. */
const PART_PHASES: Record<ResponsePart, Phase[]> = { reasoning: ['prompted', 'reasoning'], answer: ['prompted', 'reasoning', 'answer'] };

/**
 * How a scored token's head values are read from its logits.
 * - folded: the folded rows' (+, -) pairs through a top-k. Every pair has a member far above the vocabulary's
 *   logits, so k holds all pairs of both paths plus spare slots (a pair is missed only if its value is below
 *   the 64th largest vocabulary logit: it then reads 0, counted in `inexactTokens`). k stays <= 128, where
 *   llama.cpp partially sorts in place instead of bucketing the whole vocabulary.
 * - pre: the G plain `W_pre` rows through the logits filter (a scan of the vocabulary per token, so only where
 *   exact probabilities are asked for: the prompt, and responses with `responseProbabilities`).
 */
type Readout = { kind: 'folded'; blocks: [RowBlock, RowBlock]; filter: number[]; topK: number } | { kind: 'pre'; start: number; count: number; filter: number[] };

const SPARE_SLOTS = 64;
/** Most scored tokens per decode: bounds llama.cpp's output buffer (see `score`). */
export const OUTPUTS_PER_DECODE = 64;

function foldedReadout(head: HeadLayout, foldedRows: number): Readout {
  const blocks: [RowBlock, RowBlock] = [head.risk, head.category];
  return { kind: 'folded', blocks, filter: blocks.flatMap(pairIds), topK: foldedRows + SPARE_SLOTS };
}

function preReadout(head: HeadLayout, innerSize: number): Readout {
  return { kind: 'pre', start: head.preRow, count: innerSize, filter: Array.from({ length: innerSize }, (_, i) => head.preRow + i) };
}

/** Per-part text state: the template's prefix goes in front of the part's first text. */
interface PartText {
  started: boolean;
  /** Characters of the part's text consumed so far (offsets of later chunks start here). */
  consumed: number;
  closed: boolean;
}

/**
 * One conversation on its own sequence. `checkPrompt` evaluates the conversation and reads the query head at
 * the last user turn's `<|im_end|>`; the response then streams in through `appendText` / `appendTokens`,
 * each token evaluated once through the KV cache, chunks in one decode. Calls are serialized.
 */
export class GuardSession {
  private phase: Phase = 'new';
  private scoredCount = 0;
  /** Every token fed, in order: the rendered conversation so far (template tokens included). */
  private readonly fed: number[] = [];
  private queue: Promise<unknown> = Promise.resolve();
  /** Sequence index where the response starts: a context shift keeps everything before it. */
  private responseStart = 0;
  /** The sequence, taken from the pool by `checkPrompt`. */
  private entry: PooledSequence | null = null;
  /** The conversation as rendered by `checkPrompt` (NFC), for the history form of the finished turn. */
  private messages: GuardMessage[] = [];
  /** Index in `fed` of the response's first token (after the opening). */
  private responseFed = 0;
  /** Sequence index of the first cell a context shift erased: the cells from there on are no plain prefix. */
  private firstShift = Infinity;
  /** An evaluation failed: the cells no longer match `fed`. */
  private broken = false;
  private readonly parts: Record<ResponsePart, PartText> = {
    reasoning: { started: false, consumed: 0, closed: false },
    answer: { started: false, consumed: 0, closed: false },
  };
  private readonly responseRead: Readout;
  private readonly queryRead: Readout;
  /**
   * Tokens evaluated ahead of the text given (`speculate`): the last cells of the sequence (and of `fed`), with
   * their outputs. A later call whose tokens start with them takes their outputs instead of evaluating again.
   */
  private tentative: Array<{ item: Item; output: ControlledEvaluateIndexOutput | undefined }> = [];
  /** A speculation started after a call returned failed: the next call reports it. */
  private speculationFailure: { error: unknown } | null = null;

  constructor(
    readonly guard: Qwen3Guard,
    private readonly pool: SequencePool,
  ) {
    const { response, query, innerSize } = guard.layout;
    const folded = [response, query].reduce((n, h) => n + h.risk.scaleLog2.length + h.category.scaleLog2.length, 0);
    this.responseRead = guard.options.responseProbabilities ? preReadout(response, innerSize) : foldedReadout(response, folded);
    this.queryRead = preReadout(query, innerSize);
  }

  /** Response tokens scored so far. */
  get scoredTokens(): number {
    return this.scoredCount;
  }

  /** Token ids of the conversation so far, found in the KV cache or evaluated (also what a context shift dropped). */
  get tokenIds(): readonly number[] {
    return this.fed;
  }

  private get sequence(): LlamaContextSequence {
    if (!this.entry) throw new Error('This GuardSession has no sequence yet: call checkPrompt(messages) first');
    return this.entry.sequence;
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
      this.expectPhase(['new'], 'checkPrompt');
      const normalized = messages.map((m) => ({ ...m, content: m.content.normalize('NFC'), reasoning: m.reasoning?.normalize('NFC') }));
      const { pieces, verdictPiece } = renderConversation(normalized);
      const before = this.guard.tokenizePieces(pieces.slice(0, verdictPiece));
      const after = this.guard.tokenizePieces([...pieces.slice(verdictPiece + 1), ...RESPONSE_TEMPLATE.opening]);
      const verdictIndex = before.length;
      const ids = [...before, this.guard.specialId(IM_END), ...after];
      this.messages = normalized;
      this.entry = await this.pool.take(ids);
      const { knownVerdict } = options;
      // The verdict needs the logits of its own token: keep at most the prefix before it.
      const keep = Math.min(commonPrefix(this.entry.held, ids), knownVerdict ? ids.length : verdictIndex);
      this.broken = true; // until the cells are known to hold the kept prefix
      await this.pool.trim(this.entry, keep);
      this.broken = false;
      this.fed.push(...ids.slice(0, keep));
      this.guard.stats.reusedTokens += keep;
      const items = ids.slice(keep).map((id, k) => (keep + k === verdictIndex && !knownVerdict ? this.readItem(id, this.queryRead) : (id as Token)));
      const outputs = items.length ? await this.evaluate(items) : [];
      this.phase = 'prompted';
      this.responseStart = this.sequence.nextTokenIndex;
      this.responseFed = this.fed.length;
      if (knownVerdict) return knownVerdict;
      const z = this.values(outputs[verdictIndex - keep], this.queryRead)[0];
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
      const items = this.openPart(part);
      const { items: textItems, state } = this.textItems(part, text, options.final === true);
      this.parts[part] = state;
      const ahead = options.ahead && !state.closed ? this.textItems(part, options.ahead, false).items : [];
      return this.score([...items, ...textItems], ahead);
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
      this.expectPhase(PART_PHASES[part], 'speculate');
      if (part === 'reasoning' && this.parts.reasoning.closed) return;
      await this.speculateItems([...this.openingItems(part), ...this.textItems(part, text, false).items]);
    });
  }

  /** Evaluates items after the committed tokens as speculated ones, keeping the speculated tokens they start with. */
  private async speculateItems(items: Item[]): Promise<void> {
    const kept = this.matchTentative(items);
    if (kept === items.length) return;
    await this.dropTentative(kept);
    const rest = items.slice(kept);
    this.keepTentative(rest, await this.evaluateItems(rest));
  }

  private keepTentative(items: Item[], outputs: Array<ControlledEvaluateIndexOutput | undefined>): void {
    this.tentative.push(...items.map((item, k) => ({ item, output: outputs[k] })));
    this.guard.stats.speculatedTokens += items.length;
  }

  /**
   * The tokens of `text` appended to `part` (NFC-normalized, the template's prefix before the part's first text,
   * the closing newline and `</think>` after final reasoning), and the part's text state after them.
   */
  private textItems(part: ResponsePart, text: string, final: boolean): { items: Item[]; state: PartText } {
    const state = { ...this.parts[part] };
    const items: Item[] = [];
    let raw = text;
    if (!state.started) {
      // The template drops leading newlines of both parts (and trailing ones of the reasoning).
      const stripped = raw.replace(/^\n+/, '');
      state.consumed += raw.length - stripped.length;
      raw = stripped;
    }
    if (final && part === 'reasoning') raw = raw.replace(/\n+$/, '');
    const { text: content, toOriginal } = normalizeNfc(raw);
    const prefix = state.started || !content ? '' : part === 'reasoning' ? RESPONSE_TEMPLATE.reasoningPrefix : RESPONSE_TEMPLATE.answerPrefix;
    const suffix = final && part === 'reasoning' ? RESPONSE_TEMPLATE.reasoningSuffix : '';
    if (content) state.started = true;
    const segment = prefix + content + suffix;
    const ids = this.guard.tokenizeText(segment);
    const spans = this.guard.tokenBytes.spans(segment, ids);
    // Bytes, not characters, decide what is scored: every byte token of a split character is content,
    // wherever the chunk ends (prefix and suffix are ASCII, one byte per character).
    const contentBytes = [prefix.length, prefix.length + Buffer.byteLength(content, 'utf8')];
    const consumed = state.consumed;
    ids.forEach((id, k) => {
      const { byteStart, byteEnd, start, end } = spans[k];
      // Tokens made only of template text are scaffold; a token straddling into the content is scored.
      const scored = byteEnd > contentBytes[0] && byteStart < contentBytes[1];
      const toPart = (x: number) => consumed + toOriginal[Math.min(content.length, Math.max(0, x - prefix.length))];
      items.push(scored ? { id, scored, part, start: toPart(start), end: toPart(end) } : { id, scored });
    });
    state.consumed += raw.length;
    if (final && part === 'reasoning') {
      state.closed = true;
      // With content, its segment already ends in the closing newline; otherwise add it (or the empty block).
      items.push(...(content ? this.scaffold([{ special: END_THINK }]) : this.reasoningClosing(!state.started)));
    }
    return { items, state };
  }

  /** Appends response token ids (for an upstream that shares the Qwen3 tokenizer): every id is scored. */
  appendTokens(part: ResponsePart, ids: readonly number[]): Promise<TokenVerdict[]> {
    return this.serial(async () => {
      validatePart(part, 'appendTokens');
      validateTokenIds(ids, this.guard.layout.vocabSize, 'appendTokens');
      const items = this.openPart(part);
      const state = this.parts[part];
      if (!state.started && ids.length) {
        const prefix = part === 'reasoning' ? RESPONSE_TEMPLATE.reasoningPrefix : RESPONSE_TEMPLATE.answerPrefix;
        items.push(...this.guard.tokenizeText(prefix).map((id) => ({ id, scored: false })));
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
      const items = this.openPart('answer');
      if (!this.parts.answer.started) items.push(...this.scaffold([{ text: RESPONSE_TEMPLATE.answerPrefix }]));
      for (const id of [this.guard.specialId(IM_END), ...this.guard.tokenizeText(RESPONSE_TEMPLATE.closing)]) items.push({ id, scored: true, part: 'answer', closing: true });
      const verdicts = await this.score(items);
      this.phase = 'ended';
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
      this.expectPhase(['prompted', 'reasoning', 'answer', 'ended'], 'rollbackTo');
      if (this.broken) throw new Error('rollbackTo: an evaluation failed, the cells no longer match the response');
      const keepFed = last ? last.position + 1 : this.responseFed;
      const keepScored = last ? last.index + 1 : 0;
      if (keepScored > this.scoredCount || keepFed > this.fed.length || keepFed < this.responseFed) {
        throw new Error(`rollbackTo: token ${last?.index} is not a scored token of this response`);
      }
      // The cells hold the last fed tokens (a context shift only erased older ones), speculated ones included.
      const erase = this.fed.length - keepFed;
      if (this.sequence.nextTokenIndex - erase < this.responseStart) throw new Error('rollbackTo: a context shift already erased text that would remain');
      await this.eraseLast(erase);
      this.tentative = []; // speculated cells came after the kept ones: erased with them
      this.scoredCount = keepScored;
      // Part state as right after `last`: its part open, with its text consumed up to the token's end.
      const fresh = (): PartText => ({ started: false, consumed: 0, closed: false });
      const part = last?.part;
      if (part !== 'answer') Object.assign(this.parts.reasoning, part === 'reasoning' ? { started: true, consumed: last!.end ?? this.parts.reasoning.consumed, closed: false } : fresh());
      Object.assign(this.parts.answer, part === 'answer' ? { started: true, consumed: last!.end ?? this.parts.answer.consumed, closed: false } : fresh());
      this.phase = last?.closing ? 'ended' : (part ?? 'prompted');
    });
  }

  /**
   * Frees the sequence for the next session. It keeps its KV cache (up to the first context shift) for the next
   * turn of the conversation; after a response, the finished turn is re-rendered in the background in the
   * form the next turn's template gives it. Safe to call more than once, also while a call is running.
   */
  async dispose(): Promise<void> {
    if (this.phase === 'disposed') return;
    const phase = this.phase;
    this.phase = 'disposed';
    await this.queue;
    if (!this.entry) return this.pool.unreserve();
    // Speculated cells are not the conversation: they go (as stale cells) when the sequence is taken again.
    const held = this.broken ? null : this.fed.slice(0, Math.min(this.firstShift, this.fed.length - this.tentative.length));
    const responded = phase === 'reasoning' || phase === 'answer' || phase === 'ended';
    const target = held && responded && this.pool.reuse ? this.historyIds(phase === 'ended') : undefined;
    await this.pool.give(this.entry, held, target, (n) => (this.guard.stats.evaluatedTokens += n));
  }

  /**
   * The conversation with this response as an earlier assistant turn, as the next turn renders it when the
   * client sends the answer back unchanged: `<|im_start|>assistant\n{answer}<|im_end|>\n`, no think block.
   */
  private historyIds(ended: boolean): number[] {
    // An ended response finishes with the closing `<|im_end|>\n`, which the history form writes itself.
    const closing = ended ? 1 + this.guard.tokenizeText(RESPONSE_TEMPLATE.closing).length : 0;
    const response = this.fed.slice(this.responseFed, this.fed.length - this.tentative.length - closing);
    const answerStart = response.indexOf(this.guard.specialId(END_THINK));
    const text = answerStart < 0 ? '' : this.guard.model.detokenize(response.slice(answerStart + 1) as Token[], false);
    const content = text.startsWith(RESPONSE_TEMPLATE.answerPrefix) ? text.slice(RESPONSE_TEMPLATE.answerPrefix.length) : text;
    // A user turn after the answer makes it an earlier turn; its own pieces (<|im_start|>, user\n, <|im_end|>, \n) are cut.
    const { pieces } = renderConversation([...this.messages, { role: 'assistant', content }, { role: 'user', content: '' }]);
    return this.guard.tokenizePieces(pieces.slice(0, -4));
  }

  private expectPhase(allowed: Phase[], what: string): void {
    if (this.phase === 'disposed') throw new Error(`${what}: this GuardSession was disposed`);
    if (!allowed.includes(this.phase)) {
      const hint = this.phase === 'new' ? 'call checkPrompt(messages) first' : this.phase === 'ended' ? 'the response has ended' : `the session is in its ${this.phase} phase`;
      throw new Error(`${what}: ${hint}`);
    }
  }

  /** Scaffold that must precede tokens of `part`, moving the phase forward. */
  private openPart(part: ResponsePart): Item[] {
    const what = part === 'reasoning' ? 'appending reasoning' : 'appending the answer';
    this.expectPhase(PART_PHASES[part], what);
    if (part === 'reasoning' && this.parts.reasoning.closed) throw new Error(`${what}: the reasoning was already ended with final: true`);
    const items = this.openingItems(part);
    if (part === 'answer') this.parts.reasoning.closed = true;
    this.phase = part;
    return items;
  }

  /** The scaffold before `part`'s tokens: an empty thinking block is the template's "\n\n", an open one gets its closing newline. */
  private openingItems(part: ResponsePart): Item[] {
    if (part !== 'answer' || this.phase === 'answer' || this.parts.reasoning.closed) return [];
    return this.reasoningClosing(!this.parts.reasoning.started);
  }

  /** `\n</think>` after reasoning, or the empty block's `\n\n</think>`. */
  private reasoningClosing(empty: boolean): Item[] {
    const text = empty ? RESPONSE_TEMPLATE.reasoningPrefix + RESPONSE_TEMPLATE.reasoningSuffix : RESPONSE_TEMPLATE.reasoningSuffix;
    return this.scaffold([{ text }, { special: END_THINK }]);
  }

  private scaffold(pieces: Piece[]): Item[] {
    return this.guard.tokenizePieces(pieces).map((id) => ({ id, scored: false }));
  }

  private readItem(id: number, read: Readout): ControlledEvaluateInputItem {
    const filter = { tokens: read.filter as Token[] };
    const options = read.kind === 'folded' ? { temperature: 1, topK: read.topK, topP: 1, minP: 0, seed: 0 } : undefined;
    return [id as Token, { generateNext: { logits: { filter }, options } }];
  }

  /** The head values of a scored token: folded label rows, or z = W_pre h. */
  private values(output: ControlledEvaluateIndexOutput | undefined, read: Readout): Float64Array[] {
    const logits = output?.next.logits;
    if (!logits) throw new Error('The guard returned no logits for a scored token');
    if (read.kind === 'pre') return [readRows(logits, read.start, read.count)];
    return read.blocks.map((block) => {
      const result = readPairs(logits, block);
      if (!result.exact) this.guard.stats.inexactTokens++;
      return result.values;
    });
  }

  private head(layout: HeadLayout, output: ControlledEvaluateIndexOutput | undefined): HeadResult {
    const values = this.values(output, this.responseRead);
    if (this.responseRead.kind === 'pre') return headFromPre(layout, values[0], this.guard.layout.epsilon);
    return labelsFromFolded(layout, values[0], values[1]);
  }

  /** Evaluates and scores `items`; `ahead` (speculated text after them) goes in the same decode when one is needed. */
  private async score(items: Item[], ahead: Item[] = []): Promise<TokenVerdict[]> {
    if (this.speculationFailure) throw this.speculationFailure.error;
    const first = this.fed.length - this.tentative.length;
    const kept = this.matchTentative(items);
    const outputs = this.tentative.splice(0, kept).map((t) => t.output);
    if (kept < items.length) {
      // Tokens past the speculated ones: the speculation was wrong from there.
      await this.dropTentative(0);
      const rest = items.slice(kept);
      const evaluated = await this.evaluateItems([...rest, ...ahead]);
      outputs.push(...evaluated.slice(0, rest.length));
      this.keepTentative(ahead, evaluated.slice(rest.length));
    } else if (ahead.length) {
      // Everything was speculated: the verdicts go back now, the text ahead is evaluated right after.
      this.serial(() => this.speculateItems(ahead)).catch((error: unknown) => (this.speculationFailure ??= { error }));
    }
    const verdicts: TokenVerdict[] = [];
    items.forEach((item, k) => {
      if (!item.scored) return;
      const head = this.head(this.guard.layout.response, outputs[k]);
      const verdict: TokenVerdict = {
        index: this.scoredCount++,
        position: first + k,
        id: item.id,
        part: item.part!,
        riskLevel: head.riskLevel,
        category: head.riskLevel === 'Safe' ? null : head.category,
      };
      if (head.probabilities) verdict.probabilities = head.probabilities;
      if (item.start !== undefined) Object.assign(verdict, { start: item.start, end: item.end });
      if (item.closing) verdict.closing = true;
      verdicts.push(verdict);
    });
    this.guard.stats.scoredTokens += verdicts.length;
    return verdicts;
  }

  /**
   * Evaluates items, reading the scored ones' head values. llama.cpp keeps an output buffer as large as the most
   * outputs a decode ever had (a full vocabulary row of logits each, about 1.5 MB per token for Qwen3's
   * vocabulary, never given back): a long text goes in decodes of at most OUTPUTS_PER_DECODE outputs, which
   * costs little speed past 64-token chunks.
   */
  private async evaluateItems(items: Item[]): Promise<Array<ControlledEvaluateIndexOutput | undefined>> {
    const outputs: Array<ControlledEvaluateIndexOutput | undefined> = [];
    for (let at = 0; at < items.length; ) {
      let end = at;
      for (let scored = 0; end < items.length && (scored < OUTPUTS_PER_DECODE || !items[end].scored); end++) if (items[end].scored) scored++;
      const group = items.slice(at, end);
      outputs.push(...(await this.evaluate(group.map((item) => (item.scored ? this.readItem(item.id, this.responseRead) : (item.id as Token))))));
      at = end;
    }
    return outputs;
  }

  /** How many of `items` the speculated tokens start with (same ids, scored alike, so the outputs hold). */
  private matchTentative(items: Item[]): number {
    let n = 0;
    while (n < items.length && n < this.tentative.length && this.tentative[n].item.id === items[n].id && this.tentative[n].item.scored === items[n].scored) n++;
    return n;
  }

  /** Erases the speculated tokens after the first `keep`: the last cells of the sequence. */
  private async dropTentative(keep: number): Promise<void> {
    const drop = this.tentative.length - keep;
    if (drop <= 0) return;
    await this.eraseLast(drop);
    this.tentative.length = keep;
    this.guard.stats.discardedTokens += drop;
  }

  /** Erases the last `count` cells and their `fed` tokens (cheap: never from index 0). */
  private async eraseLast(count: number): Promise<void> {
    if (count <= 0) return;
    const sequence = this.sequence;
    const end = sequence.nextTokenIndex;
    this.broken = true; // until the cells are known to match `fed` again
    await this.pool.foreground(() => sequence.eraseContextTokenRanges([{ start: end - count, end }]));
    this.broken = false;
    this.fed.length -= count;
  }

  /** One controlledEvaluate: one decode per batch; a full context drops the oldest tokens after the first. */
  private async evaluate(items: ControlledEvaluateInputItem[]) {
    if (this.phase === 'disposed') throw new Error('This GuardSession was disposed');
    const contextSize = this.guard.context.contextSize;
    const sequence = this.sequence;
    const options: Parameters<LlamaContextSequence['controlledEvaluate']>[1] = {
      contextShift: {
        // Free a quarter of the context at once so that shifts stay rare. Drop the oldest response tokens and
        // keep the conversation the verdicts depend on, unless it fills half the context itself (then drop its
        // oldest tokens). Never erase token 0 (the attention sink), so nothing is re-evaluated.
        size: Math.max(1, Math.floor(contextSize / 4)),
        strategy: ({ sequence, size }) => {
          const start = this.responseStart > 0 && this.responseStart <= contextSize / 2 ? this.responseStart : 1;
          const end = Math.min(sequence.nextTokenIndex, start + size);
          this.firstShift = Math.min(this.firstShift, start);
          this.guard.stats.contextShifts++;
          this.guard.stats.shiftedTokens += sequence.nextTokenIndex - end;
          return [{ start, end }];
        },
      },
    };
    const outputs = await this.pool.decode(() => sequence.controlledEvaluate(items, options)).catch((error: unknown) => {
      this.broken = true;
      throw error;
    });
    for (const item of items) this.fed.push(typeof item === 'number' ? item : item[0]);
    this.guard.stats.evaluatedTokens += items.length;
    this.guard.stats.evaluations++;
    return outputs;
  }
}
