import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { GUARD_SUBDIR, HEADS_FILE, TOKENIZER_FILE } from '../convert/sglang-heads-format.js';
import { GuardTokenizer } from '../engine/guard-tokenizer.js';
import { printable } from '../engine/load-checks.js';
import { modelName } from '../format/model-name.js';
import { GuardModelError } from '../guard/errors.js';
import { STREAM_GUARD, zeroCounts, type GuardInfo, type SessionOptions, type StreamGuard, type TokenCounts } from '../guard/stream-guard.js';
import { ConversationKeys } from '../remote/conversation-key.js';
import { ServiceClient } from '../remote/service-client.js';
import { parseOptions } from '../shared/validation.js';
import { readHeadsFile, type SglangHeads } from './heads.js';
import { sglangGuardOptionsSchema, type ResolvedSglangGuardOptions, type SglangGuardOptions } from './options.js';
import { SglangSession, type SglangRuntime } from './sglang-session.js';
import { SGLANG_SERVER, StatesClient } from './states-client.js';

/** The heads file and the tokenizer GGUF that `heads` names: both files, or a folder that holds them (the export's `qwen3guard/`, or the export). */
export function guardFiles(heads: ResolvedSglangGuardOptions['heads']): { heads: string; tokenizer: string } {
  if (typeof heads !== 'string') {
    for (const [key, path] of Object.entries(heads)) if (!existsSync(path)) throw new GuardModelError(`Qwen3Guard.sglang: heads.${key}: ${path} does not exist`);
    return heads;
  }
  if (!existsSync(heads) || !statSync(heads).isDirectory()) {
    throw new GuardModelError(`Qwen3Guard.sglang: heads: ${heads} is not a folder; give the ${GUARD_SUBDIR}/ folder that \`qwen3guard convert --for sglang\` wrote, or { heads, tokenizer } paths`);
  }
  for (const dir of [heads, join(heads, GUARD_SUBDIR)]) {
    const files = { heads: join(dir, 'heads.safetensors'), tokenizer: join(dir, 'tokenizer.gguf') };
    if (existsSync(files.heads) && existsSync(files.tokenizer)) return files;
  }
  throw new GuardModelError(`Qwen3Guard.sglang: heads: ${heads} holds neither heads.safetensors and tokenizer.gguf nor ${HEADS_FILE} and ${TOKENIZER_FILE}: was it written by \`qwen3guard convert --for sglang\`?`);
}

/** The export's vocabulary-only GGUF as the guard's tokenizer: node-llama-cpp, imported only now. */
async function loadTokenizer(path: string): Promise<GuardTokenizer> {
  const { sharedLlama } = await import('../engine/guard.js');
  // llama.cpp logs a failed memory estimate for a file without weights; the load itself succeeds (docs/sglang.md).
  const llama = await sharedLlama({ gpu: false, logLevel: 'disabled' });
  const model = await llama.loadModel({ modelPath: path, vocabOnly: true }).catch((error: unknown) => {
    throw new GuardModelError(`Qwen3Guard.sglang: ${path} could not be loaded as the export's tokenizer GGUF (${printable(error)})`);
  });
  try {
    return new GuardTokenizer(model, path);
  } catch (error) {
    await model.dispose();
    throw error;
  }
}

/**
 * Qwen3Guard-Stream on a stock SGLang server (`Qwen3Guard.sglang`): the backbone runs there as a plain
 * Qwen3ForCausalLM whose `/generate` returns hidden states, the guard's heads run here in float32 on them.
 * Options are validated at once; the heads file and the tokenizer (native code) load on first use or `ready()`.
 * See docs/sglang.md.
 */
export class SglangGuard implements StreamGuard {
  readonly [STREAM_GUARD] = true as const;
  readonly variant = 'stream' as const;
  readonly kind = 'sglang' as const;
  readonly options: ResolvedSglangGuardOptions;
  readonly stats: TokenCounts = zeroCounts();
  info: GuardInfo | null = null;
  /** The export's tokenizer, once `ready` resolved. */
  tokenizer: GuardTokenizer | null = null;
  private runtime: SglangRuntime | null = null;
  private loading: Promise<SglangRuntime> | null = null;
  private readonly client: ServiceClient;
  private readonly keys: ConversationKeys;
  private readonly open = new Set<SglangSession>();
  private disposed = false;

  constructor(options: SglangGuardOptions) {
    this.options = parseOptions(sglangGuardOptionsSchema, options, 'Qwen3Guard.sglang');
    this.client = new ServiceClient(this.options, SGLANG_SERVER);
    this.keys = ConversationKeys.fromOptions(this.options);
  }

  /** Loads the heads file and the tokenizer (once; again after a failure). Nothing is sent to the server. */
  async ready(): Promise<GuardInfo> {
    await this.load();
    return this.info!;
  }

  private load(): Promise<SglangRuntime> {
    if (this.disposed) return Promise.reject(new Error('This Qwen3Guard was disposed'));
    if (this.runtime) return Promise.resolve(this.runtime);
    this.loading ??= this.loadFiles().finally(() => (this.loading = null));
    return this.loading;
  }

  private async loadFiles(): Promise<SglangRuntime> {
    const files = guardFiles(this.options.heads);
    let heads: SglangHeads;
    try {
      heads = await readHeadsFile(files.heads);
    } catch (error) {
      throw new GuardModelError(`Qwen3Guard.sglang: ${printable(error)}`);
    }
    const tokenizer = await loadTokenizer(files.tokenizer);
    if (this.disposed) {
      await tokenizer.model.dispose();
      throw new Error('This Qwen3Guard was disposed');
    }
    this.tokenizer = tokenizer;
    this.info = {
      model: modelName('Stream', heads.hiddenSize, tokenizer.generalName),
      prompt: { risk: [...heads.query.riskLabels], categories: [...heads.query.categoryLabels] },
      response: { risk: [...heads.response.riskLabels], categories: [...heads.response.categoryLabels] },
      speculate: false,
    };
    this.runtime = { tokenizer, heads, client: new StatesClient(this.client, heads.hiddenSize), keys: this.keys, stats: this.stats, closed: (s) => this.open.delete(s) };
    return this.runtime;
  }

  /** A session; its prompt check is its first request. Loads the guard's files first when `ready` was not awaited. */
  async createSession(options: SessionOptions = {}): Promise<SglangSession> {
    if (this.disposed) throw new Error('This Qwen3Guard was disposed');
    const runtime = await this.load();
    options.signal?.throwIfAborted();
    const session = new SglangSession(runtime, options);
    this.open.add(session);
    return session;
  }

  /** Ends the open sessions' requests and frees the tokenizer; later sessions are refused. */
  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    await Promise.all([...this.open].map((s) => s.dispose()));
    await this.loading?.catch(() => undefined);
    await this.tokenizer?.model.dispose();
  }
}
