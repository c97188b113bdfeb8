import type { LlamaModel, Token } from 'node-llama-cpp';
import { SPECIAL_MARKERS, type Piece } from '../format/template.js';
import { GuardModelError } from '../guard/errors.js';
import { TokenBytes } from './token-bytes.js';

/** What rendering and scoring need of a tokenizer: template pieces and plain text to ids, and each token's bytes. */
export interface TokenizerHost {
  /** Raw bytes of each vocabulary token, to map token spans to character offsets. */
  readonly tokenBytes: TokenBytes;
  tokenizePieces(pieces: readonly Piece[]): number[];
  tokenizeText(text: string): number[];
  specialId(marker: string): number;
}

/**
 * The guard's tokenizer over a node-llama-cpp model: the guard GGUF itself (the local engine), or the
 * vocabulary-only GGUF of an SGLang export, which tokenizes identically. `source` names the file in errors.
 */
export class GuardTokenizer implements TokenizerHost {
  readonly tokenBytes: TokenBytes;
  /** `general.name` of the GGUF, for the model's display name. */
  readonly generalName: unknown;
  private readonly specialIds = new Map<string, number>();

  constructor(
    readonly model: LlamaModel,
    source: string,
  ) {
    for (const marker of SPECIAL_MARKERS) {
      const ids = model.tokenize(marker, true);
      if (ids.length !== 1) throw new GuardModelError(`${source}: the tokenizer has no single token for ${marker}`);
      this.specialIds.set(marker, ids[0]);
    }
    const metadata = model.fileInfo.metadata as unknown as { tokenizer?: { ggml?: { tokens?: readonly string[] } }; general?: { name?: unknown } };
    const tokens = metadata.tokenizer?.ggml?.tokens;
    if (!tokens) throw new GuardModelError(`${source}: the GGUF has no tokenizer.ggml.tokens`);
    this.tokenBytes = new TokenBytes(tokens);
    this.generalName = metadata.general?.name;
  }

  /** Token ids of template pieces: markers as special tokens, text with special-token parsing off. */
  tokenizePieces(pieces: readonly Piece[]): number[] {
    const ids: number[] = [];
    for (const piece of pieces) {
      if ('special' in piece) ids.push(this.specialId(piece.special));
      else ids.push(...this.tokenizeText(piece.text));
    }
    return ids;
  }

  specialId(marker: string): number {
    const id = this.specialIds.get(marker);
    if (id === undefined) throw new Error(`No special token for ${marker}`);
    return id;
  }

  /** Plain text to token ids, markers included as text. The caller normalizes (NFC) where it must. */
  tokenizeText(text: string): number[] {
    return text ? this.model.tokenize(text, false) : [];
  }

  /** Text of a token for display (split UTF-8 characters show as U+FFFD). */
  tokenText(id: number): string {
    return this.model.detokenize([id as Token], false);
  }
}
