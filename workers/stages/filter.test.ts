import { describe, expect, it } from 'vitest';
import { CollectingSink, decodeFrame, DecodeStats, emptyWireTick, encodeFrame, type WireTick } from '../../src/kite/codec.ts';
import { Kind, WORDS } from '../../src/core/packet-slot.ts';
import { FieldGroup, Filter } from './filter.ts';

function records(ticks: WireTick[], recvUs = 1) {
  const sink = new CollectingSink();
  decodeFrame(encodeFrame(ticks), { recvTimeUs: recvUs, seq: recvUs, conn: recvUs % 2 }, sink, new DecodeStats());
  return sink;
}

function tick(token: number, price: number, volume = 100, depthQty = 1): WireTick {
  const t = emptyWireTick(Kind.FULL, token);
  t.lastPrice = price;
  t.volume = volume;
  t.depth[0].quantity = depthQty;
  return t;
}

/** The quote-mode packet of a full one: its first 44 bytes on the wire. */
function quoteOf(t: WireTick): WireTick {
  const q = emptyWireTick(Kind.QUOTE, t.token);
  for (const k of ['lastPrice', 'lastQty', 'avgPrice', 'volume', 'buyQty', 'sellQty', 'open', 'high', 'low', 'close'] as const) q[k] = t[k];
  return q;
}

describe('filter', () => {
  it('drops the reconnect snapshot: the previous packet again, whatever connection or time it came with', () => {
    const f = new Filter(4);
    const a = records([tick(1, 100), tick(1, 101)], 1);
    const again = records([tick(1, 101)], 2);
    expect(f.isDuplicate(a.views, 0, 0)).toBe(false);
    expect(f.isDuplicate(a.views, WORDS, 0)).toBe(false);
    expect(f.isDuplicate(again.views, 0, 0)).toBe(true);
    expect(f.duplicates).toBe(1);
  });

  it('keeps a price that returns to an earlier value (A, B, A are three ticks)', () => {
    const f = new Filter(4);
    const r = records([tick(1, 100), tick(1, 105), tick(1, 100), tick(1, 105), tick(1, 100)]);
    for (let i = 0; i < 5; i++) expect(f.isDuplicate(r.views, i * WORDS, 0)).toBe(false);
    expect(f.duplicates).toBe(0);
  });

  it('drops only a repeat of the token\'s immediately previous packet, whatever other tokens came between', () => {
    const f = new Filter(4);
    const r = records([tick(1, 100), tick(2, 100), tick(1, 100), tick(2, 101), tick(2, 101), tick(1, 100)]);
    const rows = [0, 1, 0, 1, 1, 0];
    expect(rows.map((row, i) => f.isDuplicate(r.views, i * WORDS, row))).toEqual([false, false, true, false, true, true]);
    expect(f.duplicates).toBe(3);
  });

  it('keeps a tick whose payload differs in any field', () => {
    const f = new Filter(4);
    const a = records([tick(1, 100), tick(1, 100, 101)]);
    expect(f.isDuplicate(a.views, 0, 0)).toBe(false);
    expect(f.isDuplicate(a.views, WORDS, 0)).toBe(false);
  });

  it('stores one row for a trade that comes as a quote packet and then as the full packet of it', () => {
    const f = new Filter(4);
    const stored = tick(1, 100, 400);
    const trade = tick(1, 101, 500, 7);
    // After a reconnect: Kite's quote-mode packet of a new trade, then the full snapshot of the same trade.
    const r = records([stored, quoteOf(trade), trade, tick(1, 101, 500, 9), tick(1, 101, 500, 9)]);
    expect([0, 1, 2].map((i) => f.isDuplicate(r.views, i * WORDS, 0))).toEqual([false, false, true]);
    // The full packet became the previous one: a later change only in depth is a tick, its repeat is not.
    expect(f.isDuplicate(r.views, 3 * WORDS, 0)).toBe(false);
    expect(f.isDuplicate(r.views, 4 * WORDS, 0)).toBe(true);
    expect(f.duplicates).toBe(2);
  });

  it('stores one row for a trade that comes as a full packet and then as the quote packet of it', () => {
    const f = new Filter(4);
    const trade = tick(1, 101, 500, 7);
    // Before a reconnect the full packet; after it, Kite's quote-mode snapshot, then the full one again.
    const r = records([trade, quoteOf(trade), trade, quoteOf(tick(1, 101, 510))]);
    expect([0, 1, 2, 3].map((i) => f.isDuplicate(r.views, i * WORDS, 0))).toEqual([false, true, true, false]);
    expect(f.duplicates).toBe(2);
  });

  it('keeps a quote packet that differs from the previous full one in any field the quote carries', () => {
    const f = new Filter(4);
    const trade = tick(1, 101, 500);
    const q = quoteOf(trade);
    q.sellQty = 3;
    const r = records([trade, q]);
    expect(f.isDuplicate(r.views, 0, 0)).toBe(false);
    expect(f.isDuplicate(r.views, WORDS, 0)).toBe(false);
  });

  it('drops an ltp packet equal in price to the previous quote, and index quote and full packets of one tick', () => {
    const f = new Filter(4);
    const ltp = emptyWireTick(Kind.LTP, 1);
    ltp.lastPrice = 101;
    const iq = emptyWireTick(Kind.INDEX_QUOTE, 2);
    Object.assign(iq, { lastPrice: 2_600_000, high: 2_610_000, low: 2_590_000, open: 2_595_000, close: 2_580_000, changeRaw: 5 });
    const ifull = { ...iq, kind: Kind.INDEX_FULL, exchangeTime: 1_765_000_000 };
    const r = records([quoteOf(tick(1, 101, 500)), ltp, iq, ifull, iq]);
    expect([0, 1].map((i) => f.isDuplicate(r.views, i * WORDS, 0))).toEqual([false, true]);
    expect([2, 3, 4].map((i) => f.isDuplicate(r.views, i * WORDS, 1))).toEqual([false, true, true]);
  });

  it('never takes an index packet and a quote packet for the same tick', () => {
    const f = new Filter(4);
    const q = quoteOf(tick(1, 101, 0));
    const idx = { ...emptyWireTick(Kind.INDEX_QUOTE, 1), lastPrice: 101 };
    const r = records([q, idx]);
    expect(f.isDuplicate(r.views, 0, 0)).toBe(false);
    expect(f.isDuplicate(r.views, WORDS, 0)).toBe(false);
  });

  it('drops both subscribe snapshots (quote, then full) that repeat the tick a previous process stored', () => {
    const f = new Filter(4);
    const stored = tick(1, 101, 500);
    const seed = { token: 1, kind: Kind.FULL, price: 101, lastQty: stored.lastQty, avgPrice: stored.avgPrice, volume: 500,
      buyQty: stored.buyQty, sellQty: stored.sellQty, oi: stored.oi, exchangeTime: stored.exchangeTime, lastTradeTime: stored.lastTradeTime };
    f.seed(0, seed);
    f.seed(1, { ...seed, token: 2 });
    const quote = emptyWireTick(Kind.QUOTE, 1);
    quote.lastPrice = 101;
    quote.volume = 500;
    // Kite's answer to subscribe (quote), then to the switch to full: both the repeat of the stored tick.
    const r = records([quote, tick(1, 101, 500), tick(1, 102, 510), tick(2, 101, 501)]);
    expect([0, 1, 2].map((i) => f.isDuplicate(r.views, i * WORDS, 0))).toEqual([true, true, false]);
    // Another value than the stored one is a tick.
    expect(f.isDuplicate(r.views, 3 * WORDS, 1)).toBe(false);
    expect(f.duplicates).toBe(2);
  });

  it('keeps the quote snapshot of a trade made since the stored tick, and drops the full one of it', () => {
    const f = new Filter(4);
    const stored = tick(1, 101, 500);
    f.seed(0, { token: 1, kind: Kind.FULL, price: 101, lastQty: 0, avgPrice: 0, volume: 500, buyQty: 0, sellQty: 0, oi: 0, exchangeTime: 0, lastTradeTime: stored.lastTradeTime });
    const since = tick(1, 102, 530);
    const r = records([quoteOf(since), since]);
    expect([0, 1].map((i) => f.isDuplicate(r.views, i * WORDS, 0))).toEqual([false, true]);
  });

  it('gives the store every tick and other consumers only their tokens', () => {
    const f = new Filter(4);
    f.setFilter(1, { rows: [2], fields: FieldGroup.ALL, changedOnly: false });
    const r = records([tick(1, 100), tick(3, 100)]);
    expect(f.consumers(r.views, 0, 0)).toBe(0b01);
    expect(f.consumers(r.views, WORDS, 2)).toBe(0b11);
  });

  it('passes changed-only consumers a tick only when their fields changed', () => {
    const f = new Filter(4);
    f.setFilter(2, { rows: null, fields: FieldGroup.LTP, changedOnly: true });
    const r = records([tick(1, 100, 1), tick(1, 100, 2, 5), tick(1, 101, 3)]);
    expect(f.consumers(r.views, 0, 0)).toBe(0b101);
    expect(f.consumers(r.views, WORDS, 0)).toBe(0b001);
    expect(f.consumers(r.views, 2 * WORDS, 0)).toBe(0b101);
  });

  it('refuses to thin the store and bad filter numbers', () => {
    const f = new Filter(2);
    expect(() => f.setFilter(0, { rows: [1], fields: 1, changedOnly: false })).toThrow(/store/);
    expect(() => f.setFilter(31, null)).toThrow(/0\.\.30/);
  });
});
