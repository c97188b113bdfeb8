import type { GuardMessage } from '../guard/types.js';
import type { ResolvedSafetyRewardOptions } from './options.js';

/** A helpfulness model that failed or answered something else than a score. */
export class RewardModelError extends Error {
  override readonly name = 'RewardModelError';
}

type Helpfulness = (prompt: readonly GuardMessage[], answer: string, signal?: AbortSignal) => Promise<number>;

/** H as one call: the function given, the reward model at the URL given, or 0 (documented default). */
export function helpfulnessOf(option: ResolvedSafetyRewardOptions['helpfulness']): Helpfulness {
  if (option === undefined) return async () => 0;
  if (typeof option === 'function') {
    return async (prompt, answer) => {
      const h = await option(prompt, answer);
      if (typeof h !== 'number' || !Number.isFinite(h)) throw new RewardModelError(`the helpfulness function returned ${String(h)}, not a finite number`);
      return h;
    };
  }
  return async (prompt, answer, signal) => {
    const user = prompt.findLast((m) => m.role === 'user')?.content ?? '';
    const timeout = AbortSignal.timeout(option.timeoutMs);
    let response: Response;
    try {
      response = await fetch(option.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...option.headers },
        body: JSON.stringify({ prompt: user, messages: prompt, response: answer }),
        signal: signal ? AbortSignal.any([signal, timeout]) : timeout,
      });
    } catch (error) {
      throw new RewardModelError(`the reward model at ${option.url} did not answer (${(error as Error).message})`, { cause: error });
    }
    const body = (await response.json().catch(() => undefined)) as unknown;
    if (!response.ok) throw new RewardModelError(`the reward model at ${option.url} answered HTTP ${response.status}`);
    const score = typeof body === 'number' ? body : (body as { score?: unknown } | undefined)?.score;
    if (typeof score !== 'number' || !Number.isFinite(score)) throw new RewardModelError(`the reward model at ${option.url} answered no number or {"score": number}`);
    return score;
  };
}
