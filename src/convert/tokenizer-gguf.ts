import { basename } from 'node:path';
import { GgufWriter, type GgufValue } from './gguf-writer.js';
import { readTokenizerMetadata } from './tokenizer-metadata.js';

/**
 * A GGUF with the guard's tokenizer and no tensors, for `loadModel({ vocabOnly: true })`: the same tokenizer
 * keys the full conversion writes (tokenizer-metadata.ts), over the `vocabRows` ids of the real vocabulary, so
 * text tokenizes exactly as the guard's GGUF tokenizes it. llama.cpp reads only the architecture and the
 * tokenizer in vocab-only mode; node-llama-cpp's memory estimate, which would need the weights, logs a warning
 * and falls back to its heuristic.
 */
export async function writeTokenizerGguf(checkpointDir: string, vocabRows: number, output: string): Promise<void> {
  const tokenizer = await readTokenizerMetadata(checkpointDir, vocabRows);
  const metadata = new Map<string, GgufValue>([
    ['general.architecture', { type: 'string', value: 'qwen3' }],
    ['general.name', { type: 'string', value: `${basename(checkpointDir)} tokenizer` }],
    ...tokenizer.entries,
  ]);
  const writer = await GgufWriter.create(output, metadata, []);
  try {
    await writer.finish();
  } catch (error) {
    await writer.abandon();
    throw error;
  }
}
