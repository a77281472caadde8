import { describe, expect, it } from 'vitest';
import { NIFTY_INDEX_TOKEN } from '../nifty50.ts';
import { buildNifty50Universe } from './universe.ts';
import { bySymbol, universe } from '../../../test/support/universe.ts';

describe('buildNifty50Universe', () => {
  it('lists the index, 50 stocks, 3 futures and 81 strikes x CE/PE for each option expiry', () => {
    const u = universe();
    const index = u.filter((t) => t.segment === 'INDICES');
    const stocks = u.filter((t) => t.segment === 'NSE');
    const futs = u.filter((t) => t.segment === 'NFO-FUT');
    const opts = u.filter((t) => t.segment === 'NFO-OPT');
    expect(index).toHaveLength(1);
    expect(index[0]).toMatchObject({ instrumentToken: NIFTY_INDEX_TOKEN, tradingsymbol: 'NIFTY 50', instrumentType: 'EQ', exchange: 'NSE' });
    expect(stocks).toHaveLength(50);
    expect(stocks.every((t) => t.tickSize === 0.05 && t.lotSize === 1 && t.instrumentType === 'EQ')).toBe(true);
    expect(futs.map((t) => t.tradingsymbol)).toEqual(['NIFTY25DECFUT', 'NIFTY26JANFUT', 'NIFTY26FEBFUT']);
    // 4 weeklies + 3 monthlies, the December monthly not among the weeklies: 7 expiries.
    const expiries = [...new Set(opts.map((t) => t.expiry))];
    expect(expiries).toEqual(['2025-12-02', '2025-12-09', '2025-12-16', '2025-12-23', '2025-12-30', '2026-01-27', '2026-02-24']);
    expect(opts).toHaveLength(7 * 81 * 2);
    const strikes = [...new Set(opts.map((t) => t.strike))].sort((a, b) => a - b);
    expect(strikes[0]).toBe(24000);
    expect(strikes.at(-1)).toBe(28000);
    expect(strikes.every((s) => s % 50 === 0)).toBe(true);
    expect(opts.every((t) => t.tickSize === 0.05 && t.lotSize === 75 && t.name === 'NIFTY' && t.exchange === 'NFO')).toBe(true);
    expect(bySymbol(u, 'NIFTY25D0924000CE').expiry).toBe('2025-12-09');
    expect(bySymbol(u, 'NIFTY26JAN28000PE').instrumentType).toBe('PE');
  });

  it('gives every instrument a unique Kite-style token: segment in the low byte, exchange token above it', () => {
    const u = universe();
    expect(new Set(u.map((t) => t.instrumentToken)).size).toBe(u.length);
    for (const t of u) {
      const seg = t.segment === 'INDICES' ? 9 : t.exchange === 'NFO' ? 2 : 1;
      expect(t.instrumentToken & 0xff).toBe(seg);
      expect(t.instrumentToken >>> 8).toBe(t.exchangeToken);
      // The official client reads tokens as signed 32-bit integers.
      expect(t.instrumentToken).toBeLessThan(2 ** 31);
    }
  });

  it('is deterministic for a day, and a contract keeps its token on later days', () => {
    expect(universe()).toEqual(universe());
    const later = buildNifty50Universe({ today: new Date('2025-12-05T04:30:00Z'), indexLevel: 26000 });
    expect(bySymbol(later, 'NIFTY25D0924000CE').instrumentToken).toBe(bySymbol(universe(), 'NIFTY25D0924000CE').instrumentToken);
    expect(later.some((t) => t.expiry === '2025-12-02')).toBe(false);
  });
});
