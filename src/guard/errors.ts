/** The model could not be found, read or loaded (a path, a file that is not a guard GGUF, a missing backend). */
export class GuardModelError extends Error {
  override readonly name = 'GuardModelError';
}

/** A session was refused because the guard is full: every session in use and `maxWaiting` more waiting (or a server's 429). */
export class GuardBusyError extends Error {
  override readonly name = 'GuardBusyError';
}

/** How a guard that runs elsewhere (a `qwen3guard serve`, a serving engine) failed a call: the metadata's error codes. */
export type RemoteFailureCode =
  /** No answer: the network, the server down or restarting, a 5xx, a body that is not the protocol's. */
  | 'guard-unavailable'
  /** No answer within `timeoutMs` (retries included). */
  | 'guard-timeout'
  /** 401 or 403: the API key is missing or wrong. */
  | 'guard-unauthorized'
  /** 429: the server is full; it said when to come back. */
  | 'guard-busy'
  /** The server no longer knows the session: it restarted, timed it out, or another instance got the request. */
  | 'guard-session-lost'
  /** 400 or 413: the server refused the request (too large, or malformed). */
  | 'guard-rejected'
  /** 500: the guard failed on this request on the server. */
  | 'guard-failed';

/** A remote guard's call failed; `code` says how, `status` is the HTTP status (null without a response). */
export class RemoteGuardError extends Error {
  override readonly name = 'RemoteGuardError';
  constructor(
    message: string,
    readonly code: RemoteFailureCode,
    readonly status: number | null = null,
  ) {
    super(message);
  }
}

/** A session call out of turn: before `checkPrompt`, after `end`, after `dispose`, or reasoning after the answer. */
export class GuardStateError extends Error {
  override readonly name = 'GuardStateError';
}
