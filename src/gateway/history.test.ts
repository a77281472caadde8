import { describe, expect, it } from 'vitest';
import type { Db } from '../core/db.ts';
import { DAY_MS, MINUTE_MS, timeframeName } from '../core/ist.ts';
import { istString } from '../core/ist.ts';
import { history, KITE_INTERVALS, kiteCandleTime, parseIstWallClock, rollup, sourceTimeframe, type StoredBar } from './history.ts';
import { RateLimiter } from './http.ts';

const M = MINUTE_MS;
const OPEN = Date.parse('2025-12-03T03:45:00Z'); // 09:15 IST
const ist = (hhmm: string) => Date.parse(`2025-12-03T${hhmm}:00+05:30`);

function bar(st: number, price: number, v = 10, oi = 0): StoredBar {
  return { st, o: price, h: price + 1, l: price - 1, c: price + 0.5, v, vw: price, n: 1, oi };
}

/** A Db answering readBars from an in-memory list, as the SQL does. */
function memoryDb(rows: (StoredBar & { tf: string })[]): Db & { reads: number[] } {
  const reads: number[] = [];
  return {
    kind: 'pglite',
    reads,
    async query<T extends object>(_text: string, params: readonly unknown[] = []): Promise<T[]> {
      const [, tf, from, to, limit] = params as [number, string, string, string, number];
      const out = rows.filter((r) => r.tf === tf && r.st >= Date.parse(from) && r.st < Date.parse(to)).slice(0, limit);
      reads.push(out.length);
      return out.map(({ tf: _tf, ...b }) => ({ ...b })) as unknown as T[];
    },
    async exec() {},
    begin: (fn) => fn(null as unknown as Db),
  };
}

describe('history: intervals and rollup', () => {
  it('builds each Kite interval from the longest stored timeframe that divides it', () => {
    const stored = [1000, M, 5 * M, 15 * M, DAY_MS];
    const src = Object.fromEntries(Object.entries(KITE_INTERVALS).map(([k, v]) => [k, timeframeName(sourceTimeframe(v.ms, stored)!)]));
    expect(src).toEqual({ minute: '1m', '3minute': '1m', '5minute': '5m', '10minute': '5m', '15minute': '15m', '30minute': '15m', '60minute': '15m', day: '1d' });
    expect(sourceTimeframe(DAY_MS, [M, 15 * M])).toBe(15 * M);
    expect(sourceTimeframe(M, [DAY_MS])).toBeNull();
    expect(sourceTimeframe(60 * M, [7 * M])).toBeNull();
  });

  it('cuts the 60-minute candle at 15:30 and starts the next grid there', () => {
    const bars = ['14:15', '14:30', '14:45', '15:00', '15:15', '15:30', '15:45', '16:15', '16:30'].map((t, k) => bar(ist(t), 100 + k));
    const out = rollup(bars, 60 * M);
    expect(out.map((c) => istString(c.st).slice(11, 16))).toEqual(['14:15', '15:15', '15:30', '16:30']);
    expect(out[0]).toMatchObject({ o: 100, c: 103.5, h: 104, l: 99, v: 40, n: 4 });
    expect(out[1]).toMatchObject({ o: 104, c: 104.5, v: 10 });
  });

  it('weights VWAP by volume, keeps the last OI, and leaves VWAP null without volume', () => {
    const out = rollup([bar(OPEN, 100, 10, 5), bar(OPEN + M, 110, 30, 7)], 5 * M);
    expect(out).toEqual([{ st: OPEN, o: 100, h: 111, l: 99, c: 110.5, v: 40, vw: 107.5, n: 2, oi: 7, bf: false }]);
    expect(rollup([bar(OPEN, 100, 0)], 5 * M)[0].vw).toBeNull();
  });

  it('marks a rolled-up candle backfilled when any of its bars is', () => {
    const out = rollup([bar(OPEN, 100), { ...bar(OPEN + M, 101), bf: true }, bar(OPEN + 5 * M, 102)], 5 * M);
    expect(out.map((c) => c.bf)).toEqual([true, false]);
  });

  it('drops a candle that from cuts into', () => {
    const bars = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9].map((k) => bar(OPEN + k * M, 100 + k));
    expect(rollup(bars.slice(2), 5 * M, OPEN + 2 * M).map((c) => c.st)).toEqual([OPEN + 5 * M]);
  });

  it('caps rolled-up candles at the limit and never returns a candle whose source read was cut', async () => {
    const rows = Array.from({ length: 375 }, (_, k) => ({ ...bar(OPEN + k * M, 100 + k), tf: '1m' }));
    const db = memoryDb(rows);
    const r = await history(db, [M], { token: 1, tfMs: 5 * M, fromMs: OPEN, toMs: OPEN + DAY_MS / 2, limit: 10 });
    expect(r.candles).toHaveLength(10);
    expect(r.truncated).toBe(true);
    expect(r.candles.every((c) => c.v === 50)).toBe(true);
    const all = await history(db, [M], { token: 1, tfMs: 5 * M, fromMs: OPEN, toMs: OPEN + DAY_MS / 2, limit: 75 });
    expect(all).toMatchObject({ truncated: false, sourceMs: M });
    expect(all.candles).toHaveLength(75);
    await expect(history(db, [DAY_MS], { token: 1, tfMs: M, fromMs: OPEN, toMs: OPEN + M, limit: 1 })).rejects.toThrow(RangeError);
  });
});

describe('history: India wall clock', () => {
  it('reads Kite\'s from/to as IST wall-clock time', () => {
    expect(parseIstWallClock('2025-12-03 09:15:00')).toBe(OPEN);
    expect(parseIstWallClock('2025-12-03 09:15')).toBe(OPEN);
    expect(parseIstWallClock('2025-12-03')).toBe(Date.parse('2025-12-02T18:30:00Z'));
    for (const bad of ['2025-02-30', '2025-12-03 9:15:00', '03/12/2025', '2025-12-03 24:00:00', '']) expect(parseIstWallClock(bad), bad).toBeNaN();
  });

  it('writes Kite\'s quote and candle times', () => {
    expect(istString(OPEN + 1500)).toBe('2025-12-03 09:15:01');
    expect(kiteCandleTime(Date.parse('2025-12-02T18:30:00Z'))).toBe('2025-12-03T00:00:00+0530');
  });
});

describe('rate limiter', () => {
  it('lets a burst through, then one request per 1/rate seconds, per key', () => {
    let now = 0;
    const rl = new RateLimiter(2, 3, () => now);
    expect([rl.take('a'), rl.take('a'), rl.take('a')]).toEqual([0, 0, 0]);
    expect(rl.take('a')).toBeCloseTo(0.5, 9);
    expect(rl.take('b')).toBe(0);
    now = 250;
    expect(rl.take('a')).toBeCloseTo(0.25, 9);
    now = 500;
    expect(rl.take('a')).toBe(0);
    expect(new RateLimiter(0, 1).take('x')).toBe(0);
  });
});
