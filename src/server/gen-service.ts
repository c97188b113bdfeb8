import { Qwen3GuardGen } from '../gen/classifier.js';
import { handleRewardRequest, type RewardReply } from '../reward/http-adapters.js';
import { safetyReward, type SafetyReward } from '../reward/safety-reward.js';
import type { SafetyRewardOptions } from '../reward/options.js';
import { GenCompletions } from './gen-completions.js';

/**
 * The Gen model a server serves: the completions API (`/v1/completions`, for `Qwen3GuardGen.remote`) and the
 * safety reward (`/get_reward`). The reward judges through a Qwen3GuardGen over the same completions engine,
 * called in process (no socket), so it gives exactly the verdicts a remote client gets and batches with them.
 */
export class GenService {
  readonly reward: SafetyReward;

  constructor(
    readonly engine: GenCompletions,
    readonly name: string,
    reward: Omit<SafetyRewardOptions, 'gen'>,
  ) {
    const gen = Qwen3GuardGen.remote({ baseURL: 'http://gen.in-process/v1', model: name, fetch: (_, init) => this.inProcess(init), maxConcurrency: 1024, timeoutMs: 600_000, retries: 0 });
    this.reward = safetyReward({ ...reward, gen });
  }

  /** `/get_reward`: OpenRLHF's and slime's shapes. */
  rewardRequest(body: unknown): Promise<RewardReply> {
    return handleRewardRequest(body, this.reward);
  }

  /** A completions call answered by the engine directly, shaped as the fetch the Gen client expects. */
  private async inProcess(init: RequestInit | undefined): Promise<Response> {
    const body = JSON.parse(String(init?.body)) as Record<string, unknown>;
    const answer = await this.engine.complete(body, init?.signal ?? undefined);
    return new Response(JSON.stringify(answer.json), { status: answer.status, headers: { 'content-type': 'application/json' } });
  }

  dispose(): Promise<void> {
    return this.engine.dispose();
  }
}
