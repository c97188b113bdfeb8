import type { RiskLevel, TokenVerdict } from '../guard/types.js';
import type { Action } from './schema.js';

/**
 * held: in a run of non-Safe labels that may still be flagged; pass: released as is; masked: replaced by a
 * mask (redact); stopped: never released (rewrite/abort, and everything after).
 */
export type TokenStatus = 'held' | 'pass' | 'masked' | 'stopped';

export interface TrackedToken {
  verdict: TokenVerdict;
  status: TokenStatus;
}

export interface FlagEvent {
  /** Index of the token that completed the run (the official rule's flagged token). */
  tokenIndex: number;
  /** Index of the run's first token: with a stop action, nothing from it on is released. */
  runStart: number;
  riskLevel: RiskLevel;
  category: string | null;
  action: Action;
  part: TokenVerdict['part'];
}

interface Run {
  key: RiskLevel;
  start: number;
  event: FlagEvent | null;
}

/**
 * The official decision rule, applied as tokens arrive: `debounce` consecutive tokens with the same non-Safe
 * label flag the response at the last of them, with that token's category. Labels whose action is `allow`
 * count as Safe. Each token's status says what may be released; runs are resolved explicitly, per stream.
 */
export class RunTracker {
  readonly tokens: TrackedToken[] = [];
  readonly events: FlagEvent[] = [];
  private run: Run | null = null;
  private stop: FlagEvent | null = null;

  constructor(
    private readonly debounce: number,
    private readonly actionFor: (riskLevel: RiskLevel, category: string | null) => Action,
  ) {}

  /** The event that stopped the response (rewrite or abort), if any. */
  get stopped(): FlagEvent | null {
    return this.stop;
  }

  /** Tokens currently held in an unresolved run. */
  get heldCount(): number {
    return this.run && !this.run.event ? this.tokens.length - this.run.start : 0;
  }

  /** Records verdicts in order; returns the flag events they caused. */
  push(verdicts: readonly TokenVerdict[]): FlagEvent[] {
    const events: FlagEvent[] = [];
    for (const verdict of verdicts) {
      const index = this.tokens.length;
      const token: TrackedToken = { verdict, status: 'held' };
      this.tokens.push(token);
      if (this.stop) {
        token.status = 'stopped';
        continue;
      }
      const key = this.actionFor(verdict.riskLevel, verdict.category) === 'allow' ? 'Safe' : verdict.riskLevel;
      if (key === 'Safe') {
        this.closeRun(index);
        token.status = 'pass';
        continue;
      }
      if (this.run?.key !== key) {
        this.closeRun(index);
        this.run = { key, start: index, event: null };
      }
      const run = this.run!;
      if (run.event) {
        token.status = statusAfter(run.event.action);
      } else if (index - run.start + 1 >= this.debounce) {
        const action = this.actionFor(verdict.riskLevel, verdict.category);
        run.event = { tokenIndex: index, runStart: run.start, riskLevel: verdict.riskLevel, category: verdict.category, action, part: verdict.part };
        for (let i = run.start; i <= index; i++) this.tokens[i].status = statusAfter(action);
        if (statusAfter(action) === 'stopped') this.stop = run.event;
        this.events.push(run.event);
        events.push(run.event);
      }
    }
    return events;
  }

  /**
   * Forgets the tokens from `keep` on (a rollback: the response continues after token `keep - 1`), with their
   * flags and the stop. The tokens kept were released, so no run is open at the cut.
   */
  rollback(keep: number): void {
    this.tokens.length = Math.min(keep, this.tokens.length);
    for (let i = this.events.length - 1; i >= 0 && this.events[i].tokenIndex >= keep; i--) this.events.pop();
    this.run = null;
    this.stop = null;
  }

  /** The response ended: a run shorter than the debounce was not flagged, so its tokens pass. */
  end(): void {
    this.closeRun(this.tokens.length);
  }

  /** Ends the current run before token `end`; unflagged, its tokens pass. */
  private closeRun(end: number): void {
    if (this.run && !this.run.event) {
      for (let i = this.run.start; i < end; i++) this.tokens[i].status = 'pass';
    }
    this.run = null;
  }
}

function statusAfter(action: Action): TokenStatus {
  return action === 'redact' ? 'masked' : action === 'rewrite' || action === 'abort' || action === 'continue' ? 'stopped' : 'pass';
}
