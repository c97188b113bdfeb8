import type { GuardInfo } from '../guard/stream-guard.js';
import { listOf, OptionsError } from '../shared/validation.js';
import type { PromptPolicyInput, ResponsePolicyInput } from './schema.js';

/** Category names compare loosely for suggestions: case, spaces and punctuation aside. */
const loose = (name: string) => name.toLowerCase().replace(/[^a-z0-9]/g, '');

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) row[j] = Math.min(previous[j] + 1, row[j - 1] + 1, previous[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    previous = row;
  }
  return previous[b.length];
}

/** The valid name `name` most likely means: equal but for case and spacing, else close in spelling. */
function suggest(name: string, valid: readonly string[]): string | undefined {
  const key = loose(name);
  const same = valid.find((v) => loose(v) === key);
  if (same) return same;
  let best: { name: string; distance: number } | undefined;
  for (const v of valid) {
    const distance = editDistance(key, loose(v));
    if (distance <= Math.max(2, Math.floor(loose(v).length / 3)) && (!best || distance < best.distance)) best = { name: v, distance };
  }
  return best?.name;
}

/** What is wrong with each name `head`'s policy gives that the guard's `head` labels lack. */
function problems(categories: Record<string, unknown> | undefined, head: 'prompt' | 'response', info: GuardInfo, prefix: string): string[] {
  const valid = info[head].categories;
  const names = `the guard's ${head} categories are ${listOf(valid)}`;
  return Object.keys(categories ?? {})
    .filter((name) => !valid.includes(name))
    .map((name) => {
      const field = `${prefix}${head}.categories`;
      // Jailbreak: the query head's own label, which the response head never emits.
      if (head === 'response' && info.prompt.categories.includes(name)) {
        return `${field}: '${name}' is a prompt category (the response head has no such label), set it in ${prefix}prompt.categories; ${names}`;
      }
      const guess = suggest(name, valid);
      return `${field}: unknown category '${name}'${guess ? ` (did you mean '${guess}'?)` : ''}; ${names}`;
    });
}

/**
 * Checks the category names of a prompt and a response policy against the guard's labels (a name the guard
 * never emits would silently do nothing). `prefix` names where the policies came from.
 */
export function checkCategories(info: GuardInfo, policies: { prompt?: PromptPolicyInput; response?: ResponsePolicyInput }, prefix = ''): void {
  const found = [...problems(policies.prompt?.categories, 'prompt', info, prefix), ...problems(policies.response?.categories, 'response', info, prefix)];
  if (found.length) throw new OptionsError(`Invalid options: ${found.join('; ')}`);
}
