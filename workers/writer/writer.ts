/**
 * The batch writer: reads every shard's tick and bar output rings as the STORE consumer and
 * commits what it reads, exactly once, to the database (sink.ts), or, while the database is away,
 * to the on-disk spill (spill.ts), replayed in order when it returns.
 *
 * ## Nothing lost
 * A record leaves a ring (`release`) only after the batch holding it is COMMITTED or durably
 * SPILLED (fsync returned). Until then `peek` has only read it in place. If this thread dies
 * (the `postgres` driver can throw from a timer where no catch reaches: sink-pg.ts), the
 * supervisor in the main thread starts a new one, whose ring consumers start again at the last
 * release: the records of any batch not yet acknowledged are still in the rings, which the main
 * thread owns. If the process dies (kill -9), records still in the rings or in flight are lost by
 * nature: the front's and shards' memory goes with it. What was committed or spilled stays.
 *
 * ## Nothing doubled
 * Each stream (one ring: shard × {ticks, bars}) numbers its records by ring position from 0 at
 * service start (the epoch, a uuid). A batch is a position range [first, end) of one stream, its
 * id (epoch, stream, first). The database keeps per (epoch, stream) the high water below which
 * everything is committed, updated in the same transaction as the rows (sink.ts). A batch formed
 * again after a crash, or replayed from the spill, sends only its rows at or past the high water.
 * For that to hold, each stream's batches must commit in order:
 *
 * - one batch in flight per stream (the next is dispatched only when the previous is settled);
 * - while the spill holds any batch of a stream, that stream's new batches go to the spill too,
 *   behind it, and only the replay (one batch of the stream at a time, oldest first) commits
 *   from it; the stream's direct commits resume when it has nothing left in the spill. Streams
 *   are independent: each replays, and goes back to direct, on its own.
 *
 * The tests drive all of this with the real pipeline and PostgreSQL (test/storage/): terminated
 * connections, refused connections, a full spill, the driver's uncaught exception, kill -9.
 *
 * ## Batching and back-pressure
 * Records are encoded as they arrive into the stream's batch (read in place, not released). A
 * batch is due at WRITER_BATCH_ROWS rows or when its oldest record has waited WRITER_BATCH_MS,
 * whichever comes first (due() has the rules while the database is away). Streams commit in
 * parallel, one per connection. A database slower than the feed keeps records in the rings; full
 * rings make the shards wait, which fills the front's rings, which pauses the Kite sockets:
 * nothing is dropped. A full spill (SPILL_MAX_BYTES) does the same, said loudly.
 *
 * Hot path: records are encoded from the ring slot straight into the stream's reusable COPY
 * buffer (copy.ts); nothing is allocated per tick. Allocation happens per batch (promises, views).
 */
import { RingConsumer } from '../../src/core/ring.ts';
import { DOORBELL_STRIDE } from '../../src/core/shard-protocol.ts';
import { BatchBuilder, barStream, batchRows, isBarStream, Section, tickStream, type BatchData } from './batch.ts';
import { MARKET_RECV_AT, PG_EPOCH_US } from './copy.ts';
import { latencyBucket, WC, WriterExit, WriterState, type WriterData } from '../../src/core/writer-protocol.ts';
import { isDataError, type CommitResult, type Sink } from './sink.ts';
import { Spill } from './spill.ts';

export type WriterLog = (level: 'debug' | 'info' | 'warn' | 'error', obj: Record<string, unknown>, msg: string) => void;

interface Stream {
  readonly id: number;
  readonly ring: RingConsumer;
  readonly builder: BatchBuilder;
  readonly onRecord: (v: { f64: Float64Array }, base: number) => void;
  /** A batch of this stream is being committed or spilled. */
  busy: boolean;
  /** performance.now() when the oldest record not yet dispatched was first seen (0: none). */
  since: number;
  /** Records released so far (64-bit ring position). */
  pos: number;
  /** Records one batch may hold: half the ring, so the shard always has the other half. */
  readonly maxRecords: number;
}

const TWO32 = 4_294_967_296;
const IDLE_MS = 250;
/** Attempts at one spilled batch that the database refuses as bad data before it is set aside. */
const REFUSALS_BEFORE_SET_ASIDE = 3;
/** Back-off between attempts to reach the database. */
const BACKOFF_MIN_MS = 100;
const BACKOFF_MAX_MS = 2000;
/** Longest the rings are held while the database first opens. */
const FIRST_OPEN_HOLD_MS = 5000;
/** Age at which a batch bound for the spill is cut (see due()). */
const SPILL_CUT_MS = 1000;

export class Writer {
  readonly spill: Spill;
  private readonly streams: Stream[] = [];
  private readonly counters: Float64Array;
  private readonly progress: Float64Array;
  private readonly bells: Int32Array;
  private readonly bellAt: number;
  /** The database took the last thing we tried. */
  private up = false;
  /** The first attempt to open the database has finished (either way), or FIRST_OPEN_HOLD_MS passed: batches may be cut. */
  private firstOpenDone = false;
  private stopping = false;
  private stopped = false;
  /** Streams whose spilled records are being replayed now. */
  private readonly replaying = new Map<number, Promise<void>>();
  /** Refusals (bad data) of each stream's oldest spilled record. */
  private readonly refusals = new Map<number, number>();
  private replayWake: (() => void) | null = null;
  private lastLoud = 0;
  private lastDownLog = 0;
  /** performance.now() at which each in-flight commit started, for the watchdog. */
  private readonly inflight = new Set<{ t0: number }>();
  private watchdog: NodeJS.Timeout | null = null;
  private maintenanceTimer: NodeJS.Timeout | null = null;

  constructor(
    private readonly d: WriterData,
    private readonly sink: Sink,
    private readonly log: WriterLog,
    /** Told when the instrument master is stored (so a restarted writer need not store it again). */
    private readonly onInstruments: (rows: number) => void = () => {},
  ) {
    this.counters = new Float64Array(d.counters);
    this.progress = new Float64Array(d.progress);
    this.bells = new Int32Array(d.doorbells);
    this.bellAt = d.consumer * DOORBELL_STRIDE;
    this.spill = new Spill({
      dir: d.spillDir,
      maxBytes: d.spillMaxBytes,
      segmentBytes: d.spillSegmentBytes,
      onDamage: (x) => log(x.tail ? 'warn' : 'error', { code: x.tail ? 'SPILL_TORN_TAIL' : 'SPILL_DAMAGED', ...x },
        x.tail
          ? 'spill: cut off a torn last record (a write interrupted by a crash before its fsync; its records were never released, so it held nothing acknowledged)'
          : 'spill: a segment is damaged past this offset; its readable records are replayed and the file is kept as .damaged for inspection'),
    });
    d.ticks.forEach((sab, shard) => this.addStream(tickStream(shard), sab));
    d.bars.forEach((sab, shard) => this.addStream(barStream(shard), sab));
    this.counters[WC.STATE] = WriterState.STARTING;
    this.counters[WC.STARTED_MS] = Date.now();
    this.spillStats();
  }

  private addStream(id: number, sab: SharedArrayBuffer): void {
    const ring = new RingConsumer(sab, this.d.consumer);
    const builder = new BatchBuilder(this.d.epoch, id);
    // The shared record says how far the previous writer thread got; the ring's own counter is
    // exact but 32-bit. Unwrap it against the record (a thread that died between release and the
    // record's update leaves the ring ahead by that batch).
    const recorded = this.progress[id];
    const pos = recorded + ((ring.position() - (recorded % TWO32) + TWO32) % TWO32);
    this.progress[id] = pos;
    builder.begin(pos);
    this.streams.push({ id, ring, builder, onRecord: isBarStream(id) ? builder.onBar : builder.onTick, busy: false, since: 0, pos, maxRecords: ring.capacity >> 1 });
  }

  /** Run until stop() and everything is drained. */
  async run(): Promise<void> {
    const replay = this.replayLoop();
    // A first open that takes long (PGlite's initdb on a loaded machine) must not hold the rings
    // longer than this: past it, batches go to the spill and are replayed once it is open.
    const hold = setTimeout(() => {
      this.firstOpenDone = true;
      this.kick();
    }, FIRST_OPEN_HOLD_MS);
    let elu = performance.eventLoopUtilization();
    this.watchdog = setInterval(() => {
      this.checkStall();
      const now = performance.eventLoopUtilization();
      this.counters[WC.BUSY] = performance.eventLoopUtilization(now, elu).utilization;
      elu = now;
    }, 1000);
    this.watchdog.unref();
    this.maintenanceTimer = setInterval(() => {
      if (this.up) this.sink.maintenance().catch((e) => this.log('warn', { err: errInfo(e) }, 'storage maintenance failed; retried within the hour'));
    }, 3_600_000);
    this.maintenanceTimer.unref();
    for (;;) {
      const seen = Atomics.load(this.bells, this.bellAt);
      const wait = this.pump();
      if (this.stopping && this.drained()) break;
      await this.sleep(seen, wait);
    }
    this.stopped = true;
    clearTimeout(hold);
    this.replayWake?.();
    await replay;
    clearInterval(this.watchdog);
    clearInterval(this.maintenanceTimer);
  }

  /** Drain the rings (closed by the pipeline's shutdown), then stop. */
  stop(): void {
    this.stopping = true;
    this.kick();
  }

  /**
   * Encode what each idle stream has waiting into its batch (records are read in place, not
   * released), and dispatch the batches that are due; returns ms until the next one is.
   */
  private pump(): number {
    const now = performance.now();
    let wait = IDLE_MS;
    for (const s of this.streams) {
      if (s.busy) {
        // Records that arrive while the previous batch commits have been waiting since now: the
        // next batch's age counts from here, not from when the commit ends.
        if (s.since === 0 && s.ring.available() > 0) s.since = now;
        continue;
      }
      if (!this.firstOpenDone) {
        // Hold records in the rings while the database opens (a second or two): spilling what
        // would commit a moment later only doubles the work.
        if (s.ring.available() > 0) wait = Math.min(wait, 50);
        continue;
      }
      const b = s.builder;
      if (s.ring.available() > 0) {
        if (b.count === 0) {
          b.begin(s.pos);
          if (s.since === 0) s.since = now;
        }
        s.ring.peek(s.onRecord, s.maxRecords - b.count);
      }
      if (b.count === 0) continue;
      const age = now - s.since;
      const due = this.due(s, age);
      if (due <= 0) this.dispatch(s);
      else wait = Math.min(wait, due);
    }
    return Math.max(1, wait);
  }

  /**
   * ms until stream `s`'s batch is due (<= 0: now). Unreleased records hold ring slots the shard
   * needs, so a batch holding half the ring is always due. Otherwise it depends on where it goes:
   *
   * - direct (database up, none of this stream spilled): by rows (WRITER_BATCH_ROWS; rows, not
   *   records, since a bars batch holds many updates and few closed bars) or by age
   *   (WRITER_BATCH_MS);
   * - behind spilled batches of this stream that are being replayed: not by age. Records wait in
   *   the ring, which costs nothing, and go direct as one batch once the replay is through,
   *   instead of adding a small batch (and an fsync) to a backlog the replay must catch up with;
   * - to the spill (database away): by age SPILL_CUT_MS, so an outage makes few large records
   *   (few fsyncs now, few transactions at replay).
   */
  private due(s: Stream, age: number): number {
    if (this.stopping || s.builder.count >= s.maxRecords) return 0;
    if (!this.up) return SPILL_CUT_MS - age;
    if (this.spill.pendingFor(s.id) > 0) return IDLE_MS;
    if (batchRows(s.builder) >= this.d.batchRows) return 0;
    return this.d.batchMs - age;
  }

  private drained(): boolean {
    for (const s of this.streams) if (s.busy || !s.ring.closed() || s.ring.available() > 0) return false;
    return true;
  }

  /** Sleep on the STORE doorbell (every shard rings it after publishing) or until `ms` pass. */
  private async sleep(seen: number, ms: number): Promise<void> {
    const b = this.bells;
    Atomics.store(b, this.bellAt + 1, 1);
    if (Atomics.load(b, this.bellAt) === seen) {
      const r = Atomics.waitAsync(b, this.bellAt, seen, ms);
      if (r.async) await r.value;
    }
    Atomics.store(b, this.bellAt + 1, 0);
  }

  /**
   * Wake the main loop (a batch settled, or stop()). Bumps the doorbell like a shard does, so a
   * kick that lands between pump() and sleep() is not missed.
   */
  private kick(): void {
    Atomics.add(this.bells, this.bellAt, 1);
    Atomics.notify(this.bells, this.bellAt);
  }

  private dispatch(s: Stream): void {
    s.busy = true;
    s.since = 0;
    void this.deliver(s);
  }

  private async deliver(s: Stream): Promise<void> {
    const b = s.builder;
    try {
      for (;;) {
        if (this.up && this.spill.pendingFor(s.id) === 0) {
          if ((await this.tryCommit(b, 'direct')) !== null) break;
        }
        if (this.spill.append(b)) {
          this.counters[WC.SPILLED]++;
          this.spillStats();
          this.replayWake?.();
          break;
        }
        // The spill is full: hold the batch (its records stay in the ring, so the rings fill and
        // the feed is paused), and try again: the database may be back, or the replay may have
        // made room.
        this.counters[WC.SPILL_FULL] = 1;
        this.loud('error', { code: 'SPILL_FULL', spillBytes: this.spill.bytes(), spillMaxBytes: this.spill.maxBytes, database: this.up ? 'up' : 'down' },
          'SPILL FULL: the database has been away long enough to fill SPILL_MAX_BYTES. The writer now holds batches in the rings and the feed is paused (back-pressure); nothing is dropped. Bring the database back or raise SPILL_MAX_BYTES.');
        await new Promise((r) => setTimeout(r, 250));
      }
      this.counters[WC.SPILL_FULL] = 0;
      this.release(s, b.count);
    } catch (e) {
      // Not expected (spill I/O errors end up here): let the thread die so the supervisor
      // restarts it; the batch is still in the ring.
      queueMicrotask(() => { throw e; });
    } finally {
      s.busy = false;
      this.kick();
    }
  }

  private async tryCommit(b: BatchData, via: 'direct' | 'spill'): Promise<CommitResult | null> {
    const token = { t0: performance.now() };
    this.inflight.add(token);
    this.counters[WC.IN_FLIGHT] = this.inflight.size;
    try {
      const r = await this.sink.commit(b, via);
      this.committed(b, r, via);
      return r;
    } catch (e) {
      if (via === 'spill') throw e;
      this.down(e);
      return null;
    } finally {
      this.inflight.delete(token);
      this.counters[WC.IN_FLIGHT] = this.inflight.size;
    }
  }

  private release(s: Stream, n: number): void {
    s.builder.begin(s.pos + n);
    s.ring.release(n);
    s.pos += n;
    this.progress[s.id] = s.pos;
    this.counters[WC.RELEASED] += n;
  }

  private committed(b: BatchData, r: CommitResult, via: 'direct' | 'spill'): void {
    const c = this.counters;
    c[WC.STATE] = WriterState.UP;
    c[WC.LAST_COMMIT_MS] = Date.now();
    c[WC.ROWS_SKIPPED] += r.rowsSkipped;
    if (via === 'spill') c[WC.REPLAYED]++;
    if (r.gap > 0) {
      c[WC.GAPS] += r.gap;
      this.log('error', { code: 'WRITER_GAP', stream: b.stream, epoch: b.epoch, missing: r.gap, before: b.first },
        'writer: records of this stream below the batch were never committed (a batch set aside after the database refused it)');
    }
    if (r.skipped) {
      c[WC.BATCHES_SKIPPED]++;
      return;
    }
    c[WC.BATCHES]++;
    c[WC.ROWS] += r.rows[Section.MARKET];
    c[WC.QUARANTINED] += r.rows[Section.QUARANTINE];
    c[WC.BARS] += r.rows[Section.BARS];
    // Write latency: tick received by the front → its row committed, read back from the tuples.
    const s = b.sections[Section.MARKET];
    if (r.rows[Section.MARKET] > 0) {
      const nowUs = (performance.timeOrigin + performance.now()) * 1000;
      const dv = new DataView(s.bytes.buffer, s.bytes.byteOffset, s.bytes.length);
      for (let i = r.from[Section.MARKET]; i < s.rows; i++) {
        const at = s.off[i] + MARKET_RECV_AT;
        const recvUs = dv.getInt32(at) * TWO32 + dv.getUint32(at + 4) + PG_EPOCH_US;
        c[WC.LATENCY + latencyBucket((nowUs - recvUs) / 1000)]++;
      }
    }
  }

  private down(e: unknown): void {
    this.counters[WC.FAILURES]++;
    const wasUp = this.up;
    this.up = false;
    this.counters[WC.STATE] = WriterState.DOWN;
    if (wasUp) {
      this.log('warn', { code: 'DATABASE_UNAVAILABLE', err: errInfo(e) }, 'database write failed; batches go to the on-disk spill until it answers again');
    }
    this.replayWake?.();
  }

  /** Logs at most once every 10 s per kind of trouble (the spill can refuse 4 times a second). */
  private loud(level: 'warn' | 'error', obj: Record<string, unknown>, msg: string): void {
    const now = Date.now();
    if (now - this.lastLoud < 10_000) return;
    this.lastLoud = now;
    this.log(level, obj, msg);
  }

  private spillStats(): void {
    this.counters[WC.SPILL_PENDING] = this.spill.pending();
    this.counters[WC.SPILL_BYTES] = this.spill.bytes();
  }

  /**
   * Opens the database (first), then, whenever the spill holds anything, replays it: each stream's
   * records oldest first, one at a time, the streams side by side (up to one per connection).
   * While the database is away, retries with back-off.
   */
  private async replayLoop(): Promise<void> {
    const pause = async (ms: number) => new Promise<void>((r) => {
      const t = setTimeout(r, ms);
      this.replayWake = () => { clearTimeout(t); r(); };
    }).finally(() => { this.replayWake = null; });
    try {
      await this.replayUntilStopped(pause);
    } finally {
      // Never leave a stream's replay running behind us (flushSpill starts its own).
      await Promise.all(this.replaying.values());
    }
  }

  private async replayUntilStopped(pause: (ms: number) => Promise<void>): Promise<void> {
    let backoff = BACKOFF_MIN_MS;
    while (!this.stopped) {
      if (!this.up) {
        let opened = false;
        try {
          const o = await this.sink.open();
          opened = true;
          this.up = true;
          this.counters[WC.STATE] = WriterState.UP;
          backoff = BACKOFF_MIN_MS;
          if (o.instruments !== null) this.onInstruments(o.instruments);
          this.log('info', { schemaPath: o.schemaPath, instruments: o.instruments ?? undefined, spillPending: this.spill.pending() },
            this.spill.pending() > 0 ? `database reachable; replaying ${this.spill.pending()} spilled batch(es)` : 'database reachable');
        } catch (e) {
          this.counters[WC.FAILURES]++;
          this.counters[WC.STATE] = WriterState.DOWN;
          // Said at once at start-up, then once a minute while it lasts.
          const now = Date.now();
          if (!this.firstOpenDone || now - this.lastDownLog >= 60_000) {
            this.lastDownLog = now;
            this.log('warn', { code: 'DATABASE_UNAVAILABLE', err: errInfo(e), spillBatches: this.spill.pending(), spillBytes: this.spill.bytes() },
              'database not usable (unreachable, refusing connections, or the schema could not be migrated: see err); batches go to the on-disk spill until it is');
          }
        }
        this.firstOpenDone = true;
        this.kick();
        if (!opened) {
          if (this.stopping) return;
          await pause(backoff);
          backoff = Math.min(backoff * 2, BACKOFF_MAX_MS);
          continue;
        }
      }
      const streams = this.spill.streams().filter((id) => !this.replaying.has(id));
      if (streams.length === 0) {
        if (this.stopping && this.replaying.size === 0) return;
        await pause(IDLE_MS);
        continue;
      }
      for (const id of streams) {
        const task = this.replayStream(id).finally(() => {
          this.replaying.delete(id);
          this.replayWake?.();
          this.kick();
        });
        this.replaying.set(id, task);
      }
      if (!this.up) {
        await pause(backoff);
        backoff = Math.min(backoff * 2, BACKOFF_MAX_MS);
      } else {
        backoff = BACKOFF_MIN_MS;
        await pause(IDLE_MS);
      }
    }
  }

  /** Replay one stream's spilled records in order while the database takes them. */
  private async replayStream(id: number): Promise<void> {
    while (this.up) {
      const b = this.spill.peek(id);
      if (b === null) return;
      try {
        await this.tryCommit(b, 'spill');
        this.spill.ack(id, b);
        this.refusals.delete(id);
        this.spillStats();
      } catch (e) {
        const n = (this.refusals.get(id) ?? 0) + 1;
        this.refusals.set(id, n);
        if (isDataError(e) && n >= REFUSALS_BEFORE_SET_ASIDE) {
          const file = this.spill.setAside(id);
          this.refusals.delete(id);
          this.counters[WC.REJECTED]++;
          this.spillStats();
          this.log('error', { code: 'WRITER_BATCH_REJECTED', file, rows: batchRows(b), stream: b.stream, err: errInfo(e) },
            `the database refused a batch ${REFUSALS_BEFORE_SET_ASIDE} times as bad data; it is kept in ${file} and later batches go on. Inspect it, fix the cause, and load it by hand.`);
          continue;
        }
        if (isDataError(e)) continue; // the database is up and said no to this batch: try it again
        this.down(e);
        return;
      }
    }
  }

  /**
   * A commit that outlives WRITER_STALL_MS: the driver can wedge after a terminated backend
   * (sink-pg.ts). End the thread; the supervisor starts a fresh one and nothing unacknowledged
   * has left the rings.
   */
  private checkStall(): void {
    const now = performance.now();
    for (const t of this.inflight) {
      if (now - t.t0 > this.d.stallMs) {
        this.log('error', { code: 'WRITER_STALLED', stallMs: this.d.stallMs }, 'a commit has not settled within WRITER_STALL_MS; restarting the writer thread (unacknowledged batches stay in the rings)');
        setTimeout(() => process.exit(WriterExit.STALLED), 50);
        return;
      }
    }
  }

  /**
   * After stop(): give the replay loop up to `ms` to empty the spill into a reachable database.
   * What it cannot is kept on disk for the next start.
   */
  async flushSpill(ms: number): Promise<void> {
    const until = Date.now() + ms;
    while (this.spill.pending() > 0 && this.up && Date.now() < until) {
      await Promise.all(this.spill.streams().map((id) => this.replayStream(id)));
    }
  }

  async close(): Promise<void> {
    this.spill.close();
    this.counters[WC.STATE] = WriterState.STOPPED;
    await this.sink.close();
  }
}

export function errInfo(e: unknown): Record<string, unknown> {
  const x = e as { message?: string; code?: string };
  return { message: x?.message ?? String(e), code: x?.code };
}
