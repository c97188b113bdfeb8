/**
 * Child process of convert.test.ts ("peak memory"): converts a small warm-up checkpoint, then a large one, and
 * prints the peak RSS (KiB) after each as one JSON line. The warm-up pays the costs that do not grow with the
 * model (the runtime, the tokenizer metadata), so the second peak minus the first is what the large model's
 * tensors cost: a converter that streams them in pieces adds little, one that holds the model adds its size.
 *
 * Usage: node --import tsx test/convert-memory-child.ts <warm-up checkpoint> <large checkpoint> <output folder> <type>
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { convertCheckpoint } from '../src/convert/convert.js';
import type { OutputType } from '../src/convert/ggml-types.js';

const [warmup, large, outDir, type] = process.argv.slice(2);
if (!warmup || !large || !outDir || !type) {
  console.error('usage: convert-memory-child.ts <warm-up checkpoint> <large checkpoint> <output folder> <type>');
  process.exit(2);
}

/**
 * Peak RSS of this process in KiB. On Linux, getrusage's maxRSS (process.resourceUsage().maxRSS) survives
 * fork + exec, so a child of a large test worker starts with the worker's peak and would hide its own;
 * VmHWM belongs to this process's address space alone.
 */
function peakKiB(): number {
  try {
    const match = /^VmHWM:\s+(\d+) kB$/m.exec(readFileSync('/proc/self/status', 'utf8'));
    if (match) return Number(match[1]);
  } catch {
    // not Linux
  }
  return process.resourceUsage().maxRSS;
}
const startKiB = peakKiB();
const small = await convertCheckpoint({ checkpoint: warmup, output: join(outDir, 'warmup.gguf'), type: type as OutputType });
const afterWarmupKiB = peakKiB();
const big = await convertCheckpoint({ checkpoint: large, output: join(outDir, 'large.gguf'), type: type as OutputType });
const afterLargeKiB = peakKiB();
process.stdout.write(`${JSON.stringify({ startKiB, afterWarmupKiB, afterLargeKiB, warmupBytes: small.bytes, largeBytes: big.bytes })}\n`);
