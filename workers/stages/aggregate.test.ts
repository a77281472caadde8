import { describe, expect, it } from 'vitest';
import { Aggregator } from './aggregate.ts';
import { B, type CanonicalBar, BarFlag, barToObject } from '../../src/core/bar.ts';
import { DAY_MS, IST_OFFSET_MS } from '../../src/core/ist.ts';

function ist(y: number, mo: number, d: number, h: number, mi: number, s = 0, ms = 0): number {
  return Date.UTC(y, mo - 1, d, h, mi, s, ms) - IST_OFFSET_MS;
}

const M = 60_000;
const H = 60 * M;
const RELIANCE = 738561;
const NIFTY = 256265;

interface Emitted { bar: CanonicalBar; closed: boolean }

function setup(timeframesMs: number[], tokens = [RELIANCE], graceMs?: number) {
  const emitted: Emitted[] = [];
  const agg = new Aggregator({
    tokens,
    timeframesMs,
    graceMs,
    onBar: (v, base, closed) => emitted.push({ bar: barToObject(v, base), closed }),
  });
  const closed = () => emitted.filter((e) => e.closed).map((e) => e.bar);
  const updates = () => emitted.filter((e) => !e.closed).map((e) => e.bar);
  return { agg, emitted, closed, updates };
}

const T0 = ist(2024, 5, 2, 9, 15);

describe('Aggregator', () => {
  it('opens a bar on the first tick with open = high = low = close', () => {
    const { agg, updates, closed } = setup([M]);
    agg.onTick(RELIANCE, T0 + 1234, 2890.5, 10, 0, T0 + 1300);
    expect(closed()).toEqual([]);
    expect(updates()).toEqual([
      {
        token: RELIANCE, tfMs: M, startMs: T0, endMs: T0 + M, open: 2890.5, high: 2890.5, low: 2890.5, close: 2890.5,
        volume: 10, vwap: 2890.5, trades: 1, oi: 0, ticks: 1, flags: 0,
      },
    ]);
  });

  it('sums volume deltas and counts only ticks with volume as trades', () => {
    const { agg, updates } = setup([M]);
    agg.onTick(RELIANCE, T0 + 1000, 100, 5, 0, T0 + 1000);
    agg.onTick(RELIANCE, T0 + 2000, 101, 0, 0, T0 + 2000);
    agg.onTick(RELIANCE, T0 + 3000, 99, 7, 0, T0 + 3000);
    const last = updates().at(-1)!;
    expect(last.volume).toBe(12);
    expect(last.trades).toBe(2);
    expect(last.ticks).toBe(3);
    expect([last.open, last.high, last.low, last.close]).toEqual([100, 101, 99, 99]);
  });

  it('weights VWAP by volume delta', () => {
    const { agg, updates } = setup([M]);
    agg.onTick(RELIANCE, T0 + 1000, 100, 1, 0, T0 + 1000);
    agg.onTick(RELIANCE, T0 + 2000, 110, 3, 0, T0 + 2000);
    agg.onTick(RELIANCE, T0 + 3000, 500, 0, 0, T0 + 3000);
    expect(updates().at(-1)!.vwap).toBeCloseTo((100 * 1 + 110 * 3) / 4, 12);
  });

  it('keeps OI at the last tick of the bar', () => {
    const { agg, updates } = setup([M]);
    agg.onTick(RELIANCE, T0 + 1000, 100, 1, 5000, T0 + 1000);
    agg.onTick(RELIANCE, T0 + 2000, 100, 1, 5100, T0 + 2000);
    expect(updates().at(-1)!.oi).toBe(5100);
  });

  it('gives the index (no volume) a bar with zero volume and a null VWAP', () => {
    const { agg, emitted } = setup([M], [NIFTY]);
    agg.onTick(NIFTY, T0 + 1000, 22500.5, 0, 0, T0 + 1000);
    agg.onTick(NIFTY, T0 + 2000, 22510.25, 0, 0, T0 + 2000);
    agg.flush();
    const bar = emitted.at(-1)!.bar;
    expect(bar).toMatchObject({ volume: 0, vwap: null, trades: 0, ticks: 2, high: 22510.25, low: 22500.5 });
    // In the record itself VWAP is NaN: 0 would be a price.
    expect(Number.isNaN(agg.view()[agg.slotOf(NIFTY, M) + B.VWAP])).toBe(true);
  });

  it('closes the bar when a tick of a later bucket arrives, with no bars for silent buckets', () => {
    const { agg, closed } = setup([M]);
    agg.onTick(RELIANCE, T0 + 1000, 100, 1, 0, T0 + 1000);
    agg.onTick(RELIANCE, T0 + 5 * M + 10, 102, 2, 0, T0 + 5 * M + 10);
    expect(closed()).toHaveLength(1);
    expect(closed()[0]).toMatchObject({ startMs: T0, endMs: T0 + M, close: 100, flags: BarFlag.CLOSED });
    agg.flush();
    expect(closed().map((b) => b.startMs)).toEqual([T0, T0 + 5 * M]);
  });

  it('closes the bar on the clock after end + grace when no tick arrives', () => {
    const { agg, closed } = setup([M], [RELIANCE], 500);
    agg.onTick(RELIANCE, T0 + 1000, 100, 1, 0, T0 + 1000);
    agg.advance(T0 + M + 499);
    expect(closed()).toEqual([]);
    agg.advance(T0 + M + 500);
    expect(closed()).toHaveLength(1);
    expect(closed()[0].flags).toBe(BarFlag.CLOSED);
    agg.advance(T0 + 10 * M);
    expect(agg.stats.barsClosed).toBe(1);
  });

  it('applies the clock given with a tick before placing the tick', () => {
    const { agg, closed } = setup([M], [RELIANCE, NIFTY]);
    agg.onTick(RELIANCE, T0 + 1000, 100, 1, 0, T0 + 1000);
    // A NIFTY tick carries a clock past RELIANCE's bar end + grace: that bar closes first.
    agg.onTick(NIFTY, T0 + M + 900, 22500, 0, 0, T0 + M + 900);
    expect(closed().map((b) => b.token)).toEqual([RELIANCE]);
  });

  it('cuts the 60m bar 15:15 at 15:30 and opens the next at 15:30', () => {
    const { agg, closed } = setup([H]);
    agg.onTick(RELIANCE, ist(2024, 5, 2, 15, 20), 100, 1, 0, ist(2024, 5, 2, 15, 20));
    agg.advance(ist(2024, 5, 2, 15, 30, 0, 499));
    expect(closed()).toEqual([]);
    agg.advance(ist(2024, 5, 2, 15, 30, 0, 500));
    expect(closed()).toMatchObject([{ startMs: ist(2024, 5, 2, 15, 15), endMs: ist(2024, 5, 2, 15, 30) }]);
    agg.onTick(RELIANCE, ist(2024, 5, 2, 15, 45), 100, 1, 0, ist(2024, 5, 2, 15, 45));
    agg.flush();
    expect(closed()[1]).toMatchObject({ startMs: ist(2024, 5, 2, 15, 30), endMs: ist(2024, 5, 2, 16, 30) });
  });

  it('makes day bars by IST date, rolling over at 18:30 UTC', () => {
    const { agg, closed } = setup([DAY_MS]);
    const beforeMidnight = Date.UTC(2024, 4, 2, 18, 29, 59); // 23:59:59 IST, 2 May
    const afterMidnight = Date.UTC(2024, 4, 2, 18, 30, 1); // 00:00:01 IST, 3 May, same UTC date
    agg.onTick(RELIANCE, beforeMidnight, 100, 1, 0, beforeMidnight);
    agg.onTick(RELIANCE, afterMidnight, 101, 1, 0, afterMidnight);
    agg.flush();
    expect(closed().map((b) => [b.startMs, b.endMs])).toEqual([
      [ist(2024, 5, 2, 0, 0), ist(2024, 5, 3, 0, 0)],
      [ist(2024, 5, 3, 0, 0), ist(2024, 5, 4, 0, 0)],
    ]);
  });

  it('makes pre-open bars on the grid extended backwards from 09:15', () => {
    const { agg, closed } = setup([5 * M, H]);
    const t = ist(2024, 5, 2, 9, 7, 30);
    agg.onTick(RELIANCE, t, 100, 1, 0, t);
    agg.flush();
    expect(closed().map((b) => [b.tfMs, b.startMs, b.endMs])).toEqual([
      [5 * M, ist(2024, 5, 2, 9, 5), ist(2024, 5, 2, 9, 10)],
      [H, ist(2024, 5, 2, 8, 15), ist(2024, 5, 2, 9, 15)],
    ]);
  });

  it('puts a late tick\'s volume into the open bar without moving its prices', () => {
    const { agg, closed } = setup([M]);
    agg.onTick(RELIANCE, T0 + 10_000, 100, 1, 0, T0 + 10_000);
    agg.onTick(RELIANCE, T0 + M + 1000, 105, 2, 70, T0 + M + 1000); // closes the 09:15 bar
    agg.onTick(RELIANCE, T0 + 59_000, 999, 4, 50, T0 + M + 1100); // belongs to 09:15: late
    expect(agg.stats.late).toBe(1);
    agg.flush();
    expect(closed()).toHaveLength(2);
    expect(closed()[1]).toMatchObject({
      startMs: T0 + M, open: 105, high: 105, low: 105, close: 105, volume: 6, trades: 2, ticks: 2, oi: 70,
      flags: BarFlag.CLOSED | BarFlag.LATE | BarFlag.PARTIAL,
    });
    expect(closed()[1].vwap).toBeCloseTo((105 * 2 + 999 * 4) / 6, 12);
  });

  it('opens a carried bar after the last closed one for a late tick when no bar is open', () => {
    const { agg, closed } = setup([M]);
    agg.onTick(RELIANCE, T0 + 10_000, 100, 1, 40, T0 + 10_000);
    agg.advance(T0 + M + 500); // the 09:15 bar closes on the clock
    agg.onTick(RELIANCE, T0 + 20_000, 999, 3, 41, T0 + M + 600); // late for the closed bucket
    expect(agg.stats.late).toBe(1);
    agg.advance(T0 + 2 * M + 500);
    expect(closed()[1]).toEqual({
      token: RELIANCE, tfMs: M, startMs: T0 + M, endMs: T0 + 2 * M, open: 100, high: 100, low: 100, close: 100,
      volume: 3, vwap: 999, trades: 1, oi: 40, ticks: 1, flags: BarFlag.CLOSED | BarFlag.LATE | BarFlag.CARRIED,
    });
  });

  it('lets the first in-bucket tick replace a carried bar\'s prices', () => {
    const { agg, closed } = setup([M]);
    agg.onTick(RELIANCE, T0 + 10_000, 100, 1, 0, T0 + 10_000);
    agg.advance(T0 + M + 500);
    agg.onTick(RELIANCE, T0 + 20_000, 999, 3, 0, T0 + M + 600);
    agg.onTick(RELIANCE, T0 + M + 700, 102, 1, 0, T0 + M + 700);
    agg.onTick(RELIANCE, T0 + M + 800, 101, 1, 0, T0 + M + 800);
    agg.flush();
    expect(closed()[1]).toMatchObject({
      startMs: T0 + M, open: 102, high: 102, low: 101, close: 101, volume: 5, ticks: 3,
      flags: BarFlag.CLOSED | BarFlag.LATE | BarFlag.PARTIAL,
    });
  });

  it('treats a tick before the open bar\'s bucket as late even if that bucket never had a bar', () => {
    const { agg, closed } = setup([M]);
    agg.onTick(RELIANCE, T0 + 3 * M, 100, 1, 0, T0 + 3 * M);
    agg.onTick(RELIANCE, T0 + 2 * M + 59_000, 90, 1, 0, T0 + 3 * M + 100);
    agg.flush();
    expect(closed()).toHaveLength(1);
    expect(closed()[0]).toMatchObject({ startMs: T0 + 3 * M, low: 100, volume: 2 });
  });

  it('flags PARTIAL only the flushed bars whose bucket is not over', () => {
    const { agg, closed } = setup([M, 5 * M], [RELIANCE], 500);
    agg.onTick(RELIANCE, T0 + 10_000, 100, 1, 0, T0 + 10_000);
    agg.advance(T0 + M + 200); // 1m bucket over, but still inside the grace
    agg.flush();
    const byTf = new Map(closed().map((b) => [b.tfMs, b.flags]));
    expect(byTf.get(M)).toBe(BarFlag.CLOSED);
    expect(byTf.get(5 * M)).toBe(BarFlag.CLOSED | BarFlag.PARTIAL);
    expect(agg.stats.barsClosed).toBe(2);
    agg.flush();
    expect(agg.stats.barsClosed).toBe(2);
  });

  it('does not flag PARTIAL a flushed bar whose end the clock has just reached', () => {
    const { agg, closed } = setup([M]);
    agg.onTick(RELIANCE, T0 + 10_000, 100, 1, 0, T0 + 10_000);
    agg.advance(T0 + M);
    agg.flush();
    expect(closed()[0].flags).toBe(BarFlag.CLOSED);
  });

  it('emits an in-progress update per timeframe for every tick', () => {
    const { agg, emitted } = setup([1000, M, DAY_MS]);
    agg.onTick(RELIANCE, T0 + 10, 100, 1, 0, T0 + 10);
    agg.onTick(RELIANCE, T0 + 20, 100, 1, 0, T0 + 20);
    expect(emitted.map((e) => [e.bar.tfMs, e.closed])).toEqual([
      [1000, false], [M, false], [DAY_MS, false], [1000, false], [M, false], [DAY_MS, false],
    ]);
  });

  it('counts and drops ticks of tokens the shard does not own', () => {
    const { agg, emitted } = setup([M]);
    agg.onTick(12345, T0, 100, 1, 0, T0);
    expect(agg.stats).toMatchObject({ ticks: 1, unknownTokens: 1 });
    expect(emitted).toEqual([]);
  });

  it('reads a tick from a record through the field offsets given at construction, as onTick places it', () => {
    // A record laid out unlike the default, with other words around the fields.
    const fields = { token: 9, exchTimeMs: 2, price: 5, volumeDelta: 0, oi: 7 };
    const plain = setup([1000, M, DAY_MS], [RELIANCE, NIFTY], 500);
    const fromRecords = setup([1000, M, DAY_MS], [RELIANCE, NIFTY], 500);
    const agg = new Aggregator({
      tokens: [RELIANCE, NIFTY], timeframesMs: [1000, M, DAY_MS], graceMs: 500, fields,
      onBar: (v, base, closed) => fromRecords.emitted.push({ bar: barToObject(v, base), closed }),
    });
    const rec = new Float64Array(3 * 16).fill(-7);
    let t = T0 - 2000;
    let now = T0;
    for (let i = 0; i < 400; i++) {
      t += i % 17 === 0 ? -1500 : i % 50 === 0 ? 3 * M : 130 * (i % 5); // late ticks, silent gaps
      now = Math.max(now, t + 40 * (i % 30));
      const token = i % 3 === 0 ? NIFTY : i % 29 === 0 ? 12345 : RELIANCE;
      const price = 100 + ((i * 37) % 23) / 4;
      const qty = token === NIFTY ? 0 : i % 4;
      const oi = 5000 + i;
      plain.agg.onTick(token, t, price, qty, oi, now);
      const o = 16 * (i % 3);
      rec[o + fields.token] = token;
      rec[o + fields.exchTimeMs] = t;
      rec[o + fields.price] = price;
      rec[o + fields.volumeDelta] = qty;
      rec[o + fields.oi] = oi;
      agg.setNow(now);
      agg.onTickAt(rec, o);
      if (i % 40 === 0) {
        plain.agg.advance(now + 800);
        agg.advance(now + 800);
      }
    }
    plain.agg.flush();
    agg.flush();
    expect(plain.closed().length).toBeGreaterThan(20);
    expect(plain.emitted.some((e) => (e.bar.flags & BarFlag.LATE) !== 0)).toBe(true);
    expect(fromRecords.emitted).toEqual(plain.emitted);
    expect(agg.stats).toEqual(plain.agg.stats);
    expect(agg.lateByTimeframe).toEqual(plain.agg.lateByTimeframe);
  });

  it('applies the clock of the last setNow before each tick read from a record', () => {
    const closed: CanonicalBar[] = [];
    const agg = new Aggregator({
      tokens: [RELIANCE], timeframesMs: [M], graceMs: 500,
      onBar: (v, base, c) => {
        if (c) closed.push(barToObject(v, base));
      },
    });
    const rec = Float64Array.of(RELIANCE, T0 + 1000, 100, 1, 0); // the default field layout
    agg.setNow(T0 + 1000);
    agg.onTickAt(rec, 0);
    agg.setNow(T0 + M + 500); // the bar's END + grace: due
    rec[1] = T0 + 2000;
    agg.onTickAt(rec, 0); // the clock closes the bar first, so this tick of its bucket is late
    expect(closed.map((b) => [b.startMs, b.ticks])).toEqual([[T0, 1]]);
    expect(agg.stats.late).toBe(1);
  });

  it('rejects bad field offsets naming them', () => {
    const onBar = () => {};
    const fields = { token: 0, exchTimeMs: 1, price: 2, volumeDelta: 3, oi: 4 };
    expect(() => new Aggregator({ tokens: [1], timeframesMs: [M], onBar, fields: { ...fields, price: -1 } })).toThrow(/fields\.price/);
    expect(() => new Aggregator({ tokens: [1], timeframesMs: [M], onBar, fields: { ...fields, oi: 1.5 } })).toThrow(/fields\.oi/);
    expect(() => new Aggregator({ tokens: [1], timeframesMs: [M], onBar, fields: { ...fields, oi: 0 } }))
      .toThrow(/fields\.oi and fields\.token are both at offset 0/);
    const { oi: _oi, ...noOi } = fields;
    expect(() => new Aggregator({ tokens: [1], timeframesMs: [M], onBar, fields: noOi as never })).toThrow(/fields\.oi/);
  });

  it('rejects bad options naming them', () => {
    const onBar = () => {};
    expect(() => new Aggregator({ tokens: [], timeframesMs: [M], onBar })).toThrow(/tokens/);
    expect(() => new Aggregator({ tokens: [1, 1], timeframesMs: [M], onBar })).toThrow(/token 1 is listed twice/);
    expect(() => new Aggregator({ tokens: [1], timeframesMs: [], onBar })).toThrow(/timeframesMs/);
    expect(() => new Aggregator({ tokens: [1], timeframesMs: [2 * DAY_MS], onBar })).toThrow(RangeError);
    expect(() => new Aggregator({ tokens: [1], timeframesMs: [1500], onBar })).toThrow(/1500/);
    expect(() => new Aggregator({ tokens: [1], timeframesMs: [M], graceMs: -1, onBar })).toThrow(/graceMs/);
    expect(() => new Aggregator({ tokens: [1], timeframesMs: [M], onBar: undefined as never })).toThrow(TypeError);
  });
});
