import { readFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { ConvertError } from './errors.js';
import type { GgufValue } from './gguf-writer.js';

/** llama.cpp token types. */
const TokenType = { NORMAL: 1, CONTROL: 3, UNUSED: 5 } as const;

interface HfTokenizer {
  model?: { type?: string; vocab?: Record<string, number>; merges?: Array<string | [string, string]> };
  added_tokens?: Array<{ id: number; content: string; special?: boolean }>;
}

export interface TokenizerMetadata {
  entries: Array<[string, GgufValue]>;
  /** Token count of the tokenizer itself (ids beyond it are padding). */
  tokenizerSize: number;
}

const BOS_PAD_ID = 151643; // <|endoftext|>
const EOS_ID = 151645; // <|im_end|>

/**
 * Builds the GGUF tokenizer keys (gpt2 BPE with the qwen2 pre-tokenizer) for `totalRows` vocabulary rows:
 * the tokenizer's own tokens, then `[PAD{i}]` for the remaining rows (unused ids and the guard rows).
 *
 * Every added token (<|im_end|>, <think>, <tool_call>, ...) is written as CONTROL: llama.cpp matches
 * user-defined tokens even with special-token parsing off, and user text containing "<think>" must stay
 * plain text. The engine asks for these markers explicitly where the template places them.
 */
export async function readTokenizerMetadata(dir: string, totalRows: number): Promise<TokenizerMetadata> {
  const tokenizerFile = join(dir, 'tokenizer.json');
  const configFile = join(dir, 'tokenizer_config.json');
  if (!existsSync(tokenizerFile)) throw new ConvertError(dir, 'is missing tokenizer.json: copy it from the published checkpoint');
  if (!existsSync(configFile)) throw new ConvertError(dir, 'is missing tokenizer_config.json (it holds the chat template): copy it from the published checkpoint');

  let tokenizer: HfTokenizer;
  let tokenizerConfig: { chat_template?: unknown };
  try {
    tokenizer = JSON.parse(await readFile(tokenizerFile, 'utf8'));
  } catch (error) {
    throw new ConvertError(tokenizerFile, `is not valid JSON (${(error as Error).message})`);
  }
  try {
    tokenizerConfig = JSON.parse(await readFile(configFile, 'utf8'));
  } catch (error) {
    throw new ConvertError(configFile, `is not valid JSON (${(error as Error).message})`);
  }
  const model = tokenizer.model;
  if (model?.type !== 'BPE' || !model.vocab || !model.merges) {
    throw new ConvertError(tokenizerFile, 'is not a BPE tokenizer with "model.vocab" and "model.merges" (expected the Qwen3 tokenizer)');
  }

  const tokens: string[] = [];
  const types: number[] = [];
  for (const [text, id] of Object.entries(model.vocab)) {
    tokens[id] = text;
    types[id] = TokenType.NORMAL;
  }
  for (const added of tokenizer.added_tokens ?? []) {
    tokens[added.id] = added.content;
    types[added.id] = TokenType.CONTROL;
  }
  const tokenizerSize = tokens.length;
  if (tokenizerSize > totalRows) {
    throw new ConvertError(tokenizerFile, `has ${tokenizerSize} tokens but the model's vocab_size is smaller`);
  }
  for (let id = 0; id < totalRows; id++) {
    if (tokens[id] === undefined) {
      tokens[id] = `[PAD${id}]`;
      types[id] = TokenType.UNUSED;
    }
  }
  for (const id of [BOS_PAD_ID, EOS_ID]) {
    if (types[id] !== TokenType.CONTROL) throw new ConvertError(tokenizerFile, `token ${id} is not the expected Qwen3 special token`);
  }
  const merges = model.merges.map((m) => (Array.isArray(m) ? m.join(' ') : m));

  const entries: Array<[string, GgufValue]> = [
    ['tokenizer.ggml.model', { type: 'string', value: 'gpt2' }],
    ['tokenizer.ggml.pre', { type: 'string', value: 'qwen2' }],
    ['tokenizer.ggml.tokens', { type: 'array', itemType: 'string', value: tokens }],
    ['tokenizer.ggml.token_type', { type: 'array', itemType: 'i32', value: types }],
    ['tokenizer.ggml.merges', { type: 'array', itemType: 'string', value: merges }],
    ['tokenizer.ggml.eos_token_id', { type: 'u32', value: EOS_ID }],
    ['tokenizer.ggml.padding_token_id', { type: 'u32', value: BOS_PAD_ID }],
    ['tokenizer.ggml.bos_token_id', { type: 'u32', value: BOS_PAD_ID }],
    ['tokenizer.ggml.add_bos_token', { type: 'bool', value: false }],
  ];
  if (typeof tokenizerConfig.chat_template === 'string') {
    entries.push(['tokenizer.chat_template', { type: 'string', value: tokenizerConfig.chat_template }]);
  }
  return { entries, tokenizerSize };
}
