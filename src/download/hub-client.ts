import { DownloadError } from './errors.js';

/** Hugging Face hub access: base URL from HF_ENDPOINT (mirrors), token from HF_TOKEN. */
export interface HubConfig {
  endpoint: string;
  token?: string;
}

export function hubConfig(env: NodeJS.ProcessEnv = process.env): HubConfig {
  const endpoint = (env.HF_ENDPOINT || 'https://huggingface.co').replace(/\/+$/, '');
  return { endpoint, token: env.HF_TOKEN || undefined };
}

export interface RepoFiles {
  /** The commit the revision points at: every file is fetched from it, so a moving branch cannot mix versions. */
  commit: string;
  files: string[];
}

/** What the hub says a file is: its size and, when it knows it, a checksum to compare against. */
export interface FileMetadata {
  size: number;
  /** sha256 of LFS files (x-linked-etag). */
  sha256: string | null;
  /** Git blob id of files stored in git itself (their etag). */
  gitBlob: string | null;
}

const encodePath = (path: string) => path.split('/').map(encodeURIComponent).join('/');

/** Dataset repositories are named `datasets/<owner>/<name>` in the hub's file URLs: pass them so to every method. */
export const DATASETS_PREFIX = 'datasets/';
const isDataset = (repo: string) => repo.startsWith(DATASETS_PREFIX);

export class HubClient {
  constructor(readonly config: HubConfig) {}

  private headers(extra: Record<string, string> = {}): Record<string, string> {
    return { ...(this.config.token ? { authorization: `Bearer ${this.config.token}` } : {}), ...extra };
  }

  fileUrl(repo: string, revision: string, file: string): string {
    return `${this.config.endpoint}/${repo}/resolve/${encodeURIComponent(revision)}/${encodePath(file)}`;
  }

  /** The files of `repo` at `revision` and the commit it resolves to (`GET /api/models/{repo}/revision/{rev}`). */
  async listFiles(repo: string, revision: string, signal?: AbortSignal): Promise<RepoFiles> {
    const api = isDataset(repo) ? `datasets/${repo.slice(DATASETS_PREFIX.length)}` : `models/${repo}`;
    const url = `${this.config.endpoint}/api/${api}/revision/${encodeURIComponent(revision)}`;
    const response = await this.request(url, { headers: this.headers(), signal }, { repo, revision });
    const body = (await response.json().catch(() => null)) as { sha?: unknown; siblings?: Array<{ rfilename?: unknown }> } | null;
    const files = body?.siblings?.map((s) => s.rfilename).filter((f): f is string => typeof f === 'string');
    if (!body || typeof body.sha !== 'string' || !files) throw new DownloadError(`${url}: the hub's answer has no sha and siblings[].rfilename: is HF_ENDPOINT (${this.config.endpoint}) a Hugging Face hub?`);
    return { commit: body.sha, files };
  }

  /**
   * Size and checksum of one file, as huggingface_hub's get_hf_file_metadata reads them: a HEAD without following
   * the redirect to the CDN, X-Linked-Size / X-Linked-Etag (sha256) for LFS files, else Content-Length / ETag.
   * Relative redirects (renamed repositories) are followed.
   */
  async fileMetadata(repo: string, revision: string, file: string, signal?: AbortSignal): Promise<FileMetadata> {
    let url = this.fileUrl(repo, revision, file);
    for (let hop = 0; ; hop++) {
      const response = await this.request(url, { method: 'HEAD', redirect: 'manual', headers: this.headers({ 'accept-encoding': 'identity' }), signal }, { repo, revision, file });
      const location = response.headers.get('location');
      const linkedSize = response.headers.get('x-linked-size');
      if (response.status >= 300 && response.status < 400 && location && !linkedSize && hop < 5) {
        const next = new URL(location, url);
        if (next.origin === new URL(url).origin) {
          url = next.href;
          continue;
        }
      }
      const size = Number(linkedSize ?? response.headers.get('content-length'));
      if (!Number.isSafeInteger(size) || size < 0) throw new DownloadError(`${url}: the hub gave no size for ${file} (no X-Linked-Size or Content-Length)`);
      const etag = normalizeEtag(response.headers.get('x-linked-etag') ?? response.headers.get('etag'));
      const isLfs = linkedSize !== null;
      return {
        size,
        sha256: isLfs && etag && /^[0-9a-f]{64}$/.test(etag) ? etag : null,
        gitBlob: !isLfs && etag && /^[0-9a-f]{40}$/.test(etag) ? etag : null,
      };
    }
  }

  /** A GET of the file's bytes from `offset` on (a Range request when resuming). */
  async openFile(repo: string, revision: string, file: string, offset: number, signal?: AbortSignal): Promise<Response> {
    const headers = this.headers(offset > 0 ? { range: `bytes=${offset}-`, 'accept-encoding': 'identity' } : { 'accept-encoding': 'identity' });
    return this.request(this.fileUrl(repo, revision, file), { headers, signal }, { repo, revision, file });
  }

  private async request(url: string, init: RequestInit, what: { repo: string; revision: string; file?: string }): Promise<Response> {
    let response: Response;
    try {
      response = await fetch(url, init);
    } catch (error) {
      if (init.signal?.aborted) throw init.signal.reason;
      const cause = (error as { cause?: { code?: string; message?: string } }).cause;
      throw new DownloadError(`cannot reach ${this.config.endpoint} (${cause?.code ?? cause?.message ?? (error as Error).message}): check the network, or set HF_ENDPOINT to a reachable mirror`, { cause: error });
    }
    if (response.ok || (response.status >= 300 && response.status < 400 && init.redirect === 'manual')) return response;
    await response.body?.cancel().catch(() => undefined);
    throw httpFailure(response, url, what, this.config);
  }
}

/** `W/"abc"` or `"abc"` -> `abc`. */
function normalizeEtag(etag: string | null): string | null {
  return etag ? etag.replace(/^W\//, '').replace(/^"|"$/g, '') : null;
}

function httpFailure(response: Response, url: string, what: { repo: string; revision: string; file?: string }, config: HubConfig): DownloadError {
  const code = response.headers.get('x-error-code');
  const page = `${config.endpoint}/${what.repo}`;
  const target = what.file ? `${what.file} of ${what.repo}@${what.revision}` : `${what.repo}@${what.revision}`;
  if (response.status === 401 || response.status === 403) {
    const token = config.token ? 'HF_TOKEN is set, but that account has no access to it' : 'no HF_TOKEN is set';
    return new DownloadError(
      `the hub refused ${target} (HTTP ${response.status}${code ? ` ${code}` : ''}): ${token}. If the repository exists, open ${page}, ` +
        `accept the model's licence there, and set HF_TOKEN to an access token of that account (https://huggingface.co/settings/tokens); otherwise check the name`,
    );
  }
  if (response.status === 404) {
    const missing =
      code === 'RevisionNotFound' ? `revision ${what.revision} does not exist in ${what.repo}: check --revision`
      : code === 'EntryNotFound' || (what.file && code !== 'RepoNotFound') ? `${what.repo}@${what.revision} has no file ${what.file}`
      : isDataset(what.repo) ? `no dataset ${what.repo.slice(DATASETS_PREFIX.length)} on ${config.endpoint}: check the name (owner/name)`
      : `no repository ${what.repo} on ${config.endpoint}: check the name (0.6B, 4B, 8B or owner/repo)`;
    return new DownloadError(`${missing} (HTTP 404 for ${url})`);
  }
  return new DownloadError(`the hub answered HTTP ${response.status} ${response.statusText} for ${url}: try again later, or set HF_ENDPOINT to a mirror`);
}
