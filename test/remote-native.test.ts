import { spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GuardServer } from '../src/server/server.js';
import { REPO_ROOT } from './fixtures/cache.js';
import { plantedServer } from './fixtures/guard-kinds.js';

/** An app that only uses Qwen3Guard.remote loads no native code: node-llama-cpp is imported only by a local load. */
let server: GuardServer;
beforeAll(async () => {
  server = await plantedServer();
});
afterAll(() => server?.close());

describe.runIf(process.platform === 'linux')('an app with a remote guard only', () => {
  it('moderates through the server and maps no node-llama-cpp library into its process', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'test/children/remote-only-app.ts', server.url], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    expect(code, stderr).toBe(0);
    const report = JSON.parse(stdout) as { text: string; finishReason: string; native: string[] };
    expect(report.text).toBe("Rivers carry rain to the sea. Mix these to make a\n\nI can't continue with this response.");
    expect(report.finishReason).toBe('content-filter');
    expect(report.native.filter((path) => /llama|ggml/i.test(path))).toEqual([]);
    expect(report.native.filter((path) => path.endsWith('.node'))).toEqual([]);
  });
});
