/**
 * Every name this package gives OpenTelemetry: spans, attributes, values, events, metrics and units. The GenAI
 * guardrail conventions are a draft whose names changed three times, so they live here and nowhere else: a
 * rename is one edit. Our own attributes and metrics are under `qwen3guard.*`.
 */

/** Which conventions the names follow. */
export const CONVENTIONS = {
  /** open-telemetry/semantic-conventions-genai PR #427 (open), read at habibam/semantic-conventions-genai@277ed28. */
  guardrail: 'semantic-conventions-genai#427 draft (2026-08)',
  /** The merged GenAI evaluation event (open-telemetry/semantic-conventions#2563). */
  evaluation: 'gen_ai.evaluation.result (merged)',
} as const;

/** The instrumentation scope of our tracer and meter. */
export const SCOPE = 'ai-sdk-qwen3guard';

/** `gen_ai.operation.name` of a guardrail span, and its span name's first word. */
export const RUN_GUARDRAIL = 'run_guardrail';

/**
 * The component families: the span name is `run_guardrail {family}` (one name for every model size, so a
 * dashboard filters on two names); `gen_ai.guardrail.component.name` carries the exact model
 * (`Qwen3Guard-Stream-0.6B`).
 */
export const COMPONENT = { stream: 'Qwen3Guard-Stream', gen: 'Qwen3Guard-Gen' } as const;

/** Attribute keys: the draft's and the stable ones first, then ours. */
export const ATTR = {
  operationName: 'gen_ai.operation.name',
  conversationId: 'gen_ai.conversation.id',
  errorType: 'error.type',
  targetType: 'gen_ai.guardrail.target.type',
  targetSubtype: 'gen_ai.guardrail.target.subtype',
  verdictType: 'gen_ai.guardrail.verdict.type',
  actionType: 'gen_ai.guardrail.action.type',
  componentName: 'gen_ai.guardrail.component.name',
  riskCategory: 'gen_ai.guardrail.security.risk.category',
  riskScore: 'gen_ai.guardrail.security.risk.score',
  contentModified: 'gen_ai.guardrail.security.content.modified',
  contentInputHash: 'gen_ai.guardrail.security.content.input.hash',
  contentInputValue: 'gen_ai.guardrail.security.content.input.value',

  /** The guard failed and the request failed open: there is no verdict (never reported as `allow`). */
  degraded: 'qwen3guard.degraded',
  /** The client went away before the check ended: no verdict, and not a failure. */
  cancelled: 'qwen3guard.cancelled',
  /** The policy's own action name (rewrite, redact, abort, continue, flag, allow, none): finer than action.type. */
  action: 'qwen3guard.action',
  promptCached: 'qwen3guard.prompt.cached',
  /** The session's token work during this check (`StreamGuardSession.counts`). */
  tokensEvaluated: 'qwen3guard.tokens.evaluated',
  tokensReused: 'qwen3guard.tokens.reused',
  tokensSpeculated: 'qwen3guard.tokens.speculated',
  tokensDiscarded: 'qwen3guard.tokens.discarded',
  tokensScored: 'qwen3guard.tokens.scored',
  release: 'qwen3guard.response.release',
  debounce: 'qwen3guard.response.debounce',
  /** flagged: a run of `debounce` non-Safe tokens flagged the response; dismissed: non-Safe labels, no such run; clean: none. */
  debounceDecision: 'qwen3guard.response.debounce.decision',
  flags: 'qwen3guard.response.flags',
  firstFlagTokenIndex: 'qwen3guard.response.first_flag.token_index',
  firstFlagCharOffset: 'qwen3guard.response.first_flag.char_offset',
  tokensHeldMax: 'qwen3guard.response.tokens.held_max',
  charsReceived: 'qwen3guard.response.chars.received',
  charsReleased: 'qwen3guard.response.chars.released',
  charsHeldMax: 'qwen3guard.response.chars.held_max',
  charsWithheld: 'qwen3guard.response.chars.withheld',
  leakedChars: 'qwen3guard.response.chars.leaked',
  /** Seconds, as OpenTelemetry durations are. */
  releaseLagP50: 'qwen3guard.response.release_lag.p50',
  releaseLagMax: 'qwen3guard.response.release_lag.max',
  ttftAdded: 'qwen3guard.response.time_to_first_token_added',
  upstreamCancelled: 'qwen3guard.upstream.cancelled',
  interventionAttempts: 'qwen3guard.intervention.attempts',
  interventionTokensDiscarded: 'qwen3guard.intervention.tokens_discarded',
  interventionOutcome: 'qwen3guard.intervention.outcome',
} as const;

export const TARGET = { input: 'input', output: 'output' } as const;
export type Target = keyof typeof TARGET;
/** Prompt and response content of an LLM operation. */
export const TARGET_SUBTYPE_LLM = 'llm';

/** `gen_ai.guardrail.verdict.type`: what the guard said (well-known values of the draft). */
export const VERDICT = { allow: 'allow', warn: 'warn', deny: 'deny', modify: 'modify' } as const;
/** `gen_ai.guardrail.action.type`: what the policy did (audit: flagged and let through). */
export const ACTION = { allow: 'allow', audit: 'audit', modify: 'modify', block: 'block' } as const;

/** The merged evaluation event, added to the model call's span. */
export const EVALUATION = {
  event: 'gen_ai.evaluation.result',
  name: 'gen_ai.evaluation.name',
  scoreLabel: 'gen_ai.evaluation.score.label',
  scoreValue: 'gen_ai.evaluation.score.value',
} as const;
/** `gen_ai.evaluation.name` values. */
export const EVALUATION_NAME = { prompt: 'qwen3guard.prompt', response: 'qwen3guard.response', genResponse: 'qwen3guard.gen.response' } as const;

/** The HMAC's prefix in `content.input.hash` (the draft puts the algorithm in the value). */
export const HMAC_PREFIX = 'hmac-sha256:';

/** Histogram buckets in seconds (the SDK's default buckets are meant for milliseconds). */
const SECONDS_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

/** Metrics: name, unit, description, and buckets for histograms. */
export const METRIC = {
  checks: { name: 'qwen3guard.guardrail.checks', unit: '{check}', description: 'Guardrail checks by target, verdict, category, action and error' },
  promptDuration: { name: 'qwen3guard.prompt.duration', unit: 's', description: 'Time from the request to the prompt verdict', buckets: SECONDS_BUCKETS },
  ttftAdded: { name: 'qwen3guard.response.time_to_first_token_added', unit: 's', description: 'Time the guard added to the first released token', buckets: SECONDS_BUCKETS },
  releaseLag: { name: 'qwen3guard.response.release_lag', unit: 's', description: 'From the arrival of response text to its verdicts, per guard evaluation', buckets: SECONDS_BUCKETS },
  decodeDuration: { name: 'qwen3guard.guard.decode.duration', unit: 's', description: 'Duration of each guard call scoring the response', buckets: SECONDS_BUCKETS },
  openSessions: { name: 'qwen3guard.sessions.open', unit: '{session}', description: 'Guard sessions open (a conversation being checked)' },
} as const;
