import type { Llama, LlamaContext, LlamaContextSequence, LlamaGrammar, LlamaModel, Token } from 'node-llama-cpp';
import { commonPrefix } from '../engine/sequence-pool.js';
import { loadGenModel } from '../gen/local-backend.js';
import type { ResolvedGenOptions } from '../gen/options.js';
import { GuardBusyError } from '../guard/errors.js';
import { Permits } from '../shared/permits.js';

/** An answer of the completions endpoint: status and JSON body. */
export interface Completion {
  status: number;
  json: unknown;
}

interface Slot {
  sequence: LlamaContextSequence;
  lastUsed: number;
}

/**
 * The OpenAI-compatible completions API over a Gen GGUF, as far as `Qwen3GuardGen.remote` (and vLLM-style
 * clients) use it: a raw `prompt` tokenized with special tokens parsed (markers in it become marker tokens, as
 * serving engines do), `logprobs: k` for the first position's top k log-probabilities over the whole
 * vocabulary, a greedy continuation (temperature 0) under `grammar` or `guided_grammar` (GBNF) when given, cut
 * at `stop` (left out of the text) or `max_tokens`. Each sequence keeps what it evaluated: a request takes the
 * free sequence sharing the longest prefix with it (the moderation instructions) and evaluates only the rest,
 * as prefix caching does.
 */
export class GenCompletions {
  private readonly free: Slot[];
  private readonly permits: Permits;
  private readonly grammars = new Map<string, Promise<LlamaGrammar>>();
  private clock = 0;

  constructor(
    private readonly llama: Llama,
    private readonly model: LlamaModel,
    private readonly context: LlamaContext,
    sequences: number,
    private readonly maxWaiting: number,
  ) {
    this.free = Array.from({ length: sequences }, () => ({ sequence: context.getSequence(), lastUsed: 0 }));
    this.permits = new Permits(sequences);
  }

  /** Loads a Gen GGUF with `maxSessions` sequences; past `maxWaiting` waiting requests, a request is refused as busy. */
  static async load(options: ResolvedGenOptions): Promise<GenCompletions> {
    const { llama, model, context } = await loadGenModel(options);
    return new GenCompletions(llama, model, context, options.maxSessions, options.maxWaiting ?? options.maxSessions * 4);
  }

  /** Answers one completions request body (already parsed JSON). */
  async complete(body: Record<string, unknown>, signal?: AbortSignal): Promise<Completion> {
    const prompt = body.prompt;
    if (typeof prompt !== 'string') return bad('prompt must be a string (one raw prompt; arrays of prompts are not supported)');
    const maxTokens = body.max_tokens ?? 16;
    if (typeof maxTokens !== 'number' || !Number.isInteger(maxTokens) || maxTokens < 1 || maxTokens > 4096) return bad('max_tokens must be an integer from 1 to 4096');
    const k = body.logprobs ?? 0;
    if (typeof k !== 'number' || !Number.isInteger(k) || k < 0 || k > 20) return bad('logprobs must be an integer from 0 to 20');
    const stop = Array.isArray(body.stop) ? body.stop : typeof body.stop === 'string' ? [body.stop] : body.stop === undefined ? [] : null;
    if (!stop || stop.some((s) => typeof s !== 'string')) return bad('stop must be a string or an array of strings');
    const grammar = body.grammar ?? body.guided_grammar;
    if (grammar !== undefined && typeof grammar !== 'string') return bad('grammar must be a GBNF string');
    if (!this.permits.tryAcquire()) {
      if (this.permits.waitingCount >= this.maxWaiting) throw new GuardBusyError(`Gen is busy: every sequence is in use and ${this.maxWaiting} requests wait`);
      await this.permits.wait(signal);
    }
    const tokens = this.model.tokenize(prompt, true);
    const slot = this.take(tokens);
    try {
      const top = k > 0 ? await this.topLogprobs(slot.sequence, tokens, k) : null;
      // One greedy token without a grammar is the most likely one: no second pass.
      const { text, finish } =
        top && maxTokens === 1 && !grammar ? { text: top[0].token, finish: 'length' as const } : await this.continuation(slot.sequence, tokens, maxTokens, stop as string[], grammar);
      let logprobs: unknown = null;
      if (top) {
        const first = top.find((t) => t.token === text.slice(0, t.token.length)) ?? top[0];
        logprobs = { tokens: [first.token], token_logprobs: [first.logprob], top_logprobs: [Object.fromEntries(top.map((t) => [t.token, t.logprob]))], text_offset: [0] };
      }
      return {
        status: 200,
        json: {
          id: `cmpl-${++this.clock}`,
          object: 'text_completion',
          model: body.model ?? null,
          choices: [{ index: 0, text, logprobs, finish_reason: finish }],
          usage: { prompt_tokens: tokens.length, completion_tokens: 0, total_tokens: tokens.length },
        },
      };
    } finally {
      this.free.push(slot);
      this.permits.release();
    }
  }

  async dispose(): Promise<void> {
    this.permits.rejectWaiting(new Error('The server is shutting down'));
    await this.context.dispose();
    await this.model.dispose();
  }

  /** The free sequence sharing the longest prefix with `tokens` (else the least recently used). */
  private take(tokens: readonly number[]): Slot {
    let best = 0;
    for (let i = 1; i < this.free.length; i++) {
      const a = commonPrefix(this.free[i].sequence.contextTokens, tokens);
      const b = commonPrefix(this.free[best].sequence.contextTokens, tokens);
      if (a > b || (a === b && this.free[i].lastUsed < this.free[best].lastUsed)) best = i;
    }
    const [slot] = this.free.splice(best, 1);
    slot.lastUsed = ++this.clock;
    return slot;
  }

  /** Keeps the longest common prefix with what the sequence holds; returns the tokens left to evaluate (never none). */
  private async align(sequence: LlamaContextSequence, tokens: Token[]): Promise<Token[]> {
    const keep = Math.min(commonPrefix(sequence.contextTokens, tokens), tokens.length - 1);
    if (keep < sequence.nextTokenIndex) {
      if (keep === 0) await sequence.clearHistory();
      else await sequence.eraseContextTokenRanges([{ start: keep, end: sequence.nextTokenIndex }]);
    }
    return tokens.slice(keep);
  }

  /** The top `k` next-token log-probabilities after `all`, exact (the softmax's normalizer included). */
  private async topLogprobs(sequence: LlamaContextSequence, all: Token[], k: number): Promise<Array<{ token: string; logprob: number }>> {
    const tokens = await this.align(sequence, all);
    const last = tokens.length - 1;
    const items = tokens.map((id, i) => (i === last ? ([id, { generateNext: { logits: { filter: { tokens: [], includeTop: k } }, totalLogitWeight: true } }] as const) : id));
    const outputs = await sequence.controlledEvaluate(items as Parameters<typeof sequence.controlledEvaluate>[0]);
    const { logits, totalLogitWeight } = outputs[last]!.next;
    const entries = [...logits!.entries()].sort((a, b) => b[1] - a[1]).slice(0, k);
    const max = entries[0][1];
    return entries.map(([id, logit]) => ({ token: this.model.detokenize([id], false), logprob: logit - max - Math.log(totalLogitWeight!) }));
  }

  private async continuation(sequence: LlamaContextSequence, all: Token[], maxTokens: number, stop: string[], grammar: string | undefined): Promise<{ text: string; finish: 'stop' | 'length' }> {
    const { LlamaGrammarEvaluationState } = await import('node-llama-cpp');
    const tokens = await this.align(sequence, all);
    let grammarEvaluationState: InstanceType<typeof LlamaGrammarEvaluationState> | undefined;
    if (grammar) {
      if (!this.grammars.has(grammar)) {
        const created = this.llama.createGrammar({ grammar });
        created.catch(() => this.grammars.delete(grammar));
        this.grammars.set(grammar, created);
      }
      grammarEvaluationState = new LlamaGrammarEvaluationState({ model: this.model, grammar: await this.grammars.get(grammar)! });
    }
    const generated: Token[] = [];
    for await (const token of sequence.evaluate(tokens, { temperature: 0, grammarEvaluationState })) {
      if (this.model.isEogToken(token)) return { text: this.model.detokenize(generated, false), finish: 'stop' };
      generated.push(token);
      const text = this.model.detokenize(generated, false);
      const hit = stop.map((s) => text.indexOf(s)).filter((at) => at >= 0);
      if (hit.length) return { text: text.slice(0, Math.min(...hit)), finish: 'stop' };
      if (generated.length >= maxTokens) return { text, finish: 'length' };
    }
    return { text: this.model.detokenize(generated, false), finish: 'stop' };
  }
}

const bad = (message: string): Completion => ({ status: 400, json: { error: { message, type: 'invalid_request_error' } } });
