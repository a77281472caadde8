/**
 * The JSON REST API on the gateway's port, described route by route in docs/openapi.yaml (a test
 * holds the two together):
 *
 * | route                    | answers                                                              |
 * |--------------------------|----------------------------------------------------------------------|
 * | GET /api/instruments     | followed instruments (or Kite's master with scope=all), filterable   |
 * | GET/POST /api/quote      | latest quote of each symbol, from the quote cache                    |
 * | GET /api/bars            | bars of one symbol and timeframe from the database (rolled up when not stored) |
 * | GET /api/option-chain    | one expiry of the NIFTY chain: CE/PE price, change, OI per strike; PCR; |
 * |                          | with analytics on: IV and greeks per leg, the expiry's figures (src/analytics/) |
 * | GET /api/analytics/iv    | one chain's stored ATM IV / PCR minutes and its IV percentile        |
 * | /api/replays...          | replay sessions of stored ticks (replays.ts)                         |
 * | GET /ready               | readiness (no key): feed connected, database and cache answer, rings not overflowing |
 * | GET /metrics             | Prometheus text                                                      |
 *
 * `GET /health` (liveness, no key) is server.ts's. Everything else needs an API key and is rate
 * limited per key; the Kite-compatible routes (kite-rest.ts) share the limiter and the metrics.
 * `mountRest` mounts all of it.
 */
import type { TemplatedApp } from 'uWebSockets.js';
import { z } from 'zod';
import { listGaps } from '../storage/gaps.ts';
import type { Instrument } from '../core/instrument.ts';
import type { Db } from '../core/db.ts';
import { IST_OFFSET_MS, parseTimeframe, timeframeName } from '../core/ist.ts';
import { Directory } from './directory.ts';
import { historyJson, parseIstWallClock, parseTime, sourceTimeframe, storageError } from './history.ts';
import { HttpError, queryObject, RateLimiter, Router, validate, type HttpReply, type HttpRequest, type RouteInfo } from './http.ts';
import { mountKiteRest, type KiteRestDeps } from './kite-rest.ts';
import { addApiOrderRoutes, ORDER_QUERY_PARAMS } from './orders.ts';
import { addApiReplayRoutes } from './replays.ts';
import { RestMetrics, type MetricsSources } from './metrics.ts';
import { ivPercentile, readIvSeries } from '../analytics/series.ts';
import type { LiveQuote } from './quotes.ts';

export interface ReadyState {
  feedConnected: boolean;
  dbOk: boolean;
  cacheOk: boolean;
  ringsOk: boolean;
  /** Live orders: null when no live broker runs; else whether Kite takes its token (false: why, in `liveProblem`). */
  liveOk?: boolean | null;
  liveProblem?: string | null;
}

export interface RestDeps extends Omit<KiteRestDeps, 'directory'> {
  /** Put-call ratio by OI summed across shards (`pipeline.pcr`). Default: summed from the quotes. */
  pcr?: (name: string, expiry: string) => { pcr: number; callOi: number; putOi: number };
  /** Readiness; may be slow, is given READY_TIMEOUT_MS. */
  ready: () => ReadyState | Promise<ReadyState>;
  metrics: MetricsSources;
  /** Wall clock, for the option chain's default expiry. */
  now?: () => number;
  /** The latest chain analytics as JSON (the cache's getAnalytics); absent: analytics are off. */
  analytics?: { getAnalytics(key: string): Promise<string | null> };
  /** Days of stored minutes the IV percentile looks back (ANALYTICS_IV_LOOKBACK_DAYS); default 365. */
  ivLookbackDays?: number;
}

export interface RestHandle {
  /** Every route mounted (OpenAPI path form), /health excluded (server.ts registers it). */
  readonly routes: readonly RouteInfo[];
  readonly metrics: RestMetrics;
  readonly limiter: RateLimiter;
}

/** How long /ready waits for its checks before calling them failed. */
export const READY_TIMEOUT_MS = 2000;
/** Most symbols one /api/quote call may ask for (Kite's /quote allows 500 too). */
export const MAX_QUOTE_SYMBOLS = 500;

const DATE = /^\d{4}-\d{2}-\d{2}$/;

/** Mount /api/*, /ready, /metrics and the Kite-compatible /kite/* REST routes on `app`. */
export function mountRest(app: TemplatedApp, deps: RestDeps): RestHandle {
  const metrics = new RestMetrics(deps.metrics);
  const limiter = new RateLimiter(deps.config.apiRatePerSec, deps.config.apiRateBurst);
  const router = new Router({
    auth: deps.auth, limiter, maxBodyBytes: deps.config.apiMaxBodyBytes, log: deps.log,
    observe: (route, method, status, s) => metrics.observe(route, method, status, s),
  });
  const dir = new Directory(deps.hub, deps.master ?? (() => deps.hub.instruments));
  const api = new JsonApi(deps, dir);

  const json = { auth: 'key', style: 'json' } as const;
  router
    .add({ method: 'GET', path: '/api/instruments', ...json, handler: (r) => api.instruments(r) })
    .add({ method: 'GET', path: '/api/quote', ...json, handler: (r) => api.quote(r) })
    .add({ method: 'POST', path: '/api/quote', ...json, handler: (r) => api.quotePost(r) })
    .add({ method: 'GET', path: '/api/bars', ...json, handler: (r) => api.bars(r) })
    .add({ method: 'GET', path: '/api/option-chain', ...json, handler: (r) => api.optionChain(r) })
    .add({ method: 'GET', path: '/api/analytics/iv', ...json, handler: (r) => api.ivSeries(r) })
    .add({ method: 'GET', path: '/api/gaps', ...json, handler: (r) => api.gaps(r) })
    .add({ method: 'GET', path: '/ready', auth: 'none', style: 'json', handler: () => api.ready() })
    .add({
      method: 'GET', path: '/metrics', ...json,
      handler: async () => ({ body: await metrics.text(), contentType: metrics.contentType }),
    });
  if (deps.orders) addApiOrderRoutes(router, deps.orders);
  if (deps.replays) addApiReplayRoutes(router, deps.replays, (token) => deps.hub.rowOf(token) >= 0);
  router.mount(app);
  const kiteRoutes = mountKiteRest(app, { ...deps, directory: dir }, { limiter, metrics });
  return { routes: [...router.routes(), ...kiteRoutes], metrics, limiter };
}

// --- schemas ---------------------------------------------------------------------------------------

/** One value, or the first of repeated ones (`?tf=1m&tf=5m` takes 1m). */
const one = z.preprocess((v) => (Array.isArray(v) ? v[0] : v), z.string());

/** Symbols as `a,b` or repeated `symbols=a&symbols=b`. */
const symbolList = z.preprocess(
  (v) => (Array.isArray(v) ? v : v === undefined ? [] : [v]).flatMap((s) => (typeof s === 'string' ? s.split(',') : [s])).map((s) => (typeof s === 'string' ? s.trim() : s)).filter((s) => s !== ''),
  z.array(z.string().max(64, 'a symbol is at most 64 characters'))
    .min(1, 'list at least one symbol: EXCHANGE:TRADINGSYMBOL, a bare symbol or an instrument token')
    .max(MAX_QUOTE_SYMBOLS, `at most ${MAX_QUOTE_SYMBOLS} symbols per call`),
);

const time = one.transform((s, ctx) => {
  const ms = parseTime(s);
  if (Number.isNaN(ms)) {
    ctx.addIssue({ code: 'custom', message: `"${s.slice(0, 40)}" is not a time: use epoch ms, ISO 8601 with a zone (2025-12-03T09:15:00+05:30) or India time 'YYYY-MM-DD HH:mm:ss'` });
    return z.NEVER;
  }
  return ms;
});

const tf = one.transform((s, ctx) => {
  try {
    return parseTimeframe(s);
  } catch (e) {
    ctx.addIssue({ code: 'custom', message: (e as Error).message });
    return z.NEVER;
  }
});

const instrumentsQuery = z.strictObject({
  segment: one.optional(),
  exchange: one.optional(),
  name: one.optional(),
  type: one.pipe(z.enum(['EQ', 'FUT', 'CE', 'PE'])).optional(),
  expiry: one.pipe(z.string().regex(DATE, 'expiry is a date, YYYY-MM-DD')).optional(),
  scope: one.pipe(z.enum(['followed', 'all'])).optional(),
});

const quoteQuery = z.strictObject({ symbols: symbolList });
const quoteBody = z.strictObject({ symbols: symbolList });

const optionChainQuery = z.strictObject({
  name: one.optional(),
  expiry: one.pipe(z.string().regex(DATE, 'expiry is a date, YYYY-MM-DD')).optional(),
});

const ivQuery = z.strictObject({
  name: one.optional(),
  expiry: one.pipe(z.string().regex(DATE, 'expiry is a date, YYYY-MM-DD')).optional(),
  from: time.optional(),
  to: time.optional(),
  limit: one.pipe(z.string().regex(/^\d+$/, 'limit is a whole number').transform(Number)).pipe(z.number().min(1).max(100_000)).optional(),
});

function barsQuery(stored: readonly number[], max: number) {
  return z.strictObject({
    symbol: one.pipe(z.string().min(1, 'symbol is required')),
    tf: tf.refine((ms) => sourceTimeframe(ms, stored) !== null, {
      message: `not stored and not buildable from a stored timeframe (${stored.map(timeframeName).join(', ')}; BAR_TIMEFRAMES)`,
    }),
    from: time,
    to: time.optional(),
    limit: one.pipe(z.string().regex(/^\d+$/, 'limit is a whole number').transform(Number)).pipe(z.number().min(1).max(max)).optional(),
  });
}

/** Most gaps one /api/gaps call returns. */
export const MAX_GAPS = 1000;
const gapsQuery = z.strictObject({
  from: time.optional(),
  to: time.optional(),
  limit: one.pipe(z.string().regex(/^\d+$/, 'limit is a whole number').transform(Number)).pipe(z.number().min(1).max(MAX_GAPS)).optional(),
});

/** The query parameters each JSON route accepts (besides `key`), from its schema: the OpenAPI test reads it. */
export const API_QUERY_PARAMS: Readonly<Record<string, readonly string[]>> = {
  'GET /api/instruments': Object.keys(instrumentsQuery.shape),
  'GET /api/quote': Object.keys(quoteQuery.shape),
  'GET /api/bars': Object.keys(barsQuery([60_000], 1).shape),
  'GET /api/option-chain': Object.keys(optionChainQuery.shape),
  'GET /api/analytics/iv': Object.keys(ivQuery.shape),
  'GET /api/gaps': Object.keys(gapsQuery.shape),
  ...ORDER_QUERY_PARAMS,
};

// --- handlers --------------------------------------------------------------------------------------

interface QuoteOut {
  symbol: string;
  exchange: string;
  token: number;
  price: number;
  changePct: number;
  lastQty: number;
  avgPrice: number;
  volume: number;
  buyQty: number;
  sellQty: number;
  ohlc: LiveQuote['ohlc'];
  oi: number;
  oiHigh: number;
  oiLow: number;
  exchTimeMs: number;
  lastTradeMs: number | null;
  depth: LiveQuote['depth'];
}

function quoteOut(i: Instrument, q: LiveQuote): QuoteOut {
  return {
    symbol: i.tradingsymbol, exchange: i.exchange, token: i.instrumentToken,
    price: q.price, changePct: q.change, lastQty: q.lastQty, avgPrice: q.avgPrice, volume: q.volume,
    buyQty: q.buyQty, sellQty: q.sellQty, ohlc: q.ohlc, oi: q.oi, oiHigh: q.oiHigh, oiLow: q.oiLow,
    exchTimeMs: q.exchTimeMs, lastTradeMs: q.lastTradeMs, depth: q.depth,
  };
}

function instrumentOut(i: Instrument, followed: boolean) {
  return {
    token: i.instrumentToken, exchangeToken: i.exchangeToken, symbol: i.tradingsymbol, name: i.name,
    exchange: i.exchange, segment: i.segment, type: i.instrumentType, expiry: i.expiry === '' ? null : i.expiry,
    strike: i.strike, tickSize: i.tickSize, lotSize: i.lotSize, followed,
  };
}

/** The day in India of an instant, 'YYYY-MM-DD'. */
function istDate(ms: number): string {
  return new Date(ms + IST_OFFSET_MS).toISOString().slice(0, 10);
}

class JsonApi {
  private readonly barsQuery: ReturnType<typeof barsQuery>;

  constructor(private readonly deps: RestDeps, private readonly dir: Directory) {
    this.barsQuery = barsQuery(deps.config.timeframesMs, deps.config.apiBarsLimit);
  }

  instruments(req: HttpRequest): HttpReply {
    const q = validate(instrumentsQuery, queryObject(req.query));
    const list = q.scope === 'all' ? this.dir.all() : this.dir.followed();
    const seg = q.segment?.toUpperCase();
    const ex = q.exchange?.toUpperCase();
    const name = q.name?.toUpperCase();
    const out = [];
    for (const i of list) {
      if (seg !== undefined && i.segment.toUpperCase() !== seg) continue;
      if (ex !== undefined && i.exchange.toUpperCase() !== ex) continue;
      if (name !== undefined && i.name.toUpperCase() !== name) continue;
      if (q.type !== undefined && i.instrumentType !== q.type) continue;
      if (q.expiry !== undefined && i.expiry !== q.expiry) continue;
      out.push(instrumentOut(i, this.dir.isFollowed(i.instrumentToken)));
    }
    return { body: { count: out.length, instruments: out } };
  }

  quote(req: HttpRequest): Promise<HttpReply> {
    return this.quotesFor(validate(quoteQuery, queryObject(req.query)).symbols);
  }

  quotePost(req: HttpRequest): Promise<HttpReply> {
    let body: unknown;
    try {
      body = JSON.parse(req.body?.toString('utf8') ?? '');
    } catch {
      throw new HttpError(400, 'invalid_body', 'body: expected JSON like {"symbols": ["NSE:INFY", "NIFTY 50"]}', 'body');
    }
    return this.quotesFor(validate(quoteBody, body, 'body').symbols);
  }

  private async quotesFor(symbols: string[]): Promise<HttpReply> {
    const found: { asked: string; i: Instrument }[] = [];
    const missing: { symbol: string; reason: string }[] = [];
    for (const s of symbols) {
      const i = this.dir.resolve(s);
      if (i === null || !this.dir.isFollowed(i.instrumentToken)) missing.push({ symbol: s, reason: 'not an instrument this service follows' });
      else found.push({ asked: s, i });
    }
    const qs = found.length === 0 ? [] : await this.deps.quotes.getQuotes(found.map((f) => f.i.instrumentToken));
    const quotes: QuoteOut[] = [];
    for (let k = 0; k < found.length; k++) {
      const q = qs[k];
      if (q === null) missing.push({ symbol: found[k].asked, reason: 'no tick yet' });
      else quotes.push(quoteOut(found[k].i, q));
    }
    return { body: { quotes, missing } };
  }

  async bars(req: HttpRequest): Promise<HttpReply> {
    const stored = this.deps.config.timeframesMs;
    const max = this.deps.config.apiBarsLimit;
    const q = validate(this.barsQuery, queryObject(req.query));
    const i = this.dir.resolve(q.symbol);
    if (i === null) throw new HttpError(400, 'invalid_query', `symbol: "${q.symbol}" is not in the instrument master`, 'symbol');
    const toMs = q.to ?? (this.deps.now ?? Date.now)();
    if (toMs <= q.from) throw new HttpError(400, 'invalid_query', 'to: must be after from', 'to');
    const db = this.deps.db;
    if (db === null) throw new HttpError(503, 'storage_unavailable', 'no database is configured for bars (DATABASE_URL)');
    let r;
    try {
      r = await historyJson(db, stored, { token: i.instrumentToken, tfMs: q.tf, fromMs: q.from, toMs, limit: q.limit ?? max }, 'api');
    } catch (e) {
      throw storageError(e, this.deps.log);
    }
    // The bars array arrives as JSON text (built by the database for stored timeframes): spliced in, not parsed.
    const head = JSON.stringify({
      symbol: i.tradingsymbol, exchange: i.exchange, token: i.instrumentToken, tf: timeframeName(q.tf),
      source: timeframeName(r.sourceMs), from: new Date(q.from).toISOString(), to: new Date(toMs).toISOString(),
      count: r.count, truncated: r.truncated,
    });
    return { body: `${head.slice(0, -1)},"bars":${r.json}}` };
  }

  /** The followed options of `name` (default NIFTY) and the expiry asked (default: the nearest not past). */
  private chainOf(qName: string | undefined, qExpiry: string | undefined): { name: string; expiry: string; expiries: string[]; options: Instrument[] } {
    const name = (qName ?? 'NIFTY').toUpperCase();
    const options = this.dir.followed().filter((i) => i.name.toUpperCase() === name && (i.instrumentType === 'CE' || i.instrumentType === 'PE'));
    const expiries = [...new Set(options.map((i) => i.expiry))].sort();
    if (expiries.length === 0) throw new HttpError(400, 'invalid_query', `name: the service follows no options of "${name}"`, 'name');
    const today = istDate((this.deps.now ?? Date.now)());
    const expiry = qExpiry ?? expiries.find((e) => e >= today) ?? expiries[expiries.length - 1];
    if (!expiries.includes(expiry)) {
      throw new HttpError(400, 'invalid_query', `expiry: ${expiry} is not a followed ${name} expiry; followed: ${expiries.join(', ')}`, 'expiry');
    }
    return { name, expiry, expiries, options };
  }

  /** The chain's latest analytics object from the cache, or why there is none. */
  private async chainAnalytics(name: string, expiry: string): Promise<{ a: ChainAnalyticsJson | null; reason: string | null }> {
    if (this.deps.analytics === undefined) return { a: null, reason: 'analytics are off (ANALYTICS_REFRESH_MS=0)' };
    let text: string | null;
    try {
      text = await this.deps.analytics.getAnalytics(`${name}:${expiry}`);
    } catch (e) {
      throw new HttpError(503, 'cache_unavailable', (e as Error).message);
    }
    return text === null ? { a: null, reason: 'no analytics refresh has completed yet' } : { a: JSON.parse(text) as ChainAnalyticsJson, reason: null };
  }

  async optionChain(req: HttpRequest): Promise<HttpReply> {
    const q = validate(optionChainQuery, queryObject(req.query));
    const { name, expiry, expiries, options } = this.chainOf(q.name, q.expiry);
    const chain = options.filter((i) => i.expiry === expiry);
    const underlying = this.dir.resolve(name === 'NIFTY' ? 'NSE:NIFTY 50' : `NSE:${name}`);
    const tokens = chain.map((i) => i.instrumentToken);
    if (underlying !== null) tokens.push(underlying.instrumentToken);
    const [qs, { a, reason }] = await Promise.all([this.deps.quotes.getQuotes(tokens), this.chainAnalytics(name, expiry)]);
    const legAnalytics = new Map<number, Record<string, unknown>>();
    for (const o of a?.options ?? []) {
      const { token, symbol: _s, strike: _k, type: _t, price: _p, oi: _o, volume: _v, ...rest } = o;
      legAnalytics.set(token as number, rest);
    }
    const byStrike = new Map<number, { strike: number; ce: unknown; pe: unknown }>();
    let callOi = 0;
    let putOi = 0;
    chain.forEach((i, k) => {
      const quote = qs[k];
      const row = byStrike.get(i.strike) ?? { strike: i.strike, ce: null, pe: null };
      const leg = {
        token: i.instrumentToken, symbol: i.tradingsymbol,
        lastPrice: quote?.price ?? null,
        change: quote ? round2(quote.price - quote.ohlc.close) : null,
        changePct: quote?.change ?? null,
        oi: quote?.oi ?? null,
        volume: quote?.volume ?? null,
        analytics: legAnalytics.get(i.instrumentToken) ?? null,
      };
      if (i.instrumentType === 'CE') {
        row.ce = leg;
        callOi += quote?.oi ?? 0;
      } else {
        row.pe = leg;
        putOi += quote?.oi ?? 0;
      }
      byStrike.set(i.strike, row);
    });
    const shards = this.deps.pcr?.(name, expiry);
    const pcr = shards ?? { pcr: callOi > 0 ? putOi / callOi : NaN, callOi, putOi };
    const u = underlying === null ? null : qs[qs.length - 1];
    return {
      body: {
        name, expiry, expiries,
        underlying: underlying === null ? null : { symbol: underlying.tradingsymbol, token: underlying.instrumentToken, price: u?.price ?? null },
        pcr: Number.isFinite(pcr.pcr) ? pcr.pcr : null,
        callOi: pcr.callOi,
        putOi: pcr.putOi,
        analytics: a === null ? null : chainFigures(a),
        ...(reason !== null ? { analyticsReason: reason } : {}),
        strikes: [...byStrike.values()].sort((a, b) => a.strike - b.strike),
      },
    };
  }

  /** Upstream outages overlapping [from, to) (default: the last 7 days), newest first (src/storage/gaps.ts). */
  async gaps(req: HttpRequest): Promise<HttpReply> {
    const q = validate(gapsQuery, queryObject(req.query));
    const toMs = q.to ?? (this.deps.now ?? Date.now)();
    const fromMs = q.from ?? toMs - 7 * 86_400_000;
    if (toMs <= fromMs) throw new HttpError(400, 'invalid_query', 'to: must be after from', 'to');
    const db = this.deps.db;
    if (db === null) throw new HttpError(503, 'storage_unavailable', 'no database is configured for the gap list (DATABASE_URL)');
    const limit = q.limit ?? MAX_GAPS;
    let gaps;
    try {
      gaps = await listGaps(db, fromMs, toMs, limit);
    } catch (e) {
      throw storageError(e, this.deps.log);
    }
    return { body: { from: new Date(fromMs).toISOString(), to: new Date(toMs).toISOString(), count: gaps.length, truncated: gaps.length === limit, gaps } };
  }

  async ivSeries(req: HttpRequest): Promise<HttpReply> {
    const q = validate(ivQuery, queryObject(req.query));
    const { name, expiry } = this.chainOf(q.name, q.expiry);
    const toMs = q.to ?? (this.deps.now ?? Date.now)();
    const fromMs = q.from ?? toMs - 86_400_000;
    if (toMs <= fromMs) throw new HttpError(400, 'invalid_query', 'to: must be after from', 'to');
    const db = this.deps.db;
    if (db === null) throw new HttpError(503, 'storage_unavailable', 'no database is configured for the IV history (DATABASE_URL)');
    const { a } = await this.chainAnalytics(name, expiry);
    const days = this.deps.ivLookbackDays ?? 365;
    let series;
    let pct;
    try {
      series = await readIvSeries(db, name, expiry, fromMs, toMs, q.limit ?? 10_000);
      const last = series.rows.length > 0 ? series.rows[series.rows.length - 1] : null;
      const iv = a?.atmIv ?? last?.close ?? null;
      const rank = a?.rank ?? series.rank;
      pct = iv === null || rank === null ? { percentile: null, minutes: 0, iv: null, rank } : { ...(await ivPercentile(db, name, rank, iv, (this.deps.now ?? Date.now)(), days)), iv, rank };
    } catch (e) {
      throw storageError(e, this.deps.log);
    }
    return {
      body: {
        name, expiry, from: new Date(fromMs).toISOString(), to: new Date(toMs).toISOString(), tf: '1m',
        latest: a === null ? null : { asOf: a.asOf, atmIv: a.atmIv, pcrOi: a.pcrOi, pcrVolume: a.pcrVolume, forward: a.forward },
        ivPercentile: { value: pct.percentile, iv: pct.iv, rank: pct.rank, minutes: pct.minutes, lookbackDays: days },
        count: series.rows.length, truncated: series.truncated, bars: series.rows,
      },
    };
  }

  async ready(): Promise<HttpReply> {
    const failed: ReadyState = { feedConnected: false, dbOk: false, cacheOk: false, ringsOk: false };
    let timer: NodeJS.Timeout | undefined;
    const s = await Promise.race([
      Promise.resolve().then(() => this.deps.ready()).catch(() => failed),
      new Promise<ReadyState>((r) => { timer = setTimeout(() => r(failed), READY_TIMEOUT_MS); }),
    ]);
    clearTimeout(timer);
    const checks: Record<string, boolean> = { feed: s.feedConnected, database: s.dbOk, cache: s.cacheOk, rings: s.ringsOk };
    if (s.liveOk !== undefined && s.liveOk !== null) checks.liveOrders = s.liveOk;
    const failing = Object.entries(checks).filter(([, ok]) => !ok).map(([k]) => k);
    const body: Record<string, unknown> = { ready: failing.length === 0, checks, failing };
    if (s.liveOk === false && s.liveProblem) body.liveOrders = s.liveProblem;
    return { status: failing.length === 0 ? 200 : 503, body };
  }
}

/** The chain analytics JSON the pool writes (workers/analytics/chain.ts ChainAnalytics), as REST reads it. */
interface ChainAnalyticsJson {
  asOf: number;
  rank: number;
  atmIv: number | null;
  pcrOi: number | null;
  pcrVolume: number | null;
  forward: number | null;
  options: Record<string, unknown>[];
  [k: string]: unknown;
}

/** The per-expiry figures: everything but the per-option rows (those join the strikes). */
function chainFigures(a: ChainAnalyticsJson): Record<string, unknown> {
  const { options: _o, key: _k, name: _n, expiry: _e, ...rest } = a;
  return rest;
}

function round2(x: number): number {
  return Math.round(x * 100) / 100;
}

/**
 * A readiness function from the service's parts. `rings` are ok while each is below 90% of its
 * capacity and none dropped since the previous check (the front waits rather than drops, so a
 * drop means something is badly wrong).
 */
export function readiness(parts: {
  feedConnected: () => boolean;
  db?: Db | null;
  cache?: { ping(): Promise<boolean> } | null;
  rings?: () => readonly { depth: number; capacity: number; drops: number }[];
  /** The live broker's token state: null when no live broker runs. */
  live?: () => { ok: boolean; problem: string | null } | null;
}): () => Promise<ReadyState> {
  let lastDrops = -1;
  return async () => {
    const [dbOk, cacheOk] = await Promise.all([
      parts.db ? parts.db.query('SELECT 1').then(() => true, () => false) : Promise.resolve(parts.db === undefined),
      parts.cache ? parts.cache.ping().catch(() => false) : Promise.resolve(true),
    ]);
    let ringsOk = true;
    if (parts.rings) {
      const rs = parts.rings();
      const drops = rs.reduce((a, r) => a + r.drops, 0);
      ringsOk = rs.every((r) => r.depth < r.capacity * 0.9) && (lastDrops < 0 || drops === lastDrops);
      lastDrops = drops;
    }
    const live = parts.live?.() ?? null;
    return { feedConnected: parts.feedConnected(), dbOk, cacheOk, ringsOk, liveOk: live?.ok ?? null, liveProblem: live?.problem ?? null };
  };
}

