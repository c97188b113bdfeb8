/** The Node.js route's model: the in-process guard (guard.ts). Made on the first request, not at import (see guard.ts). */
import type { LanguageModel } from 'ai';
import { getGuard } from './guard';
import { moderatedModel } from './moderated';

let model: LanguageModel | undefined;

export function chatModel(): LanguageModel {
  model ??= moderatedModel(getGuard());
  return model;
}
