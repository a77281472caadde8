/**
 * IST session clock: which bar bucket an exchange timestamp falls in.
 *
 * India Standard Time is UTC+05:30 all year (no daylight saving), so the IST day and minute of an
 * epoch-ms timestamp are plain arithmetic; nothing here builds a `Date`, because `bucketStart` runs
 * once per tick per timeframe.
 *
 * Buckets partition time (every instant lies in exactly one bucket of a timeframe, and buckets
 * never overlap), which is what lets the aggregator decide "same, later or earlier bar" by
 * comparing a timestamp with the open bar's [start, end):
 *
 * - Day timeframe (1d): one bucket per IST calendar day, [00:00 IST, next 00:00 IST).
 * - Intraday timeframes (tf < 1 day), within one IST day D:
 *   - before 15:30: a grid anchored at the 09:15 open, start = open + floor((t - open) / tf) * tf.
 *     The grid runs backwards through the pre-open too, because pre-open and special sessions
 *     (Muhurat trading) exist and the simulator runs at any hour: nothing is rejected by market hours.
 *     The bucket that would run past 15:30 is cut there (Kite's 60-minute candle 15:15–15:30).
 *   - from 15:30: a grid anchored at 15:30, because the cut bucket ends there; without a fresh
 *     anchor a 15:45 tick would land in the 15:15 bucket it is already past.
 *   - no bucket crosses IST midnight: the first bucket of a day starts at 00:00 and the last ends at
 *     24:00 (a 60m grid from 09:15 gives 00:00–00:15 and 23:30–24:00). Without the cut a timeframe
 *     that does not divide the day (7m) would give overlapping buckets on either side of midnight.
 *
 * For the usual timeframes (1s, 1m, 3m, 5m, 15m) 09:15, 15:30 and midnight all lie on the plain
 * grid, so only 10m, 60m and the like ever see a cut bucket.
 */

export const IST_OFFSET_MS = 19_800_000; // 5 h 30 min
export const DAY_MS = 86_400_000;
export const MINUTE_MS = 60_000;
/** Minute of the IST day at which the normal session opens: 09:15. */
export const SESSION_OPEN_MIN = 9 * 60 + 15;
/** Minute of the IST day at which the normal session closes: 15:30. */
export const SESSION_CLOSE_MIN = 15 * 60 + 30;

const OPEN_MS = SESSION_OPEN_MIN * MINUTE_MS;
const CLOSE_MS = SESSION_CLOSE_MIN * MINUTE_MS;

/** The timeframes a worker aggregates when the config names none. */
export const DEFAULT_TIMEFRAMES = ['1s', '1m', '5m', '15m', '1d'] as const;

/** Epoch ms of 00:00 IST on the IST day containing `ms`. */
export function istDayStart(ms: number): number {
  return Math.floor((ms + IST_OFFSET_MS) / DAY_MS) * DAY_MS - IST_OFFSET_MS;
}

/** Start (epoch ms, inclusive) of the `tfMs` bucket containing `ms`; see the module header. */
export function bucketStart(ms: number, tfMs: number): number {
  const day = istDayStart(ms);
  if (tfMs === DAY_MS) return day;
  const close = day + CLOSE_MS;
  if (ms >= close) return close + Math.floor((ms - close) / tfMs) * tfMs;
  const open = day + OPEN_MS;
  const start = open + Math.floor((ms - open) / tfMs) * tfMs;
  return start > day ? start : day;
}

/**
 * End (epoch ms, exclusive) of the `tfMs` bucket that starts at `start`, which must be a bucket
 * start. Also the start of the next bucket, so `bucketStart(bucketEnd(s, tf), tf) === bucketEnd(s, tf)`.
 */
export function bucketEnd(start: number, tfMs: number): number {
  const day = istDayStart(start);
  if (tfMs === DAY_MS) return day + DAY_MS;
  const close = day + CLOSE_MS;
  if (start >= close) {
    const end = close + (Math.floor((start - close) / tfMs) + 1) * tfMs;
    return end < day + DAY_MS ? end : day + DAY_MS;
  }
  const open = day + OPEN_MS;
  // floor() also places a midnight-cut start (not on the grid) in the grid step it cuts.
  const end = open + (Math.floor((start - open) / tfMs) + 1) * tfMs;
  return end < close ? end : close;
}

/**
 * bucketStart and bucketEnd in one, for the hot path: the `tfMs` bucket containing the time at
 * `src[i]`, its start written to `out[o]` and its end to `out[o + 1]`. It takes and returns no
 * double, and calls nothing but Math.floor: a double passed to or returned from a call V8 does not
 * inline is boxed in a fresh HeapNumber, and the aggregator opens a bar on about one tick in four
 * with 1 s bars. Whether V8 inlines bucketStart there varies from run to run (measured:
 * 15.8 bytes a tick when it did not, test/pipeline/stages.alloc.test.ts). Same arithmetic as the
 * two above (the start's day is the time's day); src/core/ist.test.ts holds it to them.
 */
export function bucketInto(src: Float64Array, i: number, tfMs: number, out: Float64Array, o: number): void {
  const ms = src[i];
  const day = Math.floor((ms + IST_OFFSET_MS) / DAY_MS) * DAY_MS - IST_OFFSET_MS;
  if (tfMs === DAY_MS) {
    out[o] = day;
    out[o + 1] = day + DAY_MS;
    return;
  }
  const close = day + CLOSE_MS;
  if (ms >= close) {
    const start = close + Math.floor((ms - close) / tfMs) * tfMs;
    const end = close + (Math.floor((start - close) / tfMs) + 1) * tfMs;
    out[o] = start;
    out[o + 1] = end < day + DAY_MS ? end : day + DAY_MS;
    return;
  }
  const open = day + OPEN_MS;
  const grid = open + Math.floor((ms - open) / tfMs) * tfMs;
  const start = grid > day ? grid : day;
  const end = open + (Math.floor((start - open) / tfMs) + 1) * tfMs;
  out[o] = start;
  out[o + 1] = end < close ? end : close;
}

/** A timeframe name or length that the aggregator cannot bucket. */
export class TimeframeError extends RangeError {
  readonly code = 'TIMEFRAME_INVALID';
  constructor(readonly value: unknown, reason: string) {
    super(`Invalid timeframe ${JSON.stringify(value)}: ${reason}. Expected e.g. '1s', '1m', '5m', '15m', '1h' or '1d'`);
    this.name = 'TimeframeError';
  }
}

const UNIT_MS: Record<string, number> = { s: 1000, m: MINUTE_MS, h: 3_600_000, d: DAY_MS };

/** '1s', '1m', '5m', '15m', '1h', '1d' → ms. Throws TimeframeError (a RangeError) naming the value. */
export function parseTimeframe(name: string): number {
  const m = /^([1-9][0-9]*)([smhd])$/.exec(typeof name === 'string' ? name.trim() : '');
  if (m === null) throw new TimeframeError(name, 'not a positive whole number followed by s, m, h or d');
  const ms = Number(m[1]) * UNIT_MS[m[2]];
  checkTimeframeMs(ms, name);
  return ms;
}

/**
 * Throws TimeframeError unless `tfMs` is a whole number of seconds below one day, or exactly one
 * day. Multi-day bars would need a trading calendar, which this module does not have.
 */
export function checkTimeframeMs(tfMs: number, shownAs: unknown = tfMs): void {
  if (!Number.isFinite(tfMs) || tfMs <= 0 || tfMs % 1000 !== 0) {
    throw new TimeframeError(shownAs, 'length must be a positive whole number of seconds');
  }
  if (tfMs > DAY_MS) throw new TimeframeError(shownAs, 'bars longer than one day are not supported');
}

/** Short name of a timeframe length, for logs and keys: 60000 → '1m', 86400000 → '1d'. */
export function timeframeName(tfMs: number): string {
  if (tfMs % DAY_MS === 0) return `${tfMs / DAY_MS}d`;
  if (tfMs % 3_600_000 === 0) return `${tfMs / 3_600_000}h`;
  if (tfMs % MINUTE_MS === 0) return `${tfMs / MINUTE_MS}m`;
  return `${tfMs / 1000}s`;
}

/** The calendar day in India of an instant, as days since 1970-01-01. */
export function istDay(at: Date): number {
  return Math.floor((at.getTime() + IST_OFFSET_MS) / DAY_MS);
}

export function isoOfDay(day: number): string {
  return new Date(day * DAY_MS).toISOString().slice(0, 10);
}

export function dayOfIso(iso: string): number {
  return Math.floor(Date.parse(`${iso}T00:00:00Z`) / DAY_MS);
}

function pad(n: number): string {
  return n < 10 ? `0${n}` : String(n);
}

/**
 * Epoch ms → 'YYYY-MM-DD HH:mm:ss' in IST: how Kite writes times in quotes and order rows. Builds a
 * Date, so it is for answers and messages, not the per-tick path.
 */
export function istString(ms: number): string {
  const d = new Date(ms + IST_OFFSET_MS);
  return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}`;
}
