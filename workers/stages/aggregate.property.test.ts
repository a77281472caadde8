import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Aggregator } from './aggregate.ts';
import { referenceAggregate, type RefEvent } from '../../test/support/aggregate-reference.ts';
import { type CanonicalBar, BarFlag, barToObject } from '../../src/core/bar.ts';
import { bucketEnd, bucketStart, DEFAULT_TIMEFRAMES, IST_OFFSET_MS, parseTimeframe } from '../../src/core/ist.ts';

/**
 * The aggregator against test/support/aggregate-reference.ts on random tick streams. Streams start near the
 * places where bucketing is delicate (09:15, 15:15–15:30, IST midnight) and wander: mostly small
 * forward steps, sometimes a jump back of a few seconds (late ticks), sometimes a silent gap of
 * minutes to hours (silent buckets, day changes), with the local clock lagging the exchange time
 * by up to 1.5 s and occasionally running minutes ahead (bars closed by the timer, then late ticks).
 */

const M = 60_000;
const TIMEFRAMES = [...DEFAULT_TIMEFRAMES, '3m', '10m', '60m'].map(parseTimeframe);
const GRACE_MS = 500;
const NIFTY = 256265; // index: no volume, no OI
const RELIANCE = 738561;
const OPTION = 12_345_602; // an option: volume and OI
const TOKENS = [NIFTY, RELIANCE, OPTION];

function ist(y: number, mo: number, d: number, h: number, mi: number, s = 0): number {
  return Date.UTC(y, mo - 1, d, h, mi, s) - IST_OFFSET_MS;
}

// A few fixed days keep the reference's per-day boundary lists cached across runs.
const DAYS = [ist(2024, 5, 2, 0, 0), ist(2024, 12, 31, 0, 0), ist(2025, 3, 14, 0, 0)];
const START_TIMES = [
  (9 * 60 + 14) * M + 50_000, // just before the open
  (15 * 60 + 14) * M + 55_000, // into the 60m bucket that is cut at 15:30
  (15 * 60 + 29) * M + 40_000, // across the close
  (23 * 60 + 59) * M + 30_000, // across IST midnight
  (9 * 60) * M, // pre-open
  10_000, // just after midnight: the cut first bucket
];

const stepArb = fc.oneof(
  { weight: 80, arbitrary: fc.integer({ min: 0, max: 3000 }) },
  { weight: 8, arbitrary: fc.integer({ min: -10_000, max: -1 }) },
  { weight: 6, arbitrary: fc.integer({ min: M, max: 30 * M }) },
  { weight: 3, arbitrary: fc.integer({ min: 30 * M, max: 10 * 60 * M }) },
);

const eventArb = fc.oneof(
  {
    weight: 9,
    arbitrary: fc.record({
      kind: fc.constant('tick' as const),
      tok: fc.integer({ min: 0, max: TOKENS.length - 1 }),
      step: stepArb,
      price: fc.integer({ min: 5, max: 3_000_000 }), // paise
      qty: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 5000 })),
      oi: fc.integer({ min: 0, max: 20_000_000 }),
      lag: fc.integer({ min: 0, max: 1500 }),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('advance' as const),
      by: fc.oneof(fc.integer({ min: 0, max: 2000 }), fc.integer({ min: 2000, max: 5 * M })),
      // Land exactly on a minute boundary (a bar's end: the PARTIAL edge) or on end + grace (the
      // closing edge), where an off-by-one comparison would show.
      snap: fc.constantFrom('none', 'none', 'minute', 'due'),
    }),
  },
);

const streamArb = fc.record({
  day: fc.constantFrom(...DAYS),
  startTime: fc.oneof(fc.constantFrom(...START_TIMES), fc.integer({ min: 0, max: 24 * 60 * M - 1 })),
  events: fc.array(eventArb, { minLength: 1, maxLength: 250, size: 'max' }),
});

type Stream = typeof streamArb extends fc.Arbitrary<infer T> ? T : never;

/** Turn the random steps into absolute exchange times and clock readings. */
function materialise(s: Stream): RefEvent[] {
  let t = s.day + s.startTime;
  let now = t;
  const out: RefEvent[] = [];
  for (const e of s.events) {
    if (e.kind === 'advance') {
      now += e.by;
      if (e.snap !== 'none') now = Math.ceil(now / M) * M + (e.snap === 'due' ? GRACE_MS : 0);
      out.push({ kind: 'advance', nowMs: now });
      continue;
    }
    t += e.step;
    now = Math.max(now, t + e.lag); // the local clock never runs backwards
    const token = TOKENS[e.tok];
    out.push({
      kind: 'tick',
      token,
      exchTimeMs: t,
      price: e.price / 100,
      volumeDelta: token === NIFTY ? 0 : e.qty,
      oi: token === OPTION ? e.oi : 0,
      nowMs: now,
    });
  }
  return out;
}

function runAggregator(events: readonly RefEvent[]): { bars: CanonicalBar[]; agg: Aggregator } {
  const bars: CanonicalBar[] = [];
  const agg = new Aggregator({
    tokens: TOKENS,
    timeframesMs: TIMEFRAMES,
    graceMs: GRACE_MS,
    onBar: (v, base, closed) => {
      if (closed) bars.push(barToObject(v, base));
    },
  });
  for (const e of events) {
    if (e.kind === 'tick') agg.onTick(e.token, e.exchTimeMs, e.price, e.volumeDelta, e.oi, e.nowMs);
    else agg.advance(e.nowMs);
  }
  agg.flush();
  return { bars, agg };
}

const byKey = (a: CanonicalBar, b: CanonicalBar) => a.token - b.token || a.tfMs - b.tfMs || a.startMs - b.startMs;

function sameBar(got: CanonicalBar, want: CanonicalBar): boolean {
  for (const k of Object.keys(want) as (keyof CanonicalBar)[]) {
    if (k === 'vwap') {
      const g = got.vwap;
      const w = want.vwap;
      if (g === null || w === null) {
        if (g !== w) return false;
      } else if (Math.abs(g - w) > 1e-9 * Math.max(1, Math.abs(w))) return false;
    } else if (!Object.is(got[k], want[k])) return false;
  }
  return Object.keys(got).length === Object.keys(want).length;
}

describe('Aggregator against the reference', () => {
  it('emits exactly the reference\'s closed bars for random tick streams, every timeframe', () => {
    fc.assert(
      fc.property(streamArb, (stream) => {
        const events = materialise(stream);
        const { bars, agg } = runAggregator(events);
        const ref = referenceAggregate(events, TIMEFRAMES, GRACE_MS);

        const got = [...bars].sort(byKey);
        const want = [...ref.bars].sort(byKey);
        expect(got.length).toBe(want.length);
        for (let i = 0; i < want.length; i++) {
          if (!sameBar(got[i], want[i])) expect(got[i]).toEqual(want[i]);
        }
        expect(agg.stats.late).toBe(ref.late);
        expect(agg.stats.barsClosed).toBe(bars.length);
        expect(agg.stats.ticks).toBe(events.filter((e) => e.kind === 'tick').length);
      }),
      { numRuns: 500 },
    );
  });

  it('keeps volume, ticks, bucket and price invariants', () => {
    fc.assert(
      fc.property(streamArb, (stream) => {
        const events = materialise(stream);
        const { bars } = runAggregator(events);
        // Plain checks, expect() only on failure: thousands of bars per run.
        const fail = (what: string, b: CanonicalBar) => expect.unreachable(`${what}: ${JSON.stringify(b)}`);
        for (const token of TOKENS) {
          const ticks = events.filter((e) => e.kind === 'tick' && e.token === token) as Extract<RefEvent, { kind: 'tick' }>[];
          const volume = ticks.reduce((s, e) => s + e.volumeDelta, 0);
          for (const tf of TIMEFRAMES) {
            const mine = bars.filter((b) => b.token === token && b.tfMs === tf);
            // Every volume delta and every tick lands in exactly one closed bar.
            expect(mine.reduce((s, b) => s + b.volume, 0)).toBe(volume);
            expect(mine.reduce((s, b) => s + b.ticks, 0)).toBe(ticks.length);
            for (let i = 0; i < mine.length; i++) {
              const b = mine[i];
              if (b.startMs !== bucketStart(b.startMs, tf) || b.endMs !== bucketEnd(b.startMs, tf)) fail('not a bucket', b);
              if ((b.flags & BarFlag.CLOSED) === 0) fail('closed bar without CLOSED', b);
              if (!(b.low <= Math.min(b.open, b.close) && b.high >= Math.max(b.open, b.close))) fail('OHLC out of order', b);
              if ((b.vwap === null) !== (b.volume === 0)) fail('VWAP null iff no volume', b);
              // Emitted in time order, one bar per bucket, never overlapping.
              if (i > 0 && b.startMs < mine[i - 1].endMs) fail('overlaps the previous bar', b);
            }
          }
        }
      }),
      { numRuns: 200 },
    );
  });
});
