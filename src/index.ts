export { Qwen3Guard, type GuardStats } from './engine/guard.js';
export { GuardSession } from './engine/session.js';
export { type GuardOptions } from './engine/options.js';
export { GuardModelError } from './engine/guard-layout.js';
export { decideResponse, type DecisionMode, type DecisionOptions, type LabeledToken, type ResponseDecision } from './engine/decision.js';
export type { GuardMessage, PromptVerdict, ResponsePart, RiskLevel, RiskProbabilities, TokenVerdict } from './engine/types.js';
export { convertCheckpoint, type ConvertOptions, type ConvertProgress, type ConvertResult } from './convert/convert.js';
export { ConvertError } from './convert/errors.js';
export { OptionsError } from './shared/validation.js';
