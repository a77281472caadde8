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

  it('drops the subscribe snapshot that repeats the tick a previous process stored, after a quote-mode one', () => {
    const f = new Filter(4);
    const stored = tick(1, 101, 500);
    const seed = { token: 1, kind: Kind.FULL, price: 101, lastQty: stored.lastQty, avgPrice: stored.avgPrice, volume: 500,
      buyQty: stored.buyQty, sellQty: stored.sellQty, oi: stored.oi, exchangeTime: stored.exchangeTime, lastTradeTime: stored.lastTradeTime };
    f.seed(0, seed);
    f.seed(1, { ...seed, token: 2 });
    const quote = emptyWireTick(Kind.QUOTE, 1);
    quote.lastPrice = 101;
    quote.volume = 500;
    // Kite's answer to subscribe (quote), then to the switch to full: the repeat of the stored tick.
    const r = records([quote, tick(1, 101, 500), tick(1, 102, 510), tick(2, 101, 501)]);
    expect([0, 1, 2].map((i) => f.isDuplicate(r.views, i * WORDS, 0))).toEqual([false, true, false]);
    // Another value than the stored one is a tick.
    expect(f.isDuplicate(r.views, 3 * WORDS, 1)).toBe(false);
    expect(f.duplicates).toBe(1);
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
