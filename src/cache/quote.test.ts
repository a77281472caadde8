import { describe, expect, it } from 'vitest';
import { N, N_FIELDS } from '../core/tick.ts';
import { quoteFromTick } from './quote.ts';
import { makeTick } from '../../test/support/canonical-fixtures.ts';

describe('quoteFromTick', () => {
  it('maps every canonical field, reading at the given base', () => {
    const t = makeTick(12345, 120.5, 3);
    const ring = new Float64Array(N_FIELDS * 3);
    ring.set(t, N_FIELDS * 2);
    const q = quoteFromTick(ring, N_FIELDS * 2);
    expect(q).toMatchObject({
      token: 12345, mode: 'full', exchTimeMs: t[N.EXCH_TIME_MS], lastTradeMs: t[N.LAST_TRADE_MS],
      price: 120.5, lastQty: 75, avgPrice: 120.15, volume: 3_000_000_003, buyQty: 120_003, sellQty: 98_003,
      ohlc: { open: 101.05, high: 130.1, low: 95.45, close: 100 }, change: 20.5,
      oi: 1_500_003, oiHigh: 1_600_000, oiLow: 1_400_000, dayVwap: 120.3,
      instrumentType: 'CE', strike: 26_000, expiryMs: 1_767_205_800_000, recvTimeUs: t[N.RECV_TIME_US],
    });
  });

  it('splits depth into five bids then five asks, best first, as price/quantity/orders', () => {
    const q = quoteFromTick(makeTick(1, 100), 0);
    expect(q.depth!.buy).toHaveLength(5);
    expect(q.depth!.sell).toHaveLength(5);
    expect(q.depth!.buy[0]).toEqual({ price: 99.95, quantity: 75, orders: 1 });
    expect(q.depth!.sell[0]).toEqual({ price: 100.05, quantity: 450, orders: 6 });
    expect(q.depth!.sell[4].orders).toBe(10);
  });

  it('gives null for what the tick did not carry: depth, last trade time, day VWAP, strike and expiry', () => {
    const q = quoteFromTick(makeTick(256265, 26_000, 1, {
      KIND: 1, DEPTH_LEVELS: 0, LAST_TRADE_MS: 0, DAY_VWAP: NaN, INSTR_TYPE: 0, STRIKE: 0, EXPIRY_MS: 0,
    }), 0);
    expect(q.mode).toBe('ltp');
    expect(q.depth).toBeNull();
    expect(q.lastTradeMs).toBeNull();
    expect(q.dayVwap).toBeNull();
    expect(q.instrumentType).toBe('INDEX');
    expect(q.strike).toBeNull();
    expect(q.expiryMs).toBeNull();
  });
});
