/**
 * Kite-compatible market-data REST under `/kite`: the official `KiteConnect` client with
 * `root: 'http://HOST:PORT/kite'` and one of our API keys as `api_key` and `access_token` works
 * unchanged for `getInstruments()`, `getQuote()`, `getOHLC()`, `getLTP()` and `getHistoricalData()`.
 *
 * Kite's contract, as the client reads it:
 *
 * | route                                             | answer                                           |
 * |---------------------------------------------------|--------------------------------------------------|
 * | GET /instruments, /instruments/{exchange}         | `text/csv` (exactly: the client compares the header with ===), Kite's columns |
 * | GET /quote?i=NSE:INFY&i=408065                    | `{status:'success', data:{'NSE:INFY': {...}}}` keyed as asked; unknown ones left out |
 * | GET /quote/ohlc, /quote/ltp                       | the same keys, `{instrument_token, last_price, ohlc}` / `{instrument_token, last_price}` |
 * | GET /instruments/historical/{token}/{interval}    | `{status:'success', data:{candles:[[time,o,h,l,c,v(,oi)]]}}`, time 'YYYY-MM-DDTHH:mm:ss+0530' |
 * | errors                                            | `{status:'error', message, data:null, error_type}`: TokenException 403, InputException 400, GeneralException 404/500, NetworkException 429 |
 *
 * Auth is Kite's header, `Authorization: token api_key:access_token`; either half may be our key.
 * Quote times are India wall-clock 'YYYY-MM-DD HH:mm:ss' strings, which the client turns into Dates.
 *
 * History: `from`/`to` are India wall-clock times, both inclusive (a candle is returned when its
 * start lies in [from, to]); a `day` request starts at the day of `from`. Candles come from the
 * bars table, rolled up where the interval is not stored (history.ts), on Kite's grid (09:15 IST).
 * Kite's range limits per interval apply (minute: 60 days, ..., day: 2000 days).
 *
 * Known differences from Kite: circuit limits are 0 (the feed does not carry them); `continuous`
 * is accepted and ignored (no continuous futures series is stored); an instrument the service
 * follows but has no tick for yet is left out of /quote like an unknown one.
 */
import type { TemplatedApp } from 'uWebSockets.js';
import type { Instrument } from '../core/instrument.ts';
import { toCsv } from '../kite/instrument-csv.ts';
import { DAY_MS, istDayStart, istString } from '../core/ist.ts';
import { Directory } from './directory.ts';
import { historyJson, KITE_INTERVALS, parseIstWallClock, storageError } from './history.ts';
import { errorBody, HttpError, RateLimiter, Router, type HttpReply, type HttpRequest, type RouteInfo } from './http.ts';
import type { RestMetrics } from './metrics.ts';
import type { DepthLevel, LiveQuote } from './quotes.ts';
import type { Config } from '../config.ts';
import { addKiteOrderRoutes, type OrderRouteDeps } from './orders.ts';
import { replayOrders } from './replays.ts';
import type { ReplayManager } from '../replay/manager.ts';
import type { Db } from '../core/db.ts';
import type { Logger } from '../log.ts';
import type { Authenticator } from './feed.ts';
import type { FeedHub } from './hub.ts';
import type { QuoteSource } from './quotes.ts';

/** What the /kite routes need; the JSON API's RestDeps (rest.ts) extends it. */
export interface KiteRestDeps {
  config: Pick<Config, 'apiRatePerSec' | 'apiRateBurst' | 'apiMaxBodyBytes' | 'apiBarsLimit' | 'timeframesMs'>;
  auth: Authenticator;
  /** Followed instruments, symbol resolution. */
  hub: FeedHub;
  /** Latest quotes: the QuoteCache as it is, or `hubQuotes(hub)`. */
  quotes: QuoteSource;
  /** Bars. null: /api/bars and Kite history answer 503. */
  db: Db | null;
  /** Kite's instrument master as fetched at start-up. Default: the followed instruments. */
  master?: () => readonly Instrument[];
  log: Logger;
  /** Shared with the JSON routes when mounted by mountRest. */
  directory?: Directory;
  /** The order service: mounts the order routes (orders.ts) on both APIs when given. */
  orders?: OrderRouteDeps;
  /** Replay sessions: their paper order routes at /kite/replay/{id}/... (replays.ts). */
  replays?: ReplayManager;
}

/** Kite's per-call instrument limits: 500 for /quote, 1000 for /quote/ohlc and /quote/ltp. */
export const KITE_QUOTE_LIMIT = 500;
export const KITE_LTP_LIMIT = 1000;

const EMPTY_DEPTH = Object.freeze([0, 1, 2, 3, 4].map(() => Object.freeze({ price: 0, quantity: 0, orders: 0 })));

/**
 * Mount the /kite REST routes. `shared` passes mountRest's rate limiter and metrics so a key's
 * budget and the latency histogram cover both APIs; alone, it makes its own.
 */
export function mountKiteRest(app: TemplatedApp, deps: KiteRestDeps, shared?: { limiter: RateLimiter; metrics?: RestMetrics }): RouteInfo[] {
  const limiter = shared?.limiter ?? new RateLimiter(deps.config.apiRatePerSec, deps.config.apiRateBurst);
  const metrics = shared?.metrics;
  const router = new Router({
    auth: deps.auth, limiter, maxBodyBytes: deps.config.apiMaxBodyBytes, log: deps.log,
    observe: metrics ? (route, method, status, s) => metrics.observe(route, method, status, s) : undefined,
  });
  const dir = deps.directory ?? new Directory(deps.hub, deps.master ?? (() => deps.hub.instruments));
  const kite = new KiteRest(deps, dir);
  const k = { method: 'GET', auth: 'kite', style: 'kite' } as const;
  router
    .add({ ...k, path: '/kite/instruments', handler: () => kite.instruments(null) })
    .add({ ...k, path: '/kite/instruments/:exchange', handler: (r) => kite.instruments(r.params.exchange) })
    .add({ ...k, path: '/kite/quote', handler: (r) => kite.quote(r, 'full') })
    .add({ ...k, path: '/kite/quote/ohlc', handler: (r) => kite.quote(r, 'ohlc') })
    .add({ ...k, path: '/kite/quote/ltp', handler: (r) => kite.quote(r, 'ltp') })
    .add({ ...k, path: '/kite/instruments/historical/:instrument_token/:interval', handler: (r) => kite.historical(r) });
  if (deps.orders) addKiteOrderRoutes(router, deps.orders);
  if (deps.replays) addKiteOrderRoutes(router, { orders: replayOrders(deps.replays) }, { prefix: '/kite/replay/:replay' });
  router.mount(app);
  // Kite's own 404 for any other /kite path, so the client throws a GeneralException, not a parse error.
  app.any('/kite/*', (res, req) => {
    const body = errorBody('kite', new HttpError(404, 'not_found', `Route not found: ${req.getMethod().toUpperCase()} ${req.getUrl()}`));
    res.cork(() => res.writeStatus('404 Not Found').writeHeader('Content-Type', 'application/json').end(body));
  });
  return router.routes();
}

function success(data: unknown): HttpReply {
  return { body: { status: 'success', data } };
}

function round2(x: number): number {
  return Math.round(x * 100) / 100;
}

class KiteRest {
  private csvOf: readonly Instrument[] | null = null;
  private readonly csv = new Map<string, string>();

  constructor(private readonly deps: KiteRestDeps, private readonly dir: Directory) {}

  instruments(exchange: string | null): HttpReply {
    if (exchange !== null && !/^[A-Za-z]{2,8}$/.test(exchange)) {
      throw new HttpError(400, 'invalid_query', `Invalid exchange "${exchange.slice(0, 20)}": use NSE, NFO, BSE, ...`, 'exchange');
    }
    const all = this.dir.all();
    if (all !== this.csvOf) {
      this.csvOf = all;
      this.csv.clear();
    }
    const key = exchange?.toUpperCase() ?? '*';
    let body = this.csv.get(key);
    if (body === undefined) {
      body = toCsv(key === '*' ? all : all.filter((i) => i.exchange.toUpperCase() === key));
      this.csv.set(key, body);
    }
    // Exactly 'text/csv': the client parses only when the header equals it.
    return { body, contentType: 'text/csv' };
  }

  async quote(req: HttpRequest, shape: 'full' | 'ohlc' | 'ltp'): Promise<HttpReply> {
    const asked = req.query.getAll('i').map((s) => s.trim()).filter((s) => s !== '');
    if (asked.length === 0) throw new HttpError(400, 'invalid_query', 'No instruments: pass i=EXCHANGE:TRADINGSYMBOL or i=instrument_token', 'i');
    const limit = shape === 'full' ? KITE_QUOTE_LIMIT : KITE_LTP_LIMIT;
    if (asked.length > limit) throw new HttpError(400, 'invalid_query', `Too many instruments: at most ${limit} per call`, 'i');
    const keys: string[] = [];
    const found: Instrument[] = [];
    for (const s of asked) {
      const i = this.dir.resolve(s);
      if (i === null || !this.dir.isFollowed(i.instrumentToken)) continue;
      keys.push(s);
      found.push(i);
    }
    const data: Record<string, unknown> = {};
    if (found.length === 0) return success(data);
    const qs = await this.deps.quotes.getQuotes(found.map((i) => i.instrumentToken));
    for (let k = 0; k < found.length; k++) {
      const q = qs[k];
      if (q === null) continue;
      const token = found[k].instrumentToken;
      if (shape === 'ltp') data[keys[k]] = { instrument_token: token, last_price: q.price };
      else if (shape === 'ohlc') data[keys[k]] = { instrument_token: token, last_price: q.price, ohlc: { ...q.ohlc } };
      else data[keys[k]] = kiteQuote(token, q);
    }
    return success(data);
  }

  async historical(req: HttpRequest): Promise<HttpReply> {
    const tokenText = req.params.instrument_token;
    const intervalName = req.params.interval;
    const interval = KITE_INTERVALS[intervalName];
    if (interval === undefined) {
      throw new HttpError(400, 'invalid_query', `invalid interval "${intervalName.slice(0, 20)}": use ${Object.keys(KITE_INTERVALS).join(', ')}`, 'interval');
    }
    const inst = /^\d{1,10}$/.test(tokenText) ? this.dir.resolve(Number(tokenText)) : null;
    if (inst === null) throw new HttpError(400, 'invalid_query', `invalid token "${tokenText.slice(0, 20)}": not in the instrument master`, 'instrument_token');
    const fromText = req.query.get('from');
    const toText = req.query.get('to');
    if (fromText === null || fromText === '') throw new HttpError(400, 'invalid_query', 'from: required, as yyyy-mm-dd hh:mm:ss', 'from');
    if (toText === null || toText === '') throw new HttpError(400, 'invalid_query', 'to: required, as yyyy-mm-dd hh:mm:ss', 'to');
    let fromMs = parseIstWallClock(fromText);
    const toMs = parseIstWallClock(toText);
    if (Number.isNaN(fromMs)) throw new HttpError(400, 'invalid_query', `invalid from date "${fromText.slice(0, 30)}": use yyyy-mm-dd hh:mm:ss`, 'from');
    if (Number.isNaN(toMs)) throw new HttpError(400, 'invalid_query', `invalid to date "${toText.slice(0, 30)}": use yyyy-mm-dd hh:mm:ss`, 'to');
    if (fromMs > toMs) throw new HttpError(400, 'invalid_query', 'from date cannot be after to date', 'from');
    if (toMs - fromMs > interval.maxDays * DAY_MS) {
      throw new HttpError(400, 'invalid_query', `interval exceeds max limit: ${interval.maxDays} days`, 'to');
    }
    const withOi = req.query.get('oi') === '1' || req.query.get('oi') === 'true';
    // Kite dates day candles: a day request covers the whole day of `from`.
    if (interval.ms === DAY_MS) fromMs = istDayStart(fromMs);
    const db = this.deps.db;
    if (db === null) throw new HttpError(503, 'storage_unavailable', 'no database is configured for historical data');
    let r;
    try {
      // `to` is inclusive: a candle starting exactly at `to` is in.
      r = await historyJson(db, this.deps.config.timeframesMs, {
        token: inst.instrumentToken, tfMs: interval.ms, fromMs, toMs: toMs + 1,
        limit: Math.ceil((toMs + 1 - fromMs) / interval.ms) + 2,
      }, withOi ? 'kite-oi' : 'kite');
    } catch (e) {
      throw storageError(e, this.deps.log, 'interval');
    }
    return { body: `{"status":"success","data":{"candles":${r.json}}}` };
  }
}

/** Kite's full quote object (Kite Connect docs, "Market quotes"). */
export function kiteQuote(token: number, q: LiveQuote) {
  const side = (levels: readonly DepthLevel[]) => levels.map((d) => ({ price: d.price, quantity: d.quantity, orders: d.orders }));
  return {
    instrument_token: token,
    timestamp: istString(q.exchTimeMs),
    last_trade_time: q.lastTradeMs === null ? null : istString(q.lastTradeMs),
    last_price: q.price,
    last_quantity: q.lastQty,
    buy_quantity: q.buyQty,
    sell_quantity: q.sellQty,
    volume: q.volume,
    average_price: q.avgPrice,
    oi: q.oi,
    oi_day_high: q.oiHigh,
    oi_day_low: q.oiLow,
    net_change: q.ohlc.close > 0 ? round2(q.price - q.ohlc.close) : 0,
    lower_circuit_limit: 0,
    upper_circuit_limit: 0,
    ohlc: { open: q.ohlc.open, high: q.ohlc.high, low: q.ohlc.low, close: q.ohlc.close },
    depth: q.depth === null
      ? { buy: EMPTY_DEPTH.map((d) => ({ ...d })), sell: EMPTY_DEPTH.map((d) => ({ ...d })) }
      : { buy: side(q.depth.buy), sell: side(q.depth.sell) },
  };
}
