/**
 * Feed gaps (sql/007_feed_gaps.sql): each upstream outage, recorded when data flows again, and the
 * list GET /api/gaps serves. The record goes through the storage's transaction path (the reader
 * thread on PostgreSQL, the writer on the embedded database); a database that is away when the gap
 * ends keeps the record here and it is written at the next try (from RETRY_FIRST_MS, backing off), so an outage of
 * the feed during one of the database is still recorded.
 */
import type { TxStatement } from '../core/reader-protocol.ts';
import type { Db } from '../core/db.ts';
import type { Logger } from '../log.ts';

export interface GapRecord {
  startMs: number;
  endMs: number;
  /** The connection slot, or null for an ingest hand-over (every slot). */
  conn: number | null;
  cause: string;
  tokens: readonly number[];
}

export interface StoredGap {
  id: number;
  startedAt: string;
  endedAt: string;
  durationMs: number;
  conn: number | null;
  cause: string;
  instruments: number[];
  ticksRecoverable: false;
  barsBackfilledAt: string | null;
}

/**
 * Retries start soon and back off to RETRY_MAX_MS: a restart's gap is recorded while storage is
 * still starting (the reader thread not up yet), and a process killed again soon after would lose
 * a record still waiting out a long first delay.
 */
const RETRY_FIRST_MS = 250;
const RETRY_MAX_MS = 5000;
/** Retries shorter than this (the first three, about 1.75 s in all) are not warned about. */
const RETRY_QUIET_MS = 2000;
const INSERT = `INSERT INTO feed_gaps (started_at, ended_at, conn, cause, instruments)
  VALUES (to_timestamp($1::double precision / 1000), to_timestamp($2::double precision / 1000), $3::smallint, $4, $5::bigint[])`;
const INSERT_SESSION = `INSERT INTO feed_sessions (started_at, instruments) VALUES (to_timestamp($1::double precision / 1000), $2::bigint[])`;

/** A record waiting for the database: a gap, or the start of this process's feed. */
interface Pending { st: TxStatement; gap: boolean }

export class GapRecorder {
  private readonly pending: Pending[] = [];
  private timer: NodeJS.Timeout | null = null;
  private retryMs = RETRY_FIRST_MS;
  private writing: Promise<void> | null = null;
  recorded = 0;

  constructor(private readonly opts: {
    transact: (st: readonly TxStatement[]) => Promise<void>;
    log: Logger;
    /** After each record is stored: gap repair (src/storage/backfill.ts) reads feed_gaps again. */
    onRecorded?: () => void;
  }) {}

  record(g: GapRecord): void {
    this.opts.log.warn({ conn: g.conn, cause: g.cause, ms: g.endMs - g.startMs, instruments: g.tokens.length },
      'feed gap: no ticks for these instruments in this window (Kite has no tick history; recorded in feed_gaps)');
    this.pending.push({ st: { text: INSERT, params: [g.startMs, g.endMs, g.conn, g.cause, `{${g.tokens.join(',')}}`] }, gap: true });
    void this.flush();
  }

  /**
   * The instruments this process's feed follows, from its first connection (sql/008_feed_sessions.sql):
   * what the next process's restart gap names besides its own (src/storage/last-stored.ts).
   */
  session(startMs: number, tokens: readonly number[]): void {
    this.pending.push({ st: { text: INSERT_SESSION, params: [startMs, `{${tokens.join(',')}}`] }, gap: false });
    void this.flush();
  }

  /** Write what is pending; resolves when tried (a failure is retried later). */
  flush(): Promise<void> {
    this.writing ??= (async () => {
      while (this.pending.length > 0) {
        const p = this.pending[0];
        try {
          await this.opts.transact([p.st]);
          this.pending.shift();
          this.retryMs = RETRY_FIRST_MS;
          if (p.gap) {
            this.recorded++;
            this.opts.onRecorded?.();
          }
        } catch (e) {
          const wait = this.retryMs;
          this.retryMs = Math.min(RETRY_MAX_MS, this.retryMs * 2);
          // At start-up the record comes before storage is up (the reader thread starting, the
          // schema not migrated yet): the first retries are routine and logged at debug; a
          // database away for longer is said.
          const level = wait >= RETRY_QUIET_MS ? 'warn' : 'debug';
          this.opts.log[level]({ err: (e as Error).message, pending: this.pending.length }, `${this.pending[0].gap ? 'feed gap' : 'feed session'} not recorded yet (database unavailable or not migrated yet); retrying in ${wait} ms`);
          this.timer ??= setTimeout(() => {
            this.timer = null;
            void this.flush();
          }, wait);
          this.timer.unref();
          return;
        }
      }
    })().finally(() => {
      this.writing = null;
    });
    return this.writing;
  }

  close(): void {
    if (this.timer !== null) clearTimeout(this.timer);
  }
}

/** Gaps overlapping [fromMs, toMs), newest first, at most `limit`. */
export async function listGaps(db: Db, fromMs: number, toMs: number, limit: number): Promise<StoredGap[]> {
  const rows = await db.query<Record<string, unknown>>(
    `SELECT id::text AS id, started_at, ended_at, conn, cause, instruments::text AS instruments, bars_backfilled_at
     FROM feed_gaps WHERE ended_at >= to_timestamp($1::double precision / 1000) AND started_at < to_timestamp($2::double precision / 1000)
     ORDER BY started_at DESC LIMIT $3::int`,
    [fromMs, toMs, limit]);
  return rows.map((r) => {
    const s = new Date(r.started_at as string | Date);
    const e = new Date(r.ended_at as string | Date);
    const list = String(r.instruments).replace(/[{}]/g, '');
    return {
      id: Number(r.id),
      startedAt: s.toISOString(),
      endedAt: e.toISOString(),
      durationMs: e.getTime() - s.getTime(),
      conn: r.conn === null ? null : Number(r.conn),
      cause: String(r.cause),
      instruments: list === '' ? [] : list.split(',').map(Number),
      ticksRecoverable: false,
      barsBackfilledAt: r.bars_backfilled_at ? new Date(r.bars_backfilled_at as string | Date).toISOString() : null,
    };
  });
}
