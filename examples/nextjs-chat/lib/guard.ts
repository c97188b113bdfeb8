/**
 * One guard per server process, shared by every request. It is loaded by `instrumentation.ts` when the server
 * starts (so the first chat does not wait for the model), never at import: `next build` imports the route to
 * collect its config, and a load there would try to open the model on the build machine.
 *
 * QWEN3GUARD_MODEL is a GGUF from `npx qwen3guard pull 0.6B` (or `npx qwen3guard convert <checkpoint> -o guard.gguf`).
 */
import { Qwen3Guard } from 'ai-sdk-qwen3guard';

// On globalThis: `next dev` re-evaluates modules on every edit, and each evaluation would load the model again.
const holder = globalThis as typeof globalThis & { qwen3guard?: Promise<Qwen3Guard> };

/** The process's guard, loading it on first call. A failed load is the middleware's to report and retry. */
export function getGuard(): Promise<Qwen3Guard> {
  holder.qwen3guard ??= Qwen3Guard.load({
    modelPath: process.env.QWEN3GUARD_MODEL ?? 'guard.gguf',
    maxSessions: 4, // conversations classified at once
  });
  return holder.qwen3guard;
}
