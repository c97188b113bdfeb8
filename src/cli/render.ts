import type { RiskLevel } from '../guard/types.js';

/**
 * Colour on stdout: FORCE_COLOR (other than "0"/"false") forces it on; otherwise only on a terminal and only
 * while NO_COLOR is unset or empty (https://no-color.org).
 */
export function useColour(stream: { isTTY?: boolean }, env: NodeJS.ProcessEnv = process.env): boolean {
  const force = env.FORCE_COLOR;
  if (force !== undefined) return force !== '0' && force !== 'false';
  if (env.NO_COLOR) return false;
  return stream.isTTY === true;
}

const SGR = {
  red: ['\x1b[31m', '\x1b[39m'],
  yellow: ['\x1b[33m', '\x1b[39m'],
  green: ['\x1b[32m', '\x1b[39m'],
  bold: ['\x1b[1m', '\x1b[22m'],
  dim: ['\x1b[2m', '\x1b[22m'],
} as const;

export type Style = keyof typeof SGR;

export function paint(text: string, style: Style, colour: boolean): string {
  return colour && text ? SGR[style][0] + text + SGR[style][1] : text;
}

/** Colours of the published Qwen3Guard demo: Safe green, Controversial yellow, Unsafe red. */
const LEVEL_STYLE: Record<RiskLevel, Style> = { Safe: 'green', Controversial: 'yellow', Unsafe: 'red' };

/** A risk level, coloured when colour is on. */
export function level(riskLevel: RiskLevel, colour: boolean): string {
  return paint(riskLevel, LEVEL_STYLE[riskLevel], colour);
}

/** `Unsafe (Violent)`, or `Safe`. */
export function label(riskLevel: RiskLevel, category: string | null, colour: boolean): string {
  return level(riskLevel, colour) + (category ? ` (${category})` : '');
}

/**
 * One response token's text: coloured by its risk level, or, without colour, non-Safe tokens marked as
 * `[U:text]` / `[C:text]` so that the labels survive in logs.
 */
export function token(text: string, riskLevel: RiskLevel, colour: boolean): string {
  if (colour) return paint(text, LEVEL_STYLE[riskLevel], true);
  if (riskLevel === 'Safe') return text;
  return `[${riskLevel === 'Unsafe' ? 'U' : 'C'}:${text}]`;
}

export function megabytes(bytes: number): string {
  return `${(bytes / 1e6).toFixed(1)} MB`;
}

export function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}

/**
 * A single status line on a terminal stream, rewritten in place (carriage return, erase line) at most every
 * `intervalMs`, and cut to the terminal's width so that it never wraps.
 */
export class ProgressLine {
  private last = 0;
  private shown = false;

  constructor(
    private readonly stream: NodeJS.WriteStream,
    private readonly intervalMs = 100,
  ) {}

  update(text: string, force = false): void {
    const now = Date.now();
    if (!force && this.shown && now - this.last < this.intervalMs) return;
    this.last = now;
    this.shown = true;
    const width = this.stream.columns ? this.stream.columns - 1 : 79;
    this.stream.write(`\r\x1b[K${text.length > width ? text.slice(0, width) : text}`);
  }

  /** Erases the line, leaving the cursor at its start. */
  clear(): void {
    if (this.shown) this.stream.write('\r\x1b[K');
    this.shown = false;
  }
}
