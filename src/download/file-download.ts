import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, rename, rm, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { cacheFailure, DownloadError, isDiskFailure } from './errors.js';
import type { FileMetadata, HubClient } from './hub-client.js';

export interface FileDownload {
  client: HubClient;
  repo: string;
  commit: string;
  file: string;
  metadata: FileMetadata;
  /** Folder of the checkpoint being downloaded (in the cache's .partial area). */
  dir: string;
  signal?: AbortSignal;
  /** Bytes of this file now on disk, each time it grows (resumed bytes count at once). */
  onBytes?: (bytes: number) => void;
  /** Times a dropped connection is resumed before the pull gives up (default 3). */
  retries?: number;
}

const sizeOf = (path: string) => stat(path).then((s) => s.size, () => 0);

/**
 * Downloads one file into `dir`: bytes go to `<file>.incomplete`, resumed with a Range request after a dropped
 * connection or an earlier interrupted pull, and the file is renamed to its name only once its size and checksum
 * match the hub's. Returns the file's path.
 */
export async function downloadFile(d: FileDownload): Promise<string> {
  const target = join(d.dir, d.file);
  if ((await stat(target).catch(() => null))?.size === d.metadata.size) {
    d.onBytes?.(d.metadata.size); // verified before it was renamed in
    return target;
  }
  const incomplete = `${target}.incomplete`;
  await mkdir(dirname(target), { recursive: true }).catch((error: unknown) => {
    throw cacheFailure(error, 'create', dirname(target));
  });
  const retries = d.retries ?? 3;
  for (let attempt = 0; ; attempt++) {
    let offset = await sizeOf(incomplete);
    if (offset > d.metadata.size) offset = 0;
    d.onBytes?.(offset);
    if (offset === d.metadata.size) break;
    try {
      await fetchInto(d, incomplete, offset);
      break;
    } catch (error) {
      if (d.signal?.aborted) throw d.signal.reason;
      if (error instanceof DownloadError || isDiskFailure(error)) throw cacheFailure(error, 'write', incomplete);
      const have = await sizeOf(incomplete);
      if (attempt < retries) {
        await new Promise((resolve) => setTimeout(resolve, 1000 * attempt)); // at once, then 1 s, 2 s
        continue;
      }
      throw new DownloadError(
        `the connection dropped after ${have} of ${d.metadata.size} bytes of ${d.file} (${(error as Error).message}), ${retries} times: ` +
          'run the same command again to resume',
        { cause: error },
      );
    }
  }
  await verify(d, incomplete);
  await rename(incomplete, target);
  return target;
}

async function fetchInto(d: FileDownload, path: string, offset: number): Promise<void> {
  const response = await d.client.openFile(d.repo, d.commit, d.file, offset, d.signal);
  let start = 0;
  if (response.status === 206) {
    start = Number(/^bytes (\d+)-/.exec(response.headers.get('content-range') ?? '')?.[1] ?? NaN);
    if (start !== offset) throw new DownloadError(`${d.file}: the hub answered a request for bytes ${offset}- with ${response.headers.get('content-range')}: run the pull again`);
  }
  if (!response.body) throw new DownloadError(`${d.file}: the hub sent no body`);
  let written = start;
  const count = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      written += chunk.length;
      d.onBytes?.(written);
      done(null, chunk);
    },
  });
  // A server that ignores Range answers 200 with the whole file: start over rather than append.
  const out = createWriteStream(path, { flags: start > 0 ? 'a' : 'w' });
  await pipeline(Readable.fromWeb(response.body as import('node:stream/web').ReadableStream), count, out, { signal: d.signal });
}

/** Size, then sha256 (LFS files) or the git blob id (files kept in git), against the hub's; a bad file is removed. */
async function verify(d: FileDownload, path: string): Promise<void> {
  const size = await sizeOf(path);
  const fail = async (problem: string) => {
    await rm(path, { force: true });
    throw new DownloadError(`${d.file} from ${d.client.config.endpoint}: ${problem}. The download was removed: run the pull again (if this repeats, the hub or mirror serves a file that does not match its own metadata)`);
  };
  if (size !== d.metadata.size) await fail(`${size} bytes received, the hub says ${d.metadata.size}`);
  if (d.metadata.sha256) {
    const got = await digest(path, 'sha256');
    if (got !== d.metadata.sha256) await fail(`sha256 ${got} does not match the hub's ${d.metadata.sha256}`);
  } else if (d.metadata.gitBlob) {
    const got = await digest(path, 'sha1', `blob ${size}\0`);
    if (got !== d.metadata.gitBlob) await fail(`git blob id ${got} does not match the hub's ${d.metadata.gitBlob}`);
  }
}

async function digest(path: string, algorithm: 'sha256' | 'sha1', prefix = ''): Promise<string> {
  const hash = createHash(algorithm).update(prefix);
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}
