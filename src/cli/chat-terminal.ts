import { createInterface, type Interface } from 'node:readline';
import { Writable } from 'node:stream';

/**
 * readline's output, muted while an answer streams: keys typed then stay in readline's line (shown after the
 * next prompt) instead of being echoed into the answer. Writes go straight through, in order.
 */
class MutableOutput extends Writable {
  muted = false;

  constructor(private readonly target: NodeJS.WriteStream) {
    super();
    target.on('resize', () => this.emit('resize'));
  }

  get isTTY(): boolean {
    return this.target.isTTY === true;
  }
  get columns(): number | undefined {
    return this.target.columns;
  }
  get rows(): number | undefined {
    return this.target.rows;
  }

  override _write(chunk: Buffer | string, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    if (!this.muted) this.target.write(chunk);
    // Called back at once: a later readline write must not queue behind this one and land after our own writes.
    callback();
  }
}

export type ChatInputEvent = { type: 'line'; text: string } | { type: 'eof' } | { type: 'interrupt' };

/**
 * The chat's terminal: readline for the prompt, and the answer and status lines written around it.
 *
 * A status line always ends with a newline and starts on a fresh line: readline redraws its prompt from the
 * start of the cursor's row and erases what follows, so a line left open before the prompt would vanish.
 */
export class ChatTerminal {
  private readonly output: MutableOutput;
  private readonly rl: Interface;
  private readonly lines: Array<{ text: string; echoed: boolean }> = [];
  private ended = false;
  private waiter: ((event: ChatInputEvent) => void) | null = null;
  private atLineStart = true;
  /** Set while an answer streams: what Ctrl-C does then. */
  onInterrupt: (() => void) | null = null;
  private readonly onSignal = () => this.interrupt();

  constructor(
    private readonly stdout: NodeJS.WriteStream,
    stdin: NodeJS.ReadStream,
    private readonly promptText: string,
  ) {
    this.output = new MutableOutput(stdout);
    const terminal = stdin.isTTY === true && stdout.isTTY === true;
    this.rl = createInterface({ input: stdin, output: this.output, terminal, prompt: promptText, historySize: 100 });
    this.rl.on('line', (text) => {
      // Enter moved the cursor to a new line, unless the line was typed while muted (during an answer).
      if (!this.output.muted) this.atLineStart = true;
      this.lines.push({ text, echoed: terminal && !this.output.muted });
      this.flush();
    });
    this.rl.on('close', () => {
      this.ended = true;
      this.flush();
    });
    // In a terminal readline reads Ctrl-C as a key; a SIGINT comes from outside (kill, or input that is no terminal).
    this.rl.on('SIGINT', this.onSignal);
    process.on('SIGINT', this.onSignal);
  }

  /** Waits for the next line at the prompt, the end of input (Ctrl-D) or Ctrl-C. */
  next(): Promise<ChatInputEvent> {
    const queued = this.take();
    if (queued) return Promise.resolve(queued);
    this.newLine();
    this.output.muted = false;
    this.rl.prompt(true);
    this.atLineStart = false;
    return new Promise((resolve) => (this.waiter = resolve));
  }

  /** Mutes readline's echo while an answer is written. */
  startAnswer(): void {
    this.output.muted = true;
  }

  /** Answer text, as it comes. */
  write(text: string): void {
    if (!text) return;
    this.stdout.write(text);
    this.atLineStart = text.endsWith('\n');
  }

  /** A line of its own. */
  line(text: string): void {
    this.newLine();
    this.stdout.write(`${text}\n`);
    this.atLineStart = true;
  }

  /** Ends an open line. */
  newLine(): void {
    if (!this.atLineStart) this.stdout.write('\n');
    this.atLineStart = true;
  }

  close(): void {
    process.off('SIGINT', this.onSignal);
    this.output.muted = false;
    this.rl.close();
    this.newLine();
  }

  private interrupt(): void {
    if (this.onInterrupt) return this.onInterrupt();
    const waiter = this.waiter;
    this.waiter = null;
    waiter?.({ type: 'interrupt' });
  }

  /** `afterPrompt`: the prompt is on screen (a line came while waiting), else the line came earlier. */
  private take(afterPrompt = false): ChatInputEvent | null {
    const line = this.lines.shift();
    if (line) {
      // A line not echoed (typed during an answer, or input that is no terminal) is shown as if typed at the prompt.
      if (!line.echoed) {
        if (afterPrompt) this.write(`${line.text}\n`);
        else this.line(`${this.promptText}${line.text}`);
      }
      return { type: 'line', text: line.text };
    }
    return this.ended ? { type: 'eof' } : null;
  }

  private flush(): void {
    if (!this.waiter) return;
    const event = this.take(true);
    if (!event) return;
    const waiter = this.waiter;
    this.waiter = null;
    waiter(event);
  }
}
