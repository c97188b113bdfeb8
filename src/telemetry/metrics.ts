import { createNoopMeter, diag, metrics, type Attributes, type Counter, type Histogram, type Meter, type UpDownCounter } from '@opentelemetry/api';
import { METRIC, SCOPE } from './conventions.js';

/** The instruments of one meter. */
export interface Instruments {
  checks: Counter;
  promptDuration: Histogram;
  ttftAdded: Histogram;
  releaseLag: Histogram;
  decodeDuration: Histogram;
  openSessions: UpDownCounter;
}

function create(meter: Meter): Instruments {
  const histogram = (m: { name: string; unit: string; description: string; buckets: number[] }) =>
    meter.createHistogram(m.name, { unit: m.unit, description: m.description, advice: { explicitBucketBoundaries: m.buckets } });
  return {
    checks: meter.createCounter(METRIC.checks.name, { unit: METRIC.checks.unit, description: METRIC.checks.description }),
    promptDuration: histogram(METRIC.promptDuration),
    ttftAdded: histogram(METRIC.ttftAdded),
    releaseLag: histogram(METRIC.releaseLag),
    decodeDuration: histogram(METRIC.decodeDuration),
    openSessions: meter.createUpDownCounter(METRIC.openSessions.name, { unit: METRIC.openSessions.unit, description: METRIC.openSessions.description }),
  };
}

/**
 * The middleware's instruments. The API's global meter is a no-op until a MeterProvider is registered, and a
 * meter taken before that stays one, so the global meter is looked up per request (the SDK caches it) and the
 * instruments made again when it changed. With none registered, that is said once on OpenTelemetry's
 * diagnostic log instead of dropping the metrics silently, and nothing is computed for them.
 */
export class GuardMetrics {
  private meter: Meter | null = null;
  private instruments: Instruments | null = null;
  private told = false;

  constructor(private readonly given: Meter | undefined) {}

  /** This request's instruments, or null when no meter records. */
  current(): Instruments | null {
    const meter = this.given ?? metrics.getMeter(SCOPE);
    if (meter === createNoopMeter()) {
      if (!this.told) {
        this.told = true;
        diag.info(`${SCOPE}: no OpenTelemetry MeterProvider is registered, so guardrail metrics (${METRIC.checks.name}, ...) are not recorded; traces still are when a TracerProvider is registered`);
      }
      return null;
    }
    if (meter !== this.meter) {
      this.meter = meter;
      this.instruments = create(meter);
    }
    return this.instruments;
  }
}

/** Records milliseconds in a seconds histogram. */
export function recordMs(histogram: Histogram, ms: readonly number[], attributes: Attributes): void {
  for (const value of ms) histogram.record(value / 1000, attributes);
}
