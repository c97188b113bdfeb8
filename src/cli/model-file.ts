import { stat } from 'node:fs/promises';
import { parseModelName } from '../download/models.js';
import { resolveModelPath } from '../download/resolve-model.js';
import { CommandError } from './args.js';

/**
 * `--model`: a GGUF path, or the name of a pulled model (`qwen3guard-stream-0.6b`). Checked before
 * node-llama-cpp is loaded (it takes a while), with the fix in the message. Returns the GGUF path.
 */
export async function resolveModelArg(arg: string): Promise<string> {
  const file = await stat(arg).catch(() => undefined);
  if (!file && parseModelName(arg)) {
    return resolveModelPath({ model: arg }).catch((error: Error) => {
      throw new CommandError(error.message.replace(/^guard\.model: /, ''));
    });
  }
  if (!file) throw new CommandError(`${arg} does not exist: give a pulled model's name ('npx qwen3guard pull 0.6B', then --model qwen3guard-stream-0.6b) or a .gguf made by 'qwen3guard convert'`);
  if (!file.isFile()) throw new CommandError(`${arg} is not a file: give the path of a .gguf made by 'qwen3guard convert', or a pulled model's name`);
  return arg;
}
