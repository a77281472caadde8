/**
 * Reading stored data back: bars (for charts), ticks, and the instrument master. Runs on any `Db`
 * (a PostgreSQL server on either schema path, or the embedded PGlite): the tables and columns are
 * the same on all (one definition, sql/002_timeseries.sql), and times are bound as ISO text cast in SQL so both
 * drivers bind them alike. Results are plain objects with epoch-ms times.
 *
 * Gap-free bars: a chart wants one candle per bucket. A bucket with no stored bar (no trade in it)
 * between two stored bars of the same IST day is filled with a flat candle at the previous close,
 * volume 0, `filled: true`. Nothing is invented before a day's first stored bar, after its last,
 * or on a day with none (weekends and holidays are not trading days; this module has no exchange
 * calendar). The bucket grid is the aggregator's (src/core/ist.ts), so filled buckets
 * line up with stored ones, including the cut 15:15-15:30 bucket of a 60m grid. Day bars are not
 * filled.
 */
import { AppError } from '../core/errors.ts';
import { bucketEnd, DAY_MS, istDayStart, parseTimeframe, timeframeName } from '../core/ist.ts';
import type { Db } from '../core/db.ts';

/** At most this many bars per request (a year of 1m session bars is ~94k). */
export const MAX_BARS = 100_000;
/** At most this many ticks per request. */
export const MAX_TICKS = 100_000;

export class QueryError extends AppError {
  constructor(readonly field: string, problem: string, example: string) {
    super('QUERY_INVALID', `${field}: ${problem}. Expected e.g. ${field}=${example}`, { field });
    this.name = 'QueryError';
  }
}

export interface StoredBar {
  token: number;
  timeframe: string;
  /** Bucket start, epoch ms (inclusive). */
  start: number;
  /** Bucket end, epoch ms (exclusive). */
  end: number;
  open: number;
  high: number;
  low: number;
  close: number;
  volume: number;
  /** null when the bar has no volume. */
  vwap: number | null;
  trades: number;
  oi: number;
  ticks: number;
  /** Covers only part of its bucket (cut by a shutdown, or merged across a restart). */
  partial: boolean;
  /** A gap filled by this module (no stored bar): flat at the previous close, no volume. */
  filled: boolean;
}

export interface Tick {
  token: number;
  /** Exchange time, epoch ms. */
  time: number;
  /** Receive time, epoch µs. */
  recvTimeUs: number;
  kind: number;
  price: number;
  lastQty: number;
  avgPrice: number;
  volume: number;
  volumeDelta: number;
  buyQty: number;
  sellQty: number;
  open: number;
  high: number;
  low: number;
  close: number;
  changePct: number;
  oi: number;
  oiHigh: number;
  oiLow: number;
  lastTradeTime: number | null;
  bidPrice: number | null;
  bidQty: number | null;
  askPrice: number | null;
  askQty: number | null;
  /** [10][3]: bids 1-5 then asks 1-5, each [qty, price, orders]; null without depth. */
  depth: number[][] | null;
  conn: number;
  seq: number;
}

export interface InstrumentRecord {
  token: number;
  exchangeToken: number;
  symbol: string;
  name: string;
  type: string;
  segment: string;
  exchange: string;
  strike: number;
  /** 'YYYY-MM-DD' or null. */
  expiry: string | null;
  tickSize: number;
  lotSize: number;
  freezeQty: number | null;
}

type Time = number | Date | string;

function ms(v: Time, field: string): number {
  const t = typeof v === 'number' ? v : typeof v === 'string' ? Date.parse(v) : v.getTime();
  if (!Number.isFinite(t)) throw new QueryError(field, `${JSON.stringify(v)} is not a time`, '2025-12-03T09:15:00+05:30');
  return t;
}

function range(from: Time, to: Time): [number, number] {
  const f = ms(from, 'from');
  const t = ms(to, 'to');
  if (t <= f) throw new QueryError('to', 'must be after from', '2025-12-03T15:30:00+05:30');
  return [f, t];
}

const iso = (t: number): string => new Date(t).toISOString();

/** Token of `symbol` (optionally on `exchange`), or null when the master has none. */
export async function resolveToken(db: Db, symbol: string, exchange?: string): Promise<number | null> {
  const rows = await db.query<{ token: number }>(
    exchange === undefined
      ? 'SELECT token FROM instruments WHERE symbol = $1 ORDER BY exchange LIMIT 1'
      : 'SELECT token FROM instruments WHERE symbol = $1 AND exchange = $2 LIMIT 1',
    exchange === undefined ? [symbol] : [symbol, exchange],
  );
  return rows.length === 0 ? null : Number(rows[0].token);
}

async function tokenOf(db: Db, q: { token?: number; symbol?: string; exchange?: string }): Promise<number> {
  if (q.token !== undefined) {
    if (!Number.isInteger(q.token) || q.token <= 0) throw new QueryError('token', `${q.token} is not an instrument token`, '256265');
    return q.token;
  }
  if (q.symbol === undefined || q.symbol === '') throw new QueryError('symbol', 'give a token or a symbol', 'NIFTY 50');
  const t = await resolveToken(db, q.symbol, q.exchange);
  if (t === null) throw new AppError('INSTRUMENT_UNKNOWN', `no instrument "${q.symbol}"${q.exchange ? ` on ${q.exchange}` : ''} in the master; check the symbol (GET the instrument list)`, { symbol: q.symbol });
  return t;
}

/**
 * Bars of one instrument and timeframe with bucket start in [from, to), oldest first. Gaps inside a
 * day are filled unless `fill` is false (see the module header).
 */
export async function bars(db: Db, q: {
  token?: number;
  symbol?: string;
  exchange?: string;
  /** '1s', '1m', '5m', '15m', '1d', ... (a stored timeframe). */
  timeframe: string;
  from: Time;
  to: Time;
  fill?: boolean;
  limit?: number;
}): Promise<StoredBar[]> {
  let tfMs: number;
  try {
    tfMs = parseTimeframe(q.timeframe);
  } catch (e) {
    throw new QueryError('timeframe', (e as Error).message, '1m');
  }
  const [from, to] = range(q.from, q.to);
  const limit = q.limit ?? MAX_BARS;
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_BARS) throw new QueryError('limit', `must be 1..${MAX_BARS}`, '1000');
  const token = await tokenOf(db, q);
  const rows = await db.query<Record<string, number | boolean | null>>(
    `SELECT token, (extract(epoch FROM bucket_start) * 1000)::float8 AS st, (extract(epoch FROM bucket_end) * 1000)::float8 AS en,
            open, high, low, close, volume, vwap, trades, oi, ticks, partial
       FROM bars
      WHERE token = $1 AND timeframe = $2 AND bucket_start >= $3::timestamptz AND bucket_start < $4::timestamptz
      ORDER BY bucket_start LIMIT $5`,
    [token, timeframeName(tfMs), iso(from), iso(to), limit],
  );
  const tf = timeframeName(tfMs);
  const out: StoredBar[] = [];
  for (const r of rows) {
    const b: StoredBar = {
      token: Number(r.token), timeframe: tf, start: Math.round(Number(r.st)), end: Math.round(Number(r.en)),
      open: Number(r.open), high: Number(r.high), low: Number(r.low), close: Number(r.close), volume: Number(r.volume),
      vwap: r.vwap === null ? null : Number(r.vwap), trades: Number(r.trades), oi: Number(r.oi), ticks: Number(r.ticks),
      partial: r.partial === true, filled: false,
    };
    const prev = out[out.length - 1];
    if (q.fill !== false && tfMs < DAY_MS && prev !== undefined && istDayStart(prev.start) === istDayStart(b.start)) {
      for (let s = prev.end; s < b.start && out.length < limit; s = bucketEnd(s, tfMs)) {
        const p = out[out.length - 1];
        out.push({
          token, timeframe: tf, start: s, end: bucketEnd(s, tfMs), open: p.close, high: p.close, low: p.close, close: p.close,
          volume: 0, vwap: null, trades: 0, oi: p.oi, ticks: 0, partial: false, filled: true,
        });
      }
    }
    if (out.length >= limit) break;
    out.push(b);
  }
  return out;
}

/** Ticks of one instrument with exchange time in [from, to), oldest first, at most `limit`. */
export async function ticks(db: Db, q: { token?: number; symbol?: string; exchange?: string; from: Time; to: Time; limit?: number }): Promise<Tick[]> {
  const [from, to] = range(q.from, q.to);
  const limit = q.limit ?? 1000;
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_TICKS) throw new QueryError('limit', `must be 1..${MAX_TICKS}`, '1000');
  const token = await tokenOf(db, q);
  const rows = await db.query<Record<string, unknown>>(
    `SELECT token, (extract(epoch FROM time) * 1000)::float8 AS t, (extract(epoch FROM recv_time) * 1000000)::float8 AS r,
            kind, price, last_qty, avg_price, volume, volume_delta, buy_qty, sell_qty, open, high, low, close, change_pct,
            oi, oi_high, oi_low, (extract(epoch FROM last_trade_time) * 1000)::float8 AS ltt,
            bid_price, bid_qty, ask_price, ask_qty, depth, conn, seq
       FROM market_data
      WHERE token = $1 AND time >= $2::timestamptz AND time < $3::timestamptz
      ORDER BY time, recv_time, conn, seq LIMIT $4`,
    [token, iso(from), iso(to), limit],
  );
  const n = (v: unknown): number => Number(v);
  const nn = (v: unknown): number | null => (v === null || v === undefined ? null : Number(v));
  return rows.map((r) => ({
    token: n(r.token), time: Math.round(n(r.t)), recvTimeUs: Math.round(n(r.r)), kind: n(r.kind), price: n(r.price),
    lastQty: n(r.last_qty), avgPrice: n(r.avg_price), volume: n(r.volume), volumeDelta: n(r.volume_delta),
    buyQty: n(r.buy_qty), sellQty: n(r.sell_qty), open: n(r.open), high: n(r.high), low: n(r.low), close: n(r.close),
    changePct: n(r.change_pct), oi: n(r.oi), oiHigh: n(r.oi_high), oiLow: n(r.oi_low),
    lastTradeTime: r.ltt === null ? null : Math.round(n(r.ltt)),
    bidPrice: nn(r.bid_price), bidQty: nn(r.bid_qty), askPrice: nn(r.ask_price), askQty: nn(r.ask_qty),
    depth: (r.depth as number[][] | null) ?? null, conn: n(r.conn), seq: n(r.seq),
  }));
}

/** The instrument master, filtered; ordered by exchange and symbol. */
export async function instruments(db: Db, q: { token?: number; symbol?: string; exchange?: string; segment?: string; type?: string; name?: string; limit?: number } = {}): Promise<InstrumentRecord[]> {
  const where: string[] = [];
  const params: unknown[] = [];
  const add = (col: string, v: unknown) => {
    if (v === undefined) return;
    params.push(v);
    where.push(`${col} = $${params.length}`);
  };
  add('token', q.token);
  add('symbol', q.symbol);
  add('exchange', q.exchange);
  add('segment', q.segment);
  add('type', q.type);
  add('name', q.name);
  const limit = q.limit ?? 100_000;
  if (!Number.isInteger(limit) || limit < 1) throw new QueryError('limit', 'must be a positive whole number', '100');
  params.push(limit);
  const rows = await db.query<Record<string, unknown>>(
    `SELECT token, exchange_token, symbol, name, type, segment, exchange, strike, to_char(expiry, 'YYYY-MM-DD') AS expiry,
            tick_size, lot_size, freeze_qty
       FROM instruments ${where.length > 0 ? `WHERE ${where.join(' AND ')}` : ''}
      ORDER BY exchange, symbol LIMIT $${params.length}`,
    params,
  );
  return rows.map((r) => ({
    token: Number(r.token), exchangeToken: Number(r.exchange_token), symbol: String(r.symbol), name: String(r.name),
    type: String(r.type), segment: String(r.segment), exchange: String(r.exchange), strike: Number(r.strike),
    expiry: (r.expiry as string | null) ?? null, tickSize: Number(r.tick_size), lotSize: Number(r.lot_size),
    freezeQty: r.freeze_qty === null ? null : Number(r.freeze_qty),
  }));
}
