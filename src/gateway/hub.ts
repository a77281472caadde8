/**
 * The feed hub: the pipeline's FEED consumer in the main thread. It drains every shard's output
 * rings once per wake-up (at most MAX_PER_DRAIN records a ring) and hands each record to its
 * listeners (the msgpack feed, the Kite endpoint, the cache), then tells them the batch ended,
 * which is when they publish: one frame per subscription set per drain (fanout.ts), however many
 * ticks it gathered.
 *
 * It also keeps the latest tick per instrument and the latest bar per instrument and timeframe
 * (preallocated, copied in place), which is what a new subscriber's snapshot is made of.
 */
import type { SlotViews } from '../core/packet-slot.ts';
import type { Instrument } from '../core/instrument.ts';
import { OutputPump, type Pipeline } from '../pipeline.ts';
import { InstrumentIndex } from './directory.ts';
import { N, N_FIELDS, NType, TickConsumer } from '../core/tick.ts';
import { B, BAR_FIELDS } from '../core/bar.ts';

export interface HubListener {
  /** A canonical tick at `o` in `f` for instrument row `row`. */
  tick?(f: Float64Array, o: number, row: number): void;
  /** A quarantined tick (failed validation) at `o` in `f`; `row` is -1 for unknown tokens. */
  quarantine?(f: Float64Array, o: number, row: number): void;
  /** A bar at `o` in `f` (in progress or closed). */
  bar?(f: Float64Array, o: number, row: number): void;
  batchEnd?(): void;
}

/**
 * Records per ring between two batch ends. Under load a drain holds a few hundred; after a stall
 * (a GC, a busy loop) a ring can hold 65,536, and the listeners' per-drain buffers (the feed's
 * arena: up to 3 encodings × ~300 B a tick) would grow to that and stay. Bounded, the first ticks
 * of a backlog go out before the last are read.
 */
const MAX_PER_DRAIN = 4096;

export class FeedHub {
  readonly rows: number;
  readonly latestTicks: Float64Array;
  readonly hasTick: Uint8Array;
  readonly latestBars: Float64Array;
  readonly hasBar: Uint8Array;
  readonly timeframesMs: readonly number[];
  readonly symbols: readonly string[];
  readonly rowOfToken: ReadonlyMap<number, number>;
  private readonly index: InstrumentIndex;
  private readonly listeners: HubListener[] = [];
  private pump: OutputPump | null = null;
  private tickLs: HubListener[] = [];
  private barLs: HubListener[] = [];
  private endLs: HubListener[] = [];
  private qLs: HubListener[] = [];
  /** Conflating (setQuiet): instruments and bar slots changed since, for flushQuiet(). */
  private quiet = false;
  private readonly dirtyTick: Uint8Array;
  private readonly dirtyBar: Uint8Array;
  ticks = 0;
  bars = 0;

  constructor(readonly instruments: readonly Instrument[], timeframesMs: readonly number[]) {
    this.rows = instruments.length;
    this.timeframesMs = timeframesMs;
    this.latestTicks = new Float64Array(this.rows * N_FIELDS);
    this.hasTick = new Uint8Array(this.rows);
    this.latestBars = new Float64Array(this.rows * timeframesMs.length * BAR_FIELDS);
    this.hasBar = new Uint8Array(this.rows * timeframesMs.length);
    this.dirtyTick = new Uint8Array(this.rows);
    this.dirtyBar = new Uint8Array(this.rows * timeframesMs.length);
    this.symbols = instruments.map((i) => i.tradingsymbol);
    this.index = new InstrumentIndex(instruments);
    this.rowOfToken = this.index.rowOfToken;
  }

  /** Row of a token (number or digits) or symbol ('NFO:NIFTY25DEC26000CE', 'INFY'); -1 if not followed. */
  resolve(instrument: number | string): number {
    return this.index.find(instrument);
  }

  /** Row of an instrument token, -1 if not followed. With latestTicks and hasTick, what the paper broker reads (its MarketView). */
  rowOf(token: number): number {
    return this.rowOfToken.get(token) ?? -1;
  }

  add(listener: HubListener): void {
    this.listeners.push(listener);
  }

  /** Start draining the pipeline's FEED slot. */
  start(pipeline: Pipeline): void {
    this.bind();
    const hub = this;
    this.pump = new OutputPump(pipeline.reader(TickConsumer.FEED), {
      tick(v: SlotViews, b: number) {
        hub.applyTick(v.f64, b >> 1);
      },
      bar(v: SlotViews, b: number) {
        hub.applyBar(v.f64, b >> 1);
      },
      batchEnd() {
        hub.endBatch();
      },
    }, { maxPerDrain: MAX_PER_DRAIN });
  }

  /**
   * Fix the listener lists (after the last add()). start() calls it; a hub fed from elsewhere
   * (src/scale/subscriber.ts, a gateway fed by the ingest through Redis) calls it instead.
   */
  bind(): void {
    const ls = this.listeners;
    this.tickLs = ls.filter((l) => l.tick);
    this.barLs = ls.filter((l) => l.bar);
    this.endLs = ls.filter((l) => l.batchEnd);
    this.qLs = ls.filter((l) => l.quarantine);
  }

  /**
   * One record of the tick layout (src/core/tick.ts) at `o` in `f`: kept as the instrument's latest
   * and handed to the listeners, or, while quiet, only kept and marked for the next flushQuiet().
   */
  applyTick(f: Float64Array, o: number): void {
    const row = f[o + N.INSTR];
    if (f[o + N.TYPE] !== NType.TICK) {
      if (this.quiet) return;
      const qLs = this.qLs;
      for (let i = 0; i < qLs.length; i++) qLs[i].quarantine!(f, o, row);
      return;
    }
    if (row < 0 || row >= this.rows) return;
    this.ticks++;
    const lt = this.latestTicks;
    const d = row * N_FIELDS;
    for (let i = 0; i < N_FIELDS; i++) lt[d + i] = f[o + i];
    this.hasTick[row] = 1;
    if (this.quiet) {
      this.dirtyTick[row] = 1;
      return;
    }
    const tickLs = this.tickLs;
    for (let i = 0; i < tickLs.length; i++) tickLs[i].tick!(f, o, row);
  }

  /** One record of the bar layout (src/core/bar.ts) at `o` in `f`; as applyTick. */
  applyBar(f: Float64Array, o: number): void {
    const row = this.rowOfToken.get(f[o + B.TOKEN]);
    if (row === undefined) return;
    this.bars++;
    const k = this.timeframesMs.indexOf(f[o + B.TF_MS]);
    if (k >= 0) {
      const slot = row * this.timeframesMs.length + k;
      const lb = this.latestBars;
      const d = slot * BAR_FIELDS;
      for (let i = 0; i < BAR_FIELDS; i++) lb[d + i] = f[o + i];
      this.hasBar[slot] = 1;
      if (this.quiet) {
        this.dirtyBar[slot] = 1;
        return;
      }
    } else if (this.quiet) return;
    const barLs = this.barLs;
    for (let i = 0; i < barLs.length; i++) barLs[i].bar!(f, o, row);
  }

  endBatch(): void {
    if (this.quiet) return;
    const endLs = this.endLs;
    for (let i = 0; i < endLs.length; i++) endLs[i].batchEnd!();
  }

  /**
   * Conflation: while quiet, records only update the latest state; flushQuiet() then hands the
   * listeners each instrument's latest tick and bar once, as one batch, and ends the quiet. A
   * gateway that fell behind its feed catches up this way: latest values, never the backlog.
   */
  setQuiet(): void {
    this.quiet = true;
  }

  /** End a quiet spell: one batch of the latest tick per instrument and bar per timeframe marked since it began. */
  flushQuiet(): number {
    this.quiet = false;
    let n = 0;
    const tickLs = this.tickLs;
    const lt = this.latestTicks;
    for (let row = 0; row < this.rows; row++) {
      if (this.dirtyTick[row] === 0) continue;
      this.dirtyTick[row] = 0;
      n++;
      for (let i = 0; i < tickLs.length; i++) tickLs[i].tick!(lt, row * N_FIELDS, row);
    }
    const barLs = this.barLs;
    const lb = this.latestBars;
    const tfs = this.timeframesMs.length;
    for (let slot = 0; slot < this.dirtyBar.length; slot++) {
      if (this.dirtyBar[slot] === 0) continue;
      this.dirtyBar[slot] = 0;
      n++;
      for (let i = 0; i < barLs.length; i++) barLs[i].bar!(lb, slot * BAR_FIELDS, Math.floor(slot / tfs));
    }
    this.endBatch();
    return n;
  }

  isQuiet(): boolean {
    return this.quiet;
  }

  done(): Promise<void> {
    return this.pump?.done ?? Promise.resolve();
  }
}
