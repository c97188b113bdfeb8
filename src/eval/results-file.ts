import { appendFileSync } from 'node:fs';
import { readFile, truncate } from 'node:fs/promises';
import type { ItemResult } from './types.js';

/** A `--out` file that is not one this command wrote. */
export class ResultsFileError extends Error {
  override readonly name = 'ResultsFileError';
}

const isResult = (v: unknown): v is ItemResult =>
  typeof v === 'object' && v !== null && typeof (v as ItemResult).id === 'string' && typeof (v as ItemResult).model === 'string' && typeof (v as ItemResult).prediction === 'string';

/**
 * The results an earlier run wrote to `path` (none when it does not exist). A run killed while writing can
 * leave a last line without its newline: that line is cut off the file, and its item runs again.
 */
export async function readResults(path: string): Promise<ItemResult[]> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw error;
  }
  const complete = text.lastIndexOf('\n') + 1;
  if (complete < text.length) await truncate(path, Buffer.byteLength(text.slice(0, complete)));
  return text
    .slice(0, complete)
    .split('\n')
    .flatMap((line, i) => {
      if (!line.trim()) return [];
      let value: unknown;
      try {
        value = JSON.parse(line);
      } catch {
        value = undefined;
      }
      if (!isResult(value)) throw new ResultsFileError(`${path}, line ${i + 1}: not a result of qwen3guard eval: give --out a new file, or the one an earlier run of this command wrote`);
      return [value];
    });
}

/** Appends one result as a line: one write, so that an interrupted run keeps every finished item whole. */
export function appendResult(path: string, result: ItemResult): void {
  appendFileSync(path, `${JSON.stringify(result)}\n`);
}
