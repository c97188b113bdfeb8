import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { convertedModel, plantedCheckpoint, REPO_ROOT } from './fixtures/cache.js';

/** Runs the child to its natural end; resolves with its exit code, output and how long it lingered after its last line. */
function runChild(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string; lingerMs: number }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(REPO_ROOT, 'node_modules/tsx/dist/cli.mjs'), join(REPO_ROOT, 'test/children/exit-child.ts'), ...args], { cwd: REPO_ROOT });
    let stdout = '';
    let stderr = '';
    let lastLineAt = 0;
    child.stdout.on('data', (d) => {
      stdout += d;
      lastLineAt = Date.now();
    });
    child.stderr.on('data', (d) => (stderr += d));
    const killer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('error', reject);
    child.on('exit', (code) => {
      clearTimeout(killer);
      resolve({ code, stdout, stderr, lingerMs: lastLineAt ? Date.now() - lastLineAt : -1 });
    });
  });
}

describe('the process exits by itself', () => {
  it('after streams that finished, stopped, were refused, aborted or failed to load the guard', async () => {
    const model = await convertedModel(await plantedCheckpoint(), 'q8_0');
    for (const mode of ['dispose', 'keep']) {
      const result = await runChild([model, mode]);
      expect(result.stderr).not.toMatch(/Unhandled|Error/);
      expect(result.code).toBe(0);
      expect(JSON.parse(result.stdout.trim().split('\n').at(-1)!).done).toBe(5);
      // Nothing of ours keeps the event loop alive: no retry timer, no socket, no pending session wait.
      expect(result.lingerMs).toBeLessThan(5000);
    }
  });
});
