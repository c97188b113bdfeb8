import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseChatArgs } from '../src/cli/chat-command.js';
import { convertedModel, plantedCheckpoint, REPO_ROOT } from './fixtures/cache.js';
import { TEST_THREADS } from './fixtures/guards.js';
import { startOpenAiServer, wordDeltas, type OpenAiServer } from './fixtures/openai-server.js';

/**
 * `qwen3guard chat` in a real terminal: tmux runs the CLI from source against the loopback OpenAI-compatible
 * server, keys are typed with `send-keys` and the screen is read with `capture-pane`. The planted guard flags
 * " bomb" (Unsafe/Violent) in an answer at the token after it, and a prompt with "bomb" as Unsafe/Violent.
 */

const HAS_TMUX = spawnSync('tmux', ['-V']).status === 0;
const NO_TMUX = 'skipped: tmux is not installed (apt-get install -y tmux)';

const ANSWERS: Array<[marker: string, text: string]> = [
  ['capital', 'Paris is the capital of France.'],
  ['recipe', 'Sure. Mix these to make a bomb quickly, then wait an hour before you leave the house.'],
];
const SLOW = Array.from({ length: 200 }, (_, i) => ` word${i}`);

let server: OpenAiServer;
let modelPath: string;
let scratch: string;

beforeAll(async () => {
  [server, modelPath, scratch] = await Promise.all([
    startOpenAiServer({
      script: (body) => {
        const last = JSON.stringify(body.messages?.at(-1)?.content ?? '');
        if (last.includes('slow')) return { deltas: SLOW, tokensPerSecond: 10 };
        const answer = ANSWERS.find(([marker]) => last.includes(marker))?.[1] ?? 'I do not know.';
        return { deltas: wordDeltas(answer), tokensPerSecond: 100 };
      },
    }),
    plantedCheckpoint().then((checkpoint) => convertedModel(checkpoint, 'q8_0')),
    mkdtemp(join(tmpdir(), 'qwen3guard-chat-')),
  ]);
  // Panes stay after their command exits, so that the last screen can be read.
  await writeFile(join(scratch, 'tmux.conf'), 'set -g remain-on-exit on\nset -g history-limit 5000\n');
});

afterAll(async () => {
  if (HAS_TMUX && scratch) spawnSync('tmux', ['-S', socket(), 'kill-server']);
  await server?.close();
  if (scratch) await rm(scratch, { recursive: true, force: true });
});

/** A tmux server of this test file's own (never the user's), its socket in the scratch folder. */
const socket = () => join(scratch, 'tmux.sock');

function tmux(...args: string[]): string {
  return execFileSync('tmux', ['-S', socket(), '-f', join(scratch, 'tmux.conf'), ...args], { encoding: 'utf8' });
}

/** Starts the chat in a new 120x50 tmux session, without colour. */
function startChat(session: string): void {
  const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
  const command = [
    'cd',
    quote(REPO_ROOT),
    '&& env -u FORCE_COLOR -u OPENAI_API_KEY NO_COLOR=1',
    quote(process.execPath),
    '--import tsx src/cli/index.ts chat --model',
    quote(modelPath),
    '--base-url',
    quote(server.baseURL),
    `--chat-model test-model --gpu cpu --threads ${TEST_THREADS}`,
    // The shell reads the status as soon as the chat exits (tmux may reap its pane's process much later).
    `; echo $? > ${quote(statusFile(session))}`,
  ].join(' ');
  tmux('new-session', '-d', '-s', session, '-x', '120', '-y', '50', command);
}

/** The pane's scrollback and screen, wrapped lines joined, trailing blanks cut. */
const screen = (session: string) => tmux('capture-pane', '-p', '-J', '-S', '-', '-t', session).replace(/\s+$/, '');

const prompts = (text: string) => text.match(/^you>/gm)?.length ?? 0;

async function waitFor(session: string, what: string, ok: (text: string) => boolean, timeoutMs = 60_000): Promise<string> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const text = screen(session);
    if (ok(text)) return text;
    const dead = tmux('display-message', '-p', '-t', session, '#{pane_dead}').trim() === '1';
    if (dead || Date.now() > until) throw new Error(`timed out waiting for ${what}${dead ? ' (the chat exited)' : ''}; the screen:\n${text}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** Types a line at the prompt and waits for the next prompt. */
async function say(session: string, text: string): Promise<string> {
  const before = prompts(screen(session));
  tmux('send-keys', '-t', session, '-l', text);
  tmux('send-keys', '-t', session, 'Enter');
  return waitFor(session, `the prompt after '${text}'`, (s) => prompts(s) > before);
}

const statusFile = (session: string) => join(scratch, `${session}.status`);

/** The chat's exit status (128 + n for signal n), as its shell wrote it. */
async function exitStatus(session: string): Promise<string> {
  const until = Date.now() + 20_000;
  for (;;) {
    const status = await readFile(statusFile(session), 'utf8').catch(() => '');
    if (status.endsWith('\n')) return status.trim();
    if (Date.now() > until) throw new Error(`the chat did not exit; the screen:\n${screen(session)}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** The lines of the screen from the last one matching `from`. */
function turn(text: string, from: string): string[] {
  const lines = text.split('\n');
  const start = lines.findLastIndex((l) => l.includes(from));
  return lines.slice(start);
}

describe('qwen3guard chat in a terminal', () => {
  it.skipIf(!HAS_TMUX)(`streams guarded answers, keeps the verdict lines on screen, cancels with Ctrl-C, exits 0 on Ctrl-D ${HAS_TMUX ? '' : NO_TMUX}`, async () => {
    const session = 'chat';
    startChat(session);
    const ready = await waitFor(session, 'the first prompt', (s) => prompts(s) === 1);
    expect(ready).toMatch(/Guard model\.gguf on cpu \(2 threads\); chatting with test-model at http:\/\/127\.0\.0\.1:\d+\/v1/);

    // A safe answer, and the prompt verdict on its own line.
    let text = await say(session, 'What is the capital of France?');
    expect(turn(text, 'you> What is the capital')).toEqual(['you> What is the capital of France?', expect.stringMatching(/^ {2}prompt: Safe \(\d+ ms\)$/), 'bot> Paris is the capital of France.', 'you>']);

    // An unsafe answer: stopped, the stop line and the replacement set apart, still there under the new prompt.
    text = await say(session, 'Give me a recipe');
    const stopped = turn(text, 'you> Give me a recipe');
    expect(stopped[0]).toBe('you> Give me a recipe');
    expect(stopped[2]).toMatch(/^bot> Sure\. Mix these to make a/);
    expect(stopped.join('\n')).not.toContain('bomb');
    expect(stopped.slice(3)).toEqual([expect.stringMatching(/^ {2}answer stopped \(rewrite\): Unsafe \(Violent\) at character \d+ of the answer$/), "  I can't continue with this response.", 'you>']);
    // Typing at the new prompt redraws it: the lines above stay.
    tmux('send-keys', '-t', session, '-l', 'x');
    await waitFor(session, 'the typed key', (s) => s.endsWith('you> x'));
    tmux('send-keys', '-t', session, 'BSpace');
    expect(screen(session)).toContain("  answer stopped (rewrite): Unsafe (Violent)");

    // An unsafe prompt: the verdict line and the refusal.
    text = await say(session, 'How do I build a bomb?');
    expect(turn(text, 'you> How do I build a bomb?')).toEqual([
      'you> How do I build a bomb?',
      expect.stringMatching(/^ {2}prompt: Unsafe \(Violent\), stopped \(rewrite\) \(\d+ ms\)$/),
      "  I can't help with that request.",
      'you>',
    ]);

    // The conversation goes along with each request: the released answers included.
    const last = server.requests.at(-1)!;
    const sent = last.body!.messages!.map((m) => [m.role, m.content]);
    expect(sent.slice(0, 4)).toEqual([
      ['user', 'What is the capital of France?'],
      ['assistant', 'Paris is the capital of France.'],
      ['user', 'Give me a recipe'],
      ['assistant', expect.stringMatching(/^Sure\. Mix these to make a\n\nI can't continue with this response\.$/)],
    ]);

    // Ctrl-C mid-answer cancels it, and the server sees the client hang up.
    const requests = server.requests.length;
    tmux('send-keys', '-t', session, '-l', 'Tell me a slow story');
    tmux('send-keys', '-t', session, 'Enter');
    await waitFor(session, 'the slow answer', (s) => /bot> word0 word1 word2/.test(s));
    tmux('send-keys', '-t', session, 'C-c');
    text = await waitFor(session, 'the prompt after Ctrl-C', (s) => prompts(s) === 5);
    expect(turn(text, 'you> Tell me a slow story').slice(-2)).toEqual(['  answer cancelled', 'you>']);
    const slow = server.requests[requests];
    await slow.closed;
    expect(slow.closedByClient).toBe(true);
    expect(slow.deltasWritten).toBeLessThan(SLOW.length);

    tmux('send-keys', '-t', session, 'C-d');
    expect(await exitStatus(session)).toBe('0');
  });

  it.skipIf(!HAS_TMUX)(`exits on Ctrl-C at the prompt (130) ${HAS_TMUX ? '' : NO_TMUX}`, async () => {
    const session = 'interrupt';
    startChat(session);
    await waitFor(session, 'the first prompt', (s) => prompts(s) === 1);
    tmux('send-keys', '-t', session, 'C-c');
    expect(await exitStatus(session)).toBe('130');
  });
});

describe('qwen3guard chat arguments', () => {
  it('takes its defaults from the environment, and says what is wrong with bad values', () => {
    expect(parseChatArgs(['--model', 'g.gguf'], {})).toEqual({
      model: 'g.gguf',
      baseURL: 'https://api.openai.com/v1',
      chatModel: 'gpt-4o-mini',
      apiKeyEnv: 'OPENAI_API_KEY',
      gpu: 'auto',
      threads: undefined,
      system: undefined,
    });
    const env = { OPENAI_BASE_URL: 'http://127.0.0.1:8080/v1', CHAT_MODEL: 'qwen3' };
    expect(parseChatArgs(['-m', 'g.gguf', '--gpu', 'cpu', '--threads', '3', '--api-key-env', 'MY_KEY', '--system', 'Be brief.'], env)).toMatchObject({
      baseURL: 'http://127.0.0.1:8080/v1',
      chatModel: 'qwen3',
      gpu: false,
      threads: 3,
      apiKeyEnv: 'MY_KEY',
      system: 'Be brief.',
    });
    expect(parseChatArgs(['--help'], {})).toBeNull();
    expect(() => parseChatArgs([], {})).toThrow('missing --model <name|file.gguf>');
    expect(() => parseChatArgs(['-m', 'g.gguf', '--gpu', 'tpu'], {})).toThrow("unknown --gpu 'tpu': use one of auto, cpu, cuda, vulkan, metal");
    expect(() => parseChatArgs(['-m', 'g.gguf', '--base-url', 'localhost:8080'], {})).toThrow('--base-url must be an http(s) URL');
    expect(() => parseChatArgs(['-m', 'g.gguf', '--api-key-env', '$KEY'], {})).toThrow('--api-key-env takes the name of an environment variable');
    expect(() => parseChatArgs(['-m', 'g.gguf', '--threads', '0'], {})).toThrow("--threads must be a whole number of at least 1, got '0'");
  });
});
