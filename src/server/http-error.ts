import { ERROR_CODES, type ErrorCode } from '../protocol/wire.js';

/** A request refused with a status, a protocol error code and a message that says what to do. */
export class HttpError extends Error {
  readonly status: number;
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.status = ERROR_CODES[code];
  }
}
