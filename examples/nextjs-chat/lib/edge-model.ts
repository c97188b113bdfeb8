/**
 * The Edge route's model: the Edge runtime has no native addons, so the guard runs as a service
 * (`npx qwen3guard serve --model guard.gguf`, QWEN3GUARD_API_KEY on both sides) and is reached over HTTP.
 * Nothing here imports node-llama-cpp: `ai-sdk-qwen3guard` resolves to its Edge build in this route.
 */
import type { LanguageModel } from 'ai';
import { Qwen3Guard } from 'ai-sdk-qwen3guard';
import { moderatedModel } from './moderated';

let model: LanguageModel | undefined;

export function edgeChatModel(): LanguageModel {
  const baseURL = process.env.QWEN3GUARD_URL;
  if (!baseURL) throw new Error('QWEN3GUARD_URL is not set: the edge route needs a guard service, e.g. `npx qwen3guard serve --model guard.gguf` and its "listening on" URL');
  model ??= moderatedModel(Qwen3Guard.remote({ baseURL, apiKey: process.env.QWEN3GUARD_API_KEY }));
  return model;
}
