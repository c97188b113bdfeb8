/**
 * npm run bench:sglang — what the SGLang path costs per append: bytes on the wire and time, through
 * Qwen3Guard.sglang and the loopback fixture server (test/fixtures/sglang-server.ts) serving the planted
 * checkpoint (hidden size 64, one layer).
 *
 * The fixture computes every request in float64 JavaScript from scratch (no KV cache), so its times are not
 * SGLang's: they are this client's round trip plus a reference model, and grow with the sequence. The bytes are
 * the contract's: a row of hidden_size numbers per recomputed token, here 64 float32 values of a hand-set
 * checkpoint. At 0.6B width (1024) the bytes are estimated from bf16-rounded rows, as a bf16 server writes them,
 * and the client's own cost there (JSON parse, mapping, the response head in float32) is timed on a synthetic
 * answer of that shape.
 */
import { cpus } from 'node:os';
import { join } from 'node:path';
import { GUARD_SUBDIR } from '../src/convert/sglang-heads-format.js';
import { Qwen3Guard } from '../src/index.js';
import { parseGenerateAnswer } from '../src/sglang/generate.js';
import { positionStates } from '../src/sglang/positions.js';
import { tokenLabels, type SglangHead, type SglangHeads } from '../src/sglang/heads.js';
import { plantedSglang } from '../test/fixtures/guard-kinds.js';

const APPENDS = 24;
const WORDS = 'The river winds through the valley past old mills and quiet farms where herons wait in the shallows and the evening light turns the water to copper'.split(' ');
const PROMPT = `Could you describe a calm river valley in autumn for a short story? ${'It has mills, farms, herons and a market town. '.repeat(12)}`;

const planted = await plantedSglang();
const wire = { sent: 0, received: 0, requests: 0 };
const guard = Qwen3Guard.sglang({
  baseURL: planted.server.url,
  heads: join(planted.served, GUARD_SUBDIR),
  timeoutMs: 120_000,
  fetch: async (input, init) => {
    wire.sent += Buffer.byteLength(String(init?.body ?? ''));
    wire.requests++;
    const response = await fetch(input, init);
    wire.received += (await response.clone().arrayBuffer()).byteLength;
    return response;
  },
});
await guard.ready();
const reset = () => Object.assign(wire, { sent: 0, received: 0, requests: 0 });
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

console.log(`\nsglang benchmark — ${cpus()[0]?.model ?? 'cpu'}, ${cpus().length} cores, node ${process.version}`);
console.log('fixture server: float64 reference of the planted checkpoint (hidden 64, 1 layer), recomputing each request in full: not SGLang\'s speed\n');

// The first prompt: sent without states, then for the verdict's state (one row).
{
  const session = await guard.createSession();
  reset();
  const started = performance.now();
  await session.checkPrompt([{ role: 'user', content: PROMPT }]);
  const ms = performance.now() - started;
  const ids = planted.server.requests.at(-1)!.body!.input_ids as number[];
  console.log(`first prompt: ${ids.length} tokens, ${wire.requests} requests, ${ms.toFixed(0)} ms, sent ${wire.sent} B, answers ${wire.received} B`);
  await session.dispose();
}

console.log('\nwords/append | tokens/append | ms/append p50 (fixture) | request B/append | answer B/append | answer B/token');
for (const words of [1, 4, 16]) {
  const session = await guard.createSession();
  await session.checkPrompt([{ role: 'user', content: `Tell me about rivers (${words} words per append).` }]);
  await session.appendText('answer', 'Well,');
  reset();
  const times: number[] = [];
  let tokens = 0;
  for (let i = 0; i < APPENDS; i++) {
    const text = Array.from({ length: words }, (_, k) => ` ${WORDS[(i * words + k) % WORDS.length]}`).join('');
    const started = performance.now();
    tokens += (await session.appendText('answer', text)).length;
    times.push(performance.now() - started);
  }
  const per = (n: number) => (n / APPENDS).toFixed(0);
  console.log(
    `${String(words).padStart(12)} | ${(tokens / APPENDS).toFixed(1).padStart(13)} | ${median(times).toFixed(1).padStart(23)} | ${per(wire.sent).padStart(16)} | ${per(wire.received).padStart(15)} | ${(wire.received / tokens).toFixed(0).padStart(14)}`,
  );
  await session.dispose();
}
await guard.dispose();
await planted.remove();

// The client's side at Qwen3Guard-Stream-0.6B's width (hidden 1024, guard_inner_size 512): a bf16 server's answer.
const H = 1024;
const G = 512;
let seed = 19;
const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31) * 2 - 1;
const bits = new Uint32Array(1);
const asFloat = new Float32Array(bits.buffer);
const bf16 = (x: number) => {
  asFloat[0] = x;
  bits[0] = (bits[0] + 0x7fff + ((bits[0] >> 16) & 1)) & 0xffff0000;
  return asFloat[0];
};
const row = () => {
  const x = Array.from({ length: H }, random);
  const rms = Math.sqrt(x.reduce((s, v) => s + v * v, 0) / H);
  return x.map((v) => bf16(v / rms));
};
const head = (risk: number, categories: number): SglangHead => {
  const riskLabels = ['Safe', 'Unsafe', 'Controversial'].slice(0, risk);
  const categoryLabels = Array.from({ length: categories }, (_, i) => `c${i}`);
  const layout = {
    riskLabels,
    categoryLabels,
    normWeight: Float64Array.from({ length: G }, () => 1),
    riskHead: Float64Array.from({ length: risk * G }, random),
    categoryHead: Float64Array.from({ length: categories * G }, random),
    preRow: -1,
    risk: { start: -1, scaleLog2: new Int32Array(0) },
    category: { start: -1, scaleLog2: new Int32Array(0) },
  };
  return { riskLabels, categoryLabels, pre: Float32Array.from({ length: G * H }, () => random() / 32), layout };
};
const heads: SglangHeads = { hiddenSize: H, innerSize: G, epsilon: 1e-6, finalNorm: new Float32Array(H).fill(1), response: head(3, 9), query: head(3, 10) };
console.log('\nclient at hidden 1024 (0.6B), bf16-rounded post-norm rows: answer bytes, then JSON.parse + mapping + response heads per answer (median of 9)');
for (const tokens of [1, 16, 256]) {
  const text = JSON.stringify({ text: '', output_ids: [0], meta_info: { cached_tokens: 100, hidden_states: [Array.from({ length: tokens }, row)] } });
  const times: number[] = [];
  for (let i = 0; i < 9; i++) {
    const started = performance.now();
    const states = positionStates({ inputLength: 100 + tokens, from: 100 }, parseGenerateAnswer(JSON.parse(text)), H);
    for (let p = 100; p < 100 + tokens; p++) tokenLabels(heads, states.at(p));
    times.push(performance.now() - started);
  }
  console.log(`  ${String(tokens).padStart(3)} tokens: ${text.length} B (${(text.length / tokens / H).toFixed(1)} B per value, ${(text.length / tokens / 1024).toFixed(1)} KiB per token), ${median(times).toFixed(2)} ms (${(median(times) / tokens).toFixed(3)} ms per token)`);
}
