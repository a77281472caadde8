/**
 * Storage as the service sees it: starts the writer thread (workers/writer/) on the pipeline's
 * output rings, restarts it with back-off whenever it dies, and serves reads and /health figures.
 * Reads and transactions (transact(): the order path's writes) go to a reader thread of their own
 * on a PostgreSQL server (reads.ts), and through the writer thread on the embedded PGlite (db()
 * says why).
 *
 * "Unacknowledged batches are kept by the side that restarts it": the rings the writer reads, the
 * `progress` record of how far it released each of them, and its counters are SharedArrayBuffers
 * owned here, in the main thread. A writer thread that dies (the `postgres` driver's uncaught
 * exception, a stalled commit) takes nothing with it: its successor's ring consumers start at the
 * last release, so every record of a batch not yet committed or spilled is read again, and the
 * database's per-stream high water skips whatever of it did commit (workers/writer/writer.ts).
 *
 * Starting, restarting with back-off and answering reads are the supervised thread's
 * (supervised-thread.ts), as for the reader thread; what is the writer's own is here: its data,
 * that an exit after it drained while stopping is no death, and the drain at close().
 *
 * One process per DATA_DIR: the spill and the embedded database must not have two writers, so
 * start() takes `${DATA_DIR}/storage.lock` (pid inside; a lock whose process is gone is taken over).
 */
import { randomUUID } from 'node:crypto';
import type { LeaseFence } from '../core/lease-fence.ts';
import { mkdirSync, openSync, readFileSync, unlinkSync, writeFileSync, closeSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { redactUrl } from '../config.ts';
import { AppError } from '../core/errors.ts';
import type { Instrument } from '../core/instrument.ts';
import type { Logger } from '../log.ts';
import { RingConsumer } from '../core/ring.ts';
import type { Db, Row } from '../core/db.ts';
import { Reads, TxPort } from './reads.ts';
import { SupervisedThread, type ExitRecord } from './supervised-thread.ts';
import { TickConsumer } from '../core/tick.ts';
import {
  LATENCY_BUCKETS, latencyQuantile, WC, WRITER_COUNTERS, WRITER_STATE_NAMES, WriterExit,
  type InstrumentRow, type TxStatement, type WriterControl, type WriterData, type WriterMessage,
} from '../core/writer-protocol.ts';

const WRITER_MODULE = new URL('../../workers/writer/main.ts', import.meta.url);
const SPILL_SEGMENT_BYTES = 64 * 1024 * 1024;
/** Connections of the read pool when StorageOptions.readConnections is not given. */
const READ_CONNECTIONS_DEFAULT = 2;
/** Seconds of write-latency history behind /health's last-minute quantiles. */
const LATENCY_WINDOW_S = 60;

export interface StorageOptions {
  /** null: the embedded PGlite under `${dataDir}/pglite`. */
  databaseUrl: string | null;
  /** ROLE=ingest: commit only while this lease is ours (src/core/lease-fence.ts). */
  fence?: LeaseFence | null;
  dataDir: string;
  batchRows: number;
  batchMs: number;
  connections: number;
  /** Connections of the reader thread's pool (PostgreSQL only); 2 when not given. */
  readConnections?: number;
  stallMs: number;
  spillMaxBytes: number;
  marketDataRetentionDays: number;
  barsRetentionDays: number;
  /** Every shard's output rings and the pipeline's doorbells (Pipeline.shards / .doorbells). */
  ticks: SharedArrayBuffer[];
  bars: SharedArrayBuffer[];
  doorbells: SharedArrayBuffer;
  /** The instrument master to upsert, or null to leave `instruments` alone. */
  instruments: readonly Instrument[] | null;
  log: Logger;
  /** Service start id; a new one by default. */
  epoch?: string;
}

export function instrumentRow(i: Instrument): InstrumentRow {
  return {
    token: i.instrumentToken,
    exchange_token: i.exchangeToken,
    symbol: i.tradingsymbol,
    name: i.name,
    type: i.instrumentType,
    segment: i.segment,
    exchange: i.exchange,
    strike: i.strike,
    expiry: i.expiry,
    tick_size: i.tickSize,
    lot_size: i.lotSize,
  };
}

export class Storage {
  readonly epoch: string;
  /** Where the data lives, for the start-up log (password hidden). */
  readonly where: string;
  readonly counters: Float64Array;
  readonly progress: Float64Array;
  private readonly data: WriterData;
  private readonly writer: SupervisedThread<WriterControl, WriterMessage>;
  /** The reader thread (PostgreSQL only). */
  private readonly reads: Reads | null;
  /** The writer thread's transactions (embedded PGlite only; on a server the reader thread's). */
  private readonly writerTx: TxPort | null;
  /** The writer said it drained the rings and stopped ('stopped'). */
  private drained = false;
  private readonly lockFile: string;
  private readonly sampler: NodeJS.Timeout;
  private rate = { rows: 0, at: Date.now(), perSec: 0 };
  /**
   * The latency histogram as it was at each of the last LATENCY_WINDOW_S samples (one a second),
   * so /health shows the last minute's p99 beside the whole run's: a slow start-up (the embedded
   * database opening while ticks queue) otherwise holds the run's p99 up for as long as it runs.
   */
  private readonly latencyHistory = Array.from({ length: LATENCY_WINDOW_S + 1 }, () => new Float64Array(LATENCY_BUCKETS));
  private latencySamples = 0;

  constructor(private readonly opts: StorageOptions) {
    this.epoch = opts.epoch ?? randomUUID();
    mkdirSync(opts.dataDir, { recursive: true });
    this.lockFile = join(opts.dataDir, 'storage.lock');
    takeLock(this.lockFile);
    const streams = 2 * opts.ticks.length;
    this.progress = new Float64Array(new SharedArrayBuffer(8 * streams));
    this.counters = new Float64Array(new SharedArrayBuffer(8 * WRITER_COUNTERS));
    const pgliteDir = join(opts.dataDir, 'pglite');
    this.where = opts.databaseUrl !== null
      ? `PostgreSQL ${redactUrl(opts.databaseUrl)} (spill: ${join(opts.dataDir, 'spill')})`
      : `embedded PGlite in ${pgliteDir} (DATABASE_URL unset; spill: ${join(opts.dataDir, 'spill')})`;
    this.data = {
      epoch: this.epoch,
      ticks: opts.ticks,
      bars: opts.bars,
      doorbells: opts.doorbells,
      consumer: TickConsumer.STORE,
      progress: this.progress.buffer as SharedArrayBuffer,
      counters: this.counters.buffer as SharedArrayBuffer,
      databaseUrl: opts.databaseUrl,
      pgliteDir,
      spillDir: join(opts.dataDir, 'spill'),
      spillMaxBytes: opts.spillMaxBytes,
      spillSegmentBytes: Math.min(SPILL_SEGMENT_BYTES, Math.max(1 << 20, Math.floor(opts.spillMaxBytes / 8))),
      batchRows: opts.batchRows,
      batchMs: opts.batchMs,
      connections: opts.connections,
      stallMs: opts.stallMs,
      marketDataRetentionDays: opts.marketDataRetentionDays,
      barsRetentionDays: opts.barsRetentionDays,
      instruments: opts.instruments === null ? null : opts.instruments.map(instrumentRow),
      fence: opts.fence ?? null,
    };
    this.sampler = setInterval(() => this.sample(), 1000);
    this.sampler.unref();
    this.writerTx = opts.databaseUrl === null ? new TxPort('writer') : null;
    this.writer = new SupervisedThread<WriterControl, WriterMessage>({
      name: 'writer',
      module: WRITER_MODULE,
      data: this.data,
      log: opts.log,
      died: {
        code: 'WRITER_THREAD_DIED',
        msg: 'the writer thread died; restarting it (batches not yet committed or spilled are still in the rings)',
        reason: (code) => code === WriterExit.STALLED ? 'a commit stalled past WRITER_STALL_MS' : undefined,
      },
      onMessage: (m) => {
        if (m.type === 'instruments') this.data.instruments = null; // stored: a restarted writer thread need not store them again
        else if (m.type === 'stopped') this.drained = true;
        else if (m.type === 'txPort') this.writerTx?.attach(m.port);
      },
      // A writer that drained the rings, or ended cleanly, while stopping is done; one that died
      // before draining is a death like any other, and close() starts another to finish the drain.
      stoppedBy: (code) => this.drained || code === 0,
    });
    this.writer.start();
    this.reads = opts.databaseUrl === null ? null : new Reads({
      databaseUrl: opts.databaseUrl,
      connections: opts.readConnections ?? READ_CONNECTIONS_DEFAULT,
      stallMs: opts.stallMs,
      log: opts.log,
    });
  }

  /** Writer thread restarts, for tests and /health. */
  get restarts(): number {
    return this.writer.restarts;
  }

  get lastExit(): ExitRecord | null {
    return this.writer.lastExit;
  }

  /** Reader thread restarts, for tests and /health (0 on the embedded database). */
  get readerRestarts(): number {
    return this.reads?.restarts ?? 0;
  }

  private sample(): void {
    const rows = this.counters[WC.ROWS];
    const now = Date.now();
    const dt = (now - this.rate.at) / 1000;
    if (dt > 0) this.rate = { rows, at: now, perSec: Math.round((rows - this.rate.rows) / dt) };
    this.latencyHistory[this.latencySamples % this.latencyHistory.length]
      .set(this.counters.subarray(WC.LATENCY, WC.LATENCY + LATENCY_BUCKETS));
    this.latencySamples++;
  }

  /** The oldest kept copy of the latency histogram (about a minute old), or null before the first sample. */
  private latencyWindowStart(): Float64Array | null {
    if (this.latencySamples === 0) return null;
    const n = this.latencyHistory.length;
    return this.latencyHistory[this.latencySamples <= n ? 0 : this.latencySamples % n];
  }

  /** Records the writer has not yet released, per ring kind. */
  lag(): { ticks: number; bars: number } {
    let ticks = 0;
    let bars = 0;
    for (const sab of this.opts.ticks) ticks += new RingConsumer(sab, TickConsumer.STORE).available();
    for (const sab of this.opts.bars) bars += new RingConsumer(sab, TickConsumer.STORE).available();
    return { ticks, bars };
  }

  /** For /health. */
  stats(): Record<string, unknown> {
    const c = this.counters;
    const p50 = latencyQuantile(c, 0.5);
    const p99 = latencyQuantile(c, 0.99);
    const since = this.latencyWindowStart() ?? undefined;
    return {
      where: this.where,
      state: WRITER_STATE_NAMES[c[WC.STATE]] ?? 'unknown',
      rowsPerSec: this.rate.perSec,
      rows: c[WC.ROWS],
      quarantined: c[WC.QUARANTINED],
      bars: c[WC.BARS],
      batches: c[WC.BATCHES],
      batchesInFlight: c[WC.IN_FLIGHT],
      threadBusy: Math.round(c[WC.BUSY] * 100) / 100,
      lagRecords: this.lag(),
      // Tick received → row committed, since this service started (the histogram's resolution:
      // 1 ms below 100 ms, 10 ms below 1 s, 100 ms below 10 s; '>10000' beyond).
      writeLatencyMs: { p50: shownMs(p50), p99: shownMs(p99) },
      // The same over the last minute (null when no row was committed in it).
      writeLatencyLastMinuteMs: { p50: shownMs(latencyQuantile(c, 0.5, since)), p99: shownMs(latencyQuantile(c, 0.99, since)) },
      spill: { batches: c[WC.SPILL_PENDING], bytes: c[WC.SPILL_BYTES], full: c[WC.SPILL_FULL] === 1, spilledTotal: c[WC.SPILLED], replayed: c[WC.REPLAYED] },
      skipped: { batches: c[WC.BATCHES_SKIPPED], rows: c[WC.ROWS_SKIPPED] },
      failures: c[WC.FAILURES],
      rejectedBatches: c[WC.REJECTED],
      gaps: c[WC.GAPS],
      restarts: this.restarts,
      lastExit: this.lastExit,
      // null: the embedded database, read through the writer thread (db()).
      reader: this.reads?.stats() ?? null,
    };
  }

  /**
   * The database for reads (src/storage/queries.ts). Answered off the main thread either way: the
   * main thread never loads the `postgres` driver, so the driver's uncaught exception can never
   * take the service down.
   *
   * - PostgreSQL: by the reader thread's pool (reads.ts), so reads go on while a commit stalls or
   *   the writer thread restarts.
   * - Embedded PGlite: by the writer thread, between its batches. PGlite is one connection in the
   *   thread that opened it, and its files may be opened by one instance only, so no other thread
   *   can read them; reads fail with STORAGE_RESTARTING while that thread restarts.
   */
  db(): Db {
    if (this.reads !== null) return this.reads.db();
    const query = <T extends object = Row>(text: string, params: readonly unknown[] = []): Promise<T[]> => this.writer.request<T>(text, params);
    return {
      kind: this.opts.databaseUrl !== null ? 'postgres' : 'pglite',
      query,
      exec: async (text: string) => { await query(text); },
      begin: () => Promise.reject(new AppError('STORAGE_READ_ONLY', 'the storage read interface has no transactions')),
    };
  }

  /** One read, as db().query: so Storage itself is what the order store needs (src/orders/store.ts). */
  query<T extends object = Row>(text: string, params: readonly unknown[] = []): Promise<T[]> {
    return this.reads !== null ? this.reads.query<T>(text, params) : this.writer.request<T>(text, params);
  }

  /**
   * `statements` in ONE transaction: all committed, or none. Run, like reads (db()), off the main
   * thread, by the thread that holds the database:
   *
   * - PostgreSQL: the reader thread, on a connection of its pool from BEGIN to COMMIT;
   * - embedded PGlite: the writer thread, between its batches (workers/writer/main.ts).
   *
   * Rejects with the database's message, `code` (SQLSTATE) and `constraint` when it refuses one
   * (nothing committed); STORAGE_RESTARTING when the thread is restarting (nothing sent);
   * STORAGE_TX_OUTCOME_UNKNOWN when the thread ended while it ran (reads.ts TxPort). On PGlite,
   * before the writer thread has opened the database, with code STORAGE_STARTING.
   */
  transact(statements: readonly TxStatement[]): Promise<void> {
    if (this.reads !== null) return this.reads.transact(statements);
    return this.writerTx!.transact(statements);
  }

  /**
   * After the pipeline has stopped (its rings closed): let the writer drain them, commit or spill
   * what is left, and end. Gives up after `deadlineMs` (what is still in the rings then is lost
   * with the process, as it would be anyway).
   */
  async close(deadlineMs = 10_000): Promise<void> {
    this.writer.stop();
    this.writerTx?.close();
    clearInterval(this.sampler);
    // Nothing reads from a service that is stopping: the reader goes now, beside the drain.
    const readsClosed = this.reads?.close();
    const deadline = Date.now() + deadlineMs;
    // A writer that is dead (between a crash and its restart) or dies while draining is started
    // again: the records left in the rings must still reach the database or the spill.
    while (!this.drained && Date.now() < deadline) {
      if (!this.writer.running) this.writer.start();
      const left = Math.max(0, deadline - Date.now());
      await this.writer.end({ type: 'stop', deadlineMs: left }, left + 2000);
    }
    await readsClosed;
    releaseLock(this.lockFile);
  }
}

function shownMs(v: number): number | string | null {
  if (Number.isNaN(v)) return null;
  return Number.isFinite(v) ? v : '>10000';
}

/**
 * Lock files takeLock() took in this life of the process (resolved paths). A lock file naming our
 * own pid that is not among them was left by an earlier life of this pid: in a container the
 * service is PID 1 after every restart, so a container restarted after a kill -9 finds "1" in the
 * lock, and asking whether pid 1 is alive answers yes (it is us). Only this set tells the two
 * apart: a lock this process took (a second storage on the same DATA_DIR, refused) from one an
 * earlier process with our pid left behind (stale, taken over).
 */
const takenHere = new Set<string>();

/**
 * Take `file` for this process (pid inside). A lock whose process is gone is taken over, and so is
 * one naming our own pid that this process did not take (an earlier life of this pid: takenHere).
 */
export function takeLock(file: string): void {
  const key = resolve(file);
  const dir = file.replace(/\/storage\.lock$/, '');
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(file, 'wx');
      writeFileSync(fd, String(process.pid));
      closeSync(fd);
      takenHere.add(key);
      return;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      const pid = Number(readFileSync(file, 'utf8').trim());
      if (pid === process.pid && takenHere.has(key)) {
        throw new AppError('DATA_DIR_IN_USE', `DATA_DIR ${dir} is already used by another storage in this process; give each its own DATA_DIR.`, { pid });
      }
      if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && alive(pid)) {
        throw new AppError('DATA_DIR_IN_USE', `DATA_DIR ${dir} is in use by process ${pid}: stop it, or give this process its own DATA_DIR.`, { pid });
      }
      unlinkSync(file); // its process is gone (kill -9), or it was an earlier life of our pid: take it over
    }
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export function releaseLock(file: string): void {
  try {
    if (Number(readFileSync(file, 'utf8').trim()) === process.pid) unlinkSync(file);
  } catch {
    // already gone
  }
}
