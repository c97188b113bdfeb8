import { z } from 'zod';
import { promptMessages, stripEndTokens } from './chat-text.js';
import type { SafetyReward, SafetyRewardResult } from './safety-reward.js';

/** What a `POST /get_reward` handler answers: the status and the JSON body. */
export interface RewardReply {
  status: number;
  body: unknown;
}

const message = z.object({ role: z.enum(['system', 'user', 'assistant', 'tool']), content: z.string() });

/** OpenRLHF `--reward.remote_url`: `query` is prompt + response decoded with special tokens. */
const openRlhf = z
  .object({ query: z.array(z.string()).min(1, 'must hold at least one sample'), prompts: z.array(z.string()), labels: z.array(z.unknown()).optional() })
  .refine((b) => b.prompts.length === b.query.length, { message: 'must hold one prompt per query', path: ['prompts'] });

/** slime `--rm-type remote_rm`: one sample, prompt as text or messages. */
const slime = z.object({ prompt: z.union([z.string(), z.array(message).min(1)]), response: z.string(), label: z.unknown().optional() });

export interface RewardRequestOptions {
  /** How slime is answered: a number (default) or a dict, whose `reward` key `--reward-key reward` picks. */
  slimeReply?: 'number' | 'dict';
}

const bad = (message: string): RewardReply => ({ status: 400, body: { error: message } });
const issues = (error: z.ZodError) => error.issues.map((i) => `${i.path.join('.') || 'body'}: ${i.message}`).join('; ');

const logs = (r: SafetyRewardResult) => ({
  reward: r.reward,
  unsafe: r.unsafe ? 1 : 0,
  refusal: r.refusal ? 1 : 0,
  answer_risk: r.answer.riskLevel,
  thinking_risk: r.thinking?.riskLevel ?? null,
  helpfulness: r.helpfulness ?? null,
});

/**
 * The HTTP shapes of `POST /get_reward`, without the server: the body is told apart by its fields (OpenRLHF's
 * `{query[], prompts[], labels[]}`, slime's `{prompt, response, label}`), checked (a 400 says what is wrong),
 * and every sample is judged at once, so that a batch fills the Gen model's sequences. A guard or reward-model
 * failure is a 500 with its message.
 */
export async function handleRewardRequest(body: unknown, reward: SafetyReward, options: RewardRequestOptions = {}): Promise<RewardReply> {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return bad("expected a JSON object: OpenRLHF's {query, prompts, labels} or slime's {prompt, response, label}");
  try {
    if ('query' in body) {
      const parsed = openRlhf.safeParse(body);
      if (!parsed.success) return bad(`OpenRLHF request: ${issues(parsed.error)}`);
      const { query, prompts } = parsed.data;
      const mismatch = query.findIndex((q, i) => !q.startsWith(prompts[i]));
      if (mismatch >= 0) return bad(`OpenRLHF request: query[${mismatch}] does not start with prompts[${mismatch}] (query must be the prompt followed by the response)`);
      const results = await Promise.all(query.map((q, i) => reward(promptMessages(prompts[i]), stripEndTokens(q.slice(prompts[i].length)))));
      const rewards = results.map((r) => r.reward);
      const extra = results.map(logs);
      const column = (key: 'unsafe' | 'refusal') => extra.map((x) => x[key]);
      return { status: 200, body: { rewards, scores: rewards, extra_logs: { unsafe: column('unsafe'), refusal: column('refusal') } } };
    }
    if ('response' in body || 'prompt' in body) {
      const parsed = slime.safeParse(body);
      if (!parsed.success) return bad(`slime request: ${issues(parsed.error)}`);
      const { prompt, response } = parsed.data;
      const result = await reward(typeof prompt === 'string' ? promptMessages(prompt) : prompt, stripEndTokens(response));
      return { status: 200, body: options.slimeReply === 'dict' ? logs(result) : result.reward };
    }
  } catch (error) {
    return { status: 500, body: { error: `the reward failed: ${error instanceof Error ? error.message : String(error)}` } };
  }
  return bad("expected OpenRLHF's {query, prompts, labels} or slime's {prompt, response, label}");
}
