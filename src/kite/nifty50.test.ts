import { describe, expect, it } from 'vitest';
import { NIFTY50, NIFTY50_SYMBOLS } from './nifty50.ts';

describe('nifty50 list', () => {
  it('has 50 distinct NSE cash tokens (segment byte 1)', () => {
    expect(NIFTY50).toHaveLength(50);
    expect(new Set(NIFTY50_SYMBOLS).size).toBe(50);
    expect(new Set(NIFTY50.map((c) => c.token)).size).toBe(50);
    for (const c of NIFTY50) {
      expect(c.token & 0xff).toBe(1);
      expect(c.level).toBeGreaterThan(0);
    }
  });
});
