/**
 * The shard's promise that nothing is allocated per tick, held over millions of ticks by counting
 * the bytes V8 allocates (test/support/alloc.ts). The stages run in one thread, composed per
 * record as workers/shard.ts composes them (dedupe → validate → normalize → consumer filters →
 * day stats → aggregate, bar updates coalesced per batch), over a preallocated ring of decoded
 * full-mode records from the simulator's market model. Each record, just before the shard takes
 * it, has the fields a real feed moves forward moved forward in place (times, volume, OI), so
 * every tick is valid, bars of every default timeframe open and close, and only the few packets
 * the model repeats exactly are dropped as duplicates.
 */
import { isMainThread } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { DecodeStats, decodeFrame, encodeFrame } from '../../src/kite/codec.ts';
import { Market } from '../../src/kite/sim/market.ts';
import { F, Kind, type SlotViews, WORDS } from '../../src/core/packet-slot.ts';
import { N, N_FIELDS, NType } from '../../src/core/tick.ts';
import { BAR_FIELDS } from '../../src/core/bar.ts';
import { DEFAULT_TIMEFRAMES, parseTimeframe } from '../../src/core/ist.ts';
import { optionGroups } from '../../src/core/shard-protocol.ts';
import { Aggregator, type AggregatorFields } from '../../workers/stages/aggregate.ts';
import { Carries, DayStats, type DayStatsFields } from '../../workers/stages/day-stats.ts';
import { FieldGroup, Filter } from '../../workers/stages/filter.ts';
import { InstrumentTable } from '../../workers/stages/instrument-table.ts';
import { normalize } from '../../workers/stages/normalize.ts';
import { Validator } from '../../workers/stages/validate.ts';
import type { Instrument } from '../../src/core/instrument.ts';
import { BoundedSink } from '../support/sinks.ts';
import { BOXED_DOUBLE_BYTES, boxOne, describeAllocation, measureInWorker, NOTHING_PER_TICK, type ScenarioFactory } from '../support/alloc.ts';
import { T0, universe } from './harness.ts';

/** Decoded records replayed in a loop. */
const LOG2_INPUT = 14;
const INPUT = 1 << LOG2_INPUT;
/** Records per batch at most, as the shard's default maxBatch. */
const BATCH = 1024;
/** Exchange seconds one pass over the ring covers: 3M ticks stay inside one IST day from 09:15. */
const PASS_S = 60;
const OUT_SLOTS = 4096;

/** The decoded ring, and what a pass moves forward. */
class Replay {
  readonly views: SlotViews;
  private readonly vol0 = new Float64Array(INPUT);
  private readonly oiHigh0 = new Float64Array(INPUT);
  private readonly oi0 = new Float64Array(INPUT);
  private readonly tokenIndex = new Int32Array(INPUT);
  private readonly volSpan: Float64Array;
  private readonly oiSpan: Float64Array;
  private readonly t0s = Math.floor(T0 / 1000);

  constructor(instruments: readonly Instrument[]) {
    const market = new Market({ instruments, seed: 5, clock: () => T0 });
    const tokens = instruments.map((i) => i.instrumentToken);
    const index = new Map(tokens.map((t, i) => [t, i]));
    const sink = new BoundedSink(INPUT);
    const stats = new DecodeStats();
    while (sink.count < INPUT) {
      const ticks = market.nextTicks(Math.min(40, INPUT - sink.count), tokens, 'full');
      decodeFrame(encodeFrame(ticks), { recvTimeUs: 0, seq: 0, conn: 0 }, sink, stats);
    }
    this.views = sink.views;
    const u32 = this.views.u32;
    const first = new Float64Array(tokens.length).fill(-1);
    const last = new Float64Array(tokens.length);
    const firstOi = new Float64Array(tokens.length).fill(-1);
    const lastOi = new Float64Array(tokens.length);
    const minOiLow = new Float64Array(tokens.length).fill(Infinity);
    for (let k = 0; k < INPUT; k++) {
      const b = k * WORDS;
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
      const b = k * WORDS;
      if (u32[b + F.OI_LOW] > 0) u32[b + F.OI_LOW] = minOiLow[this.tokenIndex[k]];
    }
    // +1: the first packet of the next pass then carries a volume delta of 1, not 0.
    this.volSpan = Float64Array.from(first, (f, t) => (f < 0 ? 0 : last[t] - f + 1));
    this.oiSpan = Float64Array.from(firstOi, (f, t) => (f < 0 ? 0 : lastOi[t] - f));
  }

  /**
   * Rewrite record `k` for pass `pass`: its time at its place in the PASS_S seconds the pass
   * covers, its counts lifted by its token's span once a pass. Done per record, just before the
   * shard takes it, so that it is compiled with the loop around it.
   */
  move(k: number, pass: number): void {
    const u32 = this.views.u32;
    const b = k * WORDS;
    const t = this.tokenIndex[k];
    const s = this.t0s + pass * PASS_S + ((k * PASS_S) >>> LOG2_INPUT);
    u32[b + F.EXCHANGE_TIME] = s;
    if (u32[b + F.KIND] === Kind.FULL) {
      u32[b + F.LAST_TRADE_TIME] = s;
      u32[b + F.VOLUME] = this.vol0[k] + pass * this.volSpan[t];
      u32[b + F.OI_HIGH] = this.oiHigh0[k] + pass * this.oiSpan[t];
      u32[b + F.OI] = this.oi0[k] + pass * this.oiSpan[t];
    }
    this.views.f64[(b >> 1) + F.RECV_TIME_US_F64] = s * 1e6 + 250_000.5;
    u32[b + F.SEQ] = pass;
  }
}

/**
 * One shard's stages and its per-record path, as workers/shard.ts has them (onRecord,
 * emitUpdates), writing into preallocated output rings instead of shared ones. A copy, because
 * shard.ts runs its path at module level in its worker; once the path can be constructed on its
 * own, this test should drive it instead.
 */
class Shard {
  readonly table: InstrumentTable;
  readonly filter: Filter;
  readonly validator: Validator;
  readonly session: DayStats;
  readonly aggregator: Aggregator;
  readonly ticksOut = new Float64Array(OUT_SLOTS * N_FIELDS);
  readonly barsOut = new Float64Array(OUT_SLOTS * BAR_FIELDS);
  records = 0;
  ticks = 0;
  quarantined = 0;
  duplicates = 0;
  barsClosed = 0;
  barUpdates = 0;
  private tickSlot = 0;
  private barSlot = 0;
  private readonly dirtyFlag: Uint8Array;
  private readonly dirty: Int32Array;
  private dirtyCount = 0;
  batchUs = 0;

  constructor(instruments: Instrument[], timeframesMs: number[]) {
    this.table = new InstrumentTable(instruments);
    this.filter = new Filter(this.table.size);
    // A changed-only consumer on LTP and quote fields, and one on a few tokens: both filter paths.
    this.filter.setFilter(1, { rows: null, fields: FieldGroup.LTP | FieldGroup.QUOTE, changedOnly: true });
    this.filter.setFilter(2, { rows: [0, 1, 2, 3], fields: FieldGroup.ALL, changedOnly: false });
    this.validator = new Validator(this.table, { mode: 'full' });
    const tokens = instruments.map((i) => i.instrumentToken);
    const groups = optionGroups(instruments);
    const sessionFields: DayStatsFields = {
      token: N.TOKEN, exchTimeMs: N.EXCH_TIME_MS, price: N.PRICE, prevClose: N.CLOSE, volumeDelta: N.VOLUME_DELTA,
      oi: N.OI, avgPrice: N.AVG_PRICE, dayVwap: N.DAY_VWAP,
    };
    this.session = new DayStats({ tokens, maxGroups: Math.max(1, groups.length), fields: sessionFields });
    for (const i of instruments) {
      if (i.instrumentType === 'CE' || i.instrumentType === 'PE') {
        this.session.registerOption(i.instrumentToken, groups.indexOf(`${i.name}:${i.expiry}`), i.instrumentType);
      }
    }
    const aggregatorFields: AggregatorFields = {
      token: N.TOKEN, exchTimeMs: N.EXCH_TIME_MS, price: N.PRICE, volumeDelta: N.VOLUME_DELTA, oi: N.OI,
    };
    this.aggregator = new Aggregator({
      tokens,
      timeframesMs,
      fields: aggregatorFields,
      onBar: (view, base, closed) => {
        if (closed) {
          this.writeBar(view, base);
          this.barsClosed++;
          return;
        }
        if (this.dirtyFlag[base] === 0) {
          this.dirtyFlag[base] = 1;
          this.dirty[this.dirtyCount++] = base;
        }
      },
    });
    this.dirtyFlag = new Uint8Array(this.aggregator.view().length);
    this.dirty = new Int32Array(tokens.length * timeframesMs.length);
  }

  private writeBar(view: Float64Array, base: number): void {
    const out = this.barsOut;
    const fo = this.barSlot * BAR_FIELDS;
    for (let i = 0; i < BAR_FIELDS; i++) out[fo + i] = view[base + i];
    this.barSlot = this.barSlot + 1 === OUT_SLOTS ? 0 : this.barSlot + 1;
  }

  onRecord(v: SlotViews, b: number): void {
    this.records++;
    const token = v.u32[b + F.TOKEN];
    const row = this.table.row(token);
    if (this.filter.isDuplicate(v, b, row)) {
      this.duplicates++;
      return;
    }
    const reason = this.validator.check(v, b, row);
    const out = this.ticksOut;
    const fo = this.tickSlot * N_FIELDS;
    this.tickSlot = this.tickSlot + 1 === OUT_SLOTS ? 0 : this.tickSlot + 1;
    if (reason !== 0) {
      // Off the measured path: the replay makes no invalid tick (checked by the test).
      this.quarantined++;
      return;
    }
    normalize(v, b, row, this.table, 0, 0, NType.TICK, 0, out, fo);
    out[fo + N.EXCH_TIME_MS] = this.validator.exchTimeMs;
    out[fo + N.VOLUME_DELTA] = this.validator.volumeDelta;
    out[fo + N.CONSUMERS] = this.filter.consumers(v, b, row);
    out[fo + N.PROC_TIME_US] = this.batchUs;
    out[fo + N.SHARD] = 0;
    this.ticks++;
    const kind = v.u32[b + F.KIND];
    const carries = kind === Kind.FULL ? Carries.OI | Carries.AVG_PRICE : kind === Kind.QUOTE ? Carries.AVG_PRICE : 0;
    this.session.onTickAt(out, fo, carries);
    this.aggregator.onTickAt(out, fo);
  }

  emitUpdates(): void {
    const view = this.aggregator.view();
    for (let i = 0; i < this.dirtyCount; i++) {
      const base = this.dirty[i];
      this.dirtyFlag[base] = 0;
      if (this.aggregator.isOpen(base)) {
        this.writeBar(view, base);
        this.barUpdates++;
      }
    }
    this.dirtyCount = 0;
  }
}

export const scenarios: Record<string, ScenarioFactory> = {
  shard(box) {
    const instruments = universe();
    const replay = new Replay(instruments);
    const shard = new Shard(instruments, DEFAULT_TIMEFRAMES.map(parseTimeframe));
    const views = replay.views;
    let pass = 0;
    let k = INPUT; // the next record; INPUT = start a pass
    return {
      run(ticks) {
        for (let done = 0; done < ticks;) {
          if (k === INPUT) {
            pass++;
            k = 0;
          }
          // A batch: one clock reading, records up to the batch bound (or the ring's end), then
          // the coalesced bar updates, as the shard's run loop and tickClock do.
          const n = Math.min(BATCH, INPUT - k, ticks - done);
          replay.move(k, pass);
          const nowMs = views.u32[k * WORDS + F.EXCHANGE_TIME] * 1000 + 250;
          shard.batchUs = nowMs * 1000;
          shard.aggregator.advance(nowMs);
          shard.aggregator.setNow(nowMs);
          for (let i = 0; i < n; i++) {
            replay.move(k + i, pass);
            shard.onRecord(views, (k + i) * WORDS);
            if (box) boxOne(i);
          }
          shard.emitUpdates();
          k += n;
          done += n;
        }
      },
      facts: () => ({
        records: shard.records, ticks: shard.ticks, quarantined: shard.quarantined, duplicates: shard.duplicates,
        barsClosed: shard.barsClosed, barUpdates: shard.barUpdates, hours: (pass * PASS_S) / 3600,
      }),
    };
  },
};

// A worker thread imports this file for its scenarios alone (test/support/alloc.ts).
if (isMainThread) {
  describe('shard stages allocation', () => {
    it('takes 3M records through every stage, bars of every timeframe opening and closing, without allocating per tick', async () => {
      const [clean, boxed] = await measureInWorker(import.meta.url, 'shard', [{ ticks: 3_000_000 }, { ticks: 1_000_000, box: true }]);

      const f = clean.facts;
      // Every record a valid tick but the few the market model repeats exactly (dropped as duplicates).
      expect(f.quarantined).toBe(0);
      expect(f.ticks + f.duplicates).toBe(f.records);
      expect(f.duplicates).toBeLessThan(f.records / 100);
      expect(f.barsClosed).toBeGreaterThan(f.records / 10);
      expect(f.hours).toBeLessThan(6); // one session day: no day rolls over
      expect(clean.bytesPerTick, describeAllocation('shard stages', clean)).toBeLessThan(NOTHING_PER_TICK);
      // The bound would have caught a single boxed double per tick.
      expect(boxed.bytesPerTick, describeAllocation('shard stages + one boxed double a tick', boxed)).toBeGreaterThanOrEqual(BOXED_DOUBLE_BYTES);
    });
  });
}
