import { convertCheckpoint, type ConvertProgress } from '../convert/convert.js';
import { exportForSglang } from '../convert/sglang-export.js';
import { OUTPUT_TYPES, type OutputType } from '../convert/ggml-types.js';
import { CONVERT_HELP, parseCommandLine, UsageError } from './args.js';
import { megabytes, ProgressLine, seconds } from './render.js';

/** gguf: one GGUF for node-llama-cpp; sglang: a Hugging Face folder for stock SGLang (docs/sglang.md). */
export type ConvertArgs = { target: 'gguf'; checkpoint: string; output: string; type: OutputType } | { target: 'sglang'; checkpoint: string; output: string };

/** Reads `convert`'s arguments; null when help was asked for. */
export function parseConvertArgs(args: string[]): ConvertArgs | null {
  const { values, positionals } = parseCommandLine({
    args,
    allowPositionals: true,
    strict: true,
    options: {
      output: { type: 'string', short: 'o' },
      type: { type: 'string', short: 't' },
      for: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) return null;
  if (positionals.length === 0) throw new UsageError('missing <checkpoint-dir>');
  if (values.for !== undefined && values.for !== 'gguf' && values.for !== 'sglang') throw new UsageError(`unknown --for '${values.for}': use gguf or sglang`);
  if (values.for === 'sglang') {
    if (values.type !== undefined) throw new UsageError('--type does not apply to --for sglang: the backbone weights are copied as they are');
    const output = values.output ?? positionals[1];
    if (!output || positionals.length > (values.output ? 1 : 2)) throw new UsageError('--for sglang takes <checkpoint-dir> <output-dir>');
    return { target: 'sglang', checkpoint: positionals[0], output };
  }
  if (positionals.length > 1) throw new UsageError(`expected one checkpoint folder, got ${positionals.length}: ${positionals.join(' ')}`);
  if (!values.output) throw new UsageError('missing -o <file.gguf>');
  const type = values.type ?? 'q8_0';
  if (!(OUTPUT_TYPES as readonly string[]).includes(type)) throw new UsageError(`unknown --type '${type}': use one of ${OUTPUT_TYPES.join(', ')}`);
  return { target: 'gguf', checkpoint: positionals[0], output: values.output, type: type as OutputType };
}

function progressText(p: ConvertProgress): string {
  const percent = p.totalBytes > 0 ? Math.floor((100 * p.bytesWritten) / p.totalBytes) : 0;
  return `${String(percent).padStart(3)}%  ${(p.bytesWritten / 1e6).toFixed(1)} / ${megabytes(p.totalBytes)}  ${p.tensor}`;
}

/** `qwen3guard convert`: progress on stderr when it is a terminal, a one-line summary on stdout. */
export async function runConvert(args: string[]): Promise<number> {
  const parsed = parseConvertArgs(args);
  if (!parsed) {
    process.stdout.write(`${CONVERT_HELP}\n`);
    return 0;
  }
  const progress = process.stderr.isTTY ? new ProgressLine(process.stderr) : undefined;
  const started = performance.now();
  try {
    // Ctrl-C cancels cleanly: the converter removes its temporary file (or folder).
    const interrupt = new AbortController();
    const onSigint = () => interrupt.abort(new Error('interrupted'));
    process.once('SIGINT', onSigint);
    const common = {
      checkpoint: parsed.checkpoint,
      output: parsed.output,
      signal: interrupt.signal,
      onProgress: progress && ((p: ConvertProgress) => progress.update(progressText(p), p.bytesWritten === p.totalBytes)),
    };
    const summary = await (parsed.target === 'sglang'
      ? exportForSglang(common).then((r) => `Wrote ${r.output} for SGLang (${megabytes(r.backboneBytes)} of backbone weights, ${r.files.length} files)`)
      : convertCheckpoint({ ...common, type: parsed.type }).then((r) => `Wrote ${r.output} (${parsed.type}, ${megabytes(r.bytes)}, ${r.tensors} tensors)`)
    ).finally(() => process.off('SIGINT', onSigint));
    progress?.clear();
    process.stdout.write(`${summary} in ${seconds(performance.now() - started)}\n`);
    return 0;
  } finally {
    progress?.clear();
  }
}
