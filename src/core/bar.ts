/**
 * The bar record: one OHLCV bar as BAR_FIELDS consecutive f64 values in a Float64Array.
 *
 * The aggregator keeps its open bars in this layout and hands consumers a view of it; the writer
 * and the gateway read it through `B`. Nothing else may invent offsets. Prices are rupees (f64),
 * converted from Kite's integer units before the aggregate stage; times are epoch ms.
 *
 * | off | field    | unit / meaning                                                              |
 * |-----|----------|-----------------------------------------------------------------------------|
 * | 0   | TOKEN    | instrument token                                                            |
 * | 1   | TF_MS    | timeframe length, ms (86_400_000 = day bar)                                 |
 * | 2   | START_MS | bucket start, epoch ms, inclusive (see ist.ts for the grid)             |
 * | 3   | END_MS   | bucket end, epoch ms, exclusive; cut at 15:30 and at IST midnight           |
 * | 4   | OPEN     | rupees: first price of the bucket                                           |
 * | 5   | HIGH     | rupees                                                                      |
 * | 6   | LOW      | rupees                                                                      |
 * | 7   | CLOSE    | rupees: last price of the bucket                                            |
 * | 8   | VOLUME   | sum of the volume deltas the bar absorbed, late ones included               |
 * | 9   | VWAP     | rupees: Σ(price × volumeDelta) / VOLUME; NaN when VOLUME is 0 (indices)     |
 * | 10  | TRADES   | ticks with volumeDelta > 0                                                  |
 * | 11  | OI       | open interest at the bar's last in-bucket tick                              |
 * | 12  | TICKS    | ticks the bar absorbed, late ones included                                  |
 * | 13  | FLAGS    | BarFlag bits                                                                |
 *
 * VWAP is NaN rather than 0 for a bar without volume because 0 is a price; consumers write NaN as
 * SQL NULL / msgpack nil. Late ticks add volume (and their price × volume to VWAP) but never move
 * OPEN/HIGH/LOW/CLOSE/OI, so VWAP of a bar flagged LATE may lie outside [LOW, HIGH].
 */

export const B = {
  TOKEN: 0,
  TF_MS: 1,
  START_MS: 2,
  END_MS: 3,
  OPEN: 4,
  HIGH: 5,
  LOW: 6,
  CLOSE: 7,
  VOLUME: 8,
  VWAP: 9,
  TRADES: 10,
  OI: 11,
  TICKS: 12,
  FLAGS: 13,
} as const;

export const BAR_FIELDS = 14;

/** Bits of B.FLAGS. */
/** How long past its end a bar waits for late ticks before the bar clock closes it, ms (shards and replays). */
export const DEFAULT_BAR_GRACE_MS = 500;

export const BarFlag = {
  /** Final: the bucket is over (or the process is shutting down); no further update follows. */
  CLOSED: 1,
  /** Closed by flush() at shutdown before the bucket's end: the bar covers only part of it. */
  PARTIAL: 2,
  /** Absorbed volume of at least one late tick (a tick whose own bucket was earlier or closed). */
  LATE: 4,
  /**
   * Opened by a late tick when no bar was open: OPEN/HIGH/LOW/CLOSE/OI are carried from the
   * previous bar's close because no tick of this bucket has been seen yet. Cleared by the first
   * in-bucket tick, which then sets all four prices.
   */
  CARRIED: 8,
  /**
   * Some of the bar came from Kite's historical API after a feed gap (src/storage/backfill.ts): the
   * minute's open, high, low, close and volume are Kite's candle, which covers the whole minute;
   * VWAP is an estimate (Kite's candles carry none) and TRADES / TICKS count only what the live
   * feed saw. Higher timeframes overlapping a gap are rebuilt from their 1m rows and carry it too.
   * Only stored bars have it: the live feed's bars never do.
   */
  BACKFILLED: 16,
} as const;

/** A bar as a plain object: for tests, logs and edges, never the hot path. */
export interface CanonicalBar {
  token: number;
  tfMs: number;
  startMs: number;
  endMs: number;
  open: number;
  high: number;
  low: number;
  close: number;
  volume: number;
  /** null when the bar has no volume (B.VWAP is NaN). */
  vwap: number | null;
  trades: number;
  oi: number;
  ticks: number;
  flags: number;
}

/** Copy the bar at `base` out of `view` into a plain object. Allocates: edges and tests only. */
export function barToObject(view: Float64Array, base: number): CanonicalBar {
  const vwap = view[base + B.VWAP];
  return {
    token: view[base + B.TOKEN],
    tfMs: view[base + B.TF_MS],
    startMs: view[base + B.START_MS],
    endMs: view[base + B.END_MS],
    open: view[base + B.OPEN],
    high: view[base + B.HIGH],
    low: view[base + B.LOW],
    close: view[base + B.CLOSE],
    volume: view[base + B.VOLUME],
    vwap: Number.isNaN(vwap) ? null : vwap,
    trades: view[base + B.TRADES],
    oi: view[base + B.OI],
    ticks: view[base + B.TICKS],
    flags: view[base + B.FLAGS],
  };
}
