import { join } from 'node:path';
import { OUTPUT_TYPES, type OutputType } from '../convert/ggml-types.js';
import { defaultCacheDir, PARTIAL_DIR } from '../download/cache-layout.js';
import { parseModelSource, type ModelSource } from '../download/models.js';
import { pullModel, type DownloadProgress } from '../download/pull.js';
import { parseCommandLine, PULL_HELP, UsageError } from './args.js';
import { megabytes, ProgressLine, seconds } from './render.js';

export interface PullArgs {
  source: ModelSource;
  type: OutputType;
  revision: string;
  cacheDir: string;
  keepCheckpoint: boolean;
}

/** Reads `pull`'s arguments; null when help was asked for. */
export function parsePullArgs(args: string[]): PullArgs | null {
  const { values, positionals } = parseCommandLine({
    args,
    allowPositionals: true,
    strict: true,
    options: {
      type: { type: 'string', short: 't' },
      revision: { type: 'string' },
      cache: { type: 'string' },
      'keep-checkpoint': { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) return null;
  if (positionals.length > 1) throw new UsageError(`expected one model, got ${positionals.length}: ${positionals.join(' ')}`);
  const spec = positionals[0] ?? '0.6B';
  const source = parseModelSource(spec);
  if (!source) throw new UsageError(`unknown model '${spec}': use 0.6B, 4B, 8B or a hub repository as owner/repo (gen-0.6B, gen-4B, gen-8B for Qwen3Guard-Gen)`);
  const type = values.type ?? 'q8_0';
  if (!(OUTPUT_TYPES as readonly string[]).includes(type)) throw new UsageError(`unknown --type '${type}': use one of ${OUTPUT_TYPES.join(', ')}`);
  if (values.revision === '') throw new UsageError('--revision needs a branch, tag or commit');
  return { source, type: type as OutputType, revision: values.revision ?? 'main', cacheDir: values.cache || defaultCacheDir(), keepCheckpoint: values['keep-checkpoint'] ?? false };
}

/** Download speed over the last few seconds, for the speed and time left shown. */
class RateMeter {
  private readonly samples: Array<{ at: number; bytes: number }> = [];

  rate(bytes: number, at = performance.now()): number {
    this.samples.push({ at, bytes });
    while (this.samples.length > 2 && at - this.samples[0].at > 5000) this.samples.shift();
    const first = this.samples[0];
    return at > first.at ? ((bytes - first.bytes) * 1000) / (at - first.at) : 0;
  }
}

function downloadText(p: DownloadProgress, bytesPerSecond: number): string {
  const percent = p.totalBytes > 0 ? Math.floor((100 * p.bytes) / p.totalBytes) : 0;
  const left = bytesPerSecond > 0 ? `${Math.ceil((p.totalBytes - p.bytes) / bytesPerSecond)} s left` : '';
  return `${String(percent).padStart(3)}%  ${(p.bytes / 1e6).toFixed(1)} / ${megabytes(p.totalBytes)}  ${(bytesPerSecond / 1e6).toFixed(1)} MB/s  ${left}  ${p.file}`;
}

/** `qwen3guard pull`: progress on stderr when it is a terminal, a one-line summary on stdout. */
export async function runPull(args: string[]): Promise<number> {
  const parsed = parsePullArgs(args);
  if (!parsed) {
    process.stdout.write(`${PULL_HELP}\n`);
    return 0;
  }
  const progress = process.stderr.isTTY ? new ProgressLine(process.stderr) : undefined;
  const meter = new RateMeter();
  // Ctrl-C stops cleanly: completed files are kept in .partial for the next pull, nothing half-written enters the cache.
  const interrupt = new AbortController();
  const onSigint = () => interrupt.abort(new Error('interrupted'));
  process.once('SIGINT', onSigint);
  try {
    const result = await pullModel({
      repo: parsed.source.repo,
      type: parsed.type,
      revision: parsed.revision,
      cacheDir: parsed.cacheDir,
      keepCheckpoint: parsed.keepCheckpoint,
      signal: interrupt.signal,
      onDownload: progress && ((p) => progress.update(downloadText(p, meter.rate(p.bytes)), p.bytes === p.totalBytes)),
      onConvert: progress && ((p) => progress.update(`converting ${String(Math.floor((100 * p.bytesWritten) / Math.max(p.totalBytes, 1))).padStart(3)}%  ${p.tensor}`)),
    });
    progress?.clear();
    if (result.cached) {
      process.stdout.write(`Already cached: ${result.output} (${megabytes(result.ggufBytes)}); delete it to pull again\n`);
      return 0;
    }
    const speed = result.downloadMs > 0 ? ` (${((result.downloadedBytes / result.downloadMs) * 1e-3).toFixed(1)} MB/s)` : '';
    const resumed = result.downloadedBytes < result.checkpointBytes ? ` of ${megabytes(result.checkpointBytes)}, the rest resumed` : '';
    const kept = result.checkpoint ? `; checkpoint kept in ${result.checkpoint}` : '';
    process.stdout.write(
      `Pulled ${parsed.source.repo}@${result.commit.slice(0, 12)}: downloaded ${megabytes(result.downloadedBytes)}${resumed} in ${seconds(result.downloadMs)}${speed}, ` +
        `converted to ${result.output} (${parsed.type}, ${megabytes(result.ggufBytes)}) in ${seconds(result.convertMs)}${kept}\n`,
    );
    return 0;
  } catch (error) {
    if (!interrupt.signal.aborted) throw error;
    progress?.clear();
    process.stderr.write(`qwen3guard pull: interrupted; what was downloaded stays in ${join(parsed.cacheDir, PARTIAL_DIR)} and the same command resumes it\n`);
    return 130;
  } finally {
    process.off('SIGINT', onSigint);
    progress?.clear();
  }
}
