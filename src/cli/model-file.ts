import { stat } from 'node:fs/promises';
import { CommandError } from './args.js';

/** Checks `--model` before node-llama-cpp is loaded (it takes a while), with the fix in the message. */
export async function checkModelFile(path: string): Promise<void> {
  const file = await stat(path).catch(() => undefined);
  if (!file) throw new CommandError(`${path} does not exist: convert a checkpoint with 'qwen3guard convert <checkpoint-dir> -o model.gguf'`);
  if (!file.isFile()) throw new CommandError(`${path} is not a file: give the path of a .gguf made by 'qwen3guard convert'`);
}
