import type { FlaggedSpan } from '../policy/resolve.js';
import type { Qwen3GuardInterventionMetadata } from './metadata-types.js';
import type { InterventionInfo } from './options.js';

/** What the `continue` action did to one response so far: its metadata, and how long the output stood still. */
export class InterventionRecord {
  attempts = 0;
  tokensDiscarded = 0;
  extraTokens = 0;
  outcome: Qwen3GuardInterventionMetadata['outcome'] = 'continued';
  private extraMs = 0;
  /** When the output stopped moving (a flag), until the next released character. */
  private since: number | null = null;

  /** A flag stopped the output. */
  stalled(): void {
    this.since ??= performance.now();
  }

  /** Text went out again. */
  moved(): void {
    if (this.since === null) return;
    this.extraMs += performance.now() - this.since;
    this.since = null;
  }

  /** A rollback dropped `dropped` tokens before the next attempt. */
  rolledBack(dropped: number): void {
    this.attempts++;
    this.tokensDiscarded += dropped;
    this.extraTokens += dropped;
  }

  fellBack(fallback: 'rewrite' | 'abort'): void {
    this.outcome = `fallback-${fallback}`;
  }

  /** Something else stopped the response during an attempt. */
  stoppedOtherwise(): void {
    if (!this.outcome.startsWith('fallback')) this.outcome = 'aborted';
  }

  /** The `onIntervention` payload for a flag at `span`: what comes next, what stays shown, what was dropped. */
  report(span: FlaggedSpan, next: InterventionInfo['next'], keptChars: number, tokensDiscarded: number, startedAt: number): InterventionInfo {
    const attempt = this.attempts + (next === 'continue' ? 0 : 1);
    return { attempt, next, riskLevel: span.riskLevel, category: span.category, part: span.part, keptChars, tokensDiscarded, latencyMs: performance.now() - startedAt };
  }

  /** The metadata, with the time still standing counted. */
  metadata(): Qwen3GuardInterventionMetadata {
    const standing = this.since === null ? 0 : performance.now() - this.since;
    return { attempts: this.attempts, tokensDiscarded: this.tokensDiscarded, extraTokens: this.extraTokens, extraMs: this.extraMs + standing, outcome: this.outcome };
  }
}
