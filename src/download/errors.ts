/** A failed pull, with what went wrong and what to do about it (the CLI prints the message alone). */
export class DownloadError extends Error {
  override readonly name = 'DownloadError';
}

const FS_ADVICE: Record<string, string> = {
  ENOSPC: 'the disk is full: free some space, or pass --cache DIR (or set XDG_CACHE_HOME) on a larger disk',
  EDQUOT: 'the disk quota is exceeded: free some space, or pass --cache DIR on another disk',
  ENOTDIR: 'a part of that path is a file, not a folder: pass --cache DIR (or set XDG_CACHE_HOME) to a folder you can write',
  EEXIST: 'a part of that path is a file, not a folder: pass --cache DIR (or set XDG_CACHE_HOME) to a folder you can write',
  EACCES: 'permission denied: pass --cache DIR (or set XDG_CACHE_HOME) to a folder you can write',
  EPERM: 'permission denied: pass --cache DIR (or set XDG_CACHE_HOME) to a folder you can write',
  EROFS: 'the file system is read-only: pass --cache DIR (or set XDG_CACHE_HOME) to a writable folder',
};

/** Whether `error` is a file-system failure retrying cannot fix (as opposed to a dropped connection). */
export function isDiskFailure(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException | null)?.code;
  return typeof code === 'string' && Object.hasOwn(FS_ADVICE, code);
}

/** A file-system failure in the cache as a DownloadError that names the path and the fix; other errors as they are. */
export function cacheFailure(error: unknown, doing: string, path: string): unknown {
  const code = (error as NodeJS.ErrnoException | null)?.code;
  const advice = code && Object.hasOwn(FS_ADVICE, code) ? FS_ADVICE[code] : undefined;
  return advice ? new DownloadError(`cannot ${doing} ${path} (${code}): ${advice}`, { cause: error }) : error;
}
