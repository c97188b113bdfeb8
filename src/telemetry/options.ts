import type { Meter, Tracer } from '@opentelemetry/api';
import { z } from 'zod';
import { describeValue } from '../shared/validation.js';

/** RFC 2104 discourages keys shorter than the hash (32 bytes for SHA-256); below 16 bytes a key can be guessed. */
const MIN_KEY_BYTES = 16;

const hasMethods = (value: unknown, names: string[]) =>
  typeof value === 'object' && value !== null && names.every((n) => typeof (value as Record<string, unknown>)[n] === 'function');

const keyBytes = (key: unknown) => (typeof key === 'string' ? new TextEncoder().encode(key).length : key instanceof Uint8Array ? key.length : -1);

/** `qwen3GuardMiddleware({ telemetry })`. Nothing is sent by this package: the app's OpenTelemetry SDK, if any, exports. */
export const telemetryOptionsSchema = z
  .object({
    /** Spans and metrics through the OpenTelemetry API (a no-op until the app registers an SDK). Default true. */
    enabled: z.boolean().default(true),
    /** Put the prompt and answer text in the guardrail spans (`content.input.value`). Default false: no text at all. */
    recordContent: z.boolean().default(false),
    /** A secret: spans carry an HMAC-SHA256 of the content (`content.input.hash`), to correlate without the text. */
    contentHmacKey: z
      .custom<string | Uint8Array>((v) => keyBytes(v) >= MIN_KEY_BYTES, {
        error: (issue) => `expected a secret of at least ${MIN_KEY_BYTES} bytes (a string or a Uint8Array), got ${keyBytes(issue.input) >= 0 ? `${keyBytes(issue.input)} bytes` : describeValue(issue.input)}`,
      })
      .optional(),
    /** Default: the global tracer provider's (`trace.getTracer('ai-sdk-qwen3guard')`). */
    tracer: z.custom<Tracer>((v) => hasMethods(v, ['startSpan']), { error: (issue) => `expected an OpenTelemetry Tracer (trace.getTracer(...)), got ${describeValue(issue.input)}` }).optional(),
    /** Default: the global meter provider's, looked up per request (a provider registered later is used). */
    meter: z
      .custom<Meter>((v) => hasMethods(v, ['createCounter', 'createHistogram', 'createUpDownCounter']), {
        error: (issue) => `expected an OpenTelemetry Meter (metrics.getMeter(...)), got ${describeValue(issue.input)}`,
      })
      .optional(),
  })
  .strict();

export type TelemetryOptions = z.input<typeof telemetryOptionsSchema>;
export type ResolvedTelemetryOptions = z.output<typeof telemetryOptionsSchema>;
