import type { DecisionMode } from '../policy/decision.js';
import { validateMessages, GuardInputError } from '../guard/input-validation.js';
import type { GuardMessage, RiskProbabilities } from '../guard/types.js';
import { RISK_LEVELS, type RiskLevel } from '../format/labels.js';
import { parseOptions } from '../shared/validation.js';
import type { GenBackend, GenSlot } from './backend.js';
import { localGenLoader } from './local-engine.js';
import { RemoteGenBackend } from './remote-backend.js';
import type { RemoteGenOptions } from './remote-options.js';
import { genLoadSchema, genOptionsSchema, type GenOptions, type ResolvedGenOptions } from './options.js';
import { categoryGrammar, parseGenOutput, wholeCategories } from './output.js';
import { continued, renderGen, type GenTask } from './template.js';
import type { GenResponseVerdict, GenVerdict } from './types.js';

/** `Safety:` is followed by ` Safe`, ` Unsafe` or ` Cont`+`rovers`+`ial`: the first tokens differ (checked at each call). */
const VERDICT_OPTIONS = RISK_LEVELS.map((level) => ` ${level}`);
const REFUSAL_OPTIONS = [' Yes', ' No'];

function softmax(scores: readonly number[]): number[] {
  const max = Math.max(...scores);
  const e = scores.map((s) => Math.exp(s - max));
  const total = e.reduce((a, b) => a + b, 0);
  return e.map((x) => x / total);
}

/** The reported level under `mode`: strict reads Controversial as Unsafe, loose as Safe (as decideResponse does). */
function mapped(level: RiskLevel, mode: DecisionMode): RiskLevel {
  if (level !== 'Controversial' || mode === 'raw') return level;
  return mode === 'strict' ? 'Unsafe' : 'Safe';
}

/**
 * Qwen3Guard-Gen: whole-text prompt and response checks. One check is one prefill of the rendered moderation
 * template plus `Safety:`; the three risk probabilities are the softmax of the logits of the three verdict
 * tokens there (nothing is sampled for the verdict, whose argmax is the risk level); then, for a non-Safe
 * verdict, the category list is generated greedily under a grammar of the category names, so the answer always
 * parses. A Safe verdict's list is `None` (the only answer the template allows), and a response's refusal is
 * read the same way as the verdict, from the logits of ` Yes` and ` No` after `Refusal:`.
 * Checks run on `maxSessions` slots at once; further checks wait for a free one.
 */
export class Qwen3GuardGen {
  /** Which Qwen3Guard this is (Qwen3Guard.variant is 'stream'). */
  readonly variant = 'gen' as const;

  private constructor(
    readonly options: ResolvedGenOptions,
    readonly backend: GenBackend,
  ) {}

  /** Loads a Qwen3Guard-Gen GGUF (made by `qwen3guard convert`/`pull`, or a community file). Options are validated first. */
  static async load(options: GenOptions): Promise<Qwen3GuardGen> {
    parseOptions(genLoadSchema, options, 'guard');
    const loaded = await (await localGenLoader())(options);
    return new Qwen3GuardGen(loaded.options, loaded.backend);
  }

  /** A classifier over another backend (a serving engine); `options` as for `load`, the model fields unused. */
  static withBackend(backend: GenBackend, options: Omit<GenOptions, 'modelPath' | 'model'> = {}): Qwen3GuardGen {
    const parsed = parseOptions(genOptionsSchema, options, 'guard');
    return new Qwen3GuardGen({ ...parsed, modelPath: backend.kind }, backend);
  }

  /**
   * Qwen3Guard-Gen served by an engine (vLLM, SGLang, llama.cpp's server) behind an OpenAI-compatible
   * completions endpoint; `mode` and `maxCategoryTokens` as for `load`. Options are validated here; nothing is
   * sent until the first check.
   */
  static remote(options: RemoteGenOptions & Pick<GenOptions, 'mode' | 'maxCategoryTokens'>): Qwen3GuardGen {
    const { mode, maxCategoryTokens, ...remote } = options;
    return Qwen3GuardGen.withBackend(new RemoteGenBackend(remote), { mode, maxCategoryTokens });
  }

  /** Checks the conversation's last user turn (messages after it are left out). */
  async checkPrompt(messages: readonly GuardMessage[], options: { mode?: DecisionMode; signal?: AbortSignal } = {}): Promise<GenVerdict> {
    validateMessages(messages);
    const last = messages.findLastIndex((m) => m.role === 'user');
    if (last < 0) throw new GuardInputError('checkPrompt: the conversation has no user message to check');
    return this.run(messages.slice(0, last + 1), 'prompt', options) as Promise<GenVerdict>;
  }

  /** Checks the conversation's last message, an assistant answer, in the context of the turns before it. */
  async checkResponse(messages: readonly GuardMessage[], options: { mode?: DecisionMode; signal?: AbortSignal } = {}): Promise<GenResponseVerdict> {
    validateMessages(messages);
    if (messages.at(-1)!.role !== 'assistant') {
      throw new GuardInputError(`checkResponse: the last message must be the assistant's answer to check, got role '${messages.at(-1)!.role}'`);
    }
    return this.run(messages, 'response', options) as Promise<GenResponseVerdict>;
  }

  private async run(messages: readonly GuardMessage[], task: GenTask, options: { mode?: DecisionMode; signal?: AbortSignal }): Promise<GenVerdict | GenResponseVerdict> {
    const mode = options.mode ?? this.options.mode;
    const template = renderGen(messages);
    const slot = await this.backend.open(options.signal);
    try {
      return await this.answer(slot, template, task, mode);
    } finally {
      slot.release();
    }
  }

  private async answer(slot: GenSlot, template: ReturnType<typeof renderGen>, task: GenTask, mode: DecisionMode): Promise<GenVerdict | GenResponseVerdict> {
    const p = softmax(await slot.nextScores(continued(template, 'Safety:'), VERDICT_OPTIONS));
    const probabilities = Object.fromEntries(RISK_LEVELS.map((level, i) => [level, p[i]])) as RiskProbabilities;
    const level = RISK_LEVELS[p.indexOf(Math.max(...p))];
    let raw = `Safety: ${level}\nCategories:`;
    if (level === 'Safe') raw += ' None';
    else {
      const list = await slot.generate(continued(template, raw), {
        grammar: categoryGrammar(task),
        maxTokens: this.options.maxCategoryTokens,
        stopAfter: task === 'response' ? '\n' : undefined,
      });
      // A list cut at the token limit keeps its whole names (a non-Safe verdict with none reads None).
      raw += ` ${wholeCategories(list, task) || 'None'}`;
    }
    let refusalProbability = 0;
    if (task === 'response') {
      raw += '\nRefusal:';
      const [yes] = softmax(await slot.nextScores(continued(template, raw), REFUSAL_OPTIONS));
      refusalProbability = yes;
      raw += yes > 0.5 ? ' Yes' : ' No';
    }
    const output = parseGenOutput(raw, task);
    const riskLevel = mapped(output.riskLevel, mode);
    const verdict: GenVerdict = {
      riskLevel,
      category: riskLevel === 'Safe' ? null : (output.categories[0] ?? null),
      probabilities,
      categories: output.categories,
      raw,
      model: 'gen',
    };
    return task === 'response' ? { ...verdict, refusal: output.refusal!, refusalProbability } : verdict;
  }

  async dispose(): Promise<void> {
    await this.backend.dispose();
  }
}
