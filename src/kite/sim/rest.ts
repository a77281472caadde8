/**
 * The simulator's REST routes, as Kite's:
 * - `GET /instruments` and `GET /instruments/{exchange}`: the master as CSV, with Content-Type
 *   exactly `text/csv` (the official client compares the header verbatim), without auth as Kite;
 *   an exchange with no instruments gets the header row only.
 * - `GET /quote/ltp?i=NSE:NIFTY 50`: last prices (`KiteConnect.getLTP`), with Kite's token auth.
 *   The service reads the NIFTY level here to centre its option strikes.
 * - Anything else: a Kite-style JSON 404.
 */
import type { TemplatedApp } from 'uWebSockets.js';
import type { Instrument } from '../../core/instrument.ts';
import { toCsv } from '../instrument-csv.ts';
import { KITE_TOKEN_ERROR, type Credentials } from './credentials.ts';
import { type Market, ModeCode } from './market.ts';

const NOT_FOUND = JSON.stringify({ status: 'error', message: 'Route not found', data: null, error_type: 'GeneralException' });

export class RestRoutes {
  // The master never changes while running: rendered once, whole and per exchange.
  private readonly csvAll: Buffer;
  private readonly csvByExchange = new Map<string, Buffer>();
  private readonly csvEmpty = Buffer.from(toCsv([]));
  /** `EXCHANGE:TRADINGSYMBOL`, upper case, to market row. */
  private readonly rowByKey = new Map<string, number>();

  constructor(
    instruments: readonly Instrument[],
    private readonly market: Market,
    private readonly credentials: Credentials,
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
    app.any('/*', (res) => {
      res.writeStatus('404 Not Found').writeHeader('Content-Type', 'application/json').end(NOT_FOUND);
    });
  }
}
