/** The REST answers on their own; server.test.ts serves them over HTTP. */
import { describe, expect, it } from 'vitest';
import { parseCsv } from '../instrument-csv.ts';
import { NIFTY_INDEX_TOKEN } from '../nifty50.ts';
import { Credentials } from './credentials.ts';
import { Market, ModeCode } from './market.ts';
import { RestRoutes } from './rest.ts';
import { buildNifty50Universe } from './universe.ts';

const T0 = Date.parse('2025-12-01T05:00:00Z');
const INSTRUMENTS = buildNifty50Universe({ today: new Date(T0) });
const INFY = 408065;

function routes() {
  const market = new Market({ instruments: INSTRUMENTS, seed: 2, clock: () => T0 });
  market.nextTicks(500, INSTRUMENTS.map((t) => t.instrumentToken));
  return { market, rest: new RestRoutes(INSTRUMENTS, market, new Credentials()) };
}

describe('RestRoutes', () => {
  it('renders the master whole and per exchange, in any case, and an unknown exchange as the header only', () => {
    const { rest } = routes();
    expect(parseCsv(rest.instrumentsCsv().toString()).instruments).toEqual(INSTRUMENTS);
    const nfo = INSTRUMENTS.filter((t) => t.exchange === 'NFO');
    expect(parseCsv(rest.instrumentsCsv('nfo').toString()).instruments).toEqual(nfo);
    expect(parseCsv(rest.instrumentsCsv('NFO').toString()).instruments).toEqual(nfo);
    const none = rest.instrumentsCsv('MCX').toString();
    expect(none.trim().split('\n')).toHaveLength(1);
    expect(parseCsv(none).instruments).toEqual([]);
  });

  it('answers last prices in rupees keyed as asked, by symbol in any case or token, leaving unknown ones out', () => {
    const { rest, market } = routes();
    const q = ['NSE:NIFTY 50', 'nse:infy', String(INFY), 'NSE:NOPE', '1'].map((k) => `i=${encodeURIComponent(k)}`).join('&');
    const body = JSON.parse(rest.ltp(q)) as { status: string; data: Record<string, { instrument_token: number; last_price: number }> };
    expect(body.status).toBe('success');
    const infy = market.tickOf(market.indexOf(INFY), ModeCode.LTP).lastPrice / 100;
    const nifty = market.tickOf(market.indexOf(NIFTY_INDEX_TOKEN), ModeCode.LTP).lastPrice / 100;
    expect(body.data).toEqual({
      'NSE:NIFTY 50': { instrument_token: NIFTY_INDEX_TOKEN, last_price: nifty },
      'nse:infy': { instrument_token: INFY, last_price: infy },
      [String(INFY)]: { instrument_token: INFY, last_price: infy },
    });
    expect(JSON.parse(rest.ltp(''))).toEqual({ status: 'success', data: {} });
  });
});
