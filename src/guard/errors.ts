/** The model could not be found, read or loaded (a path, a file that is not a guard GGUF, a missing backend). */
export class GuardModelError extends Error {
  override readonly name = 'GuardModelError';
}

/** A session was refused because the guard is full: every session in use and `maxWaiting` more waiting (or a server's 429). */
export class GuardBusyError extends Error {
  override readonly name = 'GuardBusyError';
}
