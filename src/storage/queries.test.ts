import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../test/support/pg.ts';
import { freshPglite } from '../../test/support/pglite.ts';
import { pgDb, pgliteDb, type Db } from '../core/db.ts';
import { migrate } from '../core/migrate.ts';
import { bars, instruments, QueryError, resolveToken, ticks } from './queries.ts';

const IST = (s: string) => Date.parse(`${s}+05:30`);

async function seed(db: Db): Promise<void> {
  await db.exec(`
    INSERT INTO instruments (token, exchange_token, symbol, name, type, segment, exchange, strike, expiry, tick_size, lot_size)
    VALUES (256265, 1001, 'NIFTY 50', 'NIFTY 50', 'EQ', 'INDICES', 'NSE', 0, NULL, 0, 0),
           (12073986, 47164, 'NIFTY25DEC24000CE', 'NIFTY', 'CE', 'NFO-OPT', 'NFO', 24000, '2025-12-30', 0.05, 75);`);
  const bar = (start: string, end: string, o: number, c: number, v: number) =>
    `(256265, '1m', '${start}+05:30', '${end}+05:30', ${o}, ${Math.max(o, c) + 1}, ${Math.min(o, c) - 1}, ${c}, ${v}, ${v > 0 ? c : 'NULL'}, ${v > 0 ? 1 : 0}, 7, 3, false, 1)`;
  await db.exec(`INSERT INTO bars (token, timeframe, bucket_start, bucket_end, open, high, low, close, volume, vwap, trades, oi, ticks, partial, flags) VALUES
    ${bar('2025-12-03 09:15', '2025-12-03 09:16', 100, 101, 10)},
    ${bar('2025-12-03 09:16', '2025-12-03 09:17', 101, 102, 0)},
    ${bar('2025-12-03 09:19', '2025-12-03 09:20', 103, 104, 5)},
    ${bar('2025-12-04 09:15', '2025-12-04 09:16', 110, 111, 1)};`);
  const tick = (t: string, price: number, seq: number, depth: boolean) =>
    `(12073986, '${t}+05:30', '${t}+05:30', 5, ${price}, 75, ${price}, ${seq * 75}, 75, 0, 0, 1, 2, 0.5, 1.5, 3, 100, 100, 100, NULL,
      ${depth ? `${price - 0.05}, 75, ${price + 0.05}, 150, '{{75,${price - 0.05},1},{0,0,0},{0,0,0},{0,0,0},{0,0,0},{150,${price + 0.05},2},{0,0,0},{0,0,0},{0,0,0},{0,0,0}}'` : 'NULL, NULL, NULL, NULL, NULL'}, 1, ${seq})`;
  await db.exec(`INSERT INTO market_data (token, time, recv_time, kind, price, last_qty, avg_price, volume, volume_delta, buy_qty, sell_qty,
    open, high, low, close, change_pct, oi, oi_high, oi_low, last_trade_time, bid_price, bid_qty, ask_price, ask_qty, depth, conn, seq) VALUES
    ${tick('2025-12-03 09:15:00.100', 120.5, 1, true)}, ${tick('2025-12-03 09:15:00.200', 120.55, 2, false)},
    ${tick('2025-12-03 09:15:01.000', 120.6, 3, true)}, ${tick('2025-12-03 09:16:00.000', 121, 4, true)};`);
}

function suite(name: string, open: () => Promise<{ db: Db; close: () => Promise<void> }>) {
  describe(`queries on ${name}`, () => {
    let db: Db;
    let close: () => Promise<void>;
    beforeAll(async () => {
      ({ db, close } = await open());
      await migrate(db);
      if (name.startsWith('PostgreSQL')) await db.query("SELECT storage_ensure_partitions('2025-12-02T18:30:00Z', '2025-12-04T18:29:00Z')");
      await seed(db);
    });
    afterAll(async () => { await close(); });

    it('bars by symbol and time range, gaps inside a day filled flat at the previous close', async () => {
      const b = await bars(db, { symbol: 'NIFTY 50', timeframe: '1m', from: IST('2025-12-03 09:00'), to: IST('2025-12-03 10:00') });
      expect(b.map((x) => [new Date(x.start).toISOString(), x.close, x.volume, x.filled])).toEqual([
        ['2025-12-03T03:45:00.000Z', 101, 10, false],
        ['2025-12-03T03:46:00.000Z', 102, 0, false],
        ['2025-12-03T03:47:00.000Z', 102, 0, true],
        ['2025-12-03T03:48:00.000Z', 102, 0, true],
        ['2025-12-03T03:49:00.000Z', 104, 5, false],
      ]);
      expect(b[2]).toMatchObject({ open: 102, high: 102, low: 102, vwap: null, oi: 7, end: IST('2025-12-03 09:18') });
      expect(b[0]).toMatchObject({ token: 256265, timeframe: '1m', open: 100, vwap: 101, trades: 1, ticks: 3, partial: false });
      expect(b[1].vwap).toBeNull();
    });

    it('does not fill across days (nights, weekends and holidays are not gaps), nor when asked not to', async () => {
      const b = await bars(db, { token: 256265, timeframe: '1m', from: '2025-12-03T00:00:00Z', to: '2025-12-05T00:00:00Z' });
      expect(b).toHaveLength(6);
      expect(new Date(b[5].start).toISOString()).toBe('2025-12-04T03:45:00.000Z');
      const raw = await bars(db, { token: 256265, timeframe: '1m', from: '2025-12-03T00:00:00Z', to: '2025-12-05T00:00:00Z', fill: false });
      expect(raw.map((x) => x.filled)).toEqual([false, false, false, false]);
    });

    it('treats from as inclusive and to as exclusive, and caps with limit', async () => {
      const b = await bars(db, { token: 256265, timeframe: '1m', from: IST('2025-12-03 09:16'), to: IST('2025-12-03 09:19') });
      expect(b.map((x) => x.start)).toEqual([IST('2025-12-03 09:16')]);
      expect(await bars(db, { token: 256265, timeframe: '1m', from: IST('2025-12-03 09:00'), to: IST('2025-12-03 10:00'), limit: 3 })).toHaveLength(3);
    });

    it('ticks by token and range with a row limit, depth as [10][3]', async () => {
      const t = await ticks(db, { token: 12073986, from: IST('2025-12-03 09:15'), to: IST('2025-12-03 09:16'), limit: 2 });
      expect(t.map((x) => [x.price, x.seq])).toEqual([[120.5, 1], [120.55, 2]]);
      expect(t[0]).toMatchObject({ time: IST('2025-12-03 09:15:00.100'), recvTimeUs: IST('2025-12-03 09:15:00.100') * 1000, bidPrice: 120.45, askQty: 150, lastTradeTime: null });
      expect(t[0].depth![5]).toEqual([150, 120.55, 2]);
      expect(t[1]).toMatchObject({ bidPrice: null, depth: null });
      expect(await ticks(db, { symbol: 'NIFTY25DEC24000CE', from: IST('2025-12-03 09:15'), to: IST('2025-12-03 09:17') })).toHaveLength(4);
    });

    it('the instrument master, filtered, and symbol resolution', async () => {
      const all = await instruments(db);
      expect(all.map((i) => i.symbol)).toEqual(['NIFTY25DEC24000CE', 'NIFTY 50']);
      expect(await instruments(db, { type: 'CE' })).toEqual([{
        token: 12073986, exchangeToken: 47164, symbol: 'NIFTY25DEC24000CE', name: 'NIFTY', type: 'CE', segment: 'NFO-OPT', exchange: 'NFO',
        strike: 24000, expiry: '2025-12-30', tickSize: 0.05, lotSize: 75, freezeQty: null,
      }]);
      expect(await resolveToken(db, 'NIFTY 50', 'NSE')).toBe(256265);
      expect(await resolveToken(db, 'NOPE')).toBeNull();
    });

    it('refuses a bad request with a typed error naming the field', async () => {
      await expect(bars(db, { token: 256265, timeframe: '7x', from: 0, to: 1 })).rejects.toMatchObject({ code: 'QUERY_INVALID', field: 'timeframe' });
      await expect(bars(db, { token: 256265, timeframe: '1m', from: 10, to: 5 })).rejects.toBeInstanceOf(QueryError);
      await expect(ticks(db, { token: 256265, from: 0, to: 1, limit: 10_000_000 })).rejects.toMatchObject({ field: 'limit' });
      await expect(bars(db, { symbol: 'NOPE', timeframe: '1m', from: 0, to: 1 })).rejects.toMatchObject({ code: 'INSTRUMENT_UNKNOWN' });
    });
  });
}

let t: TestDatabase;
suite('PostgreSQL (partitioned path)', async () => {
  t = await createTestDatabase('queries');
  return { db: pgDb(t.sql), close: () => t.drop() };
});
suite('the embedded PGlite (plain path)', async () => {
  const { db: pg, close } = await freshPglite();
  return { db: pgliteDb(pg), close };
});
