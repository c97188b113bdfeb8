import type { LlamaContext, LlamaModel } from 'node-llama-cpp';
import type { GuardLayout } from '../format/guard-metadata.js';
import type { ResolvedGuardOptions } from '../guard/options.js';
import type { TokenizerHost } from './guard-tokenizer.js';
import type { GuardStats } from './stats.js';

/** What a session needs of the loaded guard: its model and context, tokenizer, head layout and counters. */
export interface SessionHost extends TokenizerHost {
  readonly options: ResolvedGuardOptions;
  readonly model: LlamaModel;
  readonly context: LlamaContext;
  readonly layout: GuardLayout;
  readonly stats: GuardStats;
}
