/**
 * Where the hidden states of a `/generate` answer sit in the sequence sent.
 *
 * SGLang (docs/sglang.md) reuses a cached prefix of at most `input_ids.length - 1` tokens, reports it as
 * `meta_info.cached_tokens`, and returns in `meta_info.hidden_states[0]` one row per position it recomputed:
 * positions [cached_tokens, input_ids.length), in order. Later entries of `hidden_states` are decode steps
 * (generated tokens), not input positions, and are ignored here.
 */

/** Why an answer's states cannot serve a request. */
export type SglangAnswerProblem =
  /** Not the documented shape (no rows, a row of the wrong width, a non-number, an impossible cached_tokens). */
  | 'malformed'
  /** Fewer rows than the positions the server says it recomputed: nothing may be assumed about which are missing. */
  | 'short'
  /** The server's prefix cache held positions whose states are needed; a cached position is never recomputed. */
  | 'cached';

export class SglangAnswerError extends Error {
  override readonly name = 'SglangAnswerError';
  constructor(
    readonly problem: SglangAnswerProblem,
    message: string,
  ) {
    super(message);
  }
}

export interface StatesRequest {
  /** Number of ids sent as `input_ids`. */
  inputLength: number;
  /** First absolute position whose state is needed: every position from it to the end is. */
  from: number;
}

export interface StatesAnswer {
  /** `meta_info.cached_tokens`. */
  cachedTokens: number;
  /** `meta_info.hidden_states`, as parsed from the JSON. */
  hiddenStates: unknown;
}

/** The answer's states by absolute position: [start, end), `start` being the server's cached prefix. */
export class PositionedStates {
  constructor(
    readonly start: number,
    readonly end: number,
    readonly hiddenSize: number,
    private readonly data: Float32Array,
  ) {}

  /** The hidden state at absolute `position` (a view, not a copy). */
  at(position: number): Float32Array {
    if (!Number.isInteger(position) || position < this.start || position >= this.end) {
      throw new RangeError(`No hidden state for position ${position}: the answer covers [${this.start}, ${this.end})`);
    }
    const row = position - this.start;
    return this.data.subarray(row * this.hiddenSize, (row + 1) * this.hiddenSize);
  }
}

/** The prefill rows of `hidden_states` as one float32 matrix, checked row by row (a 1024-wide row per token). */
function prefillRows(hiddenStates: unknown, hiddenSize: number): { rows: number; data: Float32Array } {
  const prefill = Array.isArray(hiddenStates) ? hiddenStates[0] : undefined;
  if (!Array.isArray(prefill) || prefill.length === 0 || !Array.isArray(prefill[0])) {
    throw new SglangAnswerError('malformed', 'meta_info.hidden_states[0] is not a list of per-token states: was the request sent with return_hidden_states: true to a server launched with --enable-return-hidden-states?');
  }
  const data = new Float32Array(prefill.length * hiddenSize);
  prefill.forEach((row: unknown, r) => {
    if (!Array.isArray(row) || row.length !== hiddenSize) {
      throw new SglangAnswerError('malformed', `meta_info.hidden_states[0][${r}] has ${Array.isArray(row) ? `${row.length} values` : 'no values'}, expected the hidden size ${hiddenSize} (is the server serving this guard's backbone, without speculative decoding?)`);
    }
    for (let i = 0; i < hiddenSize; i++) {
      const value = row[i];
      if (typeof value !== 'number' || !Number.isFinite(value)) throw new SglangAnswerError('malformed', `meta_info.hidden_states[0][${r}][${i}] is ${String(value)}, not a finite number`);
      data[r * hiddenSize + i] = value;
    }
  });
  return { rows: prefill.length, data };
}

/**
 * Maps an answer's states to absolute positions, or says why it cannot serve the request. More states than
 * needed (a prefix the server evicted or never had) are fine: only the positions from `request.from` are used.
 */
export function positionStates(request: StatesRequest, answer: StatesAnswer, hiddenSize: number): PositionedStates {
  const { inputLength, from } = request;
  if (!Number.isInteger(inputLength) || inputLength < 1 || !Number.isInteger(from) || from < 0 || from >= inputLength) {
    throw new RangeError(`positionStates: need from=${from} within the ${inputLength} ids sent`);
  }
  const cached = answer.cachedTokens;
  if (!Number.isInteger(cached) || cached < 0 || cached >= inputLength) {
    throw new SglangAnswerError('malformed', `meta_info.cached_tokens is ${String(cached)}, but SGLang reuses at most ${inputLength - 1} of the ${inputLength} ids sent`);
  }
  const { rows, data } = prefillRows(answer.hiddenStates, hiddenSize);
  const recomputed = inputLength - cached;
  if (rows > recomputed) {
    throw new SglangAnswerError('malformed', `the answer has ${rows} prefill states for ${recomputed} recomputed positions (cached_tokens ${cached} of ${inputLength})`);
  }
  if (rows < recomputed) {
    throw new SglangAnswerError(
      'short',
      `the answer has ${rows} prefill states, but the server recomputed ${recomputed} positions (cached_tokens ${cached} of ${inputLength}). ` +
        'A chunked prefill returns only its last chunk\'s states: launch SGLang with --chunked-prefill-size at least the longest request (or -1)',
    );
  }
  if (cached > from) {
    throw new SglangAnswerError(
      'cached',
      `the server's prefix cache held positions ${from}..${cached - 1}, whose states are needed and were not recomputed: send the request again with a new cache_salt`,
    );
  }
  return new PositionedStates(cached, inputLength, hiddenSize, data);
}
