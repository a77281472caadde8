/**
 * The official KiteConnect client, unchanged, against our /kite REST routes: instruments, quotes,
 * OHLC, LTP and historical candles from bars stored in a real PostgreSQL database, rolled up and
 * aligned as Kite aligns them. The expected candles are computed here in plain code from the seeded
 * 1-minute bars.
 */
import { KiteConnect } from 'kiteconnect';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KiteWs } from '../../src/gateway/kite-ws.ts';
import { silentLogger } from '../../src/log.ts';
import { pgDb, type Db } from '../../src/core/db.ts';
import { migrate } from '../../src/core/migrate.ts';
import { createTestDatabase, type TestDatabase } from '../support/pg.ts';
import {
  auth, bySymbol, ensurePartitions, followed, insertBars, KEY, master, minuteBars, reference, sessionOpen,
  startRestServer, tickSpecs, type RestServer, type SeedBar,
} from './rest-fixture.ts';
import { MINUTE_MS } from '../../src/core/ist.ts';

const DATES = ['2025-12-01', '2025-12-02', '2025-12-03'];
const INFY = bySymbol('NSE:INFY');
const OPTION = followed.find((i) => i.instrumentType === 'CE')!;

let tdb: TestDatabase;
let db: Db;
let srv: RestServer;
let kc: InstanceType<typeof KiteConnect>;
let infyBars: SeedBar[];
let optBars: SeedBar[];

beforeAll(async () => {
  tdb = await createTestDatabase('kite_rest');
  db = pgDb(tdb.sql);
  await migrate(db);
  await ensurePartitions(db, sessionOpen(DATES[0]) - 86_400_000, sessionOpen(DATES[DATES.length - 1]) + 86_400_000);
  infyBars = minuteBars(INFY.instrumentToken, DATES, 7, false);
  optBars = minuteBars(OPTION.instrumentToken, DATES, 11, true);
  // What the aggregate stage stores: 1m bars and the 15m bars of the same ticks.
  await insertBars(db, [...infyBars, ...reference(infyBars, 15 * MINUTE_MS), ...optBars, ...reference(optBars, 15 * MINUTE_MS)]);
  srv = await startRestServer({
    db,
    // Quotes from the hub's latest ticks here; rest.test.ts takes them from the quote cache.
    quotes: 'hub',
    // The /kite WebSocket on the same app: the REST catch-all must not take its upgrades.
    routes: (app, hub) => { kiteWs = new KiteWs(app, hub, auth, silentLogger); },
  });
  kc = new KiteConnect({ api_key: KEY, root: `${srv.base}/kite` });
  kc.setAccessToken(KEY);
});
let kiteWs: KiteWs | undefined;

afterAll(async () => {
  kiteWs?.close();
  srv?.close();
  await tdb?.drop();
});

/** Kite's candle as the client returns it, from a reference bar. */
function expected(bars: SeedBar[], withOi: boolean) {
  return bars.map((b) => ({
    date: new Date(b.st), open: b.o, high: b.h, low: b.l, close: b.c, volume: b.v,
    ...(withOi && b.oi ? { oi: b.oi } : {}),
  }));
}

const inRange = (bars: SeedBar[], from: string, to: string) => {
  const f = Date.parse(from.replace(' ', 'T') + '+05:30');
  const t = Date.parse(to.replace(' ', 'T') + '+05:30');
  return bars.filter((b) => b.st >= f && b.st <= t);
};

describe('Kite-compatible REST with the official KiteConnect client', () => {
  it('getInstruments() reads the whole master as Kite CSV, and one exchange', async () => {
    const all = await kc.getInstruments();
    expect(all).toHaveLength(master.length);
    const infy = all.find((r: { tradingsymbol: string }) => r.tradingsymbol === 'INFY');
    expect(infy).toMatchObject({ exchange: 'NSE', segment: 'NSE', instrument_type: 'EQ', lot_size: 1 });
    const nfo = await kc.getInstruments('NFO');
    expect(nfo.length).toBe(master.filter((i) => i.exchange === 'NFO').length);
    expect(nfo.every((r: { exchange: string }) => r.exchange === 'NFO')).toBe(true);
    const opt = nfo.find((r: { tradingsymbol: string }) => r.tradingsymbol === OPTION.tradingsymbol)!;
    expect(opt.expiry).toBeInstanceOf(Date);
    expect(opt.strike).toBe(OPTION.strike);
  });

  it('getQuote() answers Kite\'s quote shape keyed as asked (symbols and tokens), leaving out unknowns', async () => {
    const specs = tickSpecs();
    const nifty = bySymbol('NSE:NIFTY 50');
    const q = await kc.getQuote(['NSE:INFY', String(OPTION.instrumentToken), 'NSE:NOPE', 'NSE:NIFTY 50']);
    expect(Object.keys(q).sort()).toEqual(['NSE:INFY', 'NSE:NIFTY 50', String(OPTION.instrumentToken)].sort());
    const s = specs.get(INFY.instrumentToken)!;
    const infy = q['NSE:INFY'];
    expect(Object.keys(infy).sort()).toEqual([
      'average_price', 'buy_quantity', 'depth', 'instrument_token', 'last_price', 'last_quantity', 'last_trade_time',
      'lower_circuit_limit', 'net_change', 'ohlc', 'oi', 'oi_day_high', 'oi_day_low', 'sell_quantity', 'timestamp',
      'upper_circuit_limit', 'volume',
    ]);
    expect(infy).toMatchObject({
      instrument_token: INFY.instrumentToken, last_price: s.price, volume: s.volume, buy_quantity: 700, sell_quantity: 800,
      ohlc: { open: s.close + 1, high: s.price + 3, low: s.close - 1, close: s.close },
      net_change: Math.round((s.price - s.close) * 100) / 100,
    });
    // The client turns Kite's 19-character IST strings into Dates (read in the process's zone, as with Kite).
    expect(infy.timestamp).toBeInstanceOf(Date);
    const ist = new Date(s.exchTimeMs! + 19_800_000);
    expect((infy.timestamp as unknown as Date).getTime()).toBe(new Date(ist.getUTCFullYear(), ist.getUTCMonth(), ist.getUTCDate(), ist.getUTCHours(), ist.getUTCMinutes(), ist.getUTCSeconds()).getTime());
    expect(infy.depth.buy).toHaveLength(5);
    expect(infy.depth.sell).toHaveLength(5);
    expect(infy.depth.buy[0]).toEqual({ price: s.price - 0.05, quantity: 10, orders: 1 });
    expect(infy.depth.sell[0].price).toBeCloseTo(s.price + 0.05, 9);
    const opt = q[String(OPTION.instrumentToken)];
    expect(opt.oi).toBe(specs.get(OPTION.instrumentToken)!.oi);
    expect(q['NSE:NIFTY 50'].instrument_token).toBe(nifty.instrumentToken);
  });

  it('getOHLC() and getLTP() answer Kite\'s short shapes', async () => {
    const s = tickSpecs().get(INFY.instrumentToken)!;
    const ohlc = await kc.getOHLC(['NSE:INFY']);
    expect(ohlc).toEqual({ 'NSE:INFY': { instrument_token: INFY.instrumentToken, last_price: s.price, ohlc: { open: s.close + 1, high: s.price + 3, low: s.close - 1, close: s.close } } });
    const ltp = await kc.getLTP(['NSE:INFY', 'NSE:NOPE']);
    expect(ltp).toEqual({ 'NSE:INFY': { instrument_token: INFY.instrumentToken, last_price: s.price } });
  });

  it('getHistoricalData(minute) returns the stored 1-minute bars, from/to inclusive in IST', async () => {
    const from = '2025-12-02 09:15:00';
    const to = '2025-12-02 15:29:00';
    const got = await kc.getHistoricalData(INFY.instrumentToken, 'minute', from, to, false, false);
    expect(got).toHaveLength(375);
    expect(got).toEqual(expected(inRange(infyBars, from, to), false));
    // The first candle is Kite's '2025-12-02T09:15:00+0530'.
    expect(got[0].date.toISOString()).toBe('2025-12-02T03:45:00.000Z');
  });

  it('getHistoricalData(5minute, 60minute) rolls up stored bars on Kite\'s 09:15 grid, 15:15-15:30 included', async () => {
    const from = '2025-12-01 09:15:00';
    const to = '2025-12-03 15:30:00';
    const five = await kc.getHistoricalData(INFY.instrumentToken, '5minute', from, to, false, false);
    expect(five).toEqual(expected(reference(infyBars, 5 * MINUTE_MS), false));
    expect(five).toHaveLength(75 * 3);
    const hour = await kc.getHistoricalData(INFY.instrumentToken, '60minute', from, to, false, false);
    expect(hour).toEqual(expected(reference(infyBars, 60 * MINUTE_MS), false));
    expect(hour.slice(0, 7).map((c: { date: Date }) => new Date(c.date.getTime() + 19_800_000).toISOString().slice(11, 16)))
      .toEqual(['09:15', '10:15', '11:15', '12:15', '13:15', '14:15', '15:15']);
    // 10minute (from 1m) and 30minute (from 15m) too.
    const ten = await kc.getHistoricalData(INFY.instrumentToken, '10minute', from, to, false, false);
    expect(ten).toEqual(expected(reference(infyBars, 10 * MINUTE_MS), false));
    const thirty = await kc.getHistoricalData(INFY.instrumentToken, '30minute', from, to, false, false);
    expect(thirty).toEqual(expected(reference(infyBars, 30 * MINUTE_MS), false));
  });

  it('a from inside a candle skips that candle; a to at a candle start includes it', async () => {
    const from = '2025-12-02 10:00:00';
    const to = '2025-12-03 10:15:00';
    const hour = await kc.getHistoricalData(INFY.instrumentToken, '60minute', from, to, false, false);
    expect(hour).toEqual(expected(inRange(reference(infyBars, 60 * MINUTE_MS), from, to), false));
    expect(hour[0].date.toISOString()).toBe('2025-12-02T04:45:00.000Z'); // 10:15 IST
    expect(hour[hour.length - 1].date.toISOString()).toBe('2025-12-03T04:45:00.000Z');
  });

  it('getHistoricalData(day) rolls whole sessions into day candles dated 00:00 IST, with OI when oi=1', async () => {
    const got = await kc.getHistoricalData(OPTION.instrumentToken, 'day', '2025-12-01 09:15:00', '2025-12-03 15:30:00', false, true);
    expect(got).toEqual(expected(reference(optBars, 86_400_000), true));
    expect(got[0].date.toISOString()).toBe('2025-11-30T18:30:00.000Z');
    expect(got[0].oi).toBeGreaterThan(0);
    const minute = await kc.getHistoricalData(OPTION.instrumentToken, 'minute', '2025-12-03 09:15:00', '2025-12-03 09:20:00', false, true);
    expect(minute).toEqual(expected(inRange(optBars, '2025-12-03 09:15:00', '2025-12-03 09:20:00'), true));
    const noOi = await kc.getHistoricalData(OPTION.instrumentToken, 'minute', '2025-12-03 09:15:00', '2025-12-03 09:20:00', false, false);
    expect(noOi[0].oi).toBeUndefined();
  });

  it('errors arrive as Kite\'s envelope, which the client throws with error_type', async () => {
    await expect(kc.getHistoricalData(INFY.instrumentToken, '2minute' as 'minute', '2025-12-02 09:15:00', '2025-12-02 10:00:00'))
      .rejects.toMatchObject({ status: 'error', error_type: 'InputException', message: expect.stringContaining('invalid interval') });
    await expect(kc.getHistoricalData(INFY.instrumentToken, 'minute', '2025-10-01 09:15:00', '2025-12-02 10:00:00'))
      .rejects.toMatchObject({ error_type: 'InputException', message: 'interval exceeds max limit: 60 days' });
    await expect(kc.getHistoricalData(INFY.instrumentToken, 'minute', '2025-12-02 10:00:00', '2025-12-02 09:00:00'))
      .rejects.toMatchObject({ error_type: 'InputException' });
    await expect(kc.getHistoricalData(INFY.instrumentToken, 'minute', '02/12/2025', '2025-12-02 09:00:00'))
      .rejects.toMatchObject({ error_type: 'InputException', message: expect.stringContaining('from') });
    await expect(kc.getHistoricalData(999, 'minute', '2025-12-02 09:15:00', '2025-12-02 10:00:00'))
      .rejects.toMatchObject({ error_type: 'InputException', message: expect.stringContaining('invalid token') });
    const bad = new KiteConnect({ api_key: 'nope', root: `${srv.base}/kite` });
    bad.setAccessToken('also-nope');
    await expect(bad.getQuote(['NSE:INFY'])).rejects.toMatchObject({ error_type: 'TokenException' });
    const r = await fetch(`${srv.base}/kite/nothing/here`, { headers: { Authorization: `token ${KEY}:${KEY}` } });
    expect(r.status).toBe(404);
    expect(await r.json()).toMatchObject({ status: 'error', data: null, error_type: 'GeneralException' });
  });

  it('leaves the /kite WebSocket (KiteTicker) reachable beside the REST routes', async () => {
    const ws = new WebSocket(`ws://127.0.0.1:${srv.port}/kite?api_key=${KEY}&access_token=x`);
    await new Promise<void>((resolve, reject) => { ws.on('open', () => resolve()); ws.on('error', reject); });
    ws.close();
  });
});
