import type { z } from 'zod';

/** A configuration error naming the field, what is wrong and what is allowed. */
export class OptionsError extends TypeError {
  override readonly name = 'OptionsError';
}

/** Parses `input` with `schema`, throwing an OptionsError that lists every bad field as `prefix.field: problem`. */
export function parseOptions<S extends z.ZodType>(schema: S, input: unknown, prefix: string): z.output<S> {
  const result = schema.safeParse(input);
  if (result.success) return result.data;
  throw new OptionsError(`Invalid options: ${describeIssues(result.error, prefix)}`);
}

/** Every problem of a failed parse as `prefix.field: problem`, joined. */
export function describeIssues(error: z.ZodError, prefix: string): string {
  return error.issues
    .map((issue) => {
      const field = issue.path.length ? `${prefix}.${issue.path.join('.')}` : prefix;
      return `${field}: ${issue.message}`;
    })
    .join('; ');
}

/** A value as a message shows it: short, quoted like the docs, never raw bytes or a whole object. */
export function describeValue(value: unknown): string {
  if (typeof value === 'string') {
    const shown = value.length > 40 ? `${value.slice(0, 40)}…` : value;
    return `'${shown.replace(/[\u0000-\u001f\u007f-\u009f]/g, '?')}'`;
  }
  if (value === null || value === undefined || typeof value === 'number' || typeof value === 'boolean') return String(value);
  if (typeof value === 'function') return 'a function';
  if (Array.isArray(value)) return 'an array';
  if (value instanceof Promise) return 'a promise';
  return typeof value === 'object' ? 'an object' : `a ${typeof value}`;
}

/** `'a', 'b' or 'c'`: allowed values as a message lists them. */
export function listOf(values: readonly unknown[]): string {
  const shown = values.map(describeValue);
  return shown.length < 2 ? shown.join('') : `${shown.slice(0, -1).join(', ')} or ${shown.at(-1)}`;
}

/** A zod `error` option: `expected <what>, got <value>`. */
export const expected =
  (what: string) =>
  (issue: { input?: unknown }): string =>
    `expected ${what}, got ${describeValue(issue.input)}`;
