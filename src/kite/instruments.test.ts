import { describe, expect, it } from 'vitest';
import { AppError } from '../core/errors.ts';
import {
  buildNifty50Universe,
  CSV_HEADER,
  type Instrument,
  istDay,
  isoOfDay,
  niftyExpiries,
  niftyFutureSymbol,
  niftyOptionSymbol,
  dayOfIso,
  parseCsv,
  selectUniverse,
  toCsv,
} from './instruments.ts';
import { NIFTY50, NIFTY50_SYMBOLS, NIFTY_INDEX_TOKEN } from './nifty50.ts';

/** Monday 1 December 2025, 10:00 IST. */
const MON_1_DEC_2025 = new Date('2025-12-01T04:30:00Z');

function universe(): Instrument[] {
  return buildNifty50Universe({ today: MON_1_DEC_2025, indexLevel: 26000 });
}

function bySymbol(list: readonly Instrument[], symbol: string): Instrument {
  const t = list.find((x) => x.tradingsymbol === symbol);
  if (t === undefined) throw new Error(`no ${symbol}`);
  return t;
}

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

describe('CSV', () => {
  it('writes rows exactly as Kite does: name quoted, the rest bare, index rows EQ in INDICES', () => {
    const lines = toCsv(universe()).split('\n');
    expect(lines[0]).toBe(CSV_HEADER);
    expect(lines[1]).toBe('256265,1001,NIFTY 50,"NIFTY 50",26000,,0,0,0,EQ,INDICES,NSE');
    expect(lines).toContain('738561,2885,RELIANCE,"RELIANCE INDUSTRIES",1550,,0,0.05,1,EQ,NSE,NSE');
    const opt = lines.find((l) => l.includes(',NIFTY25DEC26000CE,'))!;
    expect(opt).toMatch(/^\d+,\d+,NIFTY25DEC26000CE,"NIFTY",0,2025-12-30,26000,0\.05,75,CE,NFO-OPT,NFO$/);
    expect(toCsv(universe()).endsWith('\n')).toBe(false);
  });

  it('round-trips the universe through toCsv and parseCsv', () => {
    const u = universe();
    const parsed = parseCsv(toCsv(u));
    expect(parsed.badRows).toBe(0);
    expect(parsed.instruments).toEqual(u);
  });

  it('reads rows from a real Kite dump', () => {
    const text =
      `${CSV_HEADER}\n` +
      '738561,2885,RELIANCE,"RELIANCE INDUSTRIES",0,,0,0.05,1,EQ,NSE,NSE\n' +
      '39497986,154289,RELIANCE23NOV1840CE,"RELIANCE",0,2023-11-30,1840,0.05,250,CE,NFO-OPT,NFO\n' +
      '5720322,22345,NIFTY15DECFUT,,78.0,2015-12-31,,0.05,75,FUT,NFO-FUT,NFO\n' +
      '645639,22347,SILVER15DECFUT,,7800.0,2015-12-31,,1,1,FUT,MCX,MCX\n';
    const { instruments, badRows } = parseCsv(text);
    expect(badRows).toBe(0);
    expect(instruments).toHaveLength(4);
    expect(instruments[1]).toEqual({
      instrumentToken: 39497986,
      exchangeToken: 154289,
      tradingsymbol: 'RELIANCE23NOV1840CE',
      name: 'RELIANCE',
      lastPrice: 0,
      expiry: '2023-11-30',
      strike: 1840,
      tickSize: 0.05,
      lotSize: 250,
      instrumentType: 'CE',
      segment: 'NFO-OPT',
      exchange: 'NFO',
    });
    expect(instruments[2].strike).toBe(0);
    expect(instruments[2].lastPrice).toBe(78);
    expect(instruments[3].segment).toBe('MCX');
  });

  it('handles quoted commas, doubled quotes, CRLF, a byte-order mark and blank lines', () => {
    const text =
      `\ufeff${CSV_HEADER}\r\n` +
      '1,0,A&B,"A, B ""AND"" C",10.5,,0,0.05,1,EQ,NSE,NSE\r\n' +
      '\r\n' +
      '"513",2,"X",Y,0,,0,0.05,1,EQ,NSE,NSE\r\n';
    const { instruments, badRows } = parseCsv(text);
    expect(badRows).toBe(0);
    expect(instruments.map((t) => t.name)).toEqual(['A, B "AND" C', 'Y']);
    expect(instruments[0].exchangeToken).toBe(0);
    expect(instruments[1].instrumentToken).toBe(513);
    expect(instruments[1].tradingsymbol).toBe('X');
  });

  it('counts and skips bad rows without throwing', () => {
    const good = '408065,1594,INFY,"INFOSYS",0,,0,0.05,1,EQ,NSE,NSE';
    const text = [
      CSV_HEADER,
      good,
      '408065,1594,INFY,"INFOSYS",0,,0,0.05,1,EQ,NSE', // 11 fields
      'abc,1594,INFY,"INFOSYS",0,,0,0.05,1,EQ,NSE,NSE', // token not a number
      '408065,1594,INFY,"INFOSYS",0,30-11-2023,0,0.05,1,EQ,NSE,NSE', // expiry format
      '408065,1594,INFY,"INFOSYS",0,,0,0.05,1,XX,NSE,NSE', // instrument type
      '408065,1594,INFY,"INFOSYS",zero,,0,0.05,1,EQ,NSE,NSE', // price
      '408065,1594,,"INFOSYS",0,,0,0.05,1,EQ,NSE,NSE', // no symbol
      '408065,1594,INFY,"INFOSYS,0,,0,0.05,1,EQ,NSE,NSE', // unterminated quote: costs this row only
      good,
      '408065,1594,INFY,"INFOSYS",0,,0,0.05,1,EQ,NSE,"NSE', // unterminated in the last field
    ].join('\n');
    const r = parseCsv(text);
    expect(r.instruments).toHaveLength(2);
    expect(r.badRows).toBe(8);
    expect(r.badLines).toEqual([3, 4, 5, 6, 7, 8, 9, 11]);
  });

  it('throws INSTRUMENTS_BAD_HEADER for something that is not the master', () => {
    for (const text of ['', '<html>502 Bad Gateway</html>', 'instrument_token,tradingsymbol\n1,X']) {
      let err: unknown;
      try {
        parseCsv(text);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(AppError);
      expect((err as AppError).code).toBe('INSTRUMENTS_BAD_HEADER');
    }
  });
});

describe('NIFTY expiries and symbols', () => {
  it('takes the calendar day in India, not UTC', () => {
    // 20:00 UTC Monday is 01:30 Tuesday in India.
    expect(isoOfDay(istDay(new Date('2025-12-01T20:00:00Z')))).toBe('2025-12-02');
    expect(isoOfDay(istDay(new Date('2025-12-01T18:00:00Z')))).toBe('2025-12-01');
  });

  it('lists weekly Tuesdays and last-Tuesday monthlies, today included', () => {
    const e = niftyExpiries(istDay(MON_1_DEC_2025));
    expect(e.weekly.map(isoOfDay)).toEqual(['2025-12-02', '2025-12-09', '2025-12-16', '2025-12-23']);
    expect(e.monthly.map(isoOfDay)).toEqual(['2025-12-30', '2026-01-27', '2026-02-24']);
    const onExpiry = niftyExpiries(dayOfIso('2025-12-30'));
    expect(isoOfDay(onExpiry.weekly[0])).toBe('2025-12-30');
    expect(isoOfDay(onExpiry.monthly[0])).toBe('2025-12-30');
    const afterMonthly = niftyExpiries(dayOfIso('2025-12-31'));
    expect(afterMonthly.monthly.map(isoOfDay)).toEqual(['2026-01-27', '2026-02-24', '2026-03-31']);
  });

  it('names contracts like Kite: weekly YY+month code+DD, monthly YY+MON', () => {
    expect(niftyOptionSymbol(dayOfIso('2025-12-09'), 24000, 'CE')).toBe('NIFTY25D0924000CE');
    expect(niftyOptionSymbol(dayOfIso('2025-10-07'), 25100, 'PE')).toBe('NIFTY25O0725100PE');
    expect(niftyOptionSymbol(dayOfIso('2026-01-06'), 26000, 'CE')).toBe('NIFTY2610626000CE');
    expect(niftyOptionSymbol(dayOfIso('2025-11-11'), 25500, 'PE')).toBe('NIFTY25N1125500PE');
    expect(niftyOptionSymbol(dayOfIso('2025-12-30'), 24000, 'CE')).toBe('NIFTY25DEC24000CE');
    expect(niftyFutureSymbol(dayOfIso('2025-12-30'))).toBe('NIFTY25DECFUT');
  });
});

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
