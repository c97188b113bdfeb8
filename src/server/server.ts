import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { LocalGuard } from '../engine/guard.js';
import { genOptionsSchema } from '../gen/options.js';
import { detectVariantOfFile } from '../gen/variant-file.js';
import { GuardBusyError } from '../guard/errors.js';
import { createSessionSchema, HEADERS, infoSchema, PATHS, PROTOCOL_VERSION, sessionCallSchema } from '../protocol/wire.js';
import { OptionsError, parseOptions } from '../shared/validation.js';
import type { z } from 'zod';
import { isLoopback, keyChecker } from './auth.js';
import { GenCompletions } from './gen-completions.js';
import { GenService } from './gen-service.js';
import { HttpError } from './http-error.js';
import { parseBody, readJson, sendError, sendJson } from './http-io.js';
import { ServerMetrics } from './metrics.js';
import { serveOptionsSchema, type ResolvedServeOptions, type ServeOptions } from './options.js';
import { StreamSessions } from './stream-sessions.js';

/** A running guard service. */
export interface GuardServer {
  /** `http://host:port`, what clients take as `baseURL`. */
  url: string;
  port: number;
  /** Stops taking new sessions, lets open ones finish (up to `timeoutMs`, default the drain timeout), then closes. */
  drain(timeoutMs?: number): Promise<void>;
  /** Closes at once: open sessions are cut. */
  close(): Promise<void>;
  readonly metrics: ServerMetrics;
  /** The Stream engine it serves (null with Gen alone): for tests and embedding. */
  readonly engine: LocalGuard | null;
}

const SESSION_PATH = new RegExp(`^${PATHS.sessions}/([A-Za-z0-9_-]{1,64})$`);
const VERSION = '0.1.0';

/**
 * Serves a Qwen3Guard-Stream model (and/or Gen) over HTTP: the protocol of docs/protocol.md for
 * `Qwen3Guard.remote`, the completions API for `Qwen3GuardGen.remote`, `/healthz` and Prometheus `/metrics`.
 */
export async function startServer(input: ServeOptions): Promise<GuardServer> {
  const options = parseOptions(serveOptionsSchema, input, 'serve');
  if (options.apiKeys.length === 0 && !isLoopback(options.host)) {
    throw new OptionsError(`serve: refusing to listen on ${options.host} without an API key: set QWEN3GUARD_API_KEY (or --api-key-file), or bind 127.0.0.1`);
  }
  const metrics = new ServerMetrics();
  const { stream, gen } = await loadModels(options);
  const sessions = stream ? new StreamSessions(stream, options, metrics) : null;
  const authorized = keyChecker(options.apiKeys);
  const info: z.input<typeof infoSchema> = {
    protocol: PROTOCOL_VERSION,
    version: VERSION,
    stream: stream?.info ?? null,
    gen: gen ? { model: gen.name } : null,
    limits: { maxBodyBytes: options.maxBodyBytes, maxTextChars: options.maxTextChars, maxMessages: options.maxMessages, idleTimeoutMs: options.idleTimeoutMs },
  };
  let draining = false;
  let inFlight = 0;

  async function route(req: IncomingMessage, res: ServerResponse, path: string): Promise<string> {
    if (path === PATHS.health) {
      sendJson(res, draining ? 503 : 200, { status: draining ? 'draining' : 'ok' });
      return 'healthz';
    }
    if (!authorized(req.headers.authorization)) {
      metrics.rejected.inc({ reason: 'unauthorized' });
      throw new HttpError('unauthorized', 'Missing or wrong API key: send Authorization: Bearer <key> (the server\'s QWEN3GUARD_API_KEY)', { 'www-authenticate': 'Bearer' });
    }
    const method = req.method ?? 'GET';
    const only = (allowed: string) => {
      if (method !== allowed) throw new HttpError('method-not-allowed', `${path} takes ${allowed}`, { allow: allowed });
    };
    if (path === PATHS.metrics) {
      only('GET');
      const text = await metrics.registry.metrics();
      if (!res.destroyed) res.writeHead(200, { 'content-type': metrics.registry.contentType }).end(text);
      return 'metrics';
    }
    if (path === PATHS.info) {
      only('GET');
      sendJson(res, 200, info);
      return 'info';
    }
    if (path === PATHS.completions) {
      only('POST');
      if (!gen) throw new HttpError('not-found', 'This server serves no Qwen3Guard-Gen model (start it with --gen-model, or --model <gen.gguf>)');
      const body = await readJson(req, options.maxBodyBytes);
      if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new HttpError('bad-request', 'The body must be a JSON object');
      const answer = await gen.engine.complete(body as Record<string, unknown>).catch((error: unknown) => {
        if (error instanceof GuardBusyError) throw new HttpError('busy', error.message, { 'retry-after': '1' });
        throw error;
      });
      sendJson(res, answer.status, answer.json);
      return 'completions';
    }
    if (path === PATHS.reward) {
      only('POST');
      if (!gen) throw new HttpError('not-found', 'The reward needs a Qwen3Guard-Gen model: start the server with --gen-model (or --model <gen.gguf>)');
      const reply = await gen.rewardRequest(await readJson(req, options.maxBodyBytes));
      sendJson(res, reply.status, reply.body);
      return 'reward';
    }
    if (!sessions) {
      if (path.startsWith(PATHS.sessions)) throw new HttpError('not-found', 'This server serves no Qwen3Guard-Stream model (only Gen, at /v1/completions)');
      throw new HttpError('not-found', `No route ${path}`);
    }
    if (path === PATHS.sessions) {
      only('POST');
      const body = parseBody(createSessionSchema, await readJson(req, options.maxBodyBytes), 'session');
      const key = req.headers[HEADERS.idempotency];
      const claim = sessions.create(body, typeof key === 'string' ? key : undefined);
      // A client that leaves before the answer will never use the session: it is freed, not left to the idle timeout.
      res.on('close', () => res.writableFinished || claim.abandon());
      sendJson(res, 201, await claim.result);
      return 'sessions';
    }
    const match = SESSION_PATH.exec(path);
    if (!match) throw new HttpError('not-found', `No route ${path}`);
    if (method === 'DELETE') {
      await sessions.remove(match[1]);
      if (!res.destroyed) res.writeHead(204).end();
      return 'session';
    }
    only('POST');
    const call = parseBody(sessionCallSchema, await readJson(req, options.maxBodyBytes), 'session call');
    sendJson(res, 200, await sessions.call(match[1], call));
    return 'session';
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = performance.now();
    inFlight++;
    let name = 'unknown';
    // A client that went away mid-request: the call finishes, its answer goes nowhere.
    res.on('error', () => undefined);
    try {
      const path = new URL(req.url ?? '/', 'http://server').pathname;
      name = await route(req, res, path);
    } catch (error) {
      const refused = error instanceof HttpError ? error : new HttpError('internal', `Internal error: ${error instanceof Error ? error.message : String(error)}`);
      if (refused.status === 400 || refused.status === 413 || refused.status === 404 || refused.status === 409) metrics.rejected.inc({ reason: refused.code });
      sendError(res, refused);
    } finally {
      inFlight--;
      metrics.requests.inc({ route: name, status: String(res.statusCode) });
      options.log?.(`${req.method} ${name} ${res.statusCode} ${(performance.now() - started).toFixed(1)} ms`);
    }
  }

  const server: Server = createServer(
    {
      requestTimeout: options.requestTimeoutMs,
      headersTimeout: options.headersTimeoutMs,
      keepAliveTimeout: options.keepAliveTimeoutMs,
      // How often the timeouts above are checked (Node's default, 30 s, would let a slow client stay that long).
      connectionsCheckingInterval: Math.min(1000, options.headersTimeoutMs),
    },
    (req, res) => void handle(req, res),
  );
  const sweeper = setInterval(() => sessions?.sweep(), Math.min(1000, options.idleTimeoutMs / 2)).unref();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  const host = options.host.includes(':') ? `[${options.host}]` : options.host;

  let closing: Promise<void> | null = null;
  const shutdown = (timeoutMs: number) =>
    (closing ??= (async () => {
      draining = true;
      sessions?.startDraining();
      const deadline = performance.now() + timeoutMs;
      while ((sessions?.size ?? 0) + inFlight > 0 && performance.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      clearInterval(sweeper);
      server.close();
      server.closeAllConnections();
      await sessions?.closeAll();
      await stream?.dispose();
      await gen?.dispose();
    })());
  return {
    url: `http://${host}:${port}`,
    port,
    metrics,
    engine: stream,
    drain: (timeoutMs = options.drainTimeoutMs) => shutdown(timeoutMs),
    close: () => shutdown(0),
  };
}

/** The Stream model and/or the Gen model: `modelPath` may be either (detected from the file). */
async function loadModels(options: ResolvedServeOptions): Promise<{ stream: LocalGuard | null; gen: GenService | null }> {
  const modelIsGen = options.modelPath !== undefined && (await detectVariantOfFile(options.modelPath).catch(() => 'unknown')) === 'gen';
  const genPath = modelIsGen ? options.modelPath : options.genModelPath;
  const common = { threads: options.threads, gpu: options.gpu, maxSessions: options.maxSessions, contextSize: options.contextSize, kvCacheType: options.kvCacheType, maxWaiting: options.maxWaiting ?? options.maxSessions * 4 };
  const stream = options.modelPath && !modelIsGen ? await LocalGuard.load({ ...common, modelPath: options.modelPath, responseProbabilities: options.responseProbabilities }) : null;
  try {
    if (!genPath) return { stream, gen: null };
    const genOptions = { ...parseOptions(genOptionsSchema, { ...common, modelPath: genPath }, 'serve.genModel'), modelPath: genPath };
    const engine = await GenCompletions.load(genOptions);
    const { scheme, helpfulnessUrl } = options.reward;
    return { stream, gen: new GenService(engine, genName(genPath), { scheme, helpfulness: helpfulnessUrl ? { url: helpfulnessUrl } : undefined }) };
  } catch (error) {
    await stream?.dispose();
    throw error;
  }
}

/** The name clients give as `model` (any name is accepted; this is what /v1/info reports). */
function genName(path: string): string {
  return path.split(/[\\/]/).pop()!.replace(/\.gguf$/i, '');
}
