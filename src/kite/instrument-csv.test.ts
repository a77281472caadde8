import { describe, expect, it } from 'vitest';
import { AppError } from '../core/errors.ts';
import { CSV_HEADER, parseCsv, toCsv } from './instrument-csv.ts';
import { universe } from '../../test/support/universe.ts';

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
