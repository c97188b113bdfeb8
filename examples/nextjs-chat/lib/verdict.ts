/**
 * What the page makes of `providerMetadata.qwen3guard` (README, "What the finish part carries"): each answer's
 * fate, its category, and where the guard's own text (refusal, replacement) starts, to set it apart.
 */
import type { UIMessage } from 'ai';

type Action = 'none' | 'allow' | 'flag' | 'redact' | 'rewrite' | 'abort';

/** The fields of the guard's metadata the page reads. */
export interface GuardVerdict {
  prompt: { riskLevel: string; category: string | null; action: Action } | null;
  response: { riskLevel: string; category: string | null; charOffset: number | null } | null;
  action: Action;
  flags: Array<{ charOffset: number | null; category: string | null; action: Action }>;
  error?: { code: string };
}

/** A chat message whose metadata is the guard's verdict (set on the answer's last step). */
export type ChatMessage = UIMessage<{ qwen3guard?: GuardVerdict }>;

export type FateKind = 'allowed' | 'flagged' | 'redacted' | 'rewritten' | 'stopped' | 'prompt refused';

export interface Fate {
  kind: FateKind;
  category: string | null;
  /** The model's answer as it was let through. */
  answer: string;
  /** The guard's text in its place: the prompt's refusal or the answer's replacement ('' when none). */
  replacement: string;
  errorCode: string | null;
}

/** The fate of one answer, from its text and the guard's verdict. */
export function fateOf(text: string, verdict: GuardVerdict): Fate {
  const errorCode = verdict.error?.code ?? null;
  const stops = (action: Action | undefined) => action === 'rewrite' || action === 'abort';
  // A refused prompt: the whole text is the refusal (rewrite) or there is none (abort). A prompt check that
  // failed (fail: 'closed') has no verdict, only the action and an error code; a stopped answer has a flag.
  if (stops(verdict.prompt?.action) || (stops(verdict.action) && verdict.flags.length === 0)) {
    return { kind: 'prompt refused', category: verdict.prompt?.category ?? null, answer: '', replacement: text.trim(), errorCode };
  }
  const strongest = verdict.flags.find((f) => f.action === verdict.action);
  const category = strongest?.category ?? verdict.response?.category ?? null;
  switch (verdict.action) {
    case 'rewrite': {
      // What precedes the flagged span was released; the replacement follows it. An earlier redaction's mask
      // can differ in length from the span it hid, which would shift this split by the difference.
      const at = Math.min(strongest?.charOffset ?? text.length, text.length);
      // The box sets the replacement apart: its leading blank lines are not needed there.
      return { kind: 'rewritten', category, answer: text.slice(0, at), replacement: text.slice(at).trim(), errorCode };
    }
    case 'abort':
      return { kind: 'stopped', category, answer: text, replacement: '', errorCode };
    case 'redact':
      return { kind: 'redacted', category, answer: text, replacement: '', errorCode };
    case 'flag':
      return { kind: 'flagged', category, answer: text, replacement: '', errorCode };
    default:
      return { kind: 'allowed', category: null, answer: text, replacement: '', errorCode };
  }
}
