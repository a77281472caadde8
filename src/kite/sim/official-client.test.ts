/**
 * The official kiteconnect client is the reference: if KiteConnect and KiteTicker work against the
 * simulator unchanged (only `root` pointed at it), the simulator speaks Kite.
 *
 * KiteTicker keeps its state in module-level globals (one ticker per process) and calls
 * process.exit(1) once reconnection gives up: so one ticker in this file, `reconnect: false`, and
 * a disconnect before the simulator closes.
 */
import { KiteConnect, KiteTicker } from 'kiteconnect';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NIFTY_INDEX_TOKEN } from '../nifty50.ts';
import { startSimulator, type Simulator } from './server.ts';
import { until } from '../../../test/support/until.ts';

const API_KEY = 'simkey';
const ACCESS_TOKEN = 'simtoken';

let sim: Simulator;
beforeAll(async () => {
  sim = await startSimulator({ apiKey: API_KEY, accessToken: ACCESS_TOKEN, rate: 20_000, seed: 9 });
});
afterAll(async () => {
  await sim?.close();
});

/** A price in rupees on the 5-paise grid (floating point: compare in paise). */
function onGrid(rupees: number): boolean {
  const paise = Math.round(rupees * 100);
  return Math.abs(paise - rupees * 100) < 1e-6 && paise % 5 === 0;
}

describe('official kiteconnect client against the simulator', () => {
  it('KiteConnect.getInstruments reads the whole master and one exchange', async () => {
    const kc = new KiteConnect({ api_key: API_KEY, root: sim.apiUrl });
    kc.setAccessToken(ACCESS_TOKEN);
    const all = await kc.getInstruments();
    expect(all).toHaveLength(sim.instruments.length);
    // papaparse leaves instrument_token a string: the client converts only prices, strike and lot size.
    const index = all.find((r) => String(r.instrument_token) === String(NIFTY_INDEX_TOKEN))!;
    expect(index).toMatchObject({ tradingsymbol: 'NIFTY 50', name: 'NIFTY 50', instrument_type: 'EQ', segment: 'INDICES', exchange: 'NSE' });

    const nfo = await kc.getInstruments('NFO');
    expect(nfo).toHaveLength(sim.instruments.filter((t) => t.exchange === 'NFO').length);
    for (const r of nfo) {
      expect(r.exchange).toBe('NFO');
      expect(r.expiry).toBeInstanceOf(Date); // the client turns YYYY-MM-DD into a Date
      expect(r.tick_size).toBe(0.05);
      expect(r.lot_size).toBe(75);
    }
    const call = nfo.find((r) => r.instrument_type === 'CE')!;
    expect(call.strike % 50).toBe(0);
    expect(call.tradingsymbol).toMatch(/^NIFTY\d\d([1-9OND]\d\d|[A-Z]{3})\d+CE$/);

    const ltp = await kc.getLTP(['NSE:NIFTY 50', 'NSE:INFY']);
    expect(ltp['NSE:NIFTY 50'].last_price).toBeGreaterThan(20_000);
    expect(ltp['NSE:INFY'].instrument_token).toBe(408065);
  });

  it('KiteTicker connects, subscribes, sets full mode and gets sensible ticks and postbacks', async () => {
    const tokens = sim.instruments.filter((_, i) => i % 7 === 0).map((t) => t.instrumentToken);
    const ticker = new KiteTicker({ api_key: API_KEY, access_token: ACCESS_TOKEN, reconnect: false, root: sim.wsUrl } as ConstructorParameters<typeof KiteTicker>[0]);
    // Loosely typed on purpose: the client's ticks are plain objects whose shape depends on the packet.
    const ticks: Record<string, any>[] = [];
    const orders: Record<string, unknown>[] = [];
    let connected = false;
    ticker.on('connect', () => {
      connected = true;
      ticker.subscribe(tokens);
      ticker.setMode(ticker.modeFull, tokens);
    });
    ticker.on('ticks', (batch: Record<string, any>[]) => {
      for (const t of batch) ticks.push(t);
    });
    ticker.on('order_update', (o: Record<string, unknown>) => orders.push(o));
    ticker.connect();
    try {
      await until('2000 full ticks, the index among them', () => ticks.filter((t) => t.mode === 'full').length >= 2000 && ticks.some((t) => t.instrument_token === NIFTY_INDEX_TOKEN && t.mode === 'full'));
      expect(connected).toBe(true);
      expect(sim.sendOrderPostback({ order_id: '1', status: 'COMPLETE', tradingsymbol: 'INFY' }, API_KEY)).toBe(1);
      await until('the order postback', () => orders.length > 0);
      expect(orders).toEqual([{ order_id: '1', status: 'COMPLETE', tradingsymbol: 'INFY' }]);
    } finally {
      ticker.disconnect();
    }

    const full = ticks.filter((t) => t.mode === 'full');
    expect(full.length).toBeGreaterThanOrEqual(2000);
    // Checked by hand and collected: an expect() per field of every tick would dominate the run.
    const problems: string[] = [];
    const check = (ok: boolean, what: string, t: Record<string, any>) => {
      if (!ok && problems.length < 10) problems.push(`${what}: ${JSON.stringify(t)}`);
    };
    const lastVolume = new Map<number, number>();
    const wanted = new Set(tokens);
    const now = Date.now();
    for (const t of full) {
      check(wanted.has(t.instrument_token), 'subscribed token', t);
      check(onGrid(t.last_price), 'last price on 0.05', t);
      check(t.ohlc.low <= t.last_price && t.last_price <= t.ohlc.high, 'low <= last <= high', t);
      check(t.exchange_timestamp instanceof Date && Math.abs(t.exchange_timestamp.getTime() - now) < 60_000, 'exchange time now', t);
      if (t.instrument_token === NIFTY_INDEX_TOKEN) {
        check(t.tradable === false, 'index not tradable', t);
        continue;
      }
      check(t.tradable === true, 'tradable', t);
      const { buy, sell } = t.depth as { buy: { price: number; quantity: number }[]; sell: { price: number; quantity: number }[] };
      check(buy.length === 5 && sell.length === 5, 'five levels a side', t);
      check(buy[0].price < sell[0].price, 'best bid < best ask', t);
      check([...buy, ...sell].every((l) => onGrid(l.price)), 'depth on 0.05', t);
      check(buy.every((l) => l.price < sell[0].price), 'bids below the best ask', t);
      check(t.volume_traded >= (lastVolume.get(t.instrument_token) ?? 0), 'volume never falls', t);
      lastVolume.set(t.instrument_token, t.volume_traded);
      check(t.average_traded_price >= t.ohlc.low && t.average_traded_price <= t.ohlc.high, 'average within the range', t);
      check(t.last_trade_time instanceof Date, 'last trade time', t);
    }
    expect(problems).toEqual([]);
    // Every subscribed token was seen in full mode.
    expect(new Set(full.map((t) => t.instrument_token)).size).toBe(tokens.length);
  });
});
