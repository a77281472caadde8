/**
 * A pipeline shard: the consumer of one input ring and the owner of every token hashed to it.
 * Per record: filter out exact duplicates → validate → normalize → filter (consumer bits) →
 * aggregate. Outputs go to two output rings read in place by their consumers: canonical ticks
 * (accepted and quarantined, tick.ts layout) and bars (bar.ts layout, updates and closes).
 *
 * The class knows rings and shared buffers, not threads: shard-main.ts runs one per worker thread
 * (started by src/pipeline.ts), and workers/shard.test.ts runs one in the test's own thread.
 *
 * The loop (run) drains what the input ring holds as one batch (bounded by the room in the output
 * rings: a slow consumer slows the shard, which fills its input ring, which pauses the upstream
 * socket; nothing is dropped), then sleeps on the ring with Atomics.waitAsync (no timer polling;
 * the event loop stays free for the bar clock and control messages). A saturated ring never
 * empties, so while draining continuously the loop also yields to the event loop every
 * YIELD_EVERY_US, or control messages (filter, advance, memory) would wait until the input stops.
 *
 * The stages read each accepted tick from its canonical record in the output slot (onTickAt):
 * doubles passed as arguments to a call V8 does not inline are boxed, one HeapNumber each per tick.
 * For the same reason the per-tick method reads its state from this object's fields and typed
 * arrays, never from double arguments.
 *
 * In-progress bar updates are coalesced: at most one per (token, timeframe) per batch, written
 * after the batch, so a burst of ticks costs one update, not one per tick.
 */
import { RingConsumer, RingProducer } from '../src/core/ring.ts';
import { F, Kind, type SlotViews } from '../src/core/packet-slot.ts';
import { nowMicros } from '../src/core/clock.ts';
import { Aggregator, type AggregatorFields } from './stages/aggregate.ts';
import { BarOut } from './bar-out.ts';
import { Filter } from './stages/filter.ts';
import { InstrumentTable } from './stages/instrument-table.ts';
import { normalize } from './stages/normalize.ts';
import { Validator } from './stages/validate.ts';
import { Carries, DayStats, type DayStatsFields } from './stages/day-stats.ts';
import { N, NType, TICK_CONSUMERS } from '../src/core/tick.ts';
import { optionGroups, ringDoorbells, SC, type ShardControl, type ShardData } from '../src/core/shard-protocol.ts';

/** Where the stages find the tick in a canonical record (tick.ts), so they need not import it. */
const SESSION_FIELDS: DayStatsFields = {
  token: N.TOKEN, exchTimeMs: N.EXCH_TIME_MS, price: N.PRICE, prevClose: N.CLOSE, volumeDelta: N.VOLUME_DELTA,
  oi: N.OI, avgPrice: N.AVG_PRICE, dayVwap: N.DAY_VWAP,
};
const AGGREGATOR_FIELDS: AggregatorFields = {
  token: N.TOKEN, exchTimeMs: N.EXCH_TIME_MS, price: N.PRICE, volumeDelta: N.VOLUME_DELTA, oi: N.OI,
};

/**
 * Longest stretch of continuous draining before the loop yields to the event loop, µs. A yield
 * (await new Promise(setImmediate)) costs ~2 µs of CPU, measured: 0.04 % of a 5 ms slice, below
 * what bench/pipeline.bench.ts can tell from noise. Without it a filter change posted to a
 * saturated single shard was never applied within 2 s; with it, within 2–22 ms on the busy
 * 2-core machine (a slice, plus waiting for a core).
 */
const YIELD_EVERY_US = 5000;

/** The control messages a shard answers itself ('memory' is about its thread: shard-main.ts). */
export type ShardCommand = Exclude<ShardControl, { type: 'memory' }>;

export class Shard {
  readonly shard: number;
  private readonly input: RingConsumer;
  private readonly ticksOut: RingProducer;
  private readonly barsOut: RingProducer;
  /** Bars go out through it: the ring, or its overflow when the ring is full. */
  private readonly bars: BarOut;
  private readonly counters: Float64Array;
  private readonly doorbells: Int32Array;
  private readonly table: InstrumentTable;
  private readonly validator: Validator;
  private readonly filter: Filter;
  private readonly manualClock: Float64Array | null;
  private readonly nTf: number;
  private readonly maxBatch: number;
  private readonly clockIntervalMs: number;

  /** Session stats for this shard's tokens; option OI sums go to the shared chain-stats buffer. */
  private readonly session: DayStats | null;
  private readonly groups: number;
  private readonly chain: Float64Array;
  private readonly chainBase: number;

  private readonly aggregator: Aggregator | null;
  /** Bases (in the aggregator's view) of bars updated in this batch, and a flag per base to dedupe. */
  private readonly dirtyFlag: Uint8Array;
  private readonly dirty: Int32Array;
  private dirtyCount = 0;

  /**
   * Bars that found the bar ring full (at shutdown, when every open bar closes at once, or in a
   * burst larger than the batch bound allowed for). Kept, not dropped; written before more input
   * is taken. Allocates, but only in those moments.
   */

  /** Records written when the doorbells last rang. */
  private published = 0;
  /**
   * When the current batch was taken from the input ring, epoch µs: every tick of the batch is
   * stamped with it (N.PROC_TIME_US). One clock read per batch, not per tick: performance.now()
   * costs ~60 ns and, as a call that returns a double, boxed a fresh HeapNumber per tick.
   */
  private batchUs = 0;

  constructor(data: ShardData) {
    this.shard = data.shard;
    this.input = new RingConsumer(data.ring);
    this.ticksOut = new RingProducer(data.ticksOut);
    this.barsOut = new RingProducer(data.barsOut);
    this.bars = new BarOut(this.barsOut);
    this.counters = new Float64Array(data.counters);
    this.doorbells = new Int32Array(data.doorbells);
    this.table = new InstrumentTable(data.instruments);
    this.validator = new Validator(this.table);
    this.filter = new Filter(this.table.size);
    for (const t of data.lastStored ?? []) this.filter.seed(this.table.row(t.token), t);
    this.manualClock = data.clock ? new Float64Array(data.clock) : null;
    this.nTf = data.timeframesMs.length;
    this.maxBatch = data.maxBatch;
    this.clockIntervalMs = data.clockIntervalMs;

    const groups = optionGroups(data.instruments);
    this.groups = groups.length;
    this.chain = new Float64Array(data.chainStats);
    this.chainBase = data.shard * groups.length * 2;
    this.session = data.tokens.length > 0
      ? new DayStats({ tokens: data.tokens, maxGroups: Math.max(1, groups.length), fields: SESSION_FIELDS })
      : null;
    if (this.session) {
      const groupOf = new Map(groups.map((g, i) => [g, i]));
      const mine = new Set(data.tokens);
      for (const i of data.instruments) {
        if ((i.instrumentType === 'CE' || i.instrumentType === 'PE') && mine.has(i.instrumentToken)) {
          this.session.registerOption(i.instrumentToken, groupOf.get(`${i.name}:${i.expiry}`)!, i.instrumentType);
        }
      }
    }

    this.aggregator = data.tokens.length > 0
      ? new Aggregator({
        tokens: data.tokens,
        timeframesMs: data.timeframesMs,
        graceMs: data.graceMs,
        fields: AGGREGATOR_FIELDS,
        onBar: (view, base, closed) => {
          if (closed) {
            this.writeBar(view, base);
            this.counters[SC.BARS_CLOSED]++;
            return;
          }
          if (this.dirtyFlag[base] === 0) {
            this.dirtyFlag[base] = 1;
            this.dirty[this.dirtyCount++] = base;
          }
        },
      })
      : null;
    this.dirtyFlag = new Uint8Array(this.aggregator ? this.aggregator.view().length : 1);
    this.dirty = new Int32Array(Math.max(1, data.tokens.length * this.nTf));
  }

  /** The record handler given to the input ring's drain: one per shard, made once. */
  private readonly onRecord = (v: SlotViews, b: number): void => {
    const counters = this.counters;
    counters[SC.TICKS_IN]++;
    const token = v.u32[b + F.TOKEN];
    const table = this.table;
    const row = table.row(token);
    const filter = this.filter;
    if (filter.isDuplicate(v, b, row)) {
      counters[SC.DUPLICATES]++;
      return;
    }
    const validator = this.validator;
    const reason = validator.check(v, b, row);
    const ticksOut = this.ticksOut;
    const o = ticksOut.claim();
    if (o < 0) return; // counted as a ring drop; the batch bound keeps room, so this stays 0
    const out = ticksOut.views.f64;
    const fo = o >> 1;
    if (reason !== 0) {
      // Exchange time written here, not passed to normalize, as on the valid path below: a double
      // argument would be boxed per quarantined tick.
      normalize(v, b, row, table, 0, 0, NType.QUARANTINE, reason, out, fo);
      const exchS = v.u32[b + F.EXCHANGE_TIME];
      out[fo + N.EXCH_TIME_MS] = exchS !== 0 ? exchS * 1000 : v.f64[(b >> 1) + F.RECV_TIME_US_F64] / 1000;
      out[fo + N.PROC_TIME_US] = this.batchUs;
      out[fo + N.SHARD] = this.shard;
      ticksOut.commit();
      counters[SC.QUARANTINED]++;
      counters[SC.REASON0 + reason]++;
      return;
    }
    // Exchange time and volume delta are doubles: passed to normalize (too large to inline) each
    // would be boxed in a fresh HeapNumber per tick, so they are written here instead.
    normalize(v, b, row, table, 0, 0, NType.TICK, 0, out, fo);
    out[fo + N.EXCH_TIME_MS] = validator.exchTimeMs;
    out[fo + N.VOLUME_DELTA] = validator.volumeDelta;
    out[fo + N.CONSUMERS] = filter.consumers(v, b, row);
    out[fo + N.PROC_TIME_US] = this.batchUs;
    out[fo + N.SHARD] = this.shard;
    ticksOut.commit();
    counters[SC.TICKS_OUT]++;
    counters[SC.LAST_RECV_US] = out[fo + N.RECV_TIME_US];
    const session = this.session;
    if (session !== null) {
      // Only full packets carry OI, and full and quote ones the average price (N holds 0 otherwise).
      const kind = v.u32[b + F.KIND];
      const carries = kind === Kind.FULL ? Carries.OI | Carries.AVG_PRICE : kind === Kind.QUOTE ? Carries.AVG_PRICE : 0;
      session.onTickAt(out, fo, carries); // writes N.DAY_VWAP
    }
    this.aggregator?.onTickAt(out, fo); // its clock: setNow() in tickClock(), once per batch
  };

  /**
   * One batch: the records the input ring holds, at most as many as the output rings have room
   * for, then the coalesced bar updates, then publish. Returns the records taken, or -1 when the
   * output rings had no room for a batch (counted as OUT_WAITS; wait with waitForRoom()).
   * Does not run the bar clock: run() does that before each batch, control({ type: 'advance' }) on demand.
   */
  batch(): number {
    const limit = this.batchLimit();
    if (limit <= 0) {
      this.counters[SC.OUT_WAITS]++;
      return -1;
    }
    this.batchUs = nowMicros();
    const n = this.input.drain(this.onRecord, limit);
    this.emitUpdates();
    this.publish();
    this.counters[SC.BATCHES]++;
    return n;
  }

  /** Resolves when the output ring that stopped the last batch has room, or after 100 ms. */
  waitForRoom(): Promise<void> {
    if (this.ticksOut.free() === 0) return this.ticksOut.waitForSpace(1, 100);
    return this.barsOut.waitForSpace(2 * this.nTf, 100);
  }

  /** Apply a control message from the host: run the bar clock now, or install a consumer filter. */
  control(m: ShardCommand): void {
    if (m.type === 'advance') {
      this.tickClock();
      this.publish();
    } else if (m.type === 'filter') {
      const rows = m.tokens === null ? null : m.tokens.map((t) => this.table.row(t)).filter((r) => r >= 0);
      this.filter.setFilter(m.k, m.filter === null ? null : { rows, fields: m.filter.fields, changedOnly: m.filter.changedOnly });
    }
  }

  /**
   * Drain the input ring until the front closes it and it is empty, sleeping on the ring between
   * batches; then shutdown() is what is left to do.
   */
  async run(): Promise<void> {
    const input = this.input;
    /** When the event loop last had a turn (roughly: after a sleep or a yield), epoch µs. */
    let sliceUs = nowMicros();
    for (;;) {
      this.tickClock();
      if (this.bars.pending > 0) await this.drainOverflow();
      if (input.available() > 0) {
        const n = this.batch();
        if (n < 0) {
          await this.waitForRoom();
          continue;
        }
        if (n > 0) {
          if (this.batchUs - sliceUs >= YIELD_EVERY_US) {
            await new Promise(setImmediate);
            sliceUs = nowMicros();
          }
          continue;
        }
      }
      if (input.closed() && input.available() === 0) break;
      this.publish();
      // Whether to spin before sleeping is the input ring's wait policy (PIPELINE_WAIT, set by the
      // pipeline; src/core/ring.ts): a spin holds this thread's event loop for at most its µs, so
      // the bar clock and control messages wait no longer than that. The choice of default and its
      // figures are in bench/wait.bench.ts.
      await input.waitForData(this.clockIntervalMs);
      sliceUs = nowMicros();
    }
  }

  /** Bars in progress leave as partial bars; then the output rings close and the consumers are told. */
  async shutdown(): Promise<void> {
    this.aggregator?.flush();
    await this.drainOverflow();
    this.publish();
    this.ticksOut.close();
    this.barsOut.close();
    ringDoorbells(this.doorbells, TICK_CONSUMERS);
  }

  private clock(): number {
    return this.manualClock !== null ? this.manualClock[0] : Date.now();
  }

  private tickClock(): void {
    const aggregator = this.aggregator;
    if (aggregator === null) return;
    const now = this.clock();
    aggregator.advance(now);
    aggregator.setNow(now);
  }

  /** Records per batch: bounded by the output rings' room (a batch may close and update bars). */
  private batchLimit(): number {
    const perTickBars = 2 * this.nTf;
    return Math.min(this.maxBatch, this.ticksOut.free(), Math.floor(this.barsOut.free() / perTickBars));
  }

  private writeBar(view: Float64Array, base: number): void {
    this.bars.write(view, base);
  }

  private drainOverflow(): Promise<void> {
    return this.bars.drain(() => this.publish());
  }

  private emitUpdates(): void {
    const aggregator = this.aggregator;
    if (aggregator === null || this.dirtyCount === 0) return;
    const view = aggregator.view();
    const dirty = this.dirty;
    const dirtyFlag = this.dirtyFlag;
    for (let i = 0; i < this.dirtyCount; i++) {
      const base = dirty[i];
      dirtyFlag[base] = 0;
      if (aggregator.isOpen(base)) {
        this.writeBar(view, base);
        this.counters[SC.BAR_UPDATES]++;
      }
    }
    this.dirtyCount = 0;
  }

  private publishChainStats(): void {
    const session = this.session;
    if (session === null) return;
    const chain = this.chain;
    const at = this.chainBase;
    for (let g = 0; g < this.groups; g++) {
      const c = session.callOi(g);
      const p = session.putOi(g);
      chain[at + 2 * g] = c === c ? c : 0;
      chain[at + 2 * g + 1] = p === p ? p : 0;
    }
  }

  private publish(): void {
    this.publishChainStats();
    this.ticksOut.publish();
    this.barsOut.publish();
    const c = this.counters;
    const written = c[SC.TICKS_OUT] + c[SC.QUARANTINED] + c[SC.BARS_CLOSED] + c[SC.BAR_UPDATES];
    if (written !== this.published) {
      this.published = written;
      ringDoorbells(this.doorbells, TICK_CONSUMERS);
    }
    if (this.aggregator !== null) {
      c[SC.LATE] = this.aggregator.stats.late;
    }
  }
}
