import { describe, expect, it } from 'vitest';
import { emptyWireTick, encodeFrame, CollectingSink, decodeFrame, DecodeStats, type WireTick } from '../../src/kite/codec.ts';
import { Kind } from '../../src/core/packet-slot.ts';
import type { Instrument } from '../../src/core/instrument.ts';
import { InstrumentTable } from './instrument-table.ts';
import { QuarantineReason } from '../../src/core/tick.ts';
import { Validator } from './validate.ts';

const NOW_S = Date.parse('2025-12-03T05:00:00Z') / 1000;
const EQ: Instrument = { instrumentToken: 408065, exchangeToken: 1594, tradingsymbol: 'INFY', name: 'INFOSYS', lastPrice: 0, expiry: '', strike: 0, tickSize: 0.05, lotSize: 1, instrumentType: 'EQ', segment: 'NSE', exchange: 'NSE' };
const IDX: Instrument = { ...EQ, instrumentToken: 256265, exchangeToken: 1001, tradingsymbol: 'NIFTY 50', segment: 'INDICES' };
const CE: Instrument = { ...EQ, instrumentToken: 12345602, exchangeToken: 48225, tradingsymbol: 'NIFTY25D0926000CE', name: 'NIFTY', expiry: '2025-12-09', strike: 26000, instrumentType: 'CE', segment: 'NFO-OPT', exchange: 'NFO', lotSize: 75 };
const table = new InstrumentTable([EQ, IDX, CE]);

function full(token: number, over: Partial<WireTick> = {}): WireTick {
  const t = emptyWireTick(token === IDX.instrumentToken ? Kind.INDEX_FULL : Kind.FULL, token);
  Object.assign(t, { lastPrice: 150_000, close: 150_000, volume: 1000, exchangeTime: NOW_S, oiHigh: 0, oiLow: 0 }, over);
  return t;
}

/** Check ticks in order; returns each reason (0 = passed). */
function check(ticks: WireTick[], v = new Validator(table), recvS = NOW_S): number[] {
  const sink = new CollectingSink();
  decodeFrame(encodeFrame(ticks), { recvTimeUs: recvS * 1e6, seq: 1, conn: 0 }, sink, new DecodeStats());
  const out: number[] = [];
  for (let i = 0; i < sink.count; i++) {
    const b = i * 52;
    out.push(v.check(sink.views, b, table.row(sink.views.u32[b])));
  }
  return out;
}

describe('validate', () => {
  it('passes a sane stream and derives volume deltas', () => {
    const v = new Validator(table);
    expect(check([full(408065), full(408065, { volume: 1500 })], v)).toEqual([0, 0]);
    expect(v.volumeDelta).toBe(500);
  });

  it('names each failure', () => {
    const R = QuarantineReason;
    expect(check([full(999_999)])).toEqual([R.UNKNOWN_TOKEN]);
    expect(check([full(408065, { kind: Kind.INDEX_FULL })])).toEqual([R.KIND_MISMATCH]);
    expect(check([full(408065, { kind: Kind.INDEX_QUOTE })])).toEqual([R.KIND_MISMATCH]);
    expect(check([full(256265, { kind: Kind.FULL })])).toEqual([R.KIND_MISMATCH]);
    expect(check([full(256265, { kind: Kind.QUOTE })])).toEqual([R.KIND_MISMATCH]);
    expect(check([full(408065, { lastPrice: 0 })])).toEqual([R.BAD_PRICE]);
    expect(check([full(408065, { lastPrice: -5 })])).toEqual([R.BAD_PRICE]);
    expect(check([full(408065), full(408065, { lastPrice: 190_000 })])).toEqual([0, R.PRICE_JUMP]);
    expect(check([full(408065, { lastPrice: 210_000 })])).toEqual([R.OUT_OF_DAY_BAND]);
    expect(check([full(408065, { exchangeTime: NOW_S + 60 })])).toEqual([R.TIME_FUTURE]);
    expect(check([full(408065, { exchangeTime: NOW_S - 3600 })])).toEqual([R.TIME_PAST]);
    expect(check([full(408065, { volume: 2000 }), full(408065, { volume: 1999 })])).toEqual([0, R.VOLUME_DECREASED]);
    expect(check([full(408065, { oiHigh: 10 }), full(408065, { oiHigh: 9 })])).toEqual([0, R.OI_RANGE]);
  });

  it('passes every kind the instrument\'s class can send, whatever mode the ingest asked for', () => {
    // Kite answers a subscribe in quote mode until the mode message takes effect: after a reconnect
    // a token followed in full mode ticks in quote packets for a while, then in full ones.
    const v = new Validator(table);
    const quote = full(408065, { kind: Kind.QUOTE, exchangeTime: 0, volume: 1000 });
    expect(check([quote, full(408065, { volume: 1200 }), { ...quote, volume: 1300 }, full(408065, { kind: Kind.LTP })], v)).toEqual([0, 0, 0, 0]);
    expect(v.volumeDelta).toBe(0);
    const idx = new Validator(table);
    expect(check([full(256265, { kind: Kind.INDEX_QUOTE, exchangeTime: 0 }), full(256265), full(256265, { kind: Kind.LTP })], idx)).toEqual([0, 0, 0]);
  });

  it('derives volume deltas across quote and full packets of one token', () => {
    const v = new Validator(table);
    expect(check([full(408065, { volume: 1000 }), full(408065, { kind: Kind.QUOTE, exchangeTime: 0, volume: 1250 })], v)).toEqual([0, 0]);
    expect(v.volumeDelta).toBe(250);
    expect(check([full(408065, { volume: 1240 })], v)).toEqual([QuarantineReason.VOLUME_DECREASED]);
  });

  it('lets option premiums move far, within the factor band', () => {
    const v = new Validator(table);
    expect(check([full(CE.instrumentToken, { lastPrice: 1000, close: 500 }), full(CE.instrumentToken, { lastPrice: 4000, close: 500 })], v)).toEqual([0, 0]);
    expect(check([full(CE.instrumentToken, { lastPrice: 30_000, close: 500 })], v)).toEqual([QuarantineReason.PRICE_JUMP]);
  });

  it('does not judge by market hours: a 02:00 IST tick passes', () => {
    const night = Date.parse('2025-12-02T20:30:00Z') / 1000;
    expect(check([full(408065, { exchangeTime: night })], new Validator(table), night)).toEqual([0]);
  });

  it('starts a new session at the IST day change: volume may restart', () => {
    const v = new Validator(table);
    const next = NOW_S + 86_400;
    expect(check([full(408065, { volume: 5000 })], v)).toEqual([0]);
    expect(check([full(408065, { volume: 10, exchangeTime: next })], v, next)).toEqual([0]);
    expect(v.volumeDelta).toBe(0);
  });

  it('counts rejections by reason and keeps state on the last good tick', () => {
    const v = new Validator(table);
    check([full(408065, { volume: 100 }), full(408065, { volume: 50 }), full(408065, { volume: 120 })], v);
    expect(v.rejected[QuarantineReason.VOLUME_DECREASED]).toBe(1);
    expect(v.passed).toBe(2);
    expect(v.volumeDelta).toBe(20);
  });
});
