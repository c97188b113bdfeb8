/**
 * One guard for the whole process: every wrapped model and request shares it (load it once, at startup).
 * QWEN3GUARD_MODEL is a GGUF made by `npx qwen3guard convert <Qwen3Guard-Stream-0.6B folder> -o guard.gguf`.
 */
import { Qwen3Guard } from 'ai-sdk-qwen3guard';

export const guard = Qwen3Guard.load({
  modelPath: process.env.QWEN3GUARD_MODEL ?? 'guard.gguf',
  maxSessions: 4, // conversations classified at once
});
