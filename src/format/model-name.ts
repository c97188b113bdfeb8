/** Published sizes by hidden size (config.json `hidden_size`), the same for Stream and Gen. */
const SIZES: Record<number, string> = { 1024: '0.6B', 2560: '4B', 4096: '8B' };

/**
 * The name telemetry and logs give a model: `Qwen3Guard-Stream-0.6B` for a published shape, else the file's own
 * name when it says Qwen3Guard, else the bare variant name.
 */
export function modelName(variant: 'Stream' | 'Gen', hiddenSize: number | undefined, generalName: unknown): string {
  const size = hiddenSize === undefined ? undefined : SIZES[hiddenSize];
  if (size) return `Qwen3Guard-${variant}-${size}`;
  if (typeof generalName === 'string' && /qwen3guard/i.test(generalName)) return generalName;
  return `Qwen3Guard-${variant}`;
}
