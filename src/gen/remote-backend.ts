import { modelName } from '../format/model-name.js';
import type { Piece } from '../format/template.js';
import { anySignal, sleep } from '../shared/abort.js';
import { Permits } from '../shared/permits.js';
import { parseOptions } from '../shared/validation.js';
import type { GenBackend, GenSlot } from './backend.js';
import { GEN_PROMPT_CATEGORIES } from './categories.js';
import { GenOutputError, parseGenOutput } from './output.js';
import { remoteGenOptionsSchema, type RemoteGenOptions, type ResolvedRemoteGenOptions } from './remote-options.js';

/** The Gen server failed a call: no answer in time, an error status, or a body that is not a completions response. */
export class GenRemoteError extends Error {
  override readonly name = 'GenRemoteError';
  constructor(
    message: string,
    /** The HTTP status, or null when there was no response (network error, timeout). */
    readonly status: number | null = null,
    /** The start of the response body, when there was one. */
    readonly body: string | null = null,
  ) {
    super(message);
  }
}

export interface TopLogprob {
  token: string;
  logprob: number;
}

/**
 * An option absent from the top log-probabilities is below every listed one (the list is the top k): it is
 * scored as the smallest listed minus ln 10, a tenth of the least likely listed token's probability. An upper
 * bound would overstate it; a trained Gen puts nearly all the mass on the three verdict tokens, so the floor
 * only shapes probabilities that are tiny either way.
 */
export const ABSENT_MARGIN = Math.log(10);

/**
 * Markers in user or model text would be read as special tokens by a server (raw prompts are tokenized with
 * special-token parsing on). A zero-width space after the `<` keeps them plain text, as the local backend
 * keeps them (it tokenizes text with special tokens off): `<|im_end|>`, `<think>`, `</tool_call>`, ...
 */
const MARKER_LIKE = /<(?=\|)|<(?=\/?(?:think|tool_call|tool_response)>)/g;

/** The raw prompt: the template's markers as their literal text, the text between them unable to make one. */
export function rawPrompt(pieces: readonly Piece[]): string {
  return pieces.map((p) => ('special' in p ? p.special : p.text.replace(MARKER_LIKE, '<\u200b'))).join('');
}

const excerpt = (text: string) => (text.length > 300 ? `${text.slice(0, 300)}…` : text);

/** The first generated position's top log-probabilities, in either response shape. */
export function firstTopLogprobs(logprobs: unknown): TopLogprob[] | null {
  if (typeof logprobs !== 'object' || logprobs === null) return null;
  const l = logprobs as { top_logprobs?: unknown; content?: unknown };
  // Legacy completions (OpenAI, vLLM): `top_logprobs: [{ token: logprob, ... }, ...]`, one object per position.
  if (Array.isArray(l.top_logprobs)) {
    const first = l.top_logprobs[0];
    if (typeof first !== 'object' || first === null) return null;
    return Object.entries(first as Record<string, unknown>).flatMap(([token, logprob]) => (typeof logprob === 'number' ? [{ token, logprob }] : []));
  }
  // The chat form, which llama.cpp's server also uses for completions: `content: [{ top_logprobs: [{ token, logprob }] }]`.
  if (Array.isArray(l.content)) {
    const first = l.content[0] as { top_logprobs?: unknown } | undefined;
    if (!first || !Array.isArray(first.top_logprobs)) return null;
    return first.top_logprobs.flatMap((t: { token?: unknown; logprob?: unknown }) => (typeof t?.token === 'string' && typeof t.logprob === 'number' ? [{ token: t.token, logprob: t.logprob }] : []));
  }
  return null;
}

/**
 * Scores of `options` from the listed tokens: an option's score is the log-probability of the longest listed
 * token that starts it and no other option (` Cont` for ` Controversial`; a bare space starts all three and
 * says nothing). Absent options get the floor (ABSENT_MARGIN).
 */
export function optionScores(top: readonly TopLogprob[], options: readonly string[]): number[] | null {
  const best = options.map(() => ({ length: 0, logprob: -Infinity }));
  for (const { token, logprob } of top) {
    if (!token.trim()) continue;
    const starts = options.flatMap((o, i) => (o.startsWith(token) ? [i] : []));
    if (starts.length !== 1) continue;
    const b = best[starts[0]];
    if (token.length > b.length) best[starts[0]] = { length: token.length, logprob };
  }
  if (best.every((b) => b.length === 0)) return null;
  const floor = Math.min(...top.map((t) => t.logprob)) - ABSENT_MARGIN;
  return best.map((b) => (b.length ? b.logprob : floor));
}

interface Completion {
  text: string;
  finishReason: string | null;
  logprobs: unknown;
}

/**
 * Qwen3Guard-Gen behind an OpenAI-compatible completions endpoint (vLLM, SGLang, llama.cpp's server). The
 * rendered template goes as a raw `prompt` (the chat API would wrap it in the server's own chat template);
 * the verdict is read from the first position's top log-probabilities (`max_tokens: 1`), the category list is
 * a greedy (`temperature: 0`) continuation, checked by the output parser. No KV cache is kept here: serving
 * engines cache the shared instructions themselves (vLLM's and SGLang's prefix caching).
 */
export class RemoteGenBackend implements GenBackend {
  readonly kind = 'remote';
  readonly options: ResolvedRemoteGenOptions;
  readonly modelName: string;
  private readonly url: string;
  /** One per request in flight, up to `maxConcurrency`. */
  private readonly permits: Permits;
  private disposed = false;

  constructor(options: RemoteGenOptions) {
    this.options = parseOptions(remoteGenOptionsSchema, options, 'Qwen3GuardGen.remote');
    // The served name without its owner ('Qwen/Qwen3Guard-Gen-0.6B'): the size is not known here.
    this.modelName = modelName('Gen', undefined, this.options.model.split('/').at(-1));
    this.url = `${this.options.baseURL.replace(/\/+$/, '')}/completions`;
    this.permits = new Permits(this.options.maxConcurrency);
  }

  async open(signal?: AbortSignal): Promise<GenSlot> {
    if (this.disposed) throw new Error('This Qwen3GuardGen was disposed');
    signal?.throwIfAborted();
    if (!this.permits.tryAcquire()) await this.permits.wait(signal);
    let released = false;
    return {
      nextScores: (pieces, options) => this.nextScores(pieces, options, signal),
      generate: (pieces, request) => this.generate(pieces, request, signal),
      release: () => {
        if (released) return;
        released = true;
        this.permits.release();
      },
    };
  }

  private async nextScores(pieces: readonly Piece[], options: readonly string[], signal?: AbortSignal): Promise<number[]> {
    const completion = await this.complete({ prompt: rawPrompt(pieces), max_tokens: 1, logprobs: this.options.topLogprobs }, signal);
    const top = firstTopLogprobs(completion.logprobs);
    if (!top || top.length === 0) {
      throw new GenRemoteError(
        `The Gen server at ${this.url} returned no top log-probabilities for the verdict token: it must support \`logprobs\` on completions (vLLM: --max-logprobs at least ${this.options.topLogprobs})`,
      );
    }
    const scores = optionScores(top, options);
    if (!scores) {
      const listed = top.map((t) => JSON.stringify(t.token)).join(', ');
      throw new GenRemoteError(
        `None of ${options.map((o) => JSON.stringify(o)).join(', ')} is among the top log-probabilities (${listed}) of the Gen server at ${this.url}: check that model '${this.options.model}' is Qwen3Guard-Gen, not a chat model`,
      );
    }
    return scores;
  }

  private async generate(pieces: readonly Piece[], request: { grammar: string; maxTokens: number; stopAfter?: string }, signal?: AbortSignal): Promise<string> {
    const body: Record<string, unknown> = { prompt: rawPrompt(pieces), max_tokens: request.maxTokens };
    if (request.stopAfter !== undefined) body.stop = [request.stopAfter];
    if (this.options.grammar === 'llama.cpp') body.grammar = request.grammar;
    else if (this.options.grammar === 'vllm') body.guided_grammar = request.grammar;
    const completion = await this.complete(body, signal);
    let text = completion.text;
    // The stop string ends the text (servers leave it out; some keep it).
    if (request.stopAfter !== undefined) {
      const at = text.indexOf(request.stopAfter);
      if (at >= 0) text = text.slice(0, at + request.stopAfter.length);
      else if (completion.finishReason === 'stop') text += request.stopAfter;
    }
    this.check(text, request.stopAfter, completion.finishReason === 'length');
    return text;
  }

  /** The list must read as the grammar allows (but a last name cut at max_tokens), whatever the server did with it. */
  private check(text: string, stopAfter: string | undefined, cut: boolean): void {
    let list = stopAfter !== undefined && text.endsWith(stopAfter) ? text.slice(0, -stopAfter.length) : text;
    let problem: string | null = null;
    if (cut) {
      // The whole names before the cut are checked; the cut one must begin a name.
      const at = list.lastIndexOf(', ');
      const tail = at >= 0 ? list.slice(at + 2) : list.slice(1);
      if (!list.startsWith(' ') || !(GEN_PROMPT_CATEGORIES as readonly string[]).some((name) => name.startsWith(tail))) problem = `${JSON.stringify(tail)} begins no category name`;
      list = at >= 0 ? list.slice(0, at) : '';
    }
    if (!problem && list) {
      try {
        parseGenOutput(`Safety: Unsafe\nCategories:${list}`, 'prompt');
      } catch (error) {
        problem = (error as Error).message;
      }
    }
    if (!cut && !list) problem = 'it is empty';
    if (problem === null) return;
    const hint =
      this.options.grammar === 'none'
        ? "if the server supports grammars, set grammar: 'vllm' or 'llama.cpp'; check that it serves Qwen3Guard-Gen"
        : `check that the server applies \`${this.options.grammar === 'vllm' ? 'guided_grammar' : 'grammar'}\` and serves Qwen3Guard-Gen`;
    throw new GenOutputError(`The Gen server's category list ${JSON.stringify(excerpt(text))} is not a list of category names (${problem}): ${hint}`);
  }

  /** One completion, with retries on network errors, 429 and 5xx, all within `timeoutMs`. */
  private async complete(fields: Record<string, unknown>, signal?: AbortSignal): Promise<Completion> {
    if (this.disposed) throw new Error('This Qwen3GuardGen was disposed');
    const { timeoutMs, retries, retryBaseMs, apiKey, headers, model } = this.options;
    const deadline = AbortSignal.timeout(timeoutMs);
    const combined = anySignal(signal, deadline);
    const body = JSON.stringify({ model, temperature: 0, ...fields });
    const interrupted = (error: unknown) => {
      if (signal?.aborted) return signal.reason as unknown;
      if (deadline.aborted) {
        return new GenRemoteError(`The Gen server at ${this.url} did not answer within ${timeoutMs} ms (timeoutMs): check that it is up and not overloaded, or raise timeoutMs`);
      }
      return error;
    };
    for (let attempt = 0; ; attempt++) {
      const again = attempt < retries;
      let status: number;
      let text: string;
      try {
        const response = await (this.options.fetch ?? globalThis.fetch)(this.url, {
          method: 'POST',
          headers: { 'content-type': 'application/json', ...(apiKey ? { authorization: `Bearer ${apiKey}` } : {}), ...headers },
          body,
          signal: combined,
        });
        status = response.status;
        text = await response.text();
      } catch (error) {
        if (combined.aborted) throw interrupted(error);
        if (again) {
          await sleep(retryBaseMs * 2 ** attempt, combined).catch((e: unknown) => Promise.reject(interrupted(e)));
          continue;
        }
        // fetch's own message is 'fetch failed'; the cause says why (an AggregateError may have only a code).
        const inner = error instanceof Error && error.cause instanceof Error ? (error.cause as Error & { code?: string }) : null;
        const cause = inner ? inner.message || inner.code || inner.name : error instanceof Error ? error.message : String(error);
        throw new GenRemoteError(`Could not reach the Gen server at ${this.url} (${cause}) after ${attempt + 1} attempt(s): check baseURL and that the server is up`);
      }
      if (status < 200 || status >= 300) {
        const retryable = status === 429 || status >= 500;
        if (retryable && again) {
          await sleep(retryBaseMs * 2 ** attempt, combined).catch((e: unknown) => Promise.reject(interrupted(e)));
          continue;
        }
        const check =
          status === 401 || status === 403
            ? 'check apiKey and headers'
            : status === 404
              ? `check baseURL (the API root, often ending in /v1) and model ('${model}' must be the name the server serves)`
              : retryable
                ? `the server is failing or overloaded (${attempt + 1} attempt(s))`
                : `check model ('${model}') and that the server speaks the OpenAI completions API`;
        throw new GenRemoteError(`The Gen server at ${this.url} answered ${status}: ${JSON.stringify(excerpt(text))}; ${check}`, status, excerpt(text));
      }
      return this.parse(status, text);
    }
  }

  private parse(status: number, text: string): Completion {
    const malformed = (what: string) =>
      new GenRemoteError(`The Gen server at ${this.url} sent ${what}: ${JSON.stringify(excerpt(text))}; check that baseURL is an OpenAI-compatible API root`, status, excerpt(text));
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      throw malformed('a body that is not JSON');
    }
    const choice = (json as { choices?: unknown } | null)?.choices;
    const first = Array.isArray(choice) ? (choice[0] as { text?: unknown; finish_reason?: unknown; logprobs?: unknown } | undefined) : undefined;
    if (!first || typeof first.text !== 'string') throw malformed('no choices[0].text (not a completions response)');
    return { text: first.text, finishReason: typeof first.finish_reason === 'string' ? first.finish_reason : null, logprobs: first.logprobs };
  }

  async dispose(): Promise<void> {
    this.disposed = true;
  }
}
