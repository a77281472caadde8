/**
 * The simulator's REST routes, as Kite's:
 * - `GET /instruments` and `GET /instruments/{exchange}`: the master as CSV, with Content-Type
 *   exactly `text/csv` (the official client compares the header verbatim), without auth as Kite;
 *   an exchange with no instruments gets the header row only.
 * - `GET /quote/ltp?i=NSE:NIFTY 50`: last prices (`KiteConnect.getLTP`), with Kite's token auth.
 *   The service reads the NIFTY level here to centre its option strikes.
 * - `GET /instruments/historical/{token}/{interval}?from=&to=&oi=`: candles of the market's own
 *   trades (history.ts; `KiteConnect.getHistoricalData`), with Kite's token auth and Kite's limit of
 *   3 requests a second per api_key (429 and a NetworkException past it).
 * - Anything else: a Kite-style JSON 404.
 */
import type { TemplatedApp } from 'uWebSockets.js';
import type { Instrument } from '../../core/instrument.ts';
import { toCsv } from '../instrument-csv.ts';
import { KITE_TOKEN_ERROR, type Credentials } from './credentials.ts';
import { type Market, ModeCode } from './market.ts';
import { HISTORY_INTERVALS, parseKiteTime, type MarketHistory } from './history.ts';
import { priceDivisor } from '../../core/packet-slot.ts';

/** Kite's historical API limit: requests per second per api_key. */
export const HISTORICAL_PER_SEC = 3;
const TOO_MANY = JSON.stringify({ status: 'error', message: 'Too many requests', data: null, error_type: 'NetworkException' });
const inputError = (message: string) => JSON.stringify({ status: 'error', message, data: null, error_type: 'InputException' });

const NOT_FOUND = JSON.stringify({ status: 'error', message: 'Route not found', data: null, error_type: 'GeneralException' });

export class RestRoutes {
  // The master never changes while running: rendered once, whole and per exchange.
  private readonly csvAll: Buffer;
  private readonly csvByExchange = new Map<string, Buffer>();
  private readonly csvEmpty = Buffer.from(toCsv([]));
  /** `EXCHANGE:TRADINGSYMBOL`, upper case, to market row. */
  private readonly rowByKey = new Map<string, number>();

  /** Per api_key, the times of its last HISTORICAL_PER_SEC historical requests. */
  private readonly historicalCalls = new Map<string, number[]>();
  /** Historical requests answered and refused for the rate (tests read them). */
  readonly historicalStats = { answered: 0, limited: 0 };

  constructor(
    instruments: readonly Instrument[],
    private readonly market: Market,
    private readonly credentials: Credentials,
    private readonly history: MarketHistory | null = null,
    private readonly clock: () => number = Date.now,
  ) {
    this.csvAll = Buffer.from(toCsv(instruments));
    for (const ex of new Set(instruments.map((t) => t.exchange))) {
      this.csvByExchange.set(ex.toUpperCase(), Buffer.from(toCsv(instruments.filter((t) => t.exchange === ex))));
    }
    instruments.forEach((t, i) => this.rowByKey.set(`${t.exchange}:${t.tradingsymbol}`.toUpperCase(), i));
  }

  /** The master as CSV: all of it, or one exchange's (in any case). */
  instrumentsCsv(exchange?: string): Buffer {
    if (exchange === undefined) return this.csvAll;
    return this.csvByExchange.get(exchange.toUpperCase()) ?? this.csvEmpty;
  }

  /**
   * The `/quote/ltp` body for a query string: `i` is EXCHANGE:TRADINGSYMBOL (any case) or a
   * token, repeated; each answer is keyed by `i` as given, and unknown ones are left out.
   */
  ltp(query: string): string {
    const data: Record<string, { instrument_token: number; last_price: number }> = {};
    for (const key of new URLSearchParams(query).getAll('i')) {
      const row = /^\d+$/.test(key) ? this.market.indexOf(Number(key)) : (this.rowByKey.get(key.toUpperCase()) ?? -1);
      if (row < 0) continue;
      const t = this.market.tickOf(row, ModeCode.LTP);
      data[key] = { instrument_token: t.token, last_price: t.lastPrice / 100 };
    }
    return JSON.stringify({ status: 'success', data });
  }

  /** A historical request of `key`: [HTTP status, body]. */
  historical(key: string, tokenText: string, interval: string, query: string): [string, string] {
    const now = performance.now();
    const calls = this.historicalCalls.get(key) ?? [];
    while (calls.length > 0 && now - calls[0] >= 1000) calls.shift();
    if (calls.length >= HISTORICAL_PER_SEC) {
      this.historicalStats.limited++;
      return ['429 Too Many Requests', TOO_MANY];
    }
    calls.push(now);
    this.historicalCalls.set(key, calls);
    const row = /^\d+$/.test(tokenText) ? this.market.indexOf(Number(tokenText)) : -1;
    if (row < 0 || this.history === null) return ['400 Bad Request', inputError('invalid token')];
    const minutes = HISTORY_INTERVALS[interval];
    if (minutes === undefined) return ['400 Bad Request', inputError(`invalid interval: ${interval}`)];
    const q = new URLSearchParams(query);
    const from = parseKiteTime(q.get('from') ?? '');
    const to = parseKiteTime(q.get('to') ?? '');
    if (Number.isNaN(from) || Number.isNaN(to)) return ['400 Bad Request', inputError('invalid from or to date: use yyyy-mm-dd hh:mm:ss')];
    if (to < from) return ['400 Bad Request', inputError('invalid date range: from is after to')];
    const candles = this.history.candles(row, from, Math.min(to, this.clock()), minutes, q.get('oi') === '1', priceDivisor(Number(tokenText)));
    this.historicalStats.answered++;
    return ['200 OK', JSON.stringify({ status: 'success', data: { candles } })];
  }

  /** Routes every path but the ticker socket's; call after `app.ws`. */
  mount(app: TemplatedApp): void {
    app.get('/instruments', (res) => {
      res.writeStatus('200 OK').writeHeader('Content-Type', 'text/csv').end(this.instrumentsCsv());
    });
    app.get('/instruments/:exchange', (res, req) => {
      res.writeStatus('200 OK').writeHeader('Content-Type', 'text/csv').end(this.instrumentsCsv(req.getParameter(0)));
    });
    app.get('/quote/ltp', (res, req) => {
      if (!this.credentials.acceptsHeader(req.getHeader('authorization'))) {
        res.writeStatus('403 Forbidden').writeHeader('Content-Type', 'application/json').end(KITE_TOKEN_ERROR);
        return;
      }
      res.writeStatus('200 OK').writeHeader('Content-Type', 'application/json').end(this.ltp(req.getQuery() ?? ''));
    });
    app.get('/instruments/historical/:token/:interval', (res, req) => {
      const key = this.credentials.keyOf(req.getHeader('authorization'));
      const [status, body] = key === null ? ['403 Forbidden', KITE_TOKEN_ERROR] : this.historical(key, req.getParameter(0) ?? '', req.getParameter(1) ?? '', req.getQuery() ?? '');
      res.writeStatus(status).writeHeader('Content-Type', 'application/json').end(body);
    });
    app.any('/*', (res) => {
      res.writeStatus('404 Not Found').writeHeader('Content-Type', 'application/json').end(NOT_FOUND);
    });
  }
}
