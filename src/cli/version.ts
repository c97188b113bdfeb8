import { readFileSync } from 'node:fs';

const PACKAGE_NAME = 'ai-sdk-qwen3guard';

/**
 * The package's version, from its package.json: `../../package.json` from this file both in src/cli and in
 * dist/cli; the folders above are tried too in case the bundler moved this code into a shared chunk.
 */
export function packageVersion(): string {
  for (const relative of ['../../package.json', '../package.json', '../../../package.json']) {
    try {
      const json = JSON.parse(readFileSync(new URL(relative, import.meta.url), 'utf8')) as { name?: string; version?: string };
      if (json.name === PACKAGE_NAME && json.version) return json.version;
    } catch {
      // Not there: try the next folder.
    }
  }
  return 'unknown';
}
