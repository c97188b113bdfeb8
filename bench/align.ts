/**
 * Cost of the stream aligner per delta on the cases that used to be quadratic (one unbroken run) and on normal
 * text: `npx tsx bench/align.ts`.
 */
import { TextAligner } from '../src/align/text-aligner.js';

function repeat(units: string[], count: number): string {
  let out = '';
  for (let i = 0; i < count; i++) out += units[i % units.length];
  return out;
}

const words = 'the quick brown fox jumps over the lazy dog, and then it rests. ';
const cases: [string, string[]][] = [
  ['10,000 one-char deltas: normal words', repeat([...words], 10_000).split('')],
  ['10,000 one-char deltas: one word', repeat(['a'], 10_000).split('')],
  ['10,000 one-char deltas: CJK, no punctuation', repeat(['龘', '中', '文', '字', '符'], 10_000).split('')],
  ['10,000 one-char deltas: !!!!', repeat(['!'], 10_000).split('')],
  ['one 100,000-char delta: normal words', [repeat([...words], 100_000)]],
  ['one 100,000-char delta: one word', [repeat(['a'], 100_000)]],
];

for (const [name, deltas] of cases) {
  const aligner = new TextAligner('\n\n');
  const start = performance.now();
  let released = 0;
  for (const delta of deltas) for (const chunk of aligner.push(delta)) released += chunk.text.length;
  for (const chunk of aligner.flush()) released += chunk.text.length;
  const ms = performance.now() - start;
  if (released !== deltas.reduce((n, d) => n + d.length, 0)) throw new Error(`${name}: released text differs`);
  console.log(`${name.padEnd(46)} ${ms.toFixed(1).padStart(8)} ms ${((ms * 1000) / deltas.length).toFixed(1).padStart(9)} µs/delta`);
}
