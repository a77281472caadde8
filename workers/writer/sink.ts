/**
 * Where batches are committed: a PostgreSQL server (sink-pg.ts) or the embedded PGlite
 * (sink-pglite.ts). Both commit a batch with the same transaction, written once here:
 *
 *   BEGIN
 *   INSERT INTO writer_progress ... ON CONFLICT DO UPDATE ... RETURNING high_water
 *       -- takes the stream's row lock: a second writer (a restarted thread while the old one's
 *       -- COMMIT is still in flight) waits here, then sees what the first committed
 *   if high_water >= end: nothing to do (a replay of a committed batch); COMMIT
 *   COPY market_data / quarantined_ticks FROM STDIN (FORMAT binary)   -- rows at positions >= high_water
 *   COPY bars_stage ...; INSERT INTO bars SELECT ... ON CONFLICT merge
 *   UPDATE writer_progress SET high_water = end; INSERT INTO writer_batches (the batch id)
 *   COMMIT
 *
 * So a batch's rows and its id commit together or not at all, and a batch (or any part of one)
 * below the stream's high water is never inserted twice, however it was re-formed after a crash.
 *
 * Bars: a bucket can get a second bar when the service restarts inside it (each run's aggregator
 * saw part of it). The second is merged into the first (high/low widened, close the later one,
 * volume and trades added, VWAP re-weighted) and the row flagged partial. A replay never merges:
 * the high water stops it first.
 */
import { LEASE_FENCE_SQL, type LeaseFence } from '../../src/core/lease-fence.ts';
import { COPY_HEADER, COPY_TRAILER, BAR_COLUMNS, MARKET_COLUMNS, QUARANTINE_COLUMNS } from './copy.ts';
import { firstRowAtOrAfter, Section, SECTIONS, type BatchData } from './batch.ts';

export type Via = 'direct' | 'spill';

export interface CommitResult {
  /** The whole batch was committed before: nothing sent. */
  skipped: boolean;
  /** Rows inserted, per section (batch.ts Section). */
  rows: [number, number, number];
  /** Rows of the batch below the high water, not sent. */
  rowsSkipped: number;
  /** Index of the first row sent in each section (for write latency). */
  from: [number, number, number];
  /** Records of this stream missing below the batch (high water < first): a gap. */
  gap: number;
}

/** The statements a sink's transaction needs (one per database kind). */
/** A commit refused because a later owner holds the ingest lease. */
export class LeaseFenced extends Error {
  readonly code = 'LEASE_FENCED';
  constructor(fence: LeaseFence) {
    super(`the ingest lease ${fence.name} has an owner newer than this process (token ${fence.token}): not committing; this process stops at its next lease check`);
    this.name = 'LeaseFenced';
  }
}

export interface SinkTx {
  query<T extends object = Record<string, unknown>>(text: string, params?: readonly unknown[]): Promise<T[]>;
  /** COPY `table (columns)` in binary from these byte chunks (header, tuples, trailer). */
  copyIn(table: string, columns: string, chunks: readonly Uint8Array[]): Promise<void>;
}

export interface Sink {
  readonly kind: 'postgres' | 'pglite';
  /** Batches that can be in flight at once (one per connection). */
  readonly lanes: number;
  /**
   * First call: connect, migrate, upsert the instruments, run maintenance. Later calls: check the
   * database answers. Throws when it does not.
   */
  open(): Promise<{ schemaPath: string; instruments: number | null }>;
  commit(b: BatchData, via: Via): Promise<CommitResult>;
  /** Partitions ahead, retention (server paths); safe to call any time after open. */
  maintenance(): Promise<void>;
  /** A read for the query module (src/storage/queries.ts), on a connection of its own. */
  query(text: string, params: readonly unknown[]): Promise<unknown[]>;
  close(): Promise<void>;
}

const COLS = [MARKET_COLUMNS.join(', '), QUARANTINE_COLUMNS.join(', '), BAR_COLUMNS.join(', ')];
const TABLES = ['market_data', 'quarantined_ticks', 'bars_stage'];

const PROGRESS_SQL = `INSERT INTO writer_progress AS w (epoch, stream, high_water) VALUES ($1, $2, 0)
ON CONFLICT (epoch, stream) DO UPDATE SET high_water = w.high_water
RETURNING high_water`;

const FINISH_SQL = `WITH p AS (
  UPDATE writer_progress SET high_water = $3, updated_at = now() WHERE epoch = $1 AND stream = $2
)
INSERT INTO writer_batches (epoch, stream, first_pos, end_pos, rows, via) VALUES ($1, $2, $4, $3, $5, $6)`;

const ADVANCE_SQL = 'UPDATE writer_progress SET high_water = $3, updated_at = now() WHERE epoch = $1 AND stream = $2';

export const BARS_STAGE_SQL = 'CREATE TEMP TABLE IF NOT EXISTS bars_stage (LIKE bars) ON COMMIT DELETE ROWS';

const MERGE_BARS_SQL = `INSERT INTO bars AS b SELECT * FROM bars_stage
ON CONFLICT (token, timeframe, bucket_start) DO UPDATE SET
  bucket_end = greatest(b.bucket_end, excluded.bucket_end),
  high = greatest(b.high, excluded.high),
  low = least(b.low, excluded.low),
  close = excluded.close,
  volume = b.volume + excluded.volume,
  vwap = CASE WHEN b.volume + excluded.volume > 0
    THEN (coalesce(b.vwap * b.volume, 0) + coalesce(excluded.vwap * excluded.volume, 0)) / (b.volume + excluded.volume) END,
  trades = b.trades + excluded.trades,
  oi = excluded.oi,
  ticks = b.ticks + excluded.ticks,
  partial = true,
  flags = b.flags | excluded.flags | 2`;

/** The one commit protocol (see the module header). Runs inside the sink's transaction. */
export async function commitBatch(tx: SinkTx, b: BatchData, via: Via, fence: LeaseFence | null = null): Promise<CommitResult> {
  // ROLE=ingest: a process that no longer owns the lease (frozen while a standby took over) must
  // not commit; its batch fails like any commit and waits in the spill while the process's own
  // lease check stops it.
  if (fence !== null && (await tx.query(LEASE_FENCE_SQL, [fence.name, fence.token])).length === 0) {
    throw new LeaseFenced(fence);
  }
  const [p] = await tx.query<{ high_water: number }>(PROGRESS_SQL, [b.epoch, b.stream]);
  const hw = Number(p.high_water);
  const res: CommitResult = { skipped: false, rows: [0, 0, 0], rowsSkipped: 0, from: [0, 0, 0], gap: hw < b.first ? b.first - hw : 0 };
  if (hw >= b.end) {
    res.skipped = true;
    for (const s of b.sections) res.rowsSkipped += s.rows;
    return res;
  }
  const startRel = hw > b.first ? hw - b.first : 0;
  let sent = 0;
  for (let i = 0; i < SECTIONS; i++) {
    const s = b.sections[i];
    const from = firstRowAtOrAfter(s, startRel);
    res.from[i] = from;
    res.rowsSkipped += from;
    if (from >= s.rows) continue;
    if (i === Section.BARS) await tx.query(BARS_STAGE_SQL);
    await tx.copyIn(TABLES[i], COLS[i], [COPY_HEADER, s.bytes.subarray(s.off[from]), COPY_TRAILER]);
    if (i === Section.BARS) await tx.query(MERGE_BARS_SQL);
    res.rows[i] = s.rows - from;
    sent += s.rows - from;
  }
  // A range without rows (bar updates only) moves the high water but records no batch row:
  // writer_batches lists batches that wrote something.
  if (sent > 0) await tx.query(FINISH_SQL, [b.epoch, b.stream, b.end, Math.max(b.first, hw), sent, via]);
  else await tx.query(ADVANCE_SQL, [b.epoch, b.stream, b.end]);
  return res;
}

/**
 * The database refused the data itself (not the connection): retrying the same bytes will not
 * help. Classes 22 (data exception) and 23 (integrity), and 25P02: a statement of the batch failed
 * and the server said only that the transaction is aborted (sink-pg.ts, edge 3).
 */
export function isDataError(e: unknown): boolean {
  const code = (e as { code?: unknown })?.code;
  return typeof code === 'string' && (/^(22|23)[0-9A-Z]{3}$/.test(code) || code === '25P02');
}

/** SQL to upsert the instrument master from a JSON array of InstrumentRow. */
export const UPSERT_INSTRUMENTS_SQL = `INSERT INTO instruments AS i
  (token, exchange_token, symbol, name, type, segment, exchange, strike, expiry, tick_size, lot_size, updated_at)
SELECT token, exchange_token, symbol, name, type, segment, exchange, strike, NULLIF(expiry, '')::date, tick_size, lot_size, now()
FROM json_to_recordset($1::text::json) AS x(token bigint, exchange_token bigint, symbol text, name text, type text,
  segment text, exchange text, strike double precision, expiry text, tick_size double precision, lot_size integer)
ON CONFLICT (token) DO UPDATE SET
  exchange_token = excluded.exchange_token, symbol = excluded.symbol, name = excluded.name, type = excluded.type,
  segment = excluded.segment, exchange = excluded.exchange, strike = excluded.strike, expiry = excluded.expiry,
  tick_size = excluded.tick_size, lot_size = excluded.lot_size, updated_at = now()`;

/** Rows per upsert statement (a real master has ~100k rows). */
export const INSTRUMENT_CHUNK = 10_000;
