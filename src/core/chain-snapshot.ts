/**
 * The analytics snapshot: what the main thread hands the analytics pool (workers/analytics/) at
 * each refresh, and the static layout both sides agree on once, at start.
 *
 * The layout (`ChainLayout`, plain data, given to the pool as `workerData`) lists the rows of the
 * snapshot: every followed option grouped by underlying and expiry, each group's spot and (when one
 * is followed for that expiry) future, and the NIFTY 50 stocks for breadth. A snapshot is then a
 * Float64Array of HEADER_FIELDS values and one record of ROW_FIELDS values per row, built by
 * copying the hub's latest ticks (src/analytics/snapshot.ts), and moved (transferred, not copied
 * or serialised) to a pool thread.
 *
 * Header:
 *
 * | off | field     | meaning                                                                  |
 * |-----|-----------|--------------------------------------------------------------------------|
 * | 0   | NOW_MS    | wall clock when the snapshot was taken, epoch ms                         |
 * | 1   | SEQ       | refresh number (1, 2, ...)                                               |
 * | 2   | NEWEST_MS | the newest exchange time among the rows (staleness is measured from it)  |
 * | 3-7 | —         | reserved                                                                 |
 *
 * Row record (prices rupees, times epoch ms, NaN where the row has no such value):
 *
 * | off | field       | meaning                                                                |
 * |-----|-------------|------------------------------------------------------------------------|
 * | 0   | HAS         | 1 when the row has had a tick, else 0 (then every other field is 0)    |
 * | 1   | PRICE       | last traded price                                                      |
 * | 2   | BID         | best bid price; 0 when the tick carried no bid (or no depth)           |
 * | 3   | BID_QTY     | quantity at the best bid                                               |
 * | 4   | ASK         | best ask price; 0 when none                                            |
 * | 5   | ASK_QTY     | quantity at the best ask                                               |
 * | 6   | EXCH_MS     | exchange time of the tick                                              |
 * | 7   | OI          | open interest                                                          |
 * | 8   | VOLUME      | volume traded today                                                    |
 * | 9   | OPEN        | day open                                                               |
 * | 10  | HIGH        | day high                                                               |
 * | 11  | LOW         | day low                                                                |
 * | 12  | CLOSE       | previous session's close                                               |
 * | 13  | OI_OPEN     | the first OI seen this IST day (NaN: none yet)                         |
 * | 14  | OI_AGO      | the OI one ANALYTICS_OI_INTERVAL_MS ago (NaN: not followed that long)  |
 * | 15  | —           | reserved                                                               |
 */

export const SNAP_HEADER = { NOW_MS: 0, SEQ: 1, NEWEST_MS: 2 } as const;
export const HEADER_FIELDS = 8;

export const SNAP = {
  HAS: 0,
  PRICE: 1,
  BID: 2,
  BID_QTY: 3,
  ASK: 4,
  ASK_QTY: 5,
  EXCH_MS: 6,
  OI: 7,
  VOLUME: 8,
  OPEN: 9,
  HIGH: 10,
  LOW: 11,
  CLOSE: 12,
  OI_OPEN: 13,
  OI_AGO: 14,
} as const;
export const ROW_FIELDS = 16;

/** f64 index of row `row`'s record in a snapshot. */
export function rowBase(row: number): number {
  return HEADER_FIELDS + row * ROW_FIELDS;
}

/** Values in a snapshot of `rows` rows. */
export function snapshotLength(rows: number): number {
  return HEADER_FIELDS + rows * ROW_FIELDS;
}

export interface ChainOption {
  /** Snapshot row. */
  readonly row: number;
  readonly token: number;
  readonly symbol: string;
  /** Rupees. */
  readonly strike: number;
  readonly call: boolean;
}

/** One option chain: an underlying's options of one expiry. */
export interface ChainGroup {
  /** `NIFTY:2026-12-08`: the key of its analytics in the cache, on `/ws` and in REST. */
  readonly key: string;
  /** Underlying name as in the instrument master ('NIFTY'). */
  readonly name: string;
  /** 'YYYY-MM-DD'. */
  readonly expiry: string;
  /** 15:30 IST on the expiry day, epoch ms: options stop trading and settle then. */
  readonly expiryCloseMs: number;
  /** 0 for the underlying's nearest followed expiry, 1 for the next: the IV history's constant-rank series. */
  readonly rank: number;
  /** Snapshot row of the underlying's spot (the index, or the stock), -1 when not followed. */
  readonly spotRow: number;
  /** Snapshot row of the future of the same expiry, -1 when none is followed. */
  readonly futureRow: number;
  /** Sorted by strike, the call before the put at each strike. */
  readonly options: readonly ChainOption[];
}

export interface ChainLayout {
  /** Rows per snapshot. */
  readonly rows: number;
  readonly groups: readonly ChainGroup[];
  /** The NIFTY 50 stocks followed (market breadth). */
  readonly stocks: readonly { readonly row: number; readonly symbol: string }[];
  /** Continuously compounded annual rate (RISK_FREE_RATE). */
  readonly rate: number;
  /** A quote whose exchange time is this far behind the snapshot's newest is stale, ms. */
  readonly staleMs: number;
  /** The interval of the OI_AGO column, ms (ANALYTICS_OI_INTERVAL_MS). */
  readonly oiIntervalMs: number;
}

/**
 * What the pool returns per group besides the encoded analytics: the numbers the main thread keeps
 * as a time series (SUMMARY_FIELDS values per group, in layout order; NaN where there is no value).
 *
 * | off | field    | meaning                                                |
 * |-----|----------|--------------------------------------------------------|
 * | 0   | ATM_IV   | at-the-money implied volatility, a fraction (0.12)     |
 * | 1   | PCR_OI   | put OI / call OI                                       |
 * | 2   | PCR_VOL  | put volume / call volume                               |
 * | 3   | FORWARD  | the expiry's forward, rupees                           |
 */
export const SUMMARY = { ATM_IV: 0, PCR_OI: 1, PCR_VOL: 2, FORWARD: 3 } as const;
export const SUMMARY_FIELDS = 4;

/**
 * What the pool shares with the main thread for good, given once as its workerData: the layout, the
 * snapshot buffer (the main thread fills it before each task; one refresh runs at a time, so the
 * pool thread reads it undisturbed) and two output regions the pool writes its encodings into.
 *
 * Two regions because the latest answer stays in use (the cache and new `/ws` subscribers read its
 * bytes) while the next is written: a task names the region that is NOT the published one. Nothing
 * moves per refresh but a small task and a small result, so the main thread neither copies nor
 * allocates the analytics (a transferred buffer per refresh measured ~110 µs of main-thread
 * garbage collection per refresh in bench/analytics.bench.ts).
 */
export interface PoolShared {
  readonly layout: ChainLayout;
  /** snapshotLength(layout.rows) f64. */
  readonly snap: SharedArrayBuffer;
  readonly regions: readonly [SharedArrayBuffer, SharedArrayBuffer];
}

/** A refresh, posted to the pool. */
export interface AnalyticsTask {
  readonly seq: number;
  /** The output region to write (0 or 1). */
  readonly out: number;
  /** Larger output regions, replacing the shared ones from this task on (after an answer did not fit). */
  readonly regions?: readonly [SharedArrayBuffer, SharedArrayBuffer];
}

/**
 * Where each encoding lies in the output: PARTS_PER_ITEM int32 per item (each group in layout
 * order, then breadth), each a [start, end) byte range.
 *
 * | off | part        | what                                                               |
 * |-----|-------------|--------------------------------------------------------------------|
 * | 0-1 | JSON        | the analytics as UTF-8 JSON: the cache's value and REST's source   |
 * | 2-3 | RECORDS     | the /ws frame (`{ type: 'chain' | 'breadth', d }`) for msgpackr clients |
 * | 4-5 | PLAIN       | the same frame as plain msgpack maps (`?records=0` clients)         |
 */
export const PART = { JSON: 0, RECORDS: 2, PLAIN: 4 } as const;
export const PARTS_PER_ITEM = 6;

/** The pool's answer to one task (small: the encodings are in the output region). */
export interface AnalyticsResult {
  readonly seq: number;
  readonly out: number;
  readonly parts: Int32Array;
  /** SUMMARY_FIELDS per group. */
  readonly summary: Float64Array;
  /** Null when the encodings are in region `out`; else they did not fit, and are here (moved) instead. */
  readonly bytes: Uint8Array | null;
  /** Bytes the encodings took. */
  readonly used: number;
  /** Time the pool thread spent on the task (compute and encode), µs. */
  readonly workUs: number;
}
