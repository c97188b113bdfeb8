/**
 * The moderated chat model: any OpenAI-compatible server (OPENAI_BASE_URL, OPENAI_API_KEY, CHAT_MODEL) wrapped
 * with the guard's middleware. Made on the first request, not at import (see guard.ts).
 */
import { createOpenAI } from '@ai-sdk/openai';
import { wrapLanguageModel, type LanguageModel } from 'ai';
import { qwen3GuardMiddleware } from 'ai-sdk-qwen3guard';
import { getGuard } from './guard';

let model: LanguageModel | undefined;

export function chatModel(): LanguageModel {
  model ??= wrapLanguageModel({
    model: createOpenAI({ baseURL: process.env.OPENAI_BASE_URL, apiKey: process.env.OPENAI_API_KEY }).chat(process.env.CHAT_MODEL ?? 'gpt-4o-mini'),
    middleware: qwen3GuardMiddleware({
      guard: getGuard(),
      prompt: { categories: { Jailbreak: 'rewrite' } }, // Unsafe prompts: the refusal (default rewrite)
      // Unsafe answers: stopped and replaced (the default rewrite); Controversial ones shown and reported.
      response: { actions: { Controversial: 'flag' }, categories: { PII: 'redact' } },
      onResponseFlag: (flag) => console.warn('qwen3guard flagged', flag.category, flag.action),
    }),
  });
  return model;
}
