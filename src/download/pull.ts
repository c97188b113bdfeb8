import { existsSync } from 'node:fs';
import { mkdir, readFile, rename, rm, stat, statfs } from 'node:fs/promises';
import { join } from 'node:path';
import { convertCheckpoint, type ConvertProgress } from '../convert/convert.js';
import type { OutputType } from '../convert/ggml-types.js';
import { CHECKPOINTS_DIR, defaultCacheDir, PARTIAL_DIR } from './cache-layout.js';
import { cacheFailure, DownloadError } from './errors.js';
import { downloadFile } from './file-download.js';
import { HubClient, hubConfig, type FileMetadata, type HubConfig } from './hub-client.js';
import { baseName, DEFAULT_TYPE, ggufName } from './models.js';

export interface DownloadProgress {
  file: string;
  bytes: number;
  totalBytes: number;
}

export interface PullOptions {
  /** `Qwen/Qwen3Guard-Stream-0.6B`, `Qwen/Qwen3Guard-Gen-0.6B` or any repository with such a checkpoint. */
  repo: string;
  type?: OutputType;
  revision?: string;
  /** Default: `defaultCacheDir()`. */
  cacheDir?: string;
  keepCheckpoint?: boolean;
  /** Default: `hubConfig(process.env)` (HF_ENDPOINT, HF_TOKEN). */
  hub?: HubConfig;
  signal?: AbortSignal;
  onDownload?: (progress: DownloadProgress) => void;
  onConvert?: (progress: ConvertProgress) => void;
}

export interface PullResult {
  output: string;
  commit: string;
  /** The GGUF was already in the cache: nothing was downloaded. */
  cached: boolean;
  downloadedBytes: number;
  checkpointBytes: number;
  downloadMs: number;
  convertMs: number;
  ggufBytes: number;
  /** Where the raw checkpoint was kept (with keepCheckpoint). */
  checkpoint: string | null;
}

const REQUIRED = ['config.json', 'tokenizer.json', 'tokenizer_config.json'];
const INDEX = 'model.safetensors.index.json';
const SINGLE = 'model.safetensors';

/**
 * Downloads a Qwen3Guard checkpoint (Stream or Gen) from the hub into the cache's .partial area (resumable, each file
 * checked against the hub's size and checksum), converts it to `<cache>/<name>-<type>.gguf` and removes the raw
 * checkpoint unless asked to keep it. Only complete files are ever renamed into the cache.
 */
export async function pullModel(options: PullOptions): Promise<PullResult> {
  const type = options.type ?? DEFAULT_TYPE;
  const cacheDir = options.cacheDir ?? defaultCacheDir();
  const output = join(cacheDir, ggufName(options.repo, type));
  const empty = { downloadedBytes: 0, checkpointBytes: 0, downloadMs: 0, convertMs: 0, checkpoint: null };
  if (existsSync(output)) return { output, commit: '', cached: true, ...empty, ggufBytes: (await statSize(output)) ?? 0 };

  const client = new HubClient(options.hub ?? hubConfig());
  const revision = options.revision ?? 'main';
  const signal = options.signal;
  const started = performance.now();
  const listing = await client.listFiles(options.repo, revision, signal);
  const missing = REQUIRED.filter((f) => !listing.files.includes(f));
  const sharded = listing.files.includes(INDEX);
  if (!sharded && !listing.files.includes(SINGLE)) missing.push(`${SINGLE} (or ${INDEX})`);
  if (missing.length) throw new DownloadError(`${options.repo}@${revision} has no ${missing.join(', ')}: is it a Qwen3Guard-Stream or -Gen checkpoint (safetensors)?`);

  const partial = join(cacheDir, PARTIAL_DIR);
  const dir = join(partial, `${baseName(options.repo)}@${listing.commit}`);
  await mkdir(dir, { recursive: true }).catch((error: unknown) => {
    throw cacheFailure(error, 'create the download folder', dir);
  });
  const fetchOne = (file: string, metadata: FileMetadata, onBytes?: (bytes: number) => void) =>
    downloadFile({ client, repo: options.repo, commit: listing.commit, file, metadata, dir, signal, onBytes });

  // The index names the shards: fetch it first.
  const files = [...REQUIRED];
  if (sharded) {
    const index = await fetchOne(INDEX, await client.fileMetadata(options.repo, listing.commit, INDEX, signal));
    files.push(...shardsOf(JSON.parse(await readFile(index, 'utf8')), options.repo));
  } else files.push(SINGLE);

  const metadata = new Map<string, FileMetadata>();
  for (const file of files) metadata.set(file, await client.fileMetadata(options.repo, listing.commit, file, signal));
  const totalBytes = [...metadata.values()].reduce((sum, m) => sum + m.size, 0);
  // Bytes already on disk from an earlier pull: a complete file, or the resumable part of one.
  const onDisk = new Map<string, number>();
  for (const [file, { size }] of metadata) {
    const done = (await statSize(join(dir, file))) === size;
    onDisk.set(file, done ? size : Math.min((await statSize(join(dir, `${file}.incomplete`))) ?? 0, size));
  }
  const onDiskNow = () => [...onDisk.values()].reduce((a, b) => a + b, 0);
  const resumedBytes = onDiskNow();
  await requireSpace(dir, totalBytes - resumedBytes);
  for (const file of files) {
    await fetchOne(file, metadata.get(file)!, (bytes) => {
      onDisk.set(file, bytes);
      options.onDownload?.({ file, bytes: onDiskNow(), totalBytes });
    });
  }
  const downloadMs = performance.now() - started;

  const convertStarted = performance.now();
  const converting = join(partial, ggufName(options.repo, type));
  const converted = await convertCheckpoint({ checkpoint: dir, output: converting, type, signal, onProgress: options.onConvert }).catch((error: unknown) => {
    throw cacheFailure(error, 'write', converting);
  });
  await rename(converting, output);
  const convertMs = performance.now() - convertStarted;

  let checkpoint: string | null = null;
  if (options.keepCheckpoint) {
    checkpoint = join(cacheDir, CHECKPOINTS_DIR, baseName(options.repo));
    await mkdir(join(cacheDir, CHECKPOINTS_DIR), { recursive: true });
    await rm(checkpoint, { recursive: true, force: true });
    await rename(dir, checkpoint);
  } else await rm(dir, { recursive: true, force: true });
  return { output, commit: listing.commit, cached: false, downloadedBytes: totalBytes - resumedBytes, checkpointBytes: totalBytes, downloadMs, convertMs, ggufBytes: converted.bytes, checkpoint };
}

function shardsOf(index: unknown, repo: string): string[] {
  const map = (index as { weight_map?: unknown } | null)?.weight_map;
  const shards = map && typeof map === 'object' ? [...new Set(Object.values(map))] : [];
  if (!shards.length || shards.some((s) => typeof s !== 'string' || s.includes('/') || s.startsWith('.'))) {
    throw new DownloadError(`${repo}: ${INDEX} has no usable weight_map (shard file names): is the repository complete?`);
  }
  return (shards as string[]).sort();
}

const statSize = (path: string) => stat(path).then((s) => s.size, () => null);

/** Refuses to start a download the disk cannot hold (a write that fails midway is explained too). */
async function requireSpace(dir: string, bytes: number): Promise<void> {
  const fs = await statfs(dir).catch(() => null);
  if (!fs) return;
  const free = fs.bavail * fs.bsize;
  if (free < bytes) {
    throw new DownloadError(
      `the download needs ${(bytes / 1e6).toFixed(1)} MB in ${dir}, only ${(free / 1e6).toFixed(1)} MB are free: ` +
        'free some space, or pass --cache DIR (or set XDG_CACHE_HOME) on a larger disk',
    );
  }
}
