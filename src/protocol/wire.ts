import { z } from 'zod';

/**
 * The guard service's wire protocol (`qwen3guard serve` and `Qwen3Guard.remote`), version 1: JSON over HTTP/1.1
 * keep-alive, one round trip per guard call. Both ends validate with these schemas. See docs/protocol.md.
 */
export const PROTOCOL_VERSION = 1;

export const PATHS = {
  health: '/healthz',
  metrics: '/metrics',
  info: '/v1/info',
  sessions: '/v1/sessions',
  completions: '/v1/completions',
  /** The safety reward for RL trainers (OpenRLHF's reference route). */
  reward: '/get_reward',
} as const;

export const HEADERS = {
  /** A stable key of the conversation, for a load balancer's consistent hashing; the server ignores it. */
  conversation: 'x-qwen3guard-conversation',
  /** Makes session creation safe to retry: the same key within a minute answers with the same session. */
  idempotency: 'idempotency-key',
} as const;

/** Error codes of the `{ error: { code, message } }` body, by status. */
export const ERROR_CODES = {
  'bad-request': 400,
  unauthorized: 401,
  'not-found': 404,
  'unknown-session': 404,
  'method-not-allowed': 405,
  'out-of-order': 409,
  'too-large': 413,
  busy: 429,
  internal: 500,
  'not-ready': 503,
  draining: 503,
} as const;
export type ErrorCode = keyof typeof ERROR_CODES;

const riskLevel = z.enum(['Safe', 'Unsafe', 'Controversial']);
const probabilities = z.object({ Safe: z.number(), Unsafe: z.number(), Controversial: z.number() });
const part = z.enum(['reasoning', 'answer']);

export const messageSchema = z.object({
  role: z.enum(['system', 'user', 'assistant', 'tool']),
  content: z.string(),
  reasoning: z.string().optional(),
});

export const promptVerdictSchema = z.object({
  riskLevel,
  category: z.string().nullable(),
  probabilities,
  categoryProbabilities: z.record(z.string(), z.number()),
});

export const tokenVerdictSchema = z.object({
  index: z.number().int(),
  position: z.number().int(),
  id: z.number().int(),
  part,
  riskLevel,
  category: z.string().nullable(),
  probabilities: probabilities.optional(),
  closing: z.literal(true).optional(),
  start: z.number().int().optional(),
  end: z.number().int().optional(),
});

export const countsSchema = z.object({
  evaluatedTokens: z.number(),
  reusedTokens: z.number(),
  speculatedTokens: z.number(),
  discardedTokens: z.number(),
  scoredTokens: z.number(),
});

const labels = z.object({ risk: z.array(z.string()), categories: z.array(z.string()) });

/** `GET /v1/info`. */
export const infoSchema = z.object({
  protocol: z.number().int(),
  version: z.string(),
  /** The Stream model, or null when only Gen is served. */
  stream: z.object({ model: z.string(), prompt: labels, response: labels, speculate: z.boolean() }).nullable(),
  /** The Gen model answering `/v1/completions`, or null. */
  gen: z.object({ model: z.string() }).nullable(),
  limits: z.object({ maxBodyBytes: z.number(), maxTextChars: z.number(), maxMessages: z.number(), idleTimeoutMs: z.number() }),
});

/** `POST /v1/sessions`: a session for one conversation, and its prompt verdict. */
export const createSessionSchema = z
  .object({
    messages: z.array(messageSchema).min(1),
    /** A verdict the client cached for this conversation prefix: returned as is, the verdict token not evaluated. */
    knownVerdict: promptVerdictSchema.optional(),
  })
  .strict();

export const sessionCreatedSchema = z.object({ session: z.string(), verdict: promptVerdictSchema, counts: countsSchema });

/**
 * `POST /v1/sessions/{id}`: one call on the session. `seq` numbers the calls from 1: the server runs seq n+1
 * after n, answers a repeated n again from its record (a retry after a lost response), and refuses any other.
 */
export const sessionCallSchema = z.discriminatedUnion('op', [
  z.object({ op: z.literal('append'), seq: z.number().int().positive(), part, text: z.string(), final: z.boolean().optional(), ahead: z.string().optional() }).strict(),
  z.object({ op: z.literal('speculate'), seq: z.number().int().positive(), part, text: z.string() }).strict(),
  z.object({ op: z.literal('end'), seq: z.number().int().positive() }).strict(),
  /** Back to just after the scored token of index `to` (null: the response's start). */
  z.object({ op: z.literal('rollback'), seq: z.number().int().positive(), to: z.number().int().min(0).nullable() }).strict(),
  /** Tokens of `text` (no state: needs no seq order, but takes one like every call). */
  z.object({ op: z.literal('count'), seq: z.number().int().positive(), text: z.string() }).strict(),
]);
export type SessionCall = z.infer<typeof sessionCallSchema>;

export const sessionAnswerSchema = z.object({
  seq: z.number().int(),
  verdicts: z.array(tokenVerdictSchema).optional(),
  count: z.number().int().optional(),
  counts: countsSchema,
});
export type SessionAnswer = z.infer<typeof sessionAnswerSchema>;

export const errorBodySchema = z.object({ error: z.object({ code: z.string(), message: z.string() }) });
