import { readFile } from 'node:fs/promises';
import { isLoopback } from '../server/auth.js';
import type { ServeOptions } from '../server/options.js';
import { CommandError, parseCommandLine, parseCount, parseGpu, parseThreads, SERVE_HELP, UsageError } from './args.js';
import { resolveModelArg } from './model-file.js';

/** Reads `serve`'s arguments; null when help was asked for. Keys come from --api-key-file or QWEN3GUARD_API_KEY. */
export async function parseServeArgs(args: string[], env: NodeJS.ProcessEnv = process.env): Promise<(ServeOptions & { model: string }) | null> {
  const { values } = parseCommandLine({
    args,
    allowPositionals: false,
    strict: true,
    options: {
      model: { type: 'string', short: 'm' },
      'gen-model': { type: 'string' },
      host: { type: 'string' },
      port: { type: 'string' },
      threads: { type: 'string' },
      gpu: { type: 'string' },
      'max-sessions': { type: 'string' },
      'context-size': { type: 'string' },
      'max-waiting': { type: 'string' },
      'queue-timeout': { type: 'string' },
      'idle-timeout': { type: 'string' },
      'drain-timeout': { type: 'string' },
      'api-key-file': { type: 'string' },
      'reward-scheme': { type: 'string' },
      'helpfulness-url': { type: 'string' },
      'log-requests': { type: 'boolean' },
      'response-probabilities': { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) return null;
  if (values.model === undefined) throw new UsageError('missing --model <name|file.gguf>');
  const host = values.host ?? '127.0.0.1';
  const port = parseCount('--port', values.port ?? '8080', 0)!;
  if (port > 65535) throw new UsageError(`--port must be from 0 to 65535, got '${values.port}'`);
  const apiKeys = await readKeys(values['api-key-file'], env);
  // Checked before the model loads: an open port without a key is refused at once.
  if (apiKeys.length === 0 && !isLoopback(host)) {
    throw new CommandError(`refusing to listen on ${host} without an API key: set QWEN3GUARD_API_KEY or --api-key-file, or bind 127.0.0.1`);
  }
  const scheme = values['reward-scheme'] ?? 'hybrid';
  if (scheme !== 'hybrid' && scheme !== 'guard-only') throw new UsageError(`unknown --reward-scheme '${scheme}': use hybrid or guard-only`);
  const helpfulnessUrl = values['helpfulness-url'];
  if (helpfulnessUrl !== undefined && !/^https?:\/\//.test(helpfulnessUrl)) throw new UsageError(`--helpfulness-url must be an http(s) URL, got '${helpfulnessUrl}'`);
  const seconds = (name: string, value: string | undefined) => (value === undefined ? undefined : parseCount(`--${name}`, value, 0)! * 1000);
  return {
    model: values.model,
    host,
    port,
    threads: parseThreads(values.threads),
    gpu: parseGpu(values.gpu),
    maxSessions: parseCount('--max-sessions', values['max-sessions']),
    contextSize: parseCount('--context-size', values['context-size'], 64),
    maxWaiting: parseCount('--max-waiting', values['max-waiting'], 0),
    queueTimeoutMs: seconds('queue-timeout', values['queue-timeout']),
    idleTimeoutMs: seconds('idle-timeout', values['idle-timeout']),
    drainTimeoutMs: seconds('drain-timeout', values['drain-timeout']),
    apiKeys,
    genModelPath: values['gen-model'],
    reward: { scheme, helpfulnessUrl },
    responseProbabilities: values['response-probabilities'],
    log: values['log-requests'] ? (line: string) => process.stderr.write(`${line}\n`) : undefined,
  };
}

/** Keys, one per line (# comments and blank lines skipped), from a file or the environment. */
async function readKeys(file: string | undefined, env: NodeJS.ProcessEnv): Promise<string[]> {
  const text = file !== undefined ? await readFile(file, 'utf8').catch((error: Error) => Promise.reject(new CommandError(`--api-key-file ${file} cannot be read (${error.message})`))) : (env.QWEN3GUARD_API_KEY ?? '');
  const keys = text
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter((line) => line && !line.startsWith('#'));
  const short = keys.find((k) => k.length < 16);
  if (short !== undefined) throw new CommandError(`an API key must be at least 16 characters (${file ?? 'QWEN3GUARD_API_KEY'} has one of ${short.length})`);
  return keys;
}

/**
 * glibc gives each thread that allocates its own arena, and node-llama-cpp's worker threads free large buffers
 * in arenas that then stay fragmented (a soak grew resident memory by 3.4 GB). Two arenas keep a server flat:
 * the variable must be set before the process starts, so serve re-executes itself with it (same pid).
 */
function withBoundedArenas(): void {
  if (process.platform !== 'linux' || process.env.MALLOC_ARENA_MAX !== undefined || typeof process.execve !== 'function') return;
  process.execve(process.execPath, [process.execPath, ...process.execArgv, ...process.argv.slice(1)], { ...process.env, MALLOC_ARENA_MAX: '2' });
}

export async function runServe(args: string[]): Promise<number> {
  const parsed = await parseServeArgs(args);
  if (!parsed) {
    process.stdout.write(`${SERVE_HELP}\n`);
    return 0;
  }
  withBoundedArenas();
  const { model, ...options } = parsed;
  const modelPath = await resolveModelArg(model);
  const genModelPath = options.genModelPath === undefined ? undefined : await resolveModelArg(options.genModelPath);
  const { startServer } = await import('../server/server.js');
  const server = await startServer({ ...options, modelPath, genModelPath });
  process.stdout.write(`listening on ${server.url}\n`);
  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (signal: NodeJS.Signals) => {
      if (stopping) {
        // A second signal: stop waiting for open sessions.
        void server.close().then(() => resolve(0));
        return;
      }
      stopping = true;
      process.stderr.write(`qwen3guard serve: ${signal}: finishing open sessions (up to the drain timeout), then exiting\n`);
      void server.drain().then(() => resolve(0));
    };
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
  });
}
