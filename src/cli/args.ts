import { parseArgs, type ParseArgsConfig } from 'node:util';

/** A command line that cannot be run as written: the CLI prints the message and the command's usage, exit 2. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

export const MAIN_USAGE = `Usage:
  qwen3guard pull [0.6B|4B|8B|<owner/repo>] [--type q8_0|q4_0|f16|f32] [--revision R] [--cache DIR]
                  (gen-0.6B, gen-4B, gen-8B: Qwen3Guard-Gen)
  qwen3guard list [--cache DIR]
  qwen3guard convert <checkpoint-dir> -o <file.gguf> [--type f32|f16|q8_0|q4_0]
  qwen3guard convert --for sglang <checkpoint-dir> <output-dir>
  qwen3guard classify --model <name|file.gguf> --prompt <text> [--response <text>] [--reasoning <text>]
                      [--threads N] [--json]
  qwen3guard chat --model <name|file.gguf> [--base-url URL] [--chat-model NAME] [--api-key-env VAR]
                  [--gpu auto|cpu|cuda|vulkan|metal] [--threads N] [--system TEXT]
  qwen3guard serve --model <name|file.gguf> [--gen-model <name|file.gguf>] [--host H] [--port N]
                   [--threads N] [--gpu ...] [--max-sessions N] [--context-size N] [--api-key-file FILE]
  qwen3guard eval --model <name|file.gguf> --data <file.jsonl|hf:owner/name:split> [--out results.jsonl]
                  [--summary summary.json] [--report report.html] [--compare <model>] [--limit N] [--concurrency N]
  qwen3guard --help | --version

Run 'qwen3guard <command> --help' for the options of a command.`;

export const CONVERT_USAGE = `Usage: qwen3guard convert <checkpoint-dir> -o <file.gguf> [--type f32|f16|q8_0|q4_0]
       qwen3guard convert --for sglang <checkpoint-dir> <output-dir>`;

export const CONVERT_HELP = `${CONVERT_USAGE}

Converts a Hugging Face Qwen3Guard checkpoint into one GGUF file: Stream (with its heads), or Gen (a plain
qwen3 model with its moderation template, which any GGUF runtime loads).

  <checkpoint-dir>     folder with config.json, tokenizer files and *.safetensors
  -o, --output <file>  the .gguf file to write (replaced only once complete)
  -t, --type <type>    weight type: q8_0 (default), q4_0 (smaller and faster on CPUs; its label
                       agreement is in the README), f16 or f32
  --for sglang         write instead a folder that stock SGLang serves as Qwen3ForCausalLM, with the
                       heads file and a tokenizer GGUF in its qwen3guard/ (see docs/sglang.md)
  -h, --help           show this help`;

export const PULL_USAGE = `Usage: qwen3guard pull [0.6B|4B|8B|<owner/repo>] [--type q8_0|q4_0|f16|f32] [--revision R] [--cache DIR]
                       [--keep-checkpoint]`;

export const PULL_HELP = `${PULL_USAGE}

Downloads a Qwen3Guard checkpoint from the Hugging Face hub and converts it into the model cache, where
Qwen3Guard.load({ model: 'qwen3guard-stream-0.6b' }) finds it. An interrupted pull resumes where it stopped.

  0.6B, 4B, 8B         Qwen/Qwen3Guard-Stream-<size> (default 0.6B), or any <owner/repo> with such a checkpoint
  gen-0.6B, gen-4B, gen-8B
                       Qwen/Qwen3Guard-Gen-<size>, cached as qwen3guard-gen-<size> (Qwen3GuardGen.load)
  -t, --type <type>    weight type: q8_0 (default), q4_0, f16 or f32
  --revision <rev>     branch, tag or commit (default main)
  --cache <dir>        the model cache (default $XDG_CACHE_HOME/qwen3guard, else ~/.cache/qwen3guard)
  --keep-checkpoint    keep the raw checkpoint in <cache>/checkpoints
  -h, --help           show this help

Environment: HF_ENDPOINT (a hub mirror, default https://huggingface.co), HF_TOKEN (for gated or private repositories).`;

export const LIST_USAGE = `Usage: qwen3guard list [--cache DIR]`;

export const LIST_HELP = `${LIST_USAGE}

Lists the models in the cache with their sizes.

  --cache <dir>        the model cache (default $XDG_CACHE_HOME/qwen3guard, else ~/.cache/qwen3guard)
  -h, --help           show this help`;

export const CLASSIFY_USAGE = `Usage: qwen3guard classify --model <name|file.gguf> --prompt <text> [--response <text>]
                           [--reasoning <text>] [--threads N] [--json]`;

export const CLASSIFY_HELP = `${CLASSIFY_USAGE}

Classifies a prompt and, optionally, a response: token by token with a Stream model; as a whole, with the
refusal line, with a Gen model (detected from the file).

  -m, --model <model>   a pulled model (qwen3guard-stream-0.6b, qwen3guard-gen-0.6b) or a GGUF (ours or a
                        community Qwen3Guard-Gen file)
  -p, --prompt <text>   the user's message
  -r, --response <text> the assistant's answer to classify token by token
  --reasoning <text>    the assistant's reasoning (thinking), classified before the answer (Stream only)
  --threads <N>         CPU threads (default: the machine's math cores)
  --json                print one JSON object instead of the coloured report
  -h, --help            show this help`;

export const CHAT_USAGE = `Usage: qwen3guard chat --model <name|file.gguf> [--base-url URL] [--chat-model NAME] [--api-key-env VAR]
                       [--gpu auto|cpu|cuda|vulkan|metal] [--threads N] [--system TEXT]`;

export const CHAT_HELP = `${CHAT_USAGE}

A terminal chat with any OpenAI-compatible server (OpenAI, llama.cpp, vLLM, Ollama), guarded by the model:
the prompt verdict and every stop, redaction or flag show on their own line.

  -m, --model <model>    a pulled model (qwen3guard-stream-0.6b) or a GGUF made by 'qwen3guard convert'
  --base-url <url>       the server's API root (default: OPENAI_BASE_URL, else https://api.openai.com/v1)
  --chat-model <name>    the model to chat with (default: CHAT_MODEL, else gpt-4o-mini)
  --api-key-env <var>    the environment variable holding the API key (default: OPENAI_API_KEY; a local
                         server needs none)
  --gpu <backend>        the guard's backend: auto (default), cpu, cuda, vulkan or metal
  --threads <N>          CPU threads for the guard (default: the machine's math cores)
  --system <text>        a system message for the chat model (not sent to the guard)
  -h, --help             show this help

Ctrl-C stops an answer (the server is told to stop); at the prompt it quits (exit 130). Ctrl-D quits (exit 0).`;

export const SERVE_USAGE = `Usage: qwen3guard serve --model <name|file.gguf> [--gen-model <name|file.gguf>] [--host 127.0.0.1]
                        [--port 8080|0] [--threads N] [--gpu auto|cpu|cuda|vulkan|metal] [--max-sessions N]
                        [--context-size N] [--max-waiting N] [--queue-timeout S] [--idle-timeout S] [--drain-timeout S]
                        [--api-key-file FILE] [--reward-scheme hybrid|guard-only] [--helpfulness-url URL]
                        [--log-requests] [--response-probabilities]`;

export const SERVE_HELP = `${SERVE_USAGE}

Serves the guard over HTTP for Qwen3Guard.remote (the protocol in docs/protocol.md), and a Gen model for
Qwen3GuardGen.remote (/v1/completions) and RL trainers (POST /get_reward: OpenRLHF's and slime's shapes, see
docs/rl.md). Prints "listening on http://HOST:PORT" once the model is loaded.

  -m, --model <model>    a Qwen3Guard-Stream model (a pulled name or a GGUF), or a Gen one (completions only)
  --gen-model <model>    a Qwen3Guard-Gen model served beside it at /v1/completions
  --host <host>          address to listen on (default 127.0.0.1; anything but loopback needs an API key)
  --port <N>             port (default 8080; 0 picks a free one)
  --threads <N>          CPU threads (default: the machine's math cores)
  --gpu <backend>        auto (default), cpu, cuda, vulkan or metal
  --max-sessions <N>     conversations moderated at once, each with its own KV cache (default 4)
  --context-size <N>     KV cells per conversation (default 4096)
  --max-waiting <N>      session creations that may wait for a free one; past it 429 (default 4 x max-sessions)
  --queue-timeout <S>    longest wait for a free session before 429 (default 10)
  --idle-timeout <S>     seconds after which a session no request touched is freed (default 30)
  --drain-timeout <S>    on SIGTERM, seconds open sessions may take to finish (default 30)
  --api-key-file <file>  API keys, one per line (several for rotation); else QWEN3GUARD_API_KEY
  --reward-scheme <s>    /get_reward's scheme: hybrid (default) or guard-only
  --helpfulness-url <u>  the helpfulness reward model for hybrid (else H is 0)
  --log-requests         one line per request on stderr (method, route, status, time; never text)
  --response-probabilities
                         exact probabilities for every response token (eval's threshold sweep; slower)
  -h, --help             show this help

On SIGTERM (or Ctrl-C) it stops taking sessions, lets open ones finish up to the drain timeout, and exits 0.
On Linux it runs with MALLOC_ARENA_MAX=2 unless that is set (glibc's per-thread arenas fragment under
node-llama-cpp's worker threads).`;
export const EVAL_USAGE = `Usage: qwen3guard eval --model <name|file.gguf> --data <file.jsonl|hf:owner/name:split> [--out results.jsonl]
                       [--summary summary.json] [--report report.html] [--compare <model>] [--limit N]
                       [--concurrency N] [--threads N] [--cache DIR] [--no-probabilities]`;

export const EVAL_HELP = `${EVAL_USAGE}

Evaluates a Qwen3Guard model (Stream or Gen, detected from the file) on labelled data: Unsafe-class precision,
recall and F1 (Controversial counted as unsafe, and as safe), accuracy, the confusion matrix, per-category scores,
where a Stream guard first flagged each annotated unsafe span, a threshold sweep, latency and throughput.

  -m, --model <model>   a pulled model (qwen3guard-stream-0.6b, qwen3guard-gen-0.6b) or a GGUF
  -d, --data <data>     JSONL, one item a line: Qwen/Qwen3GuardTest's shape ({message, label,
                        unsafe_start_index, unsafe_end_index}) or {id, messages, label, categories,
                        unsafeSpan: {start, end}} (see docs/eval.md); or hf:<owner>/<name>:<split>, fetched
                        from the hub at run time (hf:Qwen/Qwen3GuardTest:response_loc; CC-BY-NC-4.0)
  -o, --out <file>      one result per item (JSONL); the same --out again resumes an interrupted run
  --summary <file>      the summary as JSON ({"models": [...]})
  --report <file>       a self-contained HTML report (charts, misclassified items)
  --compare <model>     a second model, evaluated on the same items and shown side by side
  --limit <N>           the first N usable items only
  --concurrency <N>     items evaluated at once (default 1; the guard gets N sequences)
  --threads <N>         CPU threads (default: the machine's math cores)
  --cache <dir>         the model cache; hub datasets go to <dir>/datasets
  --no-probabilities    load a Stream guard without response probabilities: faster, no threshold sweep
                        for responses
  -h, --help            show this help

Bad lines are reported with their line number and skipped. Ctrl-C stops (exit 130) keeping every finished item
in --out. Environment: HF_ENDPOINT, HF_TOKEN (hub datasets).`;

/** `parseArgs` (strict: pass `strict: true`), with its errors turned into short UsageErrors. */
export function parseCommandLine<T extends ParseArgsConfig>(config: T) {
  try {
    return parseArgs(config);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const message = (error as Error).message;
    if (code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') {
      const name = /'([^']+)'/.exec(message)?.[1];
      throw new UsageError(name ? `unknown option '${name}'` : message);
    }
    if (code === 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL') {
      const value = /'([^']*)'/.exec(message)?.[1];
      throw new UsageError(value !== undefined ? `unexpected argument '${value}'` : message);
    }
    const missing = /^Option '(?:-\w, )?(--[\w-]+) <value>' argument missing/.exec(message);
    if (missing) throw new UsageError(`${missing[1]} needs a value`);
    if (code?.startsWith('ERR_PARSE_ARGS_')) throw new UsageError(message);
    throw error;
  }
}

const GPU_CHOICES = ['auto', 'cpu', 'cuda', 'vulkan', 'metal'] as const;

/** `--gpu`: a backend name, 'cpu' for none. */
export function parseGpu(value: string | undefined): 'auto' | false | 'cuda' | 'vulkan' | 'metal' {
  const gpu = value ?? 'auto';
  if (!(GPU_CHOICES as readonly string[]).includes(gpu)) throw new UsageError(`unknown --gpu '${gpu}': use one of ${GPU_CHOICES.join(', ')}`);
  return gpu === 'cpu' ? false : (gpu as 'auto' | 'cuda' | 'vulkan' | 'metal');
}

/** An option that takes a whole number of at least `min` (`--threads`, `--limit`, `--port`, ...). */
export function parseCount(option: string, value: string | undefined, min = 1): number | undefined {
  if (value === undefined) return undefined;
  const n = /^\s*\d+\s*$/.test(value) ? Number(value) : NaN;
  if (!Number.isSafeInteger(n) || n < min) throw new CommandError(`${option} must be a whole number of at least ${min}, got '${value}'`);
  return n;
}

/** `--threads`: a whole number of at least 1. */
export function parseThreads(value: string | undefined): number | undefined {
  return parseCount('--threads', value);
}

/** A failure the CLI reports as `qwen3guard <command>: <message>` (exit 1), without a stack trace. */
export class CommandError extends Error {
  override readonly name = 'CommandError';
}
