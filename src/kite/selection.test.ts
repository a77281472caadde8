import { describe, expect, it } from 'vitest';
import { AppError } from '../core/errors.ts';
import { NIFTY50_SYMBOLS, NIFTY_INDEX_TOKEN } from './nifty50.ts';
import { selectUniverse } from './selection.ts';
import { bySymbol, universe } from '../../test/support/universe.ts';

describe('selectUniverse', () => {
  it('follows the index, the 50 stocks, the nearest future and CE+PE around the ATM strike', () => {
    const u = universe();
    const tokens = selectUniverse(u, { strikes: 2, expiries: 2, indexLevel: 26030 });
    const byToken = new Map(u.map((t) => [t.instrumentToken, t]));
    const picked = tokens.map((tk) => byToken.get(tk)!);
    expect(picked[0].instrumentToken).toBe(NIFTY_INDEX_TOKEN);
    expect(picked.slice(1, 51).map((t) => t.tradingsymbol)).toEqual([...NIFTY50_SYMBOLS]);
    expect(picked[51].tradingsymbol).toBe('NIFTY25DECFUT');
    const opts = picked.slice(52);
    expect(opts).toHaveLength(2 * 5 * 2);
    expect([...new Set(opts.map((t) => t.expiry))]).toEqual(['2025-12-02', '2025-12-09']);
    // 26030 is nearer 26050 than 26000.
    expect([...new Set(opts.map((t) => t.strike))]).toEqual([25950, 26000, 26050, 26100, 26150]);
    expect(opts.filter((t) => t.instrumentType === 'CE')).toHaveLength(10);
  });

  it('skips expired contracts when told the day', () => {
    const tokens = selectUniverse(universe(), { strikes: 0, expiries: 2, indexLevel: 26000, today: new Date('2025-12-03T04:30:00Z') });
    const byToken = new Map(universe().map((t) => [t.instrumentToken, t]));
    const opts = tokens.map((tk) => byToken.get(tk)!).filter((t) => t.segment === 'NFO-OPT');
    expect(opts.map((t) => t.tradingsymbol)).toEqual(['NIFTY25D0926000CE', 'NIFTY25D0926000PE', 'NIFTY25D1626000CE', 'NIFTY25D1626000PE']);
  });

  it('reports constituents the master lacks instead of failing', () => {
    const u = universe().filter((t) => t.tradingsymbol !== 'INFY');
    let missing: string[] = [];
    const tokens = selectUniverse(u, { strikes: 1, expiries: 1, indexLevel: 26000, onMissing: (m) => (missing = m) });
    expect(missing).toEqual(['NSE:INFY']);
    expect(tokens).toHaveLength(1 + 49 + 1 + 3 * 2);
  });

  it('uses exactly the explicit list: tokens, EXCHANGE:SYMBOL and bare symbols, case-insensitive', () => {
    const u = [
      ...universe(),
      { ...bySymbol(universe(), 'INFY'), instrumentToken: 1_000_004, exchangeToken: 3906, exchange: 'BSE', segment: 'BSE' },
    ];
    const tokens = selectUniverse(u, {
      strikes: 10,
      expiries: 2,
      indexLevel: 26000,
      explicit: ['256265', 'NSE:NIFTY 50', 'INFY', 'nfo:nifty25decfut', 'NIFTY25D0924000CE', 'BSE:INFY'],
    });
    expect(tokens).toEqual([
      256265,
      408065,
      bySymbol(u, 'NIFTY25DECFUT').instrumentToken,
      bySymbol(u, 'NIFTY25D0924000CE').instrumentToken,
      1_000_004,
    ]);
  });

  it('throws UNIVERSE_UNKNOWN_INSTRUMENTS naming every unknown entry', () => {
    let err: unknown;
    try {
      selectUniverse(universe(), { strikes: 1, expiries: 1, indexLevel: 26000, explicit: ['INFY', 'NSE:NOPE', '999', 'NIFTY20JANFUT'] });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(AppError);
    const e = err as AppError;
    expect(e.code).toBe('UNIVERSE_UNKNOWN_INSTRUMENTS');
    expect(e.details.unknown).toEqual(['NSE:NOPE', '999', 'NIFTY20JANFUT']);
    expect(e.message).toContain('NSE:NOPE, 999, NIFTY20JANFUT');
  });
});
