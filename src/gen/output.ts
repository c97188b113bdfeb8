import type { RiskLevel } from '../format/labels.js';
import { GEN_CATEGORY_MAP, GEN_PROMPT_CATEGORIES, GEN_RESPONSE_CATEGORIES, type GenCategoryName } from './categories.js';
import type { GenTask } from './template.js';

export interface GenOutput {
  riskLevel: RiskLevel;
  /** Listed categories, in the model's order, without repeats, as the library names them. */
  categories: string[];
  /** Response moderation only. */
  refusal?: boolean;
}

/** The model's output cannot be read (only possible for text not produced under the grammar). */
export class GenOutputError extends Error {
  override readonly name = 'GenOutputError';
}

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/**
 * Reads `Safety: ...\nCategories: ...[\nRefusal: ...]` strictly, line by line (a findall of the names would read
 * `Violent` inside `Non-violent Illegal Acts`). Categories are matched whole, longest name first.
 */
export function parseGenOutput(raw: string, task: GenTask): GenOutput {
  const lines = raw.replace(/<\|im_end\|>$/, '').split('\n');
  const safety = /^Safety: (Safe|Unsafe|Controversial)$/.exec(lines[0] ?? '');
  if (!safety) throw new GenOutputError(`Gen output does not start with 'Safety: Safe|Unsafe|Controversial': ${JSON.stringify(raw.slice(0, 80))}`);
  const list = /^Categories: (.*)$/.exec(lines[1] ?? '');
  if (!list) throw new GenOutputError(`Gen output has no 'Categories:' line: ${JSON.stringify(raw.slice(0, 120))}`);
  const allowed = task === 'prompt' ? GEN_PROMPT_CATEGORIES : GEN_RESPONSE_CATEGORIES;
  const names = [...allowed].sort((a, b) => b.length - a.length).map(escape).join('|');
  const categories: string[] = [];
  if (list[1] !== 'None') {
    for (const item of list[1].split(', ')) {
      if (!new RegExp(`^(?:${names})$`).test(item)) throw new GenOutputError(`Gen output lists an unknown category ${JSON.stringify(item)}`);
      const mapped = GEN_CATEGORY_MAP[item as GenCategoryName];
      if (!categories.includes(mapped)) categories.push(mapped);
    }
  }
  const output: GenOutput = { riskLevel: safety[1] as RiskLevel, categories };
  if (task === 'response') {
    const refusal = /^Refusal: (Yes|No)$/.exec(lines[2] ?? '');
    if (!refusal) throw new GenOutputError(`Gen output has no 'Refusal: Yes|No' line: ${JSON.stringify(raw.slice(0, 160))}`);
    output.refusal = refusal[1] === 'Yes';
  }
  return output;
}

/** GBNF string literal. */
const literal = (s: string) => JSON.stringify(s);

/**
 * The grammar of a non-Safe verdict's category list as the model continues `Categories:`: one or more of the
 * task's names, comma-separated. A response's list ends with the newline before `Refusal:`; a prompt's ends
 * where the model ends its answer (the grammar then admits only end of generation).
 */
export function categoryGrammar(task: GenTask): string {
  const names = (task === 'prompt' ? GEN_PROMPT_CATEGORIES : GEN_RESPONSE_CATEGORIES).map(literal).join(' | ');
  return [`root ::= " " cat ("," " " cat)*${task === 'response' ? ' "\\n"' : ''}`, `cat ::= ${names}`].join('\n');
}

/**
 * The longest prefix of a generated list that ends on a whole category name: what is kept when generation stops
 * at its token limit in the middle of a name (a model that keeps listing).
 */
export function wholeCategories(list: string, task: GenTask): string {
  const allowed = task === 'prompt' ? GEN_PROMPT_CATEGORIES : GEN_RESPONSE_CATEGORIES;
  const items = list.replace(/\n$/, '').replace(/^ /, '').split(', ');
  const kept: string[] = [];
  for (const item of items) {
    if (!(allowed as string[]).includes(item)) break;
    kept.push(item);
  }
  return kept.join(', ');
}
