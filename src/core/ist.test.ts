import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  bucketEnd, bucketInto, bucketStart, DAY_MS, DEFAULT_TIMEFRAMES, IST_OFFSET_MS, istDayStart, parseTimeframe, SESSION_CLOSE_MIN,
  SESSION_OPEN_MIN, TimeframeError, timeframeName,
} from './ist.ts';

/** Epoch ms of an IST wall-clock time (tests may use Date; the module may not). */
function ist(y: number, mo: number, d: number, h: number, mi: number, s = 0): number {
  return Date.UTC(y, mo - 1, d, h, mi, s) - IST_OFFSET_MS;
}

const M = 60_000;
const H = 60 * M;

describe('session clock', () => {
  it('starts the IST day at 18:30 UTC of the previous UTC day', () => {
    expect(istDayStart(Date.UTC(2024, 4, 1, 18, 29, 59, 999))).toBe(Date.UTC(2024, 3, 30, 18, 30));
    expect(istDayStart(Date.UTC(2024, 4, 1, 18, 30))).toBe(Date.UTC(2024, 4, 1, 18, 30));
    expect(istDayStart(ist(2024, 5, 2, 0, 0))).toBe(ist(2024, 5, 2, 0, 0));
    expect(istDayStart(ist(2024, 5, 2, 23, 59, 59))).toBe(ist(2024, 5, 2, 0, 0));
  });

  it('names the session open and close minutes', () => {
    expect(SESSION_OPEN_MIN).toBe(555);
    expect(SESSION_CLOSE_MIN).toBe(930);
  });

  it('aligns intraday buckets to 09:15', () => {
    expect(bucketStart(ist(2024, 5, 2, 9, 15), 5 * M)).toBe(ist(2024, 5, 2, 9, 15));
    expect(bucketStart(ist(2024, 5, 2, 9, 19, 59), 5 * M)).toBe(ist(2024, 5, 2, 9, 15));
    expect(bucketStart(ist(2024, 5, 2, 10, 14, 59), H)).toBe(ist(2024, 5, 2, 9, 15));
    expect(bucketStart(ist(2024, 5, 2, 9, 27), 10 * M)).toBe(ist(2024, 5, 2, 9, 25));
    expect(bucketEnd(ist(2024, 5, 2, 9, 25), 10 * M)).toBe(ist(2024, 5, 2, 9, 35));
  });

  it('extends the grid backwards before the open', () => {
    expect(bucketStart(ist(2024, 5, 2, 9, 7, 30), 5 * M)).toBe(ist(2024, 5, 2, 9, 5));
    expect(bucketStart(ist(2024, 5, 2, 8, 59), H)).toBe(ist(2024, 5, 2, 8, 15));
    expect(bucketEnd(ist(2024, 5, 2, 8, 15), H)).toBe(ist(2024, 5, 2, 9, 15));
  });

  it('cuts the 60m bucket 15:15 at 15:30 and starts a fresh grid at 15:30', () => {
    expect(bucketStart(ist(2024, 5, 2, 15, 29, 59), H)).toBe(ist(2024, 5, 2, 15, 15));
    expect(bucketEnd(ist(2024, 5, 2, 15, 15), H)).toBe(ist(2024, 5, 2, 15, 30));
    expect(bucketStart(ist(2024, 5, 2, 15, 30), H)).toBe(ist(2024, 5, 2, 15, 30));
    expect(bucketStart(ist(2024, 5, 2, 15, 45), H)).toBe(ist(2024, 5, 2, 15, 30));
    expect(bucketEnd(ist(2024, 5, 2, 15, 30), H)).toBe(ist(2024, 5, 2, 16, 30));
    expect(bucketEnd(ist(2024, 5, 2, 15, 25), 10 * M)).toBe(ist(2024, 5, 2, 15, 30));
  });

  it('never lets a bucket cross IST midnight', () => {
    expect(bucketStart(ist(2024, 5, 2, 23, 45), H)).toBe(ist(2024, 5, 2, 23, 30));
    expect(bucketEnd(ist(2024, 5, 2, 23, 30), H)).toBe(ist(2024, 5, 3, 0, 0));
    expect(bucketStart(ist(2024, 5, 3, 0, 10), H)).toBe(ist(2024, 5, 3, 0, 0));
    expect(bucketEnd(ist(2024, 5, 3, 0, 0), H)).toBe(ist(2024, 5, 3, 0, 15));
    expect(bucketStart(ist(2024, 5, 3, 0, 3), 10 * M)).toBe(ist(2024, 5, 3, 0, 0));
    expect(bucketEnd(ist(2024, 5, 3, 0, 0), 10 * M)).toBe(ist(2024, 5, 3, 0, 5));
  });

  it('makes one day bucket per IST calendar day', () => {
    expect(bucketStart(ist(2024, 5, 2, 23, 59, 59), DAY_MS)).toBe(ist(2024, 5, 2, 0, 0));
    expect(bucketStart(ist(2024, 5, 3, 0, 0), DAY_MS)).toBe(ist(2024, 5, 3, 0, 0));
    expect(bucketEnd(ist(2024, 5, 2, 0, 0), DAY_MS)).toBe(ist(2024, 5, 3, 0, 0));
  });

  it('partitions time: each instant in exactly one bucket, each end the next start', () => {
    const tfs = [1000, M, 3 * M, 5 * M, 7 * M, 10 * M, 15 * M, H, 90 * M, 7 * H, DAY_MS];
    fc.assert(
      fc.property(
        fc.integer({ min: 1_600_000_000_000, max: 1_800_000_000_000 }),
        fc.integer({ min: 0, max: 3 * 3600_000 }),
        fc.constantFrom(...tfs),
        (t, dt, tf) => {
          const s = bucketStart(t, tf);
          const e = bucketEnd(s, tf);
          expect(s).toBeLessThanOrEqual(t);
          expect(e).toBeGreaterThan(t);
          expect(e - s).toBeLessThanOrEqual(tf);
          expect(bucketStart(s, tf)).toBe(s);
          expect(bucketStart(e, tf)).toBe(e);
          expect(bucketStart(e - 1, tf)).toBe(s);
          expect(istDayStart(e - 1)).toBe(istDayStart(s));
          expect(bucketStart(t + dt, tf)).toBeGreaterThanOrEqual(s);
        },
      ),
      { numRuns: 2000 },
    );
  });

  it('writes the bucket bucketStart and bucketEnd give with bucketInto, for fractional times and at midnight, open and close', () => {
    const tfs = [1000, M, 3 * M, 5 * M, 7 * M, 10 * M, 15 * M, H, 90 * M, 7 * H, DAY_MS];
    const src = new Float64Array(1);
    const out = new Float64Array(2);
    fc.assert(
      fc.property(
        fc.oneof(
          fc.integer({ min: 1_600_000_000_000, max: 1_800_000_000_000 }),
          fc.double({ min: 1_600_000_000_000, max: 1_800_000_000_000, noNaN: true }),
          // Either side of midnight, the 09:15 open and the 15:30 close.
          fc.tuple(
            fc.integer({ min: 19_000, max: 20_000 }),
            fc.constantFrom(0, SESSION_OPEN_MIN * M, SESSION_CLOSE_MIN * M),
            fc.integer({ min: -2, max: 2 }),
          ).map(([d, at, e]) => d * DAY_MS - IST_OFFSET_MS + at + e),
        ),
        fc.constantFrom(...tfs),
        (t, tf) => {
          src[0] = t;
          bucketInto(src, 0, tf, out, 0);
          const s = bucketStart(t, tf);
          expect(out[0]).toBe(s);
          expect(out[1]).toBe(bucketEnd(s, tf));
        },
      ),
      { numRuns: 5000 },
    );
  });

  it('parses timeframe names to ms', () => {
    expect(parseTimeframe('1s')).toBe(1000);
    expect(parseTimeframe('1m')).toBe(M);
    expect(parseTimeframe('15m')).toBe(15 * M);
    expect(parseTimeframe('1h')).toBe(H);
    expect(parseTimeframe('1d')).toBe(DAY_MS);
    expect(DEFAULT_TIMEFRAMES.map(parseTimeframe)).toEqual([1000, M, 5 * M, 15 * M, DAY_MS]);
    expect(timeframeName(5 * M)).toBe('5m');
    expect(timeframeName(DAY_MS)).toBe('1d');
  });

  it('rejects a bad timeframe with a RangeError naming it', () => {
    for (const bad of ['', '5', 'm', '0m', '-1m', '1.5m', '5x', '2d', '25h', '1 m']) {
      expect(() => parseTimeframe(bad)).toThrow(RangeError);
      expect(() => parseTimeframe(bad)).toThrow(JSON.stringify(bad));
    }
    try {
      parseTimeframe('2d');
    } catch (e) {
      expect(e).toBeInstanceOf(TimeframeError);
      expect((e as TimeframeError).code).toBe('TIMEFRAME_INVALID');
      expect((e as Error).message).toMatch(/longer than one day/);
    }
  });
});
