import { describe, expect, it } from 'vitest';
import { decideResponse, type LabeledToken } from '../src/policy/decision.js';

const t = (labels: string): LabeledToken[] =>
  [...labels].map((c, i) => ({
    riskLevel: c === 'U' ? 'Unsafe' : c === 'C' ? 'Controversial' : 'Safe',
    category: c === 'S' ? null : `cat${i}`,
  }));

describe('decideResponse (official consecutive rule)', () => {
  it('is Safe without two consecutive equal non-Safe labels', () => {
    expect(decideResponse(t(''))).toEqual({ riskLevel: 'Safe', tokenIndex: null, category: null });
    expect(decideResponse(t('SUSUSCSC'))).toEqual({ riskLevel: 'Safe', tokenIndex: null, category: null });
    // An Unsafe next to a Controversial is not a pair.
    expect(decideResponse(t('SUCUCS')).riskLevel).toBe('Safe');
  });

  it('flags at the second token of the first pair, with that token category', () => {
    expect(decideResponse(t('SSUUS'))).toEqual({ riskLevel: 'Unsafe', tokenIndex: 3, category: 'cat3' });
    expect(decideResponse(t('CCS'))).toEqual({ riskLevel: 'Controversial', tokenIndex: 1, category: 'cat1' });
  });

  it('lets an Unsafe pair anywhere outrank an earlier Controversial pair', () => {
    expect(decideResponse(t('CCSSSUU'))).toEqual({ riskLevel: 'Unsafe', tokenIndex: 6, category: 'cat6' });
  });

  it('reads Controversial as Unsafe in strict mode and as Safe in loose mode', () => {
    expect(decideResponse(t('SCC'), { mode: 'strict' })).toEqual({ riskLevel: 'Unsafe', tokenIndex: 2, category: 'cat2' });
    expect(decideResponse(t('SCC'), { mode: 'loose' })).toEqual({ riskLevel: 'Safe', tokenIndex: null, category: null });
    expect(decideResponse(t('CCUU'), { mode: 'loose' }).riskLevel).toBe('Unsafe');
  });

  it('supports other debounce lengths', () => {
    expect(decideResponse(t('U'), { debounce: 1 })).toEqual({ riskLevel: 'Unsafe', tokenIndex: 0, category: 'cat0' });
    expect(decideResponse(t('UUSUUU'), { debounce: 3 }).tokenIndex).toBe(5);
    expect(() => decideResponse(t('U'), { debounce: 0 })).toThrow(/debounce must be a whole number >= 1/);
  });
});
