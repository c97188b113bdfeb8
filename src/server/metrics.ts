import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { TokenCounts } from '../guard/stream-guard.js';

const SECONDS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** The server's Prometheus metrics (`GET /metrics`), in a registry of its own (several servers in one process do not mix). */
export class ServerMetrics {
  readonly registry = new Registry();
  readonly sessionsOpen = new Gauge({ name: 'qwen3guard_sessions_open', help: 'Guard sessions open (each holds a KV sequence)', registers: [this.registry] });
  readonly queueWait = new Histogram({ name: 'qwen3guard_session_queue_wait_seconds', help: 'Wait for a free session at creation', buckets: SECONDS, registers: [this.registry] });
  readonly decode = new Histogram({ name: 'qwen3guard_call_seconds', help: 'Guard call time on the server (decodes included), by call', labelNames: ['call'], buckets: SECONDS, registers: [this.registry] });
  readonly tokens = new Counter({ name: 'qwen3guard_tokens_total', help: 'Token work: evaluated, reused from a KV cache, speculated, discarded, scored', labelNames: ['kind'], registers: [this.registry] });
  readonly verdicts = new Counter({ name: 'qwen3guard_verdicts_total', help: 'Prompt verdicts and response decisions (official rule), by risk level and category', labelNames: ['target', 'risk_level', 'category'], registers: [this.registry] });
  readonly rejected = new Counter({ name: 'qwen3guard_requests_rejected_total', help: 'Requests refused, by reason', labelNames: ['reason'], registers: [this.registry] });
  readonly requests = new Counter({ name: 'qwen3guard_http_requests_total', help: 'HTTP requests, by route and status', labelNames: ['route', 'status'], registers: [this.registry] });
  readonly sessionsExpired = new Counter({ name: 'qwen3guard_sessions_expired_total', help: 'Sessions freed by the idle timeout', registers: [this.registry] });

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'qwen3guard_' });
  }

  /** Adds a session call's token work (the difference of its cumulative counts). */
  countTokens(before: TokenCounts, after: TokenCounts): void {
    const kinds: Array<[keyof TokenCounts, string]> = [
      ['evaluatedTokens', 'evaluated'],
      ['reusedTokens', 'reused'],
      ['speculatedTokens', 'speculated'],
      ['discardedTokens', 'discarded'],
      ['scoredTokens', 'scored'],
    ];
    for (const [key, kind] of kinds) if (after[key] > before[key]) this.tokens.inc({ kind }, after[key] - before[key]);
  }

  verdict(target: 'prompt' | 'response', riskLevel: string, category: string | null): void {
    this.verdicts.inc({ target, risk_level: riskLevel, category: category ?? 'none' });
  }
}
