/**
 * The simulator's market history: minute candles of every instrument, built from its own trades
 * as the market makes them (Market `onTrade`), and served as Kite's historical API
 * (`GET /instruments/historical/{token}/{interval}`, KiteConnect.getHistoricalData). Gap repair
 * fetches the minutes a feed outage missed from here, so the candles must be the market's own:
 * open, high, low and close of the trades in the minute, the volume traded in it, the open
 * interest at its end.
 *
 * Memory: one record of 7 numbers per instrument and traded minute (a 6¼-hour day of 1,000
 * instruments is at most 375,000 records, about 25 MB); the simulator runs for a test or a session.
 *
 * Intervals are Kite's: minute, 3minute, 5minute, 10minute, 15minute, 30minute, 60minute (buckets
 * from 09:15 IST, as Kite cuts them) and day (IST days).
 */
import { IST_OFFSET_MS, MINUTE_MS, SESSION_OPEN_MIN, DAY_MS, istString } from '../../core/ist.ts';

/** A minute: [open, high, low, close] in paise, volume before its first trade and after its last, OI at its end. */
type Minute = [number, number, number, number, number, number, number];

export const HISTORY_INTERVALS: Readonly<Record<string, number>> = {
  minute: 1, '3minute': 3, '5minute': 5, '10minute': 10, '15minute': 15, '30minute': 30, '60minute': 60, day: 1440,
};

/** Kite's candle time: 'YYYY-MM-DDTHH:mm:ss+0530'. */
export function candleTime(ms: number): string {
  const s = istString(ms);
  return `${s.slice(0, 10)}T${s.slice(11)}+0530`;
}

/** Kite's `from` / `to`: 'YYYY-MM-DD HH:mm:ss' or 'YYYY-MM-DD' in IST; NaN when neither. */
export function parseKiteTime(s: string): number {
  const m = /^(\d{4})-(\d{2})-(\d{2})(?:[ T](\d{2}):(\d{2})(?::(\d{2}))?)?$/.exec(s.trim());
  if (m === null) return Number.NaN;
  const utc = Date.UTC(+m[1], +m[2] - 1, +m[3], +(m[4] ?? 0), +(m[5] ?? 0), +(m[6] ?? 0));
  return utc - IST_OFFSET_MS;
}

export class MarketHistory {
  /** Per market row: minute start (epoch ms) → its candle, in time order. */
  private readonly rows: Map<number, Minute>[];

  constructor(rows: number) {
    this.rows = Array.from({ length: rows }, () => new Map());
  }

  /** One trade (or an index move: volume and quantity 0) of row `row` at `nowSec`. */
  record(row: number, pricePaise: number, volumeAfter: number, qty: number, oi: number, nowSec: number): void {
    const minute = Math.floor((nowSec * 1000) / MINUTE_MS) * MINUTE_MS;
    const bars = this.rows[row];
    const m = bars.get(minute);
    if (m === undefined) {
      bars.set(minute, [pricePaise, pricePaise, pricePaise, pricePaise, volumeAfter - qty, volumeAfter, oi]);
      return;
    }
    if (pricePaise > m[1]) m[1] = pricePaise;
    if (pricePaise < m[2]) m[2] = pricePaise;
    m[3] = pricePaise;
    m[5] = volumeAfter;
    m[6] = oi;
  }

  /**
   * Candles of `row` whose start is in [fromMs, toMs], `minutes` long (1440: IST days), oldest
   * first, as Kite sends them: [time, open, high, low, close, volume(, oi)], prices in rupees.
   */
  candles(row: number, fromMs: number, toMs: number, minutes: number, withOi: boolean, divisor = 100): unknown[][] {
    const out: unknown[][] = [];
    let cur: { start: number; m: Minute } | null = null;
    const flush = () => {
      if (cur === null) return;
      const m = cur.m;
      const c: unknown[] = [candleTime(cur.start), m[0] / divisor, m[1] / divisor, m[2] / divisor, m[3] / divisor, m[5] - m[4]];
      if (withOi) c.push(m[6]);
      out.push(c);
    };
    const starts = [...this.rows[row].keys()].sort((a, b) => a - b);
    for (const t of starts) {
      const start = bucketOf(t, minutes);
      if (start < fromMs || start > toMs) continue;
      const m = this.rows[row].get(t)!;
      if (cur !== null && cur.start === start) {
        const a = cur.m;
        if (m[1] > a[1]) a[1] = m[1];
        if (m[2] < a[2]) a[2] = m[2];
        a[3] = m[3];
        a[5] = m[5];
        a[6] = m[6];
        continue;
      }
      flush();
      cur = { start, m: [...m] as Minute };
    }
    flush();
    return out;
  }
}

/** The start of the `minutes`-long candle holding minute `t`: from 09:15 IST, or the IST day. */
function bucketOf(t: number, minutes: number): number {
  const dayStart = Math.floor((t + IST_OFFSET_MS) / DAY_MS) * DAY_MS - IST_OFFSET_MS;
  if (minutes >= 1440) return dayStart;
  if (minutes === 1) return t;
  const open = dayStart + SESSION_OPEN_MIN * MINUTE_MS;
  const span = minutes * MINUTE_MS;
  return t >= open ? open + Math.floor((t - open) / span) * span : t - ((t - dayStart) % span);
}
