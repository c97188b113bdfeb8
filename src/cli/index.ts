#!/usr/bin/env node
import { CHAT_USAGE, CLASSIFY_USAGE, CommandError, CONVERT_USAGE, EVAL_USAGE, LIST_USAGE, MAIN_USAGE, PULL_USAGE, SERVE_USAGE, UsageError } from './args.js';
import { provideLocalEngines } from '../local/provide.js';
import { packageVersion } from './version.js';

provideLocalEngines();

const COMMANDS = {
  pull: { usage: PULL_USAGE, run: async (args: string[]) => (await import('./pull-command.js')).runPull(args) },
  list: { usage: LIST_USAGE, run: async (args: string[]) => (await import('./list-command.js')).runList(args) },
  convert: { usage: CONVERT_USAGE, run: async (args: string[]) => (await import('./convert-command.js')).runConvert(args) },
  classify: { usage: CLASSIFY_USAGE, run: async (args: string[]) => (await import('./classify-command.js')).runClassify(args) },
  chat: { usage: CHAT_USAGE, run: async (args: string[]) => (await import('./chat-command.js')).runChat(args) },
  serve: { usage: SERVE_USAGE, run: async (args: string[]) => (await import('./serve-command.js')).runServe(args) },
  eval: { usage: EVAL_USAGE, run: async (args: string[]) => (await import('./eval-command.js')).runEval(args) },
} as const;

type CommandName = keyof typeof COMMANDS;

/** Errors whose message says all there is to say (the library's own errors name the file and the fix). */
const EXPLAINED = new Set(['CommandError', 'ConvertError', 'DownloadError', 'GuardModelError', 'OptionsError', 'RemoteGuardError']);

function report(command: string, error: unknown): number {
  const prefix = `qwen3guard ${command}`;
  if (error instanceof UsageError) {
    const usage = COMMANDS[command as CommandName]?.usage ?? MAIN_USAGE;
    process.stderr.write(`${prefix}: ${error.message}\n${usage}\nRun '${prefix} --help' for details.\n`);
    return 2;
  }
  if (error instanceof Error) {
    const errno = (error as NodeJS.ErrnoException).code;
    const explained = error instanceof CommandError || EXPLAINED.has(error.name) || (typeof errno === 'string' && /^E[A-Z]+$/.test(errno));
    process.stderr.write(`${prefix}: ${explained ? error.message : (error.stack ?? error.message)}\n`);
    return 1;
  }
  process.stderr.write(`${prefix}: ${String(error)}\n`);
  return 1;
}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
    process.stdout.write(`${MAIN_USAGE}\n`);
    return 0;
  }
  if (command === '--version' || command === '-v') {
    process.stdout.write(`${packageVersion()}\n`);
    return 0;
  }
  if (!Object.hasOwn(COMMANDS, command)) {
    process.stderr.write(`qwen3guard: unknown command '${command}'\n\n${MAIN_USAGE}\n`);
    return 2;
  }
  try {
    return await COMMANDS[command as CommandName].run(rest);
  } catch (error) {
    return report(command, error);
  }
}

process.exitCode = await main(process.argv.slice(2));
