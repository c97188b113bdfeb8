import { GuardModelError } from '../guard/errors.js';
import { STREAM_GUARD, zeroCounts, type GuardInfo, type SessionOptions, type StreamGuard, type TokenCounts } from '../guard/stream-guard.js';
import { infoSchema, PATHS, PROTOCOL_VERSION } from '../protocol/wire.js';
import { parseOptions } from '../shared/validation.js';
import { ConversationKeys } from './conversation-key.js';
import { remoteGuardOptionsSchema, type RemoteGuardOptions, type ResolvedRemoteGuardOptions } from './options.js';
import { RemoteSession, type SessionService } from './remote-session.js';
import { ServiceClient } from './service-client.js';

/**
 * A Qwen3Guard-Stream served by `qwen3guard serve` (or several behind a load balancer): the same guard calls
 * as the local engine, one HTTP request each. Nothing is sent until the first use; the server is then asked
 * what it serves (once), and each conversation carries a stable key so that its turns reach one instance.
 */
export class RemoteGuard implements StreamGuard, SessionService {
  readonly [STREAM_GUARD] = true as const;
  readonly variant = 'stream' as const;
  readonly kind = 'remote' as const;
  readonly options: ResolvedRemoteGuardOptions;
  readonly stats: TokenCounts = zeroCounts();
  readonly client: ServiceClient;
  readonly keys: ConversationKeys;
  info: GuardInfo | null = null;
  private asking: Promise<GuardInfo> | null = null;
  private readonly open = new Set<RemoteSession>();
  private disposed = false;

  constructor(options: RemoteGuardOptions) {
    this.options = parseOptions(remoteGuardOptionsSchema, options, 'Qwen3Guard.remote');
    this.client = new ServiceClient(this.options);
    this.keys = ConversationKeys.fromOptions(this.options);
  }

  /** Asks the server what it serves (once; again after a failure). */
  ready(options: { signal?: AbortSignal } = {}): Promise<GuardInfo> {
    if (this.info) return Promise.resolve(this.info);
    this.asking ??= this.ask(options.signal).finally(() => (this.asking = null));
    return this.asking;
  }

  private async ask(signal?: AbortSignal): Promise<GuardInfo> {
    const info = await this.client.call({ method: 'GET', path: PATHS.info, schema: infoSchema, idempotent: true, signal, what: 'what it serves (GET /v1/info)' });
    if (info.protocol !== PROTOCOL_VERSION) {
      throw new GuardModelError(`The guard service at ${this.options.baseURL} speaks protocol ${info.protocol}, this client ${PROTOCOL_VERSION}: use the same version of ai-sdk-qwen3guard on both sides`);
    }
    if (!info.stream) {
      throw new GuardModelError(`The guard service at ${this.options.baseURL} serves no Qwen3Guard-Stream model${info.gen ? ` (only Gen, ${info.gen.model}: use Qwen3GuardGen.remote({ baseURL: '${this.options.baseURL.replace(/\/+$/, '')}/v1', model: '${info.gen.model}' }))` : ''}`);
    }
    this.info = info.stream;
    return info.stream;
  }

  /** A session; it is created on the server by its prompt check. */
  async createSession(options: SessionOptions = {}): Promise<RemoteSession> {
    if (this.disposed) throw new Error('This Qwen3Guard was disposed');
    options.signal?.throwIfAborted();
    const session = new RemoteSession(this, options);
    this.open.add(session);
    return session;
  }

  counted(delta: TokenCounts): void {
    for (const key of Object.keys(delta) as Array<keyof TokenCounts>) this.stats[key] += delta[key];
  }

  closed(session: RemoteSession): void {
    this.open.delete(session);
  }

  /** Ends the open sessions on the server; later sessions are refused. */
  async dispose(): Promise<void> {
    this.disposed = true;
    await Promise.all([...this.open].map((s) => s.dispose()));
  }
}
