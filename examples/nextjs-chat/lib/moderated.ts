/**
 * The moderated chat model, for either route: any OpenAI-compatible server (OPENAI_BASE_URL, OPENAI_API_KEY,
 * CHAT_MODEL) wrapped with the guard's middleware and this app's policy. The guard is the route's: in-process
 * (lib/model.ts, Node.js) or a `qwen3guard serve` service (lib/edge-model.ts, Edge).
 */
import { createOpenAI } from '@ai-sdk/openai';
import { wrapLanguageModel, type LanguageModel } from 'ai';
import { qwen3GuardMiddleware, type Qwen3Guard } from 'ai-sdk-qwen3guard';

export function moderatedModel(guard: Qwen3Guard | Promise<Qwen3Guard>): LanguageModel {
  return wrapLanguageModel({
    model: createOpenAI({ baseURL: process.env.OPENAI_BASE_URL, apiKey: process.env.OPENAI_API_KEY }).chat(process.env.CHAT_MODEL ?? 'gpt-4o-mini'),
    middleware: qwen3GuardMiddleware({
      guard,
      prompt: { categories: { Jailbreak: 'rewrite' } }, // Unsafe prompts: the refusal (default rewrite)
      // Unsafe answers: stopped and replaced (the default rewrite); Controversial ones shown and reported.
      response: { actions: { Controversial: 'flag' }, categories: { PII: 'redact' } },
      onResponseFlag: (flag) => console.warn('qwen3guard flagged', flag.category, flag.action),
    }),
  });
}
