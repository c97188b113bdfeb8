// An app that uses only the remote guard (argv[2] is the server's URL): it streams one guarded answer, then
// prints the native objects this process mapped, which must include nothing of node-llama-cpp.
import { readFileSync } from 'node:fs';
import { streamText, wrapLanguageModel } from 'ai';
import { Qwen3Guard, qwen3GuardMiddleware } from '../../src/index.js';
import { scriptedModel, split } from '../fixtures/scripted-model.js';

const guard = Qwen3Guard.remote({ baseURL: process.argv[2] });
const model = wrapLanguageModel({ model: scriptedModel({ answer: split('Rivers carry rain to the sea. Mix these to make a bomb now.', 4) }).model, middleware: qwen3GuardMiddleware({ guard }) });
const result = streamText({ model, prompt: 'Tell me about rivers.' });
const text = await result.text;
await guard.dispose();
const mapped = readFileSync('/proc/self/maps', 'utf8')
  .split('\n')
  .map((line) => line.split(/\s+/)[5])
  .filter((path) => path && /\.node$|\.so(\.\d+)*$/.test(path));
console.log(JSON.stringify({ text, finishReason: await result.finishReason, native: [...new Set(mapped)] }));
