import type { IncomingMessage, ServerResponse } from 'node:http';
import type { z } from 'zod';
import { describeIssues } from '../shared/validation.js';
import { HttpError } from './http-error.js';

/** Reads a JSON body of at most `limit` bytes (413 past it, 400 when it is not JSON). */
export async function readJson(req: IncomingMessage, limit: number): Promise<unknown> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) throw new HttpError('too-large', `The body has ${declared} bytes, more than the server's limit of ${limit} (--max-body-bytes)`);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) throw new HttpError('too-large', `The body is longer than the server's limit of ${limit} bytes (--max-body-bytes)`);
    chunks.push(chunk);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new HttpError('bad-request', `The body is not JSON (${(error as Error).message}): send a JSON object with content-type application/json`);
  }
}

/** Validates a request body, 400 naming each bad field. */
export function parseBody<S extends z.ZodType>(schema: S, body: unknown, what: string): z.output<S> {
  const result = schema.safeParse(body);
  if (!result.success) throw new HttpError('bad-request', `Invalid ${what}: ${describeIssues(result.error, 'body')}`);
  return result.data;
}

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  if (res.headersSent || res.destroyed) return;
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

export function sendError(res: ServerResponse, error: HttpError): void {
  // A body left unread (too large) would be read as the next request: close the connection instead.
  const close: Record<string, string> = error.code === 'too-large' ? { connection: 'close' } : {};
  sendJson(res, error.status, { error: { code: error.code, message: error.message } }, { ...error.headers, ...close });
}
