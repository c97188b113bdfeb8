import { join } from 'node:path';
import { defaultCacheDir } from '../download/cache-layout.js';
import { DownloadError } from '../download/errors.js';
import { downloadFile } from '../download/file-download.js';
import { DATASETS_PREFIX, HubClient, hubConfig, type HubConfig } from '../download/hub-client.js';

/** `hf:<owner>/<name>:<split>`: a split of a dataset on the Hugging Face hub. */
export interface HubDatasetSpec {
  repo: string;
  /** A split name (`response_loc`) or a `.jsonl` path in the repository. */
  split: string;
}

const SPEC = /^hf:([A-Za-z0-9][A-Za-z0-9._-]*\/[A-Za-z0-9][A-Za-z0-9._-]*):([^:]+)$/;

/** Parses `hf:Qwen/Qwen3GuardTest:response_loc`; null when `data` is not an `hf:` reference; throws when it is a malformed one. */
export function parseHubDataset(data: string): HubDatasetSpec | null {
  if (!data.startsWith('hf:')) return null;
  const match = SPEC.exec(data);
  if (!match || match[2].includes('..')) throw new DownloadError(`--data ${data}: write a hub dataset as hf:<owner>/<name>:<split>, for example hf:Qwen/Qwen3GuardTest:response_loc`);
  return { repo: match[1], split: match[2] };
}

export interface FetchDatasetOptions {
  revision?: string;
  /** Default: `<model cache>/datasets`. */
  cacheDir?: string;
  hub?: HubConfig;
  signal?: AbortSignal;
}

/**
 * Downloads one split of a hub dataset (each split one JSONL file at the repository's root, `<split>.jsonl`,
 * as the `configs` of Qwen/Qwen3GuardTest's README declare: thinking.jsonl, response_loc.jsonl,
 * thinking_loc.jsonl) into the cache, through the same resumable, checksum-verified download as `pull`, and
 * returns its path. Nothing is bundled: Qwen3GuardTest is CC-BY-NC-4.0 and is fetched at run time only.
 */
export async function fetchHubDataset(spec: HubDatasetSpec, options: FetchDatasetOptions = {}): Promise<string> {
  const client = new HubClient(options.hub ?? hubConfig());
  const repo = `${DATASETS_PREFIX}${spec.repo}`;
  const listing = await client.listFiles(repo, options.revision ?? 'main', options.signal);
  const file = spec.split.endsWith('.jsonl') ? spec.split : `${spec.split}.jsonl`;
  if (!listing.files.includes(file)) {
    const splits = listing.files.filter((f) => f.endsWith('.jsonl')).map((f) => f.slice(0, -'.jsonl'.length));
    throw new DownloadError(`${spec.repo} has no split ${spec.split} (no ${file}); its JSONL splits: ${splits.join(', ') || 'none'}`);
  }
  const dir = join(options.cacheDir ?? join(defaultCacheDir(), 'datasets'), `${spec.repo.replace('/', '--')}@${listing.commit}`);
  const metadata = await client.fileMetadata(repo, listing.commit, file, options.signal);
  return downloadFile({ client, repo, commit: listing.commit, file, metadata, dir, signal: options.signal });
}
