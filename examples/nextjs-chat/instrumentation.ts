/** Runs once when the server starts: loads the guard before the first request needs it. */
export async function register(): Promise<void> {
  // The edge runtime cannot run node-llama-cpp; only the Node.js server loads the guard.
  if (process.env.NEXT_RUNTIME !== 'nodejs') return;
  // Before the first request: the AI SDK's spans and the guard's go to the console.
  if (process.env.QWEN3GUARD_OTEL === 'console') (await import('./lib/otel')).registerConsoleTelemetry();
  const { getGuard } = await import('./lib/guard');
  await getGuard().then(
    () => console.log('qwen3guard: guard loaded'),
    // The server still starts: the middleware fails every request by its `fail` policy (closed: prompts refused).
    (error: Error) => console.error(`qwen3guard: the guard did not load, every prompt will be refused: ${error.message}`),
  );
}
