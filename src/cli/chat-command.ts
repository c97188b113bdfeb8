import { basename } from 'node:path';
import type { ModelMessage } from 'ai';
import type { LocalGuard } from '../engine/guard.js';
import type { GuardOptions } from '../guard/options.js';
import type { Qwen3GuardMetadata } from '../middleware/metadata-types.js';
import type { PromptVerdictInfo, ResponseFlagInfo } from '../middleware/options.js';
import { DEFAULT_REFUSAL, DEFAULT_REPLACEMENT } from '../policy/resolve.js';
import { CHAT_HELP, CommandError, parseCommandLine, parseGpu, parseThreads, UsageError } from './args.js';
import { ChatTerminal } from './chat-terminal.js';
import { resolveModelArg } from './model-file.js';
import { label, paint, useColour } from './render.js';

const OPENAI_URL = 'https://api.openai.com/v1';
export interface ChatArgs {
  model: string;
  baseURL: string;
  chatModel: string;
  apiKeyEnv: string;
  gpu: GuardOptions['gpu'];
  threads?: number;
  system?: string;
}

/** Reads `chat`'s arguments (defaults from the environment); null when help was asked for. */
export function parseChatArgs(args: string[], env: NodeJS.ProcessEnv = process.env): ChatArgs | null {
  const { values } = parseCommandLine({
    args,
    allowPositionals: false,
    strict: true,
    options: {
      model: { type: 'string', short: 'm' },
      'base-url': { type: 'string' },
      'chat-model': { type: 'string' },
      'api-key-env': { type: 'string' },
      gpu: { type: 'string' },
      threads: { type: 'string' },
      system: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) return null;
  if (values.model === undefined) throw new UsageError('missing --model <name|file.gguf>');
  const baseURL = values['base-url'] ?? (env.OPENAI_BASE_URL || OPENAI_URL);
  if (!URL.canParse(baseURL) || !/^https?:$/.test(new URL(baseURL).protocol)) {
    throw new UsageError(`--base-url must be an http(s) URL such as http://127.0.0.1:8080/v1, got '${baseURL}'`);
  }
  const apiKeyEnv = values['api-key-env'] ?? 'OPENAI_API_KEY';
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(apiKeyEnv)) throw new UsageError(`--api-key-env takes the name of an environment variable, got '${apiKeyEnv}'`);
  return {
    model: values.model,
    baseURL,
    chatModel: values['chat-model'] ?? (env.CHAT_MODEL || 'gpt-4o-mini'),
    apiKeyEnv,
    gpu: parseGpu(values.gpu),
    threads: parseThreads(values.threads),
    system: values.system,
  };
}

/** The API key: the variable's value; a local server needs none, OpenAI's does. */
function apiKey(args: ChatArgs, env: NodeJS.ProcessEnv): string {
  const key = env[args.apiKeyEnv];
  if (key) return key;
  if (new URL(args.baseURL).hostname === 'api.openai.com') {
    throw new CommandError(`${args.apiKeyEnv} is not set: export your OpenAI API key in it, name another variable with --api-key-env, or give a local server with --base-url`);
  }
  return 'none';
}

/** `ai` is a peer dependency and `@ai-sdk/openai` a dependency: say how to get them rather than print a stack. */
async function loadAiSdk() {
  try {
    const [ai, openai] = await Promise.all([import('ai'), import('@ai-sdk/openai')]);
    return { ...ai, createOpenAI: openai.createOpenAI };
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ERR_MODULE_NOT_FOUND') throw error;
    throw new CommandError(
      `the chat needs the AI SDK (${(error as Error).message.match(/'([^']+)'/)?.[1] ?? 'ai'} is missing): install it next to this package with 'npm install ai', or run 'npx -p ai -p ai-sdk-qwen3guard qwen3guard chat'`,
    );
  }
}

/** How the turn's guard events read on screen. */
class Lines {
  constructor(private readonly colour: boolean) {}

  bot(): string {
    return paint('bot> ', 'bold', this.colour);
  }

  prompt(info: PromptVerdictInfo): string {
    const { riskLevel, category } = info.verdict;
    const ms = `${Math.round(info.latencyMs)} ms${info.cached ? ', cached' : ''}`;
    if (riskLevel === 'Safe') return paint(`  prompt: Safe (${ms})`, 'dim', this.colour);
    const what = info.action === 'rewrite' || info.action === 'abort' ? `stopped (${info.action})` : info.action === 'flag' ? 'flagged' : 'allowed';
    return `  prompt: ${label(riskLevel, category, this.colour)}, ${what} (${ms})`;
  }

  flag(info: ResponseFlagInfo): string {
    const what = info.action === 'rewrite' || info.action === 'abort' ? `answer stopped (${info.action})` : info.action === 'redact' ? 'redacted' : info.action === 'flag' ? 'flagged' : 'allowed';
    const at = info.charOffset === null ? '' : ` at character ${info.charOffset} of the ${info.part}`;
    return `  ${paint(what, 'bold', this.colour)}: ${label(info.riskLevel, info.category, this.colour)}${at}`;
  }

  /** A replacement or refusal: the guard's text, not the model's. */
  setApart(text: string): string {
    return paint(`  ${text}`, 'dim', this.colour);
  }

  warning(text: string): string {
    return `  ${paint(text, 'yellow', this.colour)}`;
  }

  error(text: string): string {
    return `  ${paint(text, 'red', this.colour)}`;
  }
}

/** `qwen3guard chat`. */
export async function runChat(args: string[]): Promise<number> {
  const parsed = parseChatArgs(args);
  if (!parsed) {
    process.stdout.write(`${CHAT_HELP}\n`);
    return 0;
  }
  const modelPath = await resolveModelArg(parsed.model);
  const key = apiKey(parsed, process.env);
  const sdk = await loadAiSdk();
  const colour = useColour(process.stdout);
  const lines = new Lines(colour);

  process.stdout.write(paint(`Loading the guard ${parsed.model}...\n`, 'dim', colour));
  // Loaded here, not at the top: node-llama-cpp takes a while to import, and argument errors need not wait for it.
  const { LocalGuard } = await import('../engine/guard.js');
  const guard = await LocalGuard.load({ modelPath, gpu: parsed.gpu, threads: parsed.threads, maxSessions: 1 });
  const terminal = new ChatTerminal(process.stdout, process.stdin, paint('you> ', 'bold', colour));
  try {
    terminal.line(`Guard ${basename(parsed.model)} on ${guard.backend || 'cpu'} (${guard.threads} threads); chatting with ${parsed.chatModel} at ${parsed.baseURL}`);
    terminal.line(paint('Ctrl-C stops an answer; Ctrl-D, or Ctrl-C at the prompt, quits.', 'dim', colour));
    return await chatLoop(parsed, key, sdk, guard, terminal, lines);
  } finally {
    terminal.close();
    await guard.dispose();
  }
}

async function chatLoop(args: ChatArgs, key: string, sdk: Awaited<ReturnType<typeof loadAiSdk>>, guard: LocalGuard, terminal: ChatTerminal, lines: Lines): Promise<number> {
  /** The guard's own texts of this turn, to show set apart from the answer (they come as text deltas). */
  let refusal: string | null = null;
  let replacement: string | null = null;
  let errorText: string | null = null;
  let flags: ResponseFlagInfo[] = [];
  let promptStopped = false;
  const model = sdk.wrapLanguageModel({
    model: sdk.createOpenAI({ baseURL: args.baseURL, apiKey: key }).chat(args.chatModel),
    middleware: (await import('../middleware/qwen3guard-middleware.js')).qwen3GuardMiddleware({
      guard,
      prompt: { refusal: () => (refusal = DEFAULT_REFUSAL) },
      response: { replacement: () => (replacement = DEFAULT_REPLACEMENT) },
      onPromptVerdict: (info) => {
        promptStopped = info.action === 'rewrite' || info.action === 'abort';
        terminal.line(lines.prompt(info));
      },
      onResponseFlag: (info) => flags.push(info),
      onError: (error) => (errorText = error instanceof Error ? error.message : String(error)),
    }),
  });
  const messages: ModelMessage[] = [];

  for (;;) {
    const input = await terminal.next();
    if (input.type === 'eof') return 0;
    if (input.type === 'interrupt') return 130;
    if (!input.text.trim()) continue;
    messages.push({ role: 'user', content: input.text });
    refusal = replacement = errorText = null;
    promptStopped = false;
    flags = [];

    const cancel = new AbortController();
    terminal.onInterrupt = () => cancel.abort(new Error('cancelled at the terminal'));
    terminal.startAnswer();
    let answer = '';
    let setApart: string | null = null;
    let metadata: Qwen3GuardMetadata | undefined;
    let failed: unknown;
    let started = false;
    try {
      const result = sdk.streamText({
        model,
        system: args.system,
        messages,
        abortSignal: cancel.signal,
        maxRetries: 0, // one attempt: the user sees the error and can send again
        onError: () => undefined, // the error part is shown below; the default would log a stack
      });
      for await (const part of result.fullStream) {
        if (part.type === 'text-delta') {
          if (part.text === replacement || part.text === refusal) {
            setApart = part.text;
            continue;
          }
          answer += part.text;
          // The answer starts after the label, without the model's leading blanks.
          const shown = started ? part.text : part.text.trimStart();
          if (!shown) continue;
          if (!started) terminal.write(lines.bot());
          started = true;
          terminal.write(shown);
        } else if (part.type === 'finish-step') {
          metadata = part.providerMetadata?.qwen3guard as Qwen3GuardMetadata | undefined;
        } else if (part.type === 'error') failed = part.error;
      }
    } catch (error) {
      failed = error;
    } finally {
      terminal.onInterrupt = null;
    }

    // Status lines go after the answer, in order, each on its own line.
    terminal.newLine();
    for (const flag of flags) terminal.line(lines.flag(flag));
    if (metadata?.error) terminal.line(lines.error(`guard error (${metadata.error.code})${errorText ? `: ${errorText}` : ''}`));
    if (setApart) terminal.line(lines.setApart(setApart));
    if (cancel.signal.aborted) terminal.line(lines.warning('answer cancelled'));
    else if (failed !== undefined) terminal.line(lines.error(`the chat model failed: ${failed instanceof Error ? failed.message : String(failed)}`));

    // The conversation keeps what was shown: the released answer, with the guard's text set apart. A stopped
    // prompt is left out: the model never answered it, and the guard, which reads the whole conversation,
    // would find it in every later turn.
    // The refusal is given only for a stopped prompt (also when the guard failed on it, failing closed).
    const released = [answer, setApart].filter(Boolean).join('\n\n');
    if (released && !promptStopped && refusal === null) messages.push({ role: 'assistant', content: released });
    else messages.pop();
  }
}
