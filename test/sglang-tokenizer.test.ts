import { join } from 'node:path';
import fc from 'fast-check';
import { getLlama, LlamaLogLevel, type LlamaModel, type Token } from 'node-llama-cpp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { renderConversation, SPECIAL_MARKERS } from '../src/format/template.js';
import { TOKENIZER_FILE } from '../src/convert/sglang-heads-format.js';
import { convertedModel } from './fixtures/cache.js';
import { VOCAB_SIZE } from './fixtures/checkpoint.js';
import { CONVERSATIONS } from './fixtures/corpus.js';
import { exportTinyForSglang, type ExportedCheckpoint } from './fixtures/sglang-export.js';

/**
 * The export's qwen3guard/tokenizer.gguf must give the `input_ids` the local engine evaluates: the guard's GGUF
 * tokenizer (special-token parsing off for text, markers as their single special tokens), loaded without weights.
 */
let exported: ExportedCheckpoint;
let vocab: LlamaModel;
let full: LlamaModel;
let loadMs: number;
beforeAll(async () => {
  exported = await exportTinyForSglang();
  const llama = await getLlama({ gpu: false, build: 'never', logLevel: LlamaLogLevel.error });
  const started = performance.now();
  vocab = await llama.loadModel({ modelPath: join(exported.served, TOKENIZER_FILE), vocabOnly: true });
  loadMs = performance.now() - started;
  full = await llama.loadModel({ modelPath: await convertedModel(exported.checkpoint, 'f32') });
});
afterAll(async () => {
  await vocab?.dispose();
  await full?.dispose();
  await exported?.remove();
});

const TRICKY = [
  'Café, naïve, Ünïcödé', // precomposed
  'Cafe\u0301 nai\u0308ve', // decomposed: NFC is the caller's job, and both tokenizers must agree either way
  'Can you write <|im_end|> and <think> literally? <|im_start|>user\n</think><tool_response>',
  '[PAD151700] [PAD151936] <|endoftext|> <|fim_prefix|>',
  '👩‍👩‍👧 🇫🇷🇯🇵 😀 ① ⅔ 龘 中文字符 שלום مرحبا \u202e',
  'line\r\nnext\ttab  two  spaces   three\n\n\nend ',
  "it's we're they'll I'd 1234567890 3.14159 $1,000,000",
  '\u200b\u00a0\ufeff\0',
  '```ts\nconst x = a ?? b;\n```',
];

function same(text: string, special = false): void {
  expect(vocab.tokenize(text, special), JSON.stringify(text)).toEqual(full.tokenize(text, special));
}

describe('the vocabulary-only tokenizer GGUF', () => {
  it('loads without weights', () => {
    expect(vocab.tokenize('Hello', false).length).toBeGreaterThan(0);
    expect(loadMs).toBeLessThan(10_000);
  });

  it('has the guard GGUF\'s vocabulary, token types and marker ids', () => {
    const tokens = (model: LlamaModel) => (model.fileInfo.metadata as unknown as { tokenizer: { ggml: { tokens: string[]; token_type: number[] } } }).tokenizer.ggml;
    expect(tokens(vocab).tokens).toHaveLength(VOCAB_SIZE);
    expect(tokens(vocab).tokens).toEqual(tokens(full).tokens.slice(0, VOCAB_SIZE));
    expect(tokens(vocab).token_type).toEqual(tokens(full).token_type.slice(0, VOCAB_SIZE));
    for (const marker of SPECIAL_MARKERS) {
      expect(vocab.tokenize(marker, true)).toHaveLength(1);
      same(marker, true);
      same(marker, false);
    }
  });

  it('tokenizes every piece of the parity conversations and the tricky texts as the guard GGUF does', () => {
    let tokens = 0;
    for (const conversation of CONVERSATIONS) {
      const { pieces } = renderConversation(conversation.messages);
      for (const piece of pieces) {
        if ('special' in piece) same(piece.special, true);
        else {
          same(piece.text);
          same(piece.text.normalize('NFC'));
          tokens += vocab.tokenize(piece.text, false).length;
        }
      }
      for (const text of [conversation.answer, conversation.reasoning ?? '', `\n\n${conversation.answer}`]) same(text);
    }
    for (const text of TRICKY) {
      same(text);
      same(text.normalize('NFC'));
    }
    expect(tokens).toBeGreaterThan(100);
  });

  it('tokenizes and detokenizes random Unicode as the guard GGUF does', () => {
    const fragment = fc.oneof(
      { weight: 3, arbitrary: fc.constantFrom(...TRICKY, ...SPECIAL_MARKERS, ' the', 'Hello', '\n', ' ') },
      { weight: 2, arbitrary: fc.string({ unit: 'binary', maxLength: 6 }) },
      { weight: 1, arbitrary: fc.string({ unit: 'grapheme', maxLength: 4 }) },
    );
    fc.assert(
      fc.property(fc.array(fragment, { minLength: 1, maxLength: 20 }), (parts) => {
        const text = parts.join('');
        const ids = full.tokenize(text, false);
        expect(vocab.tokenize(text, false)).toEqual(ids);
        expect(vocab.detokenize(ids as Token[], false)).toBe(full.detokenize(ids as Token[], false));
      }),
      { numRuns: 300, seed: 19 },
    );
  });
});
