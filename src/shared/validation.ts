import type { z } from 'zod';

/** A configuration error naming the field, what is wrong and what is allowed. */
export class OptionsError extends TypeError {
  override readonly name = 'OptionsError';
}

/** Parses `input` with `schema`, throwing an OptionsError that lists every bad field as `prefix.field: problem`. */
export function parseOptions<S extends z.ZodType>(schema: S, input: unknown, prefix: string): z.output<S> {
  const result = schema.safeParse(input);
  if (result.success) return result.data;
  const problems = result.error.issues.map((issue) => {
    const field = issue.path.length ? `${prefix}.${issue.path.join('.')}` : prefix;
    return `${field}: ${issue.message}`;
  });
  throw new OptionsError(`Invalid options: ${problems.join('; ')}`);
}
