/**
 * The worker side of the pipeline, as the main thread sees it: one shard worker per input ring,
 * each with two output rings (canonical ticks, bars) that downstream consumers read in place.
 *
 * Output consumers are fixed slots on every output ring (TickConsumer: STORE = 0, FEED = 1); a
 * consumer reads with an `OutputReader`. Every slot must be read by someone, or the rings fill
 * and, by design, the pipeline waits (backpressure up to the Kite socket): nothing is dropped.
 *
 * Shutdown order: the front closes the input rings; each shard drains, flushes its open bars as
 * partial bars, closes its output rings and says so; readers drain what is left.
 *
 * An `OutputPump` runs one consumer in the main thread: it sleeps on the pipeline's doorbell,
 * drains every shard's tick and bar rings, hands each record to the consumer's handlers, and stops
 * once every shard has closed its outputs and all was read.
 */
import type { Worker } from 'node:worker_threads';
import { startWorker } from './threads.ts';
import type { TickMode } from './core/instrument.ts';
import type { Instrument } from './core/instrument.ts';
import { createRingBuffer, DEFAULT_PIPELINE_WAIT, PARK, RingConsumer, setRingWait, SpinBudget, type WaitPolicy } from './core/ring.ts';
import { shardOf } from './front.ts';
import { N_SLOT_WORDS, TICK_CONSUMERS } from './core/tick.ts';
import { BAR_SLOT_WORDS, chainStatsBytes, DOORBELL_STRIDE, optionGroups, SC, SHARD_COUNTERS, type LastStored, type ShardControl, type ShardData, type ShardMemory, type ShardMessage } from './core/shard-protocol.ts';
import { QUARANTINE_REASON_NAMES } from './core/tick.ts';
import { DEFAULT_BAR_GRACE_MS } from './core/bar.ts';
import type { SlotViews } from './core/packet-slot.ts';

const SHARD_MODULE = new URL('../workers/shard-main.ts', import.meta.url);

export interface PipelineOptions {
  rings: readonly SharedArrayBuffer[];
  instruments: readonly Instrument[];
  mode: TickMode;
  timeframesMs: readonly number[];
  graceMs?: number;
  /** Slots per output ring (power of two). Default 65,536. */
  outCapacity?: number;
  maxBatch?: number;
  clockIntervalMs?: number;
  /** Shared Float64Array[1] clock for tests; null = wall clock. */
  clock?: SharedArrayBuffer | null;
  onError: (shard: number, err: Error) => void;
  /** The last tick stored per token before this process (src/storage/last-stored.ts): its repeat is a duplicate. */
  lastStored?: readonly LastStored[];
  /**
   * How the shards wait on their input rings and the main thread's readers on the doorbells
   * (config PIPELINE_WAIT). Default: the service's, DEFAULT_PIPELINE_WAIT (src/core/ring.ts says why).
   */
  wait?: WaitPolicy;
}

export interface ShardHandle {
  readonly worker: Worker;
  readonly counters: Float64Array;
  readonly ticksOut: SharedArrayBuffer;
  readonly barsOut: SharedArrayBuffer;
  readonly drained: Promise<void>;
}

export interface PipelineCounters {
  ticksIn: number;
  ticksOut: number;
  quarantined: number;
  duplicates: number;
  barsClosed: number;
  barUpdates: number;
  late: number;
  outWaits: number;
  quarantineByReason: Record<string, number>;
}

export class Pipeline {
  readonly shards: ShardHandle[];
  readonly doorbells: SharedArrayBuffer;
  /** Option groups ("NAME:YYYY-MM-DD"), indexed as in the chain-stats buffer. */
  readonly optionGroups: readonly string[];
  private readonly chain: Float64Array;
  private readonly wait: WaitPolicy;

  constructor(opts: PipelineOptions) {
    this.wait = opts.wait ?? DEFAULT_PIPELINE_WAIT;
    // The shards learn it from their input rings' headers, before they start.
    for (const ring of opts.rings) setRingWait(ring, this.wait);
    this.doorbells = new SharedArrayBuffer(TICK_CONSUMERS * DOORBELL_STRIDE * 4);
    this.optionGroups = optionGroups(opts.instruments);
    const chainStats = new SharedArrayBuffer(chainStatsBytes(opts.rings.length, this.optionGroups.length));
    this.chain = new Float64Array(chainStats);
    const n = opts.rings.length;
    const outCapacity = opts.outCapacity ?? 1 << 16;
    const tokensOf: number[][] = Array.from({ length: n }, () => []);
    for (const i of opts.instruments) tokensOf[shardOf(i.instrumentToken, n)].push(i.instrumentToken);
    this.shards = opts.rings.map((ring, shard) => {
      const countersBuf = new SharedArrayBuffer(SHARD_COUNTERS * 8);
      const data: ShardData = {
        shard,
        ring,
        ticksOut: createRingBuffer(outCapacity, N_SLOT_WORDS, TICK_CONSUMERS),
        barsOut: createRingBuffer(outCapacity, BAR_SLOT_WORDS, TICK_CONSUMERS),
        counters: countersBuf,
        doorbells: this.doorbells,
        chainStats,
        instruments: [...opts.instruments],
        tokens: [...new Set(tokensOf[shard])],
        mode: opts.mode,
        timeframesMs: [...opts.timeframesMs],
        graceMs: opts.graceMs ?? DEFAULT_BAR_GRACE_MS,
        maxBatch: opts.maxBatch ?? 1024,
        clockIntervalMs: opts.clockIntervalMs ?? 100,
        clock: opts.clock ?? null,
        lastStored: opts.lastStored?.filter((t) => shardOf(t.token, n) === shard),
      };
      const worker = startWorker(SHARD_MODULE, { workerData: data, name: `shard-${shard}` });
      const drained = new Promise<void>((resolve) => {
        worker.on('message', (m: ShardMessage) => { if (m.type === 'drained') resolve(); });
        worker.on('exit', () => resolve());
      });
      worker.on('error', (err) => opts.onError(shard, err));
      return { worker, counters: new Float64Array(countersBuf), ticksOut: data.ticksOut, barsOut: data.barsOut, drained };
    });
  }

  counters(): PipelineCounters {
    const sum = (i: number) => this.shards.reduce((a, s) => a + s.counters[i], 0);
    const byReason: Record<string, number> = {};
    QUARANTINE_REASON_NAMES.forEach((name, r) => {
      if (r > 0) byReason[name] = sum(SC.REASON0 + r);
    });
    return {
      ticksIn: sum(SC.TICKS_IN),
      ticksOut: sum(SC.TICKS_OUT),
      quarantined: sum(SC.QUARANTINED),
      duplicates: sum(SC.DUPLICATES),
      barsClosed: sum(SC.BARS_CLOSED),
      barUpdates: sum(SC.BAR_UPDATES),
      late: sum(SC.LATE),
      outWaits: sum(SC.OUT_WAITS),
      quarantineByReason: byReason,
    };
  }

  /**
   * Put-call ratio by OI of an option chain (`name` and `expiry` as in the master, e.g. 'NIFTY',
   * '2025-12-30'), summed over every shard: Σ put OI / Σ call OI; NaN when calls have no OI yet.
   * The shards update their sums after each batch, so it trails the feed by one batch.
   */
  pcr(name: string, expiry: string): { pcr: number; callOi: number; putOi: number } {
    const g = this.optionGroups.indexOf(`${name}:${expiry}`);
    if (g < 0) return { pcr: NaN, callOi: 0, putOi: 0 };
    let calls = 0;
    let puts = 0;
    const stride = this.optionGroups.length * 2;
    for (let s = 0; s < this.shards.length; s++) {
      calls += this.chain[s * stride + 2 * g];
      puts += this.chain[s * stride + 2 * g + 1];
    }
    return { pcr: calls > 0 ? puts / calls : NaN, callOi: calls, putOi: puts };
  }

  /** Install consumer filter k (1..30) in every shard; tokens null = all. */
  setFilter(k: number, tokens: number[] | null, filter: { fields: number; changedOnly: boolean } | null): void {
    const m: ShardControl = { type: 'filter', k, tokens, filter };
    for (const s of this.shards) s.worker.postMessage(m);
  }

  /**
   * Each shard's heap and GC count (for diagnostics and the bench). GC events are counted from a
   * shard's first request on, so call once to start counting and again to read.
   */
  memory(timeoutMs = 5000): Promise<ShardMemory[]> {
    return Promise.all(this.shards.map((s) => new Promise<ShardMemory>((resolve, reject) => {
      const timer = setTimeout(() => {
        s.worker.off('message', onMessage);
        reject(new Error(`shard ${s.worker.threadId} did not report its memory within ${timeoutMs} ms`));
      }, timeoutMs);
      const onMessage = (m: ShardMessage): void => {
        if (m.type !== 'memory') return;
        clearTimeout(timer);
        s.worker.off('message', onMessage);
        const { type: _type, ...mem } = m;
        resolve(mem);
      };
      s.worker.on('message', onMessage);
      s.worker.postMessage({ type: 'memory' } satisfies ShardControl);
    })));
  }

  /** Run the shards' bar clocks now (tests with a manual clock). */
  advance(): void {
    const m: ShardControl = { type: 'advance' };
    for (const s of this.shards) s.worker.postMessage(m);
  }

  reader(consumer: number): OutputReader {
    return new OutputReader(this.shards, consumer, this.doorbells, this.wait);
  }

  /** After the front closed its rings: wait for every shard to drain, then end the threads. */
  async stop(timeoutMs = 10_000): Promise<void> {
    const all = Promise.all(this.shards.map((s) => s.drained));
    await Promise.race([all, new Promise((r) => setTimeout(r, timeoutMs).unref())]);
    await Promise.all(this.shards.map((s) => s.worker.terminate()));
  }
}

/**
 * One consumer's view of every shard's output rings. Ticks of one token come from one shard, in
 * order; across shards there is no order (none is promised).
 */
export class OutputReader {
  readonly ticks: RingConsumer[];
  readonly bars: RingConsumer[];

  private readonly bells: Int32Array;
  private readonly at: number;
  private readonly spin: SpinBudget;

  constructor(shards: readonly Pick<ShardHandle, 'ticksOut' | 'barsOut'>[], readonly consumer: number, doorbells: SharedArrayBuffer, wait: WaitPolicy = PARK) {
    this.spin = new SpinBudget(wait);
    this.bells = new Int32Array(doorbells);
    this.at = consumer * DOORBELL_STRIDE;
    this.ticks = shards.map((s) => new RingConsumer(s.ticksOut, consumer));
    this.bars = shards.map((s) => new RingConsumer(s.barsOut, consumer));
  }

  /** Drain every ring once; returns records handed out. `fn` reads f64 at `base >> 1`. */
  drain(onTick: (v: SlotViews, base: number) => void, onBar: (v: SlotViews, base: number) => void, max?: number): number {
    let n = 0;
    for (let i = 0; i < this.ticks.length; i++) n += this.ticks[i].drain(onTick, max);
    for (let i = 0; i < this.bars.length; i++) n += this.bars[i].drain(onBar, max);
    return n;
  }

  /** Every shard closed its outputs and everything was read. */
  done(): boolean {
    for (const r of this.ticks) if (!r.closed() || r.available() > 0) return false;
    for (const r of this.bars) if (!r.closed() || r.available() > 0) return false;
    return true;
  }

  private anyAvailable(): boolean {
    for (const r of this.ticks) if (r.available() > 0) return true;
    for (const r of this.bars) if (r.available() > 0) return true;
    return false;
  }

  /**
   * Resolve when any ring has data, all are closed, or the timeout passes (one doorbell for all).
   * A spinning policy first re-checks once per turn of the event loop (setImmediate), not in a
   * tight loop: this runs on the main thread, whose sockets (the front's input, the clients'
   * output) must keep being served, and a turn polls them without blocking.
   */
  async waitForData(timeoutMs: number): Promise<void> {
    const b = this.bells;
    let seen = Atomics.load(b, this.at);
    if (this.anyAvailable() || this.done()) return;
    const spin = this.spin;
    const spinUs = spin.next();
    const t0 = performance.now();
    if (spinUs > 0) {
      const until = t0 + spinUs / 1000;
      do {
        await new Promise(setImmediate);
        if (Atomics.load(b, this.at) !== seen || this.anyAvailable() || this.done()) {
          spin.waited((performance.now() - t0) * 1000);
          return;
        }
      } while (performance.now() < until);
      seen = Atomics.load(b, this.at);
    }
    Atomics.store(b, this.at + 1, 1);
    // Re-check after raising the flag: a shard that published in between did not see it.
    if (Atomics.load(b, this.at) !== seen || this.anyAvailable()) {
      Atomics.store(b, this.at + 1, 0);
      spin.waited((performance.now() - t0) * 1000);
      return;
    }
    const r = Atomics.waitAsync(b, this.at, seen, timeoutMs);
    if (r.async) await r.value;
    Atomics.store(b, this.at + 1, 0);
    spin.waited((performance.now() - t0) * 1000);
  }
}

export interface OutputHandlers {
  /** A canonical tick (tick.ts) at f64 index `base >> 1` of `v.f64`. */
  tick(v: SlotViews, base: number): void;
  /** A bar (bar.ts) at f64 index `base >> 1` of `v.f64`. */
  bar(v: SlotViews, base: number): void;
  /** After each drain that handed out records. */
  batchEnd?(): void;
}

export interface OutputPumpOptions {
  /** Longest sleep between checks when nothing is signalled, ms. Default 250. */
  idleMs?: number;
  /**
   * At most this many records per ring between two batchEnd calls (default: all there are). The
   * feed hub bounds it: a consumer that fell behind then publishes every few thousand records
   * instead of once for a whole ring, and its per-drain buffers stay that small.
   */
  maxPerDrain?: number;
}

/** The subset of OutputReader a pump uses. */
export type PumpReader = Pick<OutputReader, 'drain' | 'done' | 'waitForData'>;

export class OutputPump {
  records = 0;
  readonly done: Promise<void>;

  constructor(private readonly reader: PumpReader, private readonly h: OutputHandlers, opts: OutputPumpOptions = {}) {
    const tick = h.tick.bind(h);
    const bar = h.bar.bind(h);
    const idleMs = opts.idleMs ?? 250;
    const max = opts.maxPerDrain;
    this.done = (async () => {
      for (;;) {
        const n = reader.drain(tick, bar, max);
        if (n > 0) {
          this.records += n;
          h.batchEnd?.();
          continue;
        }
        if (reader.done()) return;
        await reader.waitForData(idleMs);
      }
    })();
  }
}
