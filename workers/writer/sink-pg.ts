/**
 * The PostgreSQL sink: `lanes` single-connection `postgres` clients, one batch in flight on each,
 * plus one small client for migrations, maintenance and reads.
 *
 * Sharp edges of the `postgres` driver (3.4.9) this module is shaped around, each reproduced here
 * before designing for it:
 *
 * 1. A backend terminated under a transaction can end in an exception thrown from a timer inside
 *    the driver (`Cannot read properties of null (reading 'write')`, porsager/postgres #1154,
 *    #1208; fix proposed in #1155, not merged). No try/catch reaches it. It ends the writer
 *    thread, and the supervisor starts a new one (src/storage/supervisor.ts): nothing here tries
 *    to survive it.
 * 2. After such a termination the client's pool can stop answering: `sql.begin()` never settles.
 *    So a client that saw any error is thrown away and a fresh one made for the next batch (one
 *    client per connection makes that cheap), and the writer's watchdog ends a thread whose
 *    commit outlives WRITER_STALL_MS.
 * 3. A COPY that the server rejects after the client sent CopyDone (a row checked at the end)
 *    never calls the stream's end callback, and the error goes nowhere. So copyIn waits only
 *    until CopyDone is sent: the next statement in the transaction runs after the COPY on the
 *    same connection and fails with 25P02 if the COPY failed; an error event the stream did emit
 *    is reported in its place.
 * 4. The COPY stream auto-destroys after 'finish', and its destroy() writes CopyFail straight to
 *    the socket. With a second COPY already queued in the same transaction, that CopyFail lands
 *    in the second COPY and aborts it ("COPY from stdin failed: null", surfacing as an uncaught
 *    error). copyIn makes destroy() a no-op once CopyDone is sent.
 */
import { once } from 'node:events';
import type { Writable } from 'node:stream';
import postgres from 'postgres';
import { pgOptions } from '../../src/core/db.ts';
import { migrate, timescalePolicySql, type SchemaPath } from '../../src/core/migrate.ts';
import { pgDb } from '../../src/core/db.ts';
import { DAY_MS, IST_OFFSET_MS } from '../../src/core/ist.ts';
import type { BatchData } from './batch.ts';
import type { InstrumentRow } from '../../src/core/writer-protocol.ts';
import type { LeaseFence } from '../../src/core/lease-fence.ts';
import { commitBatch, INSTRUMENT_CHUNK, UPSERT_INSTRUMENTS_SQL, type CommitResult, type Sink, type SinkTx, type Via } from './sink.ts';

/** Bytes per CopyData message. */
const COPY_CHUNK = 256 * 1024;

/** Day partitions created ahead of today by maintenance (the partitioned path). */
export const PARTITIONS_AHEAD_DAYS = 3;

export interface PgSinkOptions {
  url: string;
  lanes: number;
  marketDataRetentionDays: number;
  barsRetentionDays: number;
  instruments: InstrumentRow[] | null;
  /** Commits only while this process owns the ingest lease (ROLE=ingest); null: no check. */
  fence?: LeaseFence | null;
  log: (level: 'info' | 'warn' | 'error', obj: Record<string, unknown>, msg: string) => void;
}

type Sql = postgres.Sql<Record<string, postgres.PostgresType>>;

interface Lane {
  sql: Sql | null;
  busy: boolean;
}

const istDay = (ms: number): number => Math.floor((ms + IST_OFFSET_MS) / DAY_MS);

export class PgSink implements Sink {
  readonly kind = 'postgres';
  readonly lanes: number;
  private readonly pool: Lane[];
  private readonly waiting: (() => void)[] = [];
  private control: Sql | null = null;
  private reads: Sql | null = null;
  private path: SchemaPath | null = null;
  private instrumentsDone = false;
  /** IST day numbers whose partitions are known to exist. */
  private readonly days = new Set<number>();

  constructor(private readonly opts: PgSinkOptions) {
    this.lanes = opts.lanes;
    this.pool = Array.from({ length: opts.lanes }, () => ({ sql: null, busy: false }));
  }

  private client(max: number): Sql {
    // connect_timeout: a database host that drops packets must fail a batch in seconds, not
    // minutes, so it goes to the spill. No idle timeout: the lanes stay warm between batches.
    return postgres(this.opts.url, pgOptions({ max, connect_timeout: 5, idle_timeout: 0, max_lifetime: null, prepare: true })) as Sql;
  }

  private controlClient(): Sql {
    return (this.control ??= this.client(1));
  }

  private resetControl(): void {
    const c = this.control;
    this.control = null;
    void c?.end({ timeout: 0 }).catch(() => {});
  }

  async open(): Promise<{ schemaPath: string; instruments: number | null }> {
    try {
      const db = pgDb(this.controlClient());
      let instruments: number | null = null;
      if (this.path === null) {
        const r = await migrate(db, { log: { info: (o, m) => this.opts.log('info', o as Record<string, unknown>, m), warn: (o, m) => this.opts.log('warn', o as Record<string, unknown>, m) } });
        if (r.path === 'timescale') await db.exec(timescalePolicySql(this.opts.marketDataRetentionDays, this.opts.barsRetentionDays));
        this.path = r.path;
        // Partitions ahead and retention: a failure here is reported, and must not keep the
        // writer from writing (partitions a batch needs are also made on demand).
        await this.maintenance().catch((e) => this.opts.log('warn', { err: { message: (e as Error).message } }, 'storage maintenance failed; retried within the hour'));
      } else {
        await db.query('SELECT 1');
      }
      if (!this.instrumentsDone && this.opts.instruments !== null) {
        instruments = await upsertInstruments((text, params) => db.query(text, params), this.opts.instruments);
        this.instrumentsDone = true;
      }
      return { schemaPath: this.path, instruments };
    } catch (e) {
      this.resetControl();
      throw e;
    }
  }

  private async acquire(): Promise<Lane> {
    for (;;) {
      const free = this.pool.find((l) => !l.busy);
      if (free !== undefined) {
        free.busy = true;
        return free;
      }
      await new Promise<void>((r) => this.waiting.push(r));
    }
  }

  private releaseLane(l: Lane): void {
    l.busy = false;
    this.waiting.shift()?.();
  }

  async commit(b: BatchData, via: Via): Promise<CommitResult> {
    const lane = await this.acquire();
    try {
      const sql = (lane.sql ??= this.client(1));
      if (this.path === 'partitioned' && !Number.isNaN(b.minMs)) await this.ensureDays(sql, b.minMs, b.maxMs);
      return (await sql.begin((tx) => commitBatch(pgTx(tx), b, via, this.opts.fence ?? null))) as CommitResult;
    } catch (e) {
      // Any error: this client may be wedged (edge 2 above). Start the next batch on a fresh one.
      const s = lane.sql;
      lane.sql = null;
      void s?.end({ timeout: 0 }).catch(() => {});
      throw e;
    } finally {
      this.releaseLane(lane);
    }
  }

  /** Create the day partitions a batch needs that are not known to exist (its own transaction). */
  private async ensureDays(sql: Sql, minMs: number, maxMs: number): Promise<void> {
    const d0 = istDay(minMs);
    const d1 = istDay(maxMs);
    let missing = false;
    for (let d = d0; d <= d1; d++) if (!this.days.has(d)) missing = true;
    if (!missing) return;
    await sql.unsafe('SELECT storage_ensure_partitions($1, $2)', [new Date(minMs), new Date(maxMs)]);
    for (let d = d0; d <= d1; d++) this.days.add(d);
  }

  async maintenance(): Promise<void> {
    if (this.path === null || this.path === 'plain') return;
    const sql = this.controlClient();
    const now = Date.now();
    if (this.path === 'partitioned') {
      await this.ensureDays(sql, now - DAY_MS, now + PARTITIONS_AHEAD_DAYS * DAY_MS);
      const retire = async (table: string, days: number) => {
        if (days <= 0) return;
        const old = await sql.unsafe<{ partition_name: string }[]>('SELECT partition_name FROM storage_expired_partitions($1, $2)', [table, days]);
        for (const { partition_name: p } of old) {
          // CONCURRENTLY: writers into other partitions are not blocked while it detaches.
          await sql.unsafe(`ALTER TABLE ${table} DETACH PARTITION "${p}" CONCURRENTLY`);
          await sql.unsafe(`DROP TABLE "${p}"`);
          this.opts.log('info', { table, partition: p, keepDays: days }, 'retention: detached and dropped an expired partition');
        }
      };
      await retire('market_data', this.opts.marketDataRetentionDays);
      await retire('bars', this.opts.barsRetentionDays);
      const dayNow = istDay(now);
      for (const d of this.days) if (d < dayNow - 1) this.days.delete(d);
    }
    // TimescaleDB's own policies retire market_data and bars chunks; these tables are plain on
    // both server paths. writer_progress is kept: a few rows per service start, and the guard
    // against replaying an old spill twice however late it comes.
    if (this.opts.marketDataRetentionDays > 0) {
      const keep = `${Math.floor(this.opts.marketDataRetentionDays)} days`;
      await sql.unsafe('DELETE FROM quarantined_ticks WHERE time < now() - $1::interval', [keep]);
      await sql.unsafe('DELETE FROM writer_batches WHERE committed_at < now() - $1::interval', [keep]);
    }
  }

  async query(text: string, params: readonly unknown[]): Promise<unknown[]> {
    this.reads ??= this.client(2);
    try {
      return [...(await this.reads.unsafe(text, params as postgres.ParameterOrJSON<never>[]))];
    } catch (e) {
      const r = this.reads;
      this.reads = null;
      void r?.end({ timeout: 0 }).catch(() => {});
      throw e;
    }
  }

  async close(): Promise<void> {
    const all = [...this.pool.map((l) => l.sql), this.control, this.reads];
    for (const l of this.pool) l.sql = null;
    this.control = this.reads = null;
    await Promise.all(all.map((s) => s?.end({ timeout: 2 }).catch(() => {})));
  }
}

/** SinkTx over a `postgres` transaction (edge 3 above explains copyIn). */
function pgTx(tx: postgres.TransactionSql<Record<string, postgres.PostgresType>>): SinkTx {
  let copyError: Error | null = null;
  return {
    async query<T extends object>(text: string, params: readonly unknown[] = []): Promise<T[]> {
      try {
        return (await tx.unsafe(text, params as postgres.ParameterOrJSON<never>[])) as unknown as T[];
      } catch (e) {
        throw copyError ?? e;
      }
    },
    async copyIn(table: string, columns: string, chunks: readonly Uint8Array[]): Promise<void> {
      let w: Writable;
      try {
        w = await tx.unsafe(`COPY ${table} (${columns}) FROM STDIN (FORMAT binary)`).writable();
      } catch (e) {
        throw copyError ?? e;
      }
      w.on('error', (e) => { copyError ??= e; });
      // The driver's final() sends CopyDone and frees the connection for the next statement;
      // Node calls it once every write is flushed. Resolve then, not at 'finish', which never
      // comes when the server rejects the COPY after CopyDone (edge 3 above).
      // Its destroy() sends CopyFail, and the stream auto-destroys after 'finish': by then the
      // next statement (the next section's COPY) may be running, and the stray CopyFail would
      // abort it (edge 4). Once CopyDone is sent there is nothing left to fail.
      const w2 = w as Writable & { _final: (cb: (e?: Error | null) => void) => void; _destroy: (e: Error | null, cb: (e?: Error | null) => void) => void };
      const final = w2._final;
      const destroy = w2._destroy;
      let done = false;
      const sent = new Promise<void>((resolve) => {
        w2._final = (cb) => {
          final.call(w2, cb);
          done = true;
          resolve();
        };
      });
      w2._destroy = (e, cb) => {
        if (done) cb(e);
        else destroy.call(w2, e, cb);
      };
      // The driver copies each chunk into a fresh buffer (bytes.js raw()): slices of COPY_CHUNK
      // keep those copies small and short-lived instead of one batch-sized copy per batch.
      for (const c of chunks) {
        for (let at = 0; at < c.length; at += COPY_CHUNK) w.write(c.subarray(at, Math.min(c.length, at + COPY_CHUNK)));
      }
      w.end();
      await Promise.race([sent, once(w, 'close')]);
    },
  };
}

/** Upsert the master in chunks; returns rows. Shared with the PGlite sink. */
export async function upsertInstruments(q: (text: string, params: unknown[]) => Promise<unknown>, rows: readonly InstrumentRow[]): Promise<number> {
  for (let i = 0; i < rows.length; i += INSTRUMENT_CHUNK) {
    await q(UPSERT_INSTRUMENTS_SQL, [JSON.stringify(rows.slice(i, i + INSTRUMENT_CHUNK))]);
  }
  return rows.length;
}
