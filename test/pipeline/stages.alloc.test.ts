/**
 * The shard's promise that nothing is allocated per tick, held over millions of records by
 * counting the bytes V8 allocates (test/support/alloc.ts). The real Shard (workers/shard.ts) runs
 * in the measuring thread over real rings (src/core/ring.ts), driven as its run loop drives it:
 * the bar clock, then a batch (dedupe → validate → normalize → consumer filters → day stats →
 * aggregate, bar updates coalesced), then publish; after each batch both readers of its output
 * rings take everything, so the rings never fill and the shard never waits.
 *
 * The input ring holds decoded full-mode records from the simulator's market model, replayed
 * pass after pass: record k lives in slot k, and as the producer claims the slot again it moves
 * forward in place the fields a real feed moves forward (times, volume, OI), so bars of every
 * default timeframe open and close. Some records are spoilt, the same ones every pass: a quarter
 * fail validation, for one of five reasons (so the quarantine path is measured on every fourth
 * tick, not left to chance), and one in twenty repeats the record before it exactly, one in forty
 * as its quote-mode packet (both dropped as duplicates), besides the few packets the market model
 * itself repeats.
 */
import { isMainThread } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { DecodeStats, decodeFrame, encodeFrame } from '../../src/kite/codec.ts';
import { Market } from '../../src/kite/sim/market.ts';
import { F, Kind, type SlotViews, WORDS } from '../../src/core/packet-slot.ts';
import { N, N_SLOT_WORDS, QuarantineReason, TICK_CONSUMERS } from '../../src/core/tick.ts';
import { DEFAULT_TIMEFRAMES, parseTimeframe } from '../../src/core/ist.ts';
import { createRingBuffer, HEADER_WORDS, RingConsumer, RingProducer } from '../../src/core/ring.ts';
import { BAR_SLOT_WORDS, chainStatsBytes, DOORBELL_STRIDE, optionGroups, SC, SHARD_COUNTERS, type ShardData } from '../../src/core/shard-protocol.ts';
import { Shard } from '../../workers/shard.ts';
import { DEFAULT_GRACE_MS } from '../../workers/stages/aggregate.ts';
import { FieldGroup } from '../../workers/stages/filter.ts';
import type { Instrument } from '../../src/core/instrument.ts';
import { BoundedSink } from '../support/sinks.ts';
import { BOXED_DOUBLE_BYTES, boxOne, describeAllocation, measureInWorker, NOTHING_PER_TICK, type ScenarioFactory } from '../support/alloc.ts';
import { T0, universe } from './harness.ts';

/** Decoded records replayed in a loop: the input ring's capacity, so record k is always in slot k. */
const LOG2_INPUT = 14;
const INPUT = 1 << LOG2_INPUT;
/** Records per batch at most, as the shard's default maxBatch. */
const BATCH = 1024;
/** Exchange seconds one pass over the ring covers: the runs stay inside one IST day from 09:15. */
const PASS_S = 60;
/** Output ring slots: room for a whole batch of ticks, and for its bars (up to two per tick and timeframe). */
const TICK_SLOTS = 2 * BATCH;
const BAR_SLOTS = 16 * BATCH;
/** A token the instrument master does not list. */
const UNLISTED = 123_456_789;

/** What a record is made into, chosen once per record. */
const Spoil = {
  NONE: 0,
  /** An exact repeat of the record before it. */
  DUPLICATE: 1,
  /** A token the instrument master does not list. */
  UNKNOWN_TOKEN: 2,
  /** A packet of the other class's kind: a full packet for the index, an index full one for a stock. */
  KIND_MISMATCH: 3,
  /** Price 0 and no exchange time, so the quarantined tick is stamped with its receive time. */
  BAD_PRICE: 4,
  /** Ten times the price. */
  PRICE_JUMP: 5,
  /** Received ten minutes before its exchange time. */
  TIME_FUTURE: 6,
  /** The record before it as its quote-mode packet: the same trade in the other mode, a repeat. */
  QUOTE_REPEAT: 7,
} as const;

/** The reasons the spoilt records fail for, and no other. */
const SPOILT_REASONS = [
  QuarantineReason.UNKNOWN_TOKEN, QuarantineReason.KIND_MISMATCH, QuarantineReason.BAD_PRICE,
  QuarantineReason.PRICE_JUMP, QuarantineReason.TIME_FUTURE,
] as const;

/** The decoded records in the input ring's slots, and what a pass moves forward. */
class Replay {
  private readonly views: SlotViews;
  private readonly spoil = new Uint8Array(INPUT);
  private readonly vol0 = new Float64Array(INPUT);
  private readonly oiHigh0 = new Float64Array(INPUT);
  private readonly oi0 = new Float64Array(INPUT);
  private readonly tokenIndex = new Int32Array(INPUT);
  private readonly volSpan: Float64Array;
  private readonly oiSpan: Float64Array;
  private readonly t0s = Math.floor(T0 / 1000);

  constructor(instruments: readonly Instrument[], views: SlotViews) {
    this.views = views;
    const market = new Market({ instruments, seed: 5, clock: () => T0 });
    const tokens = instruments.map((i) => i.instrumentToken);
    const index = new Map(tokens.map((t, i) => [t, i]));
    if (index.has(UNLISTED)) throw new Error(`token ${UNLISTED} is listed: pick another for UNKNOWN_TOKEN`);
    const sink = new BoundedSink(INPUT);
    const stats = new DecodeStats();
    while (sink.count < INPUT) {
      const ticks = market.nextTicks(Math.min(40, INPUT - sink.count), tokens, 'full');
      decodeFrame(encodeFrame(ticks), { recvTimeUs: 0, seq: 0, conn: 0 }, sink, stats);
    }
    const u32 = views.u32;
    u32.set(sink.views.u32.subarray(0, INPUT * WORDS), HEADER_WORDS);

    // Spoil a share of the records, never a token's first: the validator must have accepted a
    // price for the token before a jump from it can be told.
    const seen = new Uint8Array(tokens.length);
    let seed = 5;
    for (let k = 0; k < INPUT; k++) {
      const t = index.get(u32[this.base(k) + F.TOKEN])!;
      if (seen[t] === 0) {
        seen[t] = 1;
        continue;
      }
      seed = (Math.imul(seed, 1_664_525) + 1_013_904_223) >>> 0;
      const r = (seed >>> 8) % 40;
      if (r < 10) {
        this.spoil[k] = Spoil.UNKNOWN_TOKEN + (r >> 1);
      } else if (r < 13 && this.spoil[k - 1] === Spoil.NONE) {
        this.spoil[k] = Spoil.DUPLICATE;
        u32.copyWithin(this.base(k), this.base(k - 1), this.base(k - 1) + WORDS);
      } else if (r === 13 && this.spoil[k - 1] === Spoil.NONE && u32[this.base(k - 1) + F.KIND] === Kind.FULL) {
        this.spoil[k] = Spoil.QUOTE_REPEAT;
        this.quoteOf(k);
      }
    }

    const first = new Float64Array(tokens.length).fill(-1);
    const last = new Float64Array(tokens.length);
    const firstOi = new Float64Array(tokens.length).fill(-1);
    const lastOi = new Float64Array(tokens.length);
    const minOiLow = new Float64Array(tokens.length).fill(Infinity);
    for (let k = 0; k < INPUT; k++) {
      const b = this.base(k);
      const t = index.get(u32[b + F.TOKEN])!;
      this.tokenIndex[k] = t;
      this.vol0[k] = u32[b + F.VOLUME];
      this.oiHigh0[k] = u32[b + F.OI_HIGH];
      this.oi0[k] = u32[b + F.OI];
      if (first[t] < 0) {
        first[t] = this.vol0[k];
        firstOi[t] = this.oiHigh0[k];
      }
      last[t] = this.vol0[k];
      lastOi[t] = this.oiHigh0[k];
      if (u32[b + F.OI_LOW] > 0 && u32[b + F.OI_LOW] < minOiLow[t]) minOiLow[t] = u32[b + F.OI_LOW];
    }
    // OI day low only falls within a day: hold each token's at its lowest so no pass raises it.
    for (let k = 0; k < INPUT; k++) {
      const b = this.base(k);
      if (u32[b + F.OI_LOW] > 0) u32[b + F.OI_LOW] = minOiLow[this.tokenIndex[k]];
    }
    // +1: the first packet of the next pass then carries a volume delta of 1, not 0.
    this.volSpan = Float64Array.from(first, (f, t) => (f < 0 ? 0 : last[t] - f + 1));
    this.oiSpan = Float64Array.from(firstOi, (f, t) => (f < 0 ? 0 : lastOi[t] - f));

    // What move() does not rewrite, spoilt once (a duplicate repeats its predecessor after the move).
    for (let k = 0; k < INPUT; k++) {
      const b = this.base(k);
      const s = this.spoil[k];
      if (s === Spoil.UNKNOWN_TOKEN) u32[b + F.TOKEN] = UNLISTED;
      else if (s === Spoil.KIND_MISMATCH) u32[b + F.KIND] = u32[b + F.KIND] === Kind.FULL ? Kind.INDEX_FULL : Kind.FULL;
      else if (s === Spoil.BAD_PRICE) views.i32[b + F.LAST_PRICE] = 0;
      else if (s === Spoil.PRICE_JUMP) views.i32[b + F.LAST_PRICE] *= 10;
    }
  }

  /** Record k becomes the quote-mode packet of record k - 1: its head, the rest 0 as the decoder writes it. */
  private quoteOf(k: number): void {
    const u32 = this.views.u32;
    const b = this.base(k);
    u32.copyWithin(b, b - WORDS, b);
    u32[b + F.KIND] = Kind.QUOTE;
    u32.fill(0, b + F.CHANGE_RAW, b + F.RECV_TIME_US_F64 * 2);
  }

  /** Whether record k repeats the one before it: 0 no, 1 in its mode, 2 as its quote packet. */
  repeats(k: number): number {
    const s = this.spoil[k];
    return s === Spoil.DUPLICATE ? 1 : s === Spoil.QUOTE_REPEAT ? 2 : 0;
  }

  /** Word offset of record k: its slot in the input ring. */
  base(k: number): number {
    return HEADER_WORDS + k * WORDS;
  }

  /** Exchange time of record `k` in pass `pass`, epoch s: its place in the PASS_S seconds the pass covers. */
  second(k: number, pass: number): number {
    return this.t0s + pass * PASS_S + ((k * PASS_S) >>> LOG2_INPUT);
  }

  /** Rewrite record `k` for pass `pass`: its time, and its counts lifted by its token's span once a pass. */
  move(k: number, pass: number): void {
    const u32 = this.views.u32;
    const b = this.base(k);
    const spoil = this.spoil[k];
    if (spoil === Spoil.DUPLICATE) {
      u32.copyWithin(b, b - WORDS, b);
      return;
    }
    if (spoil === Spoil.QUOTE_REPEAT) {
      this.quoteOf(k);
      return;
    }
    const t = this.tokenIndex[k];
    const s = this.second(k, pass);
    u32[b + F.EXCHANGE_TIME] = spoil === Spoil.BAD_PRICE ? 0 : s;
    if (u32[b + F.KIND] === Kind.FULL) {
      u32[b + F.LAST_TRADE_TIME] = s;
      u32[b + F.VOLUME] = this.vol0[k] + pass * this.volSpan[t];
      u32[b + F.OI_HIGH] = this.oiHigh0[k] + pass * this.oiSpan[t];
      u32[b + F.OI] = this.oi0[k] + pass * this.oiSpan[t];
    }
    const recvS = spoil === Spoil.TIME_FUTURE ? s - 600 : s;
    this.views.f64[(b >> 1) + F.RECV_TIME_US_F64] = recvS * 1e6 + 250_000.5;
    u32[b + F.SEQ] = pass;
  }
}

const ADVANCE = { type: 'advance' } as const;

export const scenarios: Record<string, ScenarioFactory> = {
  shard(box) {
    const instruments = universe();
    const groups = optionGroups(instruments);
    const clock = new SharedArrayBuffer(8);
    const data: ShardData = {
      shard: 0,
      ring: createRingBuffer(INPUT),
      ticksOut: createRingBuffer(TICK_SLOTS, N_SLOT_WORDS, TICK_CONSUMERS),
      barsOut: createRingBuffer(BAR_SLOTS, BAR_SLOT_WORDS, TICK_CONSUMERS),
      counters: new SharedArrayBuffer(SHARD_COUNTERS * 8),
      doorbells: new SharedArrayBuffer(TICK_CONSUMERS * DOORBELL_STRIDE * 4),
      chainStats: new SharedArrayBuffer(chainStatsBytes(1, groups.length)),
      instruments,
      tokens: instruments.map((i) => i.instrumentToken),
      mode: 'full',
      timeframesMs: DEFAULT_TIMEFRAMES.map(parseTimeframe),
      graceMs: DEFAULT_GRACE_MS,
      maxBatch: BATCH,
      clockIntervalMs: 100,
      clock,
    };
    const input = new RingProducer(data.ring);
    const replay = new Replay(instruments, input.views);
    const shard = new Shard(data);
    // A changed-only consumer on LTP and quote fields, and one on a few tokens: both filter paths.
    shard.control({ type: 'filter', k: 1, tokens: null, filter: { fields: FieldGroup.LTP | FieldGroup.QUOTE, changedOnly: true } });
    shard.control({ type: 'filter', k: 2, tokens: data.tokens.slice(0, 4), filter: { fields: FieldGroup.ALL, changedOnly: false } });
    const nowMs = new Float64Array(clock);
    const counters = new Float64Array(data.counters);
    const [store, feed] = [0, 1].map((k) => ({ ticks: new RingConsumer(data.ticksOut, k), bars: new RingConsumer(data.barsOut, k) }));

    let read = 0;
    let untimed = 0;
    let barsRead = 0;
    const readTick = (v: SlotViews, b: number): void => {
      read++;
      if (!(v.f64[(b >> 1) + N.EXCH_TIME_MS] > 0)) untimed++;
    };
    const readBar = (): void => {
      barsRead++;
    };
    const skip = (): void => {};
    let records = 0;
    let spoiltRepeats = 0;
    let quoteRepeats = 0;
    let misplaced = 0;
    let pass = 0;
    let k = INPUT; // the next record; INPUT = start a pass
    return {
      run(ticks) {
        for (let done = 0; done < ticks;) {
          if (k === INPUT) {
            pass++;
            k = 0;
          }
          const n = Math.min(BATCH, INPUT - k, ticks - done);
          for (let i = 0; i < n; i++) {
            if (input.claim() !== replay.base(k + i)) misplaced++;
            replay.move(k + i, pass);
            const r = replay.repeats(k + i);
            if (r !== 0) spoiltRepeats++;
            if (r === 2) quoteRepeats++;
            input.commit();
            if (box) boxOne(i);
          }
          input.publish();
          // As the shard's run loop: the bar clock, then a batch; then the readers take it all.
          nowMs[0] = replay.second(k, pass) * 1000 + 250;
          shard.control(ADVANCE);
          shard.batch();
          store.ticks.drain(readTick);
          store.bars.drain(readBar);
          feed.ticks.drain(skip);
          feed.bars.drain(skip);
          records += n;
          k += n;
          done += n;
        }
      },
      facts() {
        const c = counters;
        return {
          records, spoiltRepeats, quoteRepeats, misplaced, read, untimed, barsRead,
          ticksIn: c[SC.TICKS_IN], ticks: c[SC.TICKS_OUT], quarantined: c[SC.QUARANTINED], duplicates: c[SC.DUPLICATES],
          barsClosed: c[SC.BARS_CLOSED], barUpdates: c[SC.BAR_UPDATES], outWaits: c[SC.OUT_WAITS],
          drops: input.drops() + store.ticks.drops() + store.bars.drops(),
          spoiltReasons: SPOILT_REASONS.reduce((sum, r) => sum + c[SC.REASON0 + r], 0),
          fewestBySpoiltReason: Math.min(...SPOILT_REASONS.map((r) => c[SC.REASON0 + r])),
          hours: (pass * PASS_S) / 3600,
        };
      },
    };
  },
};

// A worker thread imports this file for its scenarios alone (test/support/alloc.ts).
if (isMainThread) {
  describe('shard allocation', () => {
    it('takes 3M records through the shard, a quarter quarantined, duplicates dropped, bars of every timeframe opening and closing, without allocating per tick', async () => {
      const [clean, boxed] = await measureInWorker(import.meta.url, 'shard', [{ ticks: 3_000_000 }, { ticks: 1_000_000, box: true }]);

      const f = clean.facts;
      // Every record went in through its own slot, out of the shard, and to its readers; nothing waited or dropped.
      expect(f.misplaced).toBe(0);
      expect(f.ticksIn).toBe(f.records);
      expect(f.ticks + f.quarantined + f.duplicates).toBe(f.records);
      expect(f.read).toBe(f.ticks + f.quarantined);
      expect(f.barsRead).toBe(f.barsClosed + f.barUpdates);
      expect(f.outWaits + f.drops).toBe(0);
      expect(f.untimed).toBe(0); // quarantined ticks keep their time
      // A quarter quarantined, for each of the reasons the replay spoils records with and no other.
      expect(f.quarantined / f.records).toBeCloseTo(0.25, 1);
      expect(f.spoiltReasons).toBe(f.quarantined);
      expect(f.fewestBySpoiltReason).toBeGreaterThan(f.records / 50);
      expect(f.duplicates).toBeGreaterThan(f.records / 25);
      // Every repeat the replay made, in its mode or as a quote packet of a full one, was dropped;
      // the market model's own repeats are the rest, fewer than the quote ones, so a quote repeat
      // kept as a tick could not hide behind them.
      expect(f.duplicates).toBeGreaterThanOrEqual(f.spoiltRepeats);
      expect(f.duplicates - f.spoiltRepeats).toBeLessThan(f.quoteRepeats);
      expect(f.barsClosed).toBeGreaterThan(f.records / 10);
      expect(f.barUpdates).toBeGreaterThan(f.records / 10);
      expect(f.hours).toBeLessThan(6); // one session day: no day rolls over
      expect(clean.bytesPerTick, describeAllocation('shard', clean)).toBeLessThan(NOTHING_PER_TICK);
      // The bound would have caught a single boxed double per tick.
      expect(boxed.bytesPerTick, describeAllocation('shard + one boxed double a tick', boxed)).toBeGreaterThanOrEqual(BOXED_DOUBLE_BYTES);
    });
  });
}
