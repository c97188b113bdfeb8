import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stablePrefixLength } from '../src/align/pretokenizer.js';
import { TextAligner, type AlignedChunk } from '../src/align/text-aligner.js';
import type { LocalGuard } from '../src/engine/guard.js';
import type { TokenVerdict } from '../src/guard/types.js';
import { randomGuard } from './fixtures/guards.js';
import { Rng } from './fixtures/random.js';

const TEXTS = [
  'Hello, world! This is a test of the aligner — with dashes, "quotes" and numbers like 12345.',
  "It's fine; we'll see. I'm here, they're there, you've got it, he'd go, she'll come.",
  'Cafe\u0301 cre\u0300me bru\u0302le\u0301e, Ünïcödé and 한국어 (Hangul ᄒ\u1161\u11AB) 中文字符 and emoji 👋🏽👨‍👩‍👧 🇫🇷!',
  'Code:\n\n```ts\nconst x = a ?? b;\t// tab\r\n```\n\n\n   indented   lines  \n  end  ',
  '((((nested)))) ...!!! ??? a  b   c    d\n \n  \n\t\n',
];

function splits(text: string, rng: Rng): string[][] {
  const chars = [...text]; // code points (a UTF-16 split is tested separately)
  const byChar = chars;
  const units = text.split(''); // UTF-16 units: splits surrogate pairs
  const random: string[] = [];
  for (let i = 0; i < text.length; ) {
    const n = 1 + Math.floor(rng.next() * 6);
    random.push(text.slice(i, i + n));
    i += n;
  }
  return [[text], byChar, units, random];
}

describe('stablePrefixLength', () => {
  it('keeps the last piece and trailing whitespace back', () => {
    expect(stablePrefixLength('Hello wor')).toBe(5);
    expect(stablePrefixLength('Hello ')).toBe(5);
    expect(stablePrefixLength('a  b')).toBe(1);
    expect(stablePrefixLength('a  ')).toBe(1);
    expect(stablePrefixLength('x(')).toBe(1);
    // A newline arriving later joins the whole trailing whitespace run into one piece.
    expect(stablePrefixLength('d\n \n  \n\t')).toBe(1);
    expect(stablePrefixLength('d\n \n  \n\tx')).toBe(7);
    expect(stablePrefixLength('')).toBe(0);
  });

  it('never cuts a base character from its combining mark', () => {
    // "e" and U+0301 are separate pre-tokenizer pieces, but NFC would compose them.
    expect(stablePrefixLength('caf\u0065\u0301 x')).toBe(5);
    expect(stablePrefixLength('cafe\u0301x y')).toBe(6);
    expect(stablePrefixLength('cafe\u0301')).toBe(0);
  });
});

describe('TextAligner through the real tokenizer', () => {
  let guard: LocalGuard;
  beforeAll(async () => {
    guard = await randomGuard('q8_0');
  });
  afterAll(() => guard.dispose());

  async function tokensFor(chunks: string[]): Promise<TokenVerdict[]> {
    const session = await guard.createSession();
    try {
      await session.checkPrompt([{ role: 'user', content: 'hi' }]);
      const aligner = new TextAligner('\n\n');
      const out: TokenVerdict[] = [];
      for (const chunk of chunks) {
        for (const ready of aligner.push(chunk)) out.push(...(await session.appendText('answer', ready.text)));
      }
      for (const rest of aligner.flush()) out.push(...(await session.appendText('answer', rest.text)));
      return out;
    } finally {
      await session.dispose();
    }
  }

  it.each(TEXTS.map((t, i) => [i, t] as const))('gives the same tokens, labels and offsets for every split (text %i)', async (_, text) => {
    const rng = new Rng(99);
    const [whole, ...others] = splits(text, rng);
    const expected = await tokensFor(whole);
    // The tokens cover the text (minus the template's stripped leading newlines) without gaps.
    expect(expected.at(-1)!.end).toBe(text.length);
    for (const chunks of others) {
      const got = await tokensFor(chunks);
      expect(got.map((t) => [t.id, t.start, t.end, t.riskLevel])).toEqual(expected.map((t) => [t.id, t.start, t.end, t.riskLevel]));
    }
  });

  it('keeps the tokenization of random texts of tricky characters under random splits (fuzz)', () => {
    const pool = ['a', 'b', 'Z', 'é', 'e\u0301', '\u0301', ' ', '  ', '\t', '\n', '\r\n', '!', '...', '(', ')', "'s", "'", '1', '23', '中', '👋🏽', '\u200d', 'ᄒ', '\u1161', '-', '_', '\u00a0'];
    const rng = new Rng(2024);
    const tokenize = (text: string) => guard.tokenizeText(text.normalize('NFC'));
    for (let n = 0; n < 3000; n++) {
      let text = '';
      const length = 1 + Math.floor(rng.next() * 25);
      for (let i = 0; i < length; i++) text += pool[Math.floor(rng.next() * pool.length)];
      const aligner = new TextAligner('');
      const ids: number[] = [];
      for (let i = 0; i < text.length; ) {
        const step = 1 + Math.floor(rng.next() * 4);
        for (const chunk of aligner.push(text.slice(i, i + step))) ids.push(...tokenize(chunk.text));
        i += step;
      }
      for (const chunk of aligner.flush()) ids.push(...tokenize(chunk.text));
      expect(ids, JSON.stringify(text)).toEqual(tokenize(text));
    }
  });

  it('releases nothing of a word that may still grow', () => {
    const aligner = new TextAligner('\n\n');
    const joined = (chunks: AlignedChunk[]) => chunks.map((c) => c.text).join('');
    expect(joined(aligner.push('Hel'))).toBe('');
    expect(joined(aligner.push('lo wo'))).toBe('Hello');
    expect(joined(aligner.push('rld'))).toBe('');
    expect(aligner.held).toBe(6);
    expect(joined(aligner.flush())).toBe(' world');
  });
});
