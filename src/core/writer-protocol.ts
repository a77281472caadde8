/**
 * What the main thread (src/storage/supervisor.ts) and the writer thread share: the start-up data,
 * the messages, and two SharedArrayBuffers the main thread owns, so they outlive a writer thread
 * that dies:
 *
 * - `progress`: Float64Array, one slot per stream (stream = shard × 2, +1 for bars): how many
 *   records of that ring the writer has released (64-bit; the ring's own counter wraps at 2^32).
 *   A restarted writer picks up from it.
 * - `counters`: Float64Array, written by the writer only, read for /health and the bench:
 *
 * | index   | name            | meaning                                                          |
 * |---------|-----------------|------------------------------------------------------------------|
 * | 0       | STATE           | WriterState                                                      |
 * | 1       | ROWS            | market_data rows committed                                       |
 * | 2       | QUARANTINED     | quarantined_ticks rows committed                                 |
 * | 3       | BARS            | bars rows committed (closed bars)                                |
 * | 4       | BATCHES         | batches committed                                                |
 * | 5       | BATCHES_SKIPPED | batches already committed before (a replay after a crash)        |
 * | 6       | ROWS_SKIPPED    | rows not sent again because they were below the high water       |
 * | 7       | SPILLED         | batches written to the spill                                     |
 * | 8       | SPILL_PENDING   | batches in the spill not yet replayed                            |
 * | 9       | SPILL_BYTES     | bytes the spill takes on disk                                    |
 * | 10      | IN_FLIGHT       | batches being committed now                                      |
 * | 11      | FAILURES        | commits or connects that failed                                  |
 * | 12      | REJECTED        | batches the database refused 3 times, set aside in spill/rejected |
 * | 13      | GAPS            | records found missing below a batch (should stay 0)              |
 * | 14      | RELEASED        | records released from the rings (committed or spilled)           |
 * | 15      | LAST_COMMIT_MS  | epoch ms of the last commit                                      |
 * | 16      | SPILL_FULL      | 1 while the spill refuses appends (back-pressure on)             |
 * | 17      | REPLAYED        | spilled batches replayed (committed, or found already committed) |
 * | 18      | STARTED_MS      | epoch ms this writer thread started                              |
 * | 19      | BUSY            | share of the last second the writer thread's event loop was busy |
 * | 32 + i  | LATENCY + i     | histogram of tick receive → row committed, bucket i (latencyBucket) |
 *
 * On the embedded PGlite the writer thread also serves transactions (Storage.transact), on a port
 * of their own that it hands over at start ('txPort'): the same TxRequest and TxAnswer as the
 * reader thread's on a server (reader-protocol.ts, which says why a port of their own).
 */
import type { TxPortMessage } from './reader-protocol.ts';
import type { LeaseFence } from './lease-fence.ts';
export type { TxAnswer, TxError, TxPortMessage, TxRequest, TxStatement } from './reader-protocol.ts';

export interface WriterData {
  epoch: string;
  /** Each shard's tick and bar output rings; the writer is ring consumer `consumer` on all. */
  ticks: SharedArrayBuffer[];
  bars: SharedArrayBuffer[];
  doorbells: SharedArrayBuffer;
  consumer: number;
  progress: SharedArrayBuffer;
  counters: SharedArrayBuffer;
  /** null: the embedded PGlite under pgliteDir. */
  databaseUrl: string | null;
  pgliteDir: string;
  spillDir: string;
  spillMaxBytes: number;
  spillSegmentBytes: number;
  batchRows: number;
  batchMs: number;
  connections: number;
  stallMs: number;
  marketDataRetentionDays: number;
  barsRetentionDays: number;
  /** The instrument master, upserted into `instruments` once the database answers. */
  instruments: InstrumentRow[] | null;
  /** ROLE=ingest: every commit checks that this process still owns the lease (src/core/lease-fence.ts). */
  fence?: LeaseFence | null;
}

/** An `instruments` row as the writer upserts it. */
export interface InstrumentRow {
  token: number;
  exchange_token: number;
  symbol: string;
  name: string;
  type: string;
  segment: string;
  exchange: string;
  strike: number;
  expiry: string;
  tick_size: number;
  lot_size: number;
}

export const WriterState = { STARTING: 0, UP: 1, DOWN: 2, STOPPED: 3 } as const;
export const WRITER_STATE_NAMES = ['starting', 'up', 'down', 'stopped'] as const;

export const WC = {
  STATE: 0,
  ROWS: 1,
  QUARANTINED: 2,
  BARS: 3,
  BATCHES: 4,
  BATCHES_SKIPPED: 5,
  ROWS_SKIPPED: 6,
  SPILLED: 7,
  SPILL_PENDING: 8,
  SPILL_BYTES: 9,
  IN_FLIGHT: 10,
  FAILURES: 11,
  REJECTED: 12,
  GAPS: 13,
  RELEASED: 14,
  LAST_COMMIT_MS: 15,
  SPILL_FULL: 16,
  REPLAYED: 17,
  STARTED_MS: 18,
  BUSY: 19,
  LATENCY: 32,
} as const;

/**
 * Latency buckets: 1 ms wide below 100 ms, 10 ms to 1 s, 100 ms to 10 s, then one overflow
 * bucket. Two significant digits everywhere, 281 buckets.
 */
export const LATENCY_BUCKETS = 281;
export const WRITER_COUNTERS = WC.LATENCY + LATENCY_BUCKETS;

export function latencyBucket(ms: number): number {
  if (!(ms > 0)) return 0;
  if (ms < 100) return Math.floor(ms);
  if (ms < 1000) return 100 + Math.floor((ms - 100) / 10);
  if (ms < 10_000) return 190 + Math.floor((ms - 1000) / 100);
  return 280;
}

/** Upper edge of bucket i, ms (Infinity for the overflow bucket). */
export function latencyBucketEdge(i: number): number {
  if (i < 100) return i + 1;
  if (i < 190) return 100 + (i - 99) * 10;
  if (i < 280) return 1000 + (i - 189) * 100;
  return Infinity;
}

/**
 * Quantile q (0..1) of the latency histogram in `counters`, as a bucket's upper edge; NaN when
 * empty. With `before` (an earlier copy of the LATENCY_BUCKETS counts), of what came since it.
 */
export function latencyQuantile(counters: Float64Array, q: number, before?: Float64Array): number {
  let total = 0;
  for (let i = 0; i < LATENCY_BUCKETS; i++) total += counters[WC.LATENCY + i] - (before ? before[i] : 0);
  if (total <= 0) return NaN;
  const want = q * total;
  let seen = 0;
  for (let i = 0; i < LATENCY_BUCKETS; i++) {
    seen += counters[WC.LATENCY + i] - (before ? before[i] : 0);
    if (seen >= want) return latencyBucketEdge(i);
  }
  return Infinity;
}

/** Messages from the main thread. */
export type WriterControl =
  | { type: 'stop'; deadlineMs: number }
  | { type: 'query'; id: number; text: string; params: unknown[] };

/** Messages to the main thread. */
export type WriterMessage =
  | { type: 'log'; level: 'debug' | 'info' | 'warn' | 'error'; obj: Record<string, unknown>; msg: string }
  | { type: 'ready'; schemaPath: string }
  | { type: 'instruments'; rows: number }
  | { type: 'result'; id: number; rows?: unknown[]; error?: { message: string; code?: string } }
  | { type: 'stopped'; spillPending: number }
  | TxPortMessage;

/** Exit codes a writer thread ends with on purpose. */
export const WriterExit = { OK: 0, STALLED: 75 } as const;
