// The Node.js entry point: everything, with the in-process engines. node-llama-cpp is imported only when a local
// guard or Gen model is loaded, so an app that uses only remote guards loads no native code.
import { provideLocalEngines } from './local/provide.js';

provideLocalEngines();

export * from './api.js';
export { convertCheckpoint, type ConvertOptions, type ConvertProgress, type ConvertResult } from './convert/convert.js';
export { ConvertError } from './convert/errors.js';
export { detectVariantOfFile } from './gen/variant-file.js';
export { evaluate, type EvaluateOptions, type EvaluateResult, type EvalProgress, type ItemFailure } from './eval/evaluate.js';
export { parseDataset, readDataset, type Dataset, type DataProblem } from './eval/dataset.js';
export type { EvalGenGuard, EvalGuard, EvalStreamGuard, EvalStreamSession } from './eval/guard-shape.js';
export type { EvalItem, ItemResult, Detection, DetectionBin, UnsafeSpan } from './eval/types.js';
export type { EvalSummary } from './eval/summary.js';
export { renderReport, type ReportInput } from './eval/report/html.js';
export { safetyReward, type SafetyReward, type SafetyRewardResult } from './reward/safety-reward.js';
export type { SafetyRewardOptions, HelpfulnessFunction } from './reward/options.js';
export { handleRewardRequest, type RewardReply, type RewardRequestOptions } from './reward/http-adapters.js';
