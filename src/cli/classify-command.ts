import { decideResponse, type ResponseDecision } from '../policy/decision.js';
import { IM_END } from '../format/template.js';
import type { PromptVerdict, ResponsePart, RiskLevel, TokenVerdict } from '../guard/types.js';
import type { GenResponseVerdict, GenVerdict } from '../gen/types.js';
import { CLASSIFY_HELP, CommandError, parseCommandLine, parseThreads, UsageError } from './args.js';
import { resolveModelArg } from './model-file.js';
import { label, token, useColour } from './render.js';

export interface ClassifyArgs {
  model: string;
  prompt: string;
  response?: string;
  reasoning?: string;
  threads?: number;
  json: boolean;
}

/** Reads `classify`'s arguments; null when help was asked for. */
export function parseClassifyArgs(args: string[]): ClassifyArgs | null {
  const { values } = parseCommandLine({
    args,
    allowPositionals: false,
    strict: true,
    options: {
      model: { type: 'string', short: 'm' },
      prompt: { type: 'string', short: 'p' },
      response: { type: 'string', short: 'r' },
      reasoning: { type: 'string' },
      threads: { type: 'string' },
      json: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) return null;
  if (values.model === undefined) throw new UsageError('missing --model <name|file.gguf>');
  if (values.prompt === undefined) throw new UsageError('missing --prompt <text>');
  const threads = parseThreads(values.threads);
  return { model: values.model, prompt: values.prompt, response: values.response, reasoning: values.reasoning, threads, json: values.json ?? false };
}


export interface ClassifiedToken {
  id: number;
  part: ResponsePart;
  /** The token's slice of the text given for its part, or the closing `<|im_end|>` / `\n` token's own text. */
  text: string;
  riskLevel: RiskLevel;
  category: string | null;
  /** Offsets in the part's text; absent for the closing tokens. */
  start?: number;
  end?: number;
}

export interface Classification {
  prompt: PromptVerdict;
  response?: { tokens: ClassifiedToken[]; verdict: ResponseDecision };
}

/** A Qwen3Guard-Gen model's classification: whole-text verdicts, the response's with its refusal. */
export interface GenClassification {
  model: 'gen';
  prompt: GenVerdict;
  response?: GenResponseVerdict;
}

const isGen = (result: Classification | GenClassification): result is GenClassification => 'model' in result && result.model === 'gen';

/**
 * Runs the model over the prompt and, when given, the response. A Stream model scores the reasoning and the
 * answer token by token (closed by `<|im_end|>`); a Gen model (detected from the file's header) checks the
 * prompt, then the answer in its context, as wholes.
 */
export async function classify(args: ClassifyArgs): Promise<Classification | GenClassification> {
  const modelPath = await resolveModelArg(args.model);
  // A file that cannot be read as a GGUF goes the Stream way, whose loader explains what is wrong with it.
  const { detectVariantOfFile } = await import('../gen/variant-file.js');
  if ((await detectVariantOfFile(modelPath).catch(() => 'unknown')) === 'gen') return classifyGen(modelPath, args);

  // Loaded here, not at the top: node-llama-cpp takes a while to import, and argument errors need not wait for it.
  const { LocalGuard } = await import('../engine/guard.js');
  const guard = await LocalGuard.load({ modelPath, threads: args.threads, gpu: 'auto', maxSessions: 1 });
  try {
    const session = await guard.createSession();
    try {
      const prompt = await session.checkPrompt([{ role: 'user', content: args.prompt }]);
      if (args.response === undefined && args.reasoning === undefined) return { prompt };
      const verdicts: TokenVerdict[] = [];
      if (args.reasoning !== undefined) verdicts.push(...(await session.appendText('reasoning', args.reasoning, { final: true })));
      if (args.response !== undefined) verdicts.push(...(await session.appendText('answer', args.response)));
      verdicts.push(...(await session.end()));
      const texts: Record<ResponsePart, string> = { reasoning: args.reasoning ?? '', answer: args.response ?? '' };
      const tokens = verdicts.map((v): ClassifiedToken => {
        const hasOffsets = v.start !== undefined && v.end !== undefined;
        const text = hasOffsets ? texts[v.part].slice(v.start, v.end) : v.id === guard.specialId(IM_END) ? IM_END : guard.tokenText(v.id);
        const t: ClassifiedToken = { id: v.id, part: v.part, text, riskLevel: v.riskLevel, category: v.category };
        if (hasOffsets) Object.assign(t, { start: v.start, end: v.end });
        return t;
      });
      return { prompt, response: { tokens, verdict: decideResponse(tokens) } };
    } finally {
      await session.dispose();
    }
  } finally {
    await guard.dispose();
  }
}

async function classifyGen(modelPath: string, args: ClassifyArgs): Promise<GenClassification> {
  if (args.reasoning !== undefined) throw new CommandError('--reasoning applies to Qwen3Guard-Stream models: Qwen3Guard-Gen reads the answer only (put the reasoning in --response to have it checked)');
  const { Qwen3GuardGen } = await import('../gen/classifier.js');
  const guard = await Qwen3GuardGen.load({ modelPath, threads: args.threads, gpu: 'auto', maxSessions: 1 });
  try {
    const user = { role: 'user' as const, content: args.prompt };
    const prompt = await guard.checkPrompt([user]);
    if (args.response === undefined) return { model: 'gen', prompt };
    return { model: 'gen', prompt, response: await guard.checkResponse([user, { role: 'assistant', content: args.response }]) };
  } finally {
    await guard.dispose();
  }
}

const probabilitiesJson = (p: PromptVerdict['probabilities']) => ({ Safe: p.Safe, Unsafe: p.Unsafe, Controversial: p.Controversial });

/** Gen's `--json`: the Stream shape (prompt verdict, response verdict) with `model: "gen"`, the categories listed and `refusal`. */
function genJson(result: GenClassification): object {
  const verdict = (v: GenVerdict) => ({ riskLevel: v.riskLevel, category: v.category, categories: v.categories, probabilities: probabilitiesJson(v.probabilities) });
  const json: Record<string, unknown> = { model: 'gen', prompt: verdict(result.prompt) };
  if (result.response) json.response = { verdict: verdict(result.response), refusal: result.response.refusal };
  return json;
}

/** The `--json` object: token offsets and category probabilities left out. */
export function toJson(result: Classification | GenClassification): object {
  if (isGen(result)) return genJson(result);
  const { riskLevel, category, probabilities } = result.prompt;
  const json: Record<string, unknown> = {
    prompt: { riskLevel, category, probabilities: { Safe: probabilities.Safe, Unsafe: probabilities.Unsafe, Controversial: probabilities.Controversial } },
  };
  if (result.response) {
    const { tokens, verdict } = result.response;
    json.response = {
      tokens: tokens.map(({ id, part, text, riskLevel, category }) => ({ id, part, text, riskLevel, category })),
      verdict: { riskLevel: verdict.riskLevel, category: verdict.category, tokenIndex: verdict.tokenIndex },
    };
  }
  return json;
}

/** A part's text with its tokens coloured (or marked); text no token covers (stripped newlines) stays plain. */
function renderPart(text: string, tokens: ClassifiedToken[], colour: boolean): string {
  let out = '';
  let at = 0;
  for (const t of tokens) {
    if (t.start === undefined || t.end === undefined || t.end <= at) continue;
    const start = Math.max(at, t.start);
    out += text.slice(at, start) + token(text.slice(start, t.end), t.riskLevel, colour);
    at = t.end;
  }
  return out + text.slice(at);
}

const probabilitiesText = (p: PromptVerdict['probabilities']) => `P(Safe)=${p.Safe.toFixed(3)} P(Unsafe)=${p.Unsafe.toFixed(3)} P(Controversial)=${p.Controversial.toFixed(3)}`;

/** The report: prompt verdict, the response coloured by token, the response verdict. */
export function renderHuman(result: Classification | GenClassification, args: Pick<ClassifyArgs, 'response' | 'reasoning'>, colour: boolean): string {
  const { prompt } = result;
  const lines = [`Prompt: ${label(prompt.riskLevel, prompt.category, colour)}  ${probabilitiesText(prompt.probabilities)}`];
  if (isGen(result)) {
    const more = (v: GenVerdict) => (v.categories.length > 1 ? `  categories: ${v.categories.join(', ')}` : '');
    lines[0] += more(prompt as GenVerdict);
    const r = result.response;
    if (r) lines.push(`Response: ${label(r.riskLevel, r.category, colour)}  ${probabilitiesText(r.probabilities)}  refusal: ${r.refusal ? 'yes' : 'no'}${more(r)}`);
    return `${lines.join('\n')}\n`;
  }
  if (result.response) {
    const { tokens, verdict } = result.response;
    const of = (part: ResponsePart) => tokens.filter((t) => t.part === part);
    if (args.reasoning !== undefined) lines.push('<think>', renderPart(args.reasoning, of('reasoning'), colour), '</think>');
    // The closing tokens show only when they carry a label.
    const closing = tokens.filter((t) => t.start === undefined && t.riskLevel !== 'Safe').map((t) => token(t.text, t.riskLevel, colour));
    lines.push(renderPart(args.response ?? '', of('answer'), colour) + closing.join(''));
    lines.push(
      verdict.tokenIndex === null
        ? `Response: ${label(verdict.riskLevel, verdict.category, colour)}`
        : `Response: ${label(verdict.riskLevel, verdict.category, colour)} at token ${verdict.tokenIndex} ${JSON.stringify(tokens[verdict.tokenIndex].text)}`,
    );
  }
  return `${lines.join('\n')}\n`;
}

/** `qwen3guard classify`. */
export async function runClassify(args: string[]): Promise<number> {
  const parsed = parseClassifyArgs(args);
  if (!parsed) {
    process.stdout.write(`${CLASSIFY_HELP}\n`);
    return 0;
  }
  const result = await classify(parsed);
  process.stdout.write(parsed.json ? `${JSON.stringify(toJson(result))}\n` : renderHuman(result, parsed, useColour(process.stdout)));
  return 0;
}
