import type { LlamaContext, LlamaModel } from 'node-llama-cpp';
import type { GuardLayout } from '../format/guard-metadata.js';
import type { Piece } from '../format/template.js';
import type { ResolvedGuardOptions } from '../guard/options.js';
import type { GuardStats } from './stats.js';
import type { TokenBytes } from './token-bytes.js';

/** What a session needs of the loaded guard: its model and context, tokenizer, head layout and counters. */
export interface SessionHost {
  readonly options: ResolvedGuardOptions;
  readonly model: LlamaModel;
  readonly context: LlamaContext;
  readonly layout: GuardLayout;
  readonly stats: GuardStats;
  readonly tokenBytes: TokenBytes;
  tokenizePieces(pieces: readonly Piece[]): number[];
  tokenizeText(text: string): number[];
  specialId(marker: string): number;
}
