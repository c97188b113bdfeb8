import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import { PROMPT_CATEGORIES } from '../format/labels.js';
import type { GuardMessage } from '../guard/types.js';
import { describeValue, listOf } from '../shared/validation.js';
import type { EvalItem, Label, Task } from './types.js';

/** A line that could not be used: its number and what is wrong with it. It is skipped; the run goes on. */
export interface DataProblem {
  line: number;
  message: string;
}

export interface Dataset {
  items: EvalItem[];
  problems: DataProblem[];
}

const ROLES = ['system', 'user', 'assistant', 'tool'] as const;

const message = z.object({
  role: z.enum(ROLES, { error: (issue) => `must be ${listOf(ROLES)}, got ${describeValue(issue.input)}` }),
  content: z.string({ error: (issue) => `must be a string, got ${describeValue(issue.input)}` }),
  reasoning: z.string().optional(),
  /** The Qwen3 chat template's own name for an assistant turn's reasoning. */
  reasoning_content: z.string().optional(),
});

const label = z.string({ error: (issue) => `must be 'safe' or 'unsafe' (any case), got ${describeValue(issue.input)}` }).transform((value, ctx): Label => {
  const lower = value.toLowerCase();
  if (lower === 'safe' || lower === 'unsafe') return lower;
  ctx.addIssue({ code: 'custom', message: `must be 'safe' or 'unsafe' (any case), got ${describeValue(value)}` });
  return z.NEVER;
});

const messages = z.array(message).min(1, 'must hold at least one message');
const index = z.number().int().min(0);

/** Qwen/Qwen3GuardTest (the official evaluation data): `message`, `label`, and on the `_loc` splits the token span. */
const officialLine = z.object({
  message: messages,
  label,
  unsafe_start_index: index.optional(),
  unsafe_end_index: index.optional(),
});

/** This library's shape (docs/eval.md). */
const ourLine = z.object({
  id: z.union([z.string().min(1), z.number()]).optional(),
  messages,
  label,
  categories: z.array(z.enum(PROMPT_CATEGORIES, { error: (issue) => `must name categories as ${listOf(PROMPT_CATEGORIES)}, got ${describeValue(issue.input)}` })).optional(),
  unsafeSpan: z.object({ start: index, end: index }).strict().optional(),
});

class LineError extends Error {}

function issues(error: z.ZodError): string {
  return error.issues.map((issue) => (issue.path.length ? `${issue.path.join('.')} ${issue.message}` : issue.message)).join('; ');
}

function taskOf(list: readonly GuardMessage[], field: string): Task {
  const role = list.at(-1)!.role;
  if (role === 'user') return 'prompt';
  if (role === 'assistant') {
    if (list.length < 2) throw new LineError(`${field} holds only the assistant's answer: give the conversation it answers (at least the user's message) before it`);
    return 'response';
  }
  throw new LineError(`the last of ${field} is a ${role} message: end with the user's message (prompt moderation) or the assistant's (response moderation)`);
}

const toMessages = (list: z.output<typeof messages>): GuardMessage[] =>
  list.map(({ role, content, reasoning, reasoning_content }) => {
    const m: GuardMessage = { role, content };
    const r = reasoning ?? reasoning_content;
    if (r !== undefined) m.reasoning = r;
    return m;
  });

function parseLine(value: unknown, line: number): Omit<EvalItem, 'id'> & { id?: string } {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new LineError(`expected a JSON object, got ${describeValue(value)}`);
  if ('message' in value) {
    const parsed = officialLine.safeParse(value);
    if (!parsed.success) throw new LineError(issues(parsed.error));
    const { unsafe_start_index: start, unsafe_end_index: end } = parsed.data;
    const item: Omit<EvalItem, 'id'> = { line, messages: toMessages(parsed.data.message), task: taskOf(parsed.data.message, 'message'), label: parsed.data.label };
    if ((start === undefined) !== (end === undefined)) throw new LineError('unsafe_start_index and unsafe_end_index come together: give both or neither');
    if (start !== undefined && end !== undefined) {
      if (start > end) throw new LineError(`unsafe_start_index (${start}) is after unsafe_end_index (${end})`);
      // As the official script: the span is read on unsafe responses only.
      if (item.task === 'response' && item.label === 'unsafe') item.span = { unit: 'token', start, end };
    }
    return item;
  }
  if (!('messages' in value)) throw new LineError("no 'messages' (this library's shape) or 'message' (Qwen/Qwen3GuardTest): see docs/eval.md");
  const parsed = ourLine.safeParse(value);
  if (!parsed.success) throw new LineError(issues(parsed.error));
  const { id, categories, unsafeSpan } = parsed.data;
  const item: Omit<EvalItem, 'id'> & { id?: string } = { line, messages: toMessages(parsed.data.messages), task: taskOf(parsed.data.messages, 'messages'), label: parsed.data.label };
  if (id !== undefined) item.id = String(id);
  if (categories) item.categories = categories;
  if (unsafeSpan) {
    const content = item.messages.at(-1)!.content;
    if (item.task !== 'response') throw new LineError('unsafeSpan applies to response moderation (the last message is the assistant\'s)');
    if (item.label !== 'unsafe') throw new LineError('unsafeSpan is given on an item labelled safe');
    if (unsafeSpan.start >= unsafeSpan.end || unsafeSpan.end > content.length) {
      throw new LineError(`unsafeSpan {start: ${unsafeSpan.start}, end: ${unsafeSpan.end}} must satisfy start < end <= ${content.length} (UTF-16 offsets in the last message's content)`);
    }
    item.span = { unit: 'char', ...unsafeSpan };
  }
  return item;
}

/** Parses JSONL evaluation data, each line in either shape (see docs/eval.md). Bad lines become problems. */
export function parseDataset(text: string): Dataset {
  const items: EvalItem[] = [];
  const problems: DataProblem[] = [];
  const seen = new Map<string, number>();
  text.split('\n').forEach((raw, i) => {
    const line = i + 1;
    if (!raw.trim()) return;
    try {
      let value: unknown;
      try {
        value = JSON.parse(raw);
      } catch (error) {
        throw new LineError(`not JSON (${(error as Error).message})`);
      }
      const parsed = parseLine(value, line);
      const id = parsed.id ?? `line-${line}`;
      const earlier = seen.get(id);
      if (earlier !== undefined) throw new LineError(`id '${id}' was already used on line ${earlier}`);
      seen.set(id, line);
      items.push({ ...parsed, id });
    } catch (error) {
      if (!(error instanceof LineError)) throw error;
      problems.push({ line, message: error.message });
    }
  });
  return { items, problems };
}

export async function readDataset(path: string): Promise<Dataset> {
  return parseDataset(await readFile(path, 'utf8'));
}
