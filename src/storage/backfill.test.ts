/**
 * Gap repair's merge, on the real PostgreSQL (partitioned path, as a server stores) and on the
 * embedded PGlite: Kite's minute candles replace the live part of each minute of the gap (edges
 * included), live counts of trades and ticks stay, a live row Kite has no candle for loses the
 * catch-up volume it holds, and higher timeframes are rebuilt from the 1m rows with no volume
 * counted twice. Running it again changes nothing.
 */
import { PGlite } from '@electric-sql/pglite';
import postgres from 'postgres';
import { afterAll, describe, expect, it } from 'vitest';
import { BarFlag } from '../core/bar.ts';
import { pgDb, pgliteDb, pgOptions, type Db } from '../core/db.ts';
import { MINUTE_MS } from '../core/ist.ts';
import { migrate } from '../core/migrate.ts';
import type { TxStatement } from '../core/reader-protocol.ts';
import { once } from 'node:events';
import WebSocket from 'ws';
import { silentLogger } from '../log.ts';
import { KiteHistorical, RateLimiter } from '../kite/historical.ts';
import { startSimulator } from '../kite/sim/server.ts';
import { Backfill, bucketsOver, gapMinutes, gapStatements, rebuildStatement } from './backfill.ts';
import { until } from '../../test/support/until.ts';
import { createTestDatabase, type TestDatabase } from '../../test/support/pg.ts';

const INFY = 408065;
/** 09:30 IST, 2025-12-03. */
const M0 = Date.parse('2025-12-03T04:00:00Z');
const M = (k: number) => M0 + k * MINUTE_MS;
const C = BarFlag.CLOSED;

const cleanups: (() => Promise<unknown>)[] = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
});

/** A live bar row: [timeframe, start, end, o, h, l, c, v, vwap, trades, oi, ticks]. */
async function live(db: Db, tf: string, st: number, en: number, o: number, h: number, l: number, c: number, v: number, trades: number, ticks: number): Promise<void> {
  await db.query(
    `INSERT INTO bars VALUES ($1, $2, to_timestamp($3::float8 / 1000), to_timestamp($4::float8 / 1000), $5, $6, $7, $8, $9, $10, $11, 0, $12, false, $13)`,
    [INFY, tf, st, en, o, h, l, c, v, (o + c) / 2, trades, ticks, C],
  );
}

async function run(db: Db, statements: readonly TxStatement[]): Promise<void> {
  await db.begin(async (tx) => {
    for (const s of statements) await tx.query(s.text, s.params);
  });
}

async function rows(db: Db, tf: string) {
  return db.query<{ st: number; o: number; h: number; l: number; c: number; v: number; vw: number | null; n: number; ticks: number; flags: number }>(
    `SELECT (extract(epoch FROM bucket_start) * 1000)::float8 AS st, open AS o, high AS h, low AS l, close AS c, volume AS v, vwap AS vw,
            trades AS n, ticks, flags FROM bars WHERE token = $1 AND timeframe = $2 ORDER BY bucket_start`, [INFY, tf]);
}

async function mergesAGap(db: Db): Promise<void> {
  // Live: 09:30 whole; 09:31 until the cut; 09:33 the snapshot after the reconnect, stamped inside
  // the gap, holding all the volume traded while down (900); 09:34 the live part after it.
  await live(db, '1m', M(0), M(1), 10, 10.2, 9.9, 10, 100, 10, 12);
  await live(db, '1m', M(1), M(2), 10, 11, 9.5, 10.5, 50, 5, 8);
  await live(db, '1m', M(3), M(4), 10.9, 10.9, 10.9, 10.9, 900, 1, 1);
  await live(db, '1m', M(4), M(5), 10.95, 11.2, 10.9, 11, 70, 4, 6);
  await live(db, '5m', M(0), M(5), 10, 11.2, 9.5, 11, 1120, 20, 27);
  // Kite: 09:31, 09:32 and 09:34 traded; 09:33 did not.
  const candles = [
    { token: INFY, startMs: M(1), open: 10, high: 11.5, low: 9.5, close: 10.8, volume: 120, oi: 0 },
    { token: INFY, startMs: M(2), open: 10.8, high: 11, low: 10.6, close: 10.9, volume: 300, oi: 0 },
    { token: INFY, startMs: M(4), open: 10.9, high: 11.2, low: 10.7, close: 11, volume: 150, oi: 0 },
  ];
  const [fromMs, toMs] = gapMinutes(M(1) + 20_000, M(4) + 10_000);
  expect([fromMs, toMs]).toEqual([M(1), M(5)]);
  const statements = [...gapStatements({ tokens: [INFY], fromMs, toMs }, candles), rebuildStatement(5 * MINUTE_MS, bucketsOver(5 * MINUTE_MS, fromMs, toMs), [INFY])];
  await run(db, statements);

  const B = C | BarFlag.BACKFILLED;
  const minutes = await rows(db, '1m');
  expect(minutes.map((r) => [r.st, r.o, r.h, r.l, r.c, Number(r.v), r.n, r.ticks, r.flags])).toEqual([
    [M(0), 10, 10.2, 9.9, 10, 100, 10, 12, C], // before the gap: untouched
    [M(1), 10, 11.5, 9.5, 10.8, 120, 5, 8, B], // edge: Kite's candle, the live counts
    [M(2), 10.8, 11, 10.6, 10.9, 300, 0, 0, B], // wholly inside: Kite's candle
    [M(3), 10.9, 10.9, 10.9, 10.9, 0, 1, 1, B], // no trade per Kite: the catch-up volume goes
    [M(4), 10.9, 11.2, 10.7, 11, 150, 4, 6, B], // edge
  ]);
  expect(minutes[2].vw).toBeCloseTo((11 + 10.6 + 10.9) / 3, 9);
  expect(minutes[3].vw).toBeNull();
  const five = await rows(db, '5m');
  expect(five.map((r) => [r.st, r.o, r.h, r.l, r.c, Number(r.v), r.n, r.ticks, r.flags])).toEqual([[M(0), 10, 11.5, 9.5, 11, 670, 20, 27, B]]);
  expect(Number(five[0].v)).toBe(minutes.reduce((s, r) => s + Number(r.v), 0));

  // Again (a retry after a commit whose answer was lost): the same rows.
  await run(db, statements);
  expect(await rows(db, '1m')).toEqual(minutes);
  expect(await rows(db, '5m')).toEqual(five);
}

describe('gap repair merge SQL', () => {
  it('merges Kite\'s candles into a gap\'s minutes and rebuilds 5m on PostgreSQL', async () => {
    const t: TestDatabase = await createTestDatabase('backfill_merge');
    cleanups.push(() => t.drop());
    const sql = postgres(t.url, pgOptions({ max: 1 }));
    cleanups.push(() => sql.end({ timeout: 1 }));
    const db = pgDb(sql);
    await migrate(db, { path: 'partitioned' });
    await db.query('SELECT storage_ensure_partitions($1, $2)', [new Date(M(0)), new Date(M(10))]);
    await mergesAGap(db);
  });

  it('does the same on the embedded PGlite', async () => {
    const pg = new PGlite();
    cleanups.push(() => pg.close());
    const db = pgliteDb(pg);
    await migrate(db);
    await mergesAGap(db);
  });
});

describe('gap repair against Kite\'s limit', () => {
  it('retries the requests Kite refuses for its 3 a second and still repairs the gap', async () => {
    let now = M(0);
    const sim = await startSimulator({ apiKey: 'k', accessToken: 't', rate: 400, seed: 9, clock: () => now });
    cleanups.push(() => sim.close());
    const tokens = [408065, 2953217, 738561, 341249, 424961, 256265];
    const ws = new WebSocket(`${sim.wsUrl}?api_key=k&access_token=t`);
    await once(ws, 'open');
    ws.send(JSON.stringify({ a: 'subscribe', v: tokens }));
    cleanups.push(async () => ws.close());
    // Three simulated minutes of trading, moved by hand.
    for (let k = 0; k < 3; k++) {
      const before = sim.stats.trades;
      await until(`trades in minute ${k}`, () => sim.stats.trades > before + 200);
      now = M(k + 1);
    }
    sim.setRate(0);

    const pg = new PGlite();
    cleanups.push(() => pg.close());
    const db = pgliteDb(pg);
    await migrate(db);
    await db.query(`INSERT INTO feed_gaps (started_at, ended_at, cause, instruments) VALUES (to_timestamp($1::float8 / 1000), to_timestamp($2::float8 / 1000), 'close 1006', $3::bigint[])`,
      [M(0) + 30_000, M(1) + 30_000, `{${tokens.join(',')}}`]);
    // A caller that does not share the process's limiter: 10 a second, so Kite answers 429 past 3.
    const rogue = new KiteHistorical({ apiUrl: sim.apiUrl, apiKey: 'k', accessToken: 't', limiter: new RateLimiter(10) });
    const backfill = new Backfill({
      transact: (st) => run(db, st), db: () => db, minutes: (t, f, to) => rogue.minutes(t, f, to),
      timeframesMs: [MINUTE_MS, 5 * MINUTE_MS], clock: () => now, graceMs: 1000, log: silentLogger,
    });
    cleanups.push(async () => backfill.close());
    backfill.start();
    await until('the gap repaired', async () => (await db.query<{ done: boolean }>('SELECT bars_backfilled_at IS NOT NULL AS done FROM feed_gaps'))[0].done, 30_000);
    expect(backfill.stats.retries).toBeGreaterThan(0);
    expect(backfill.stats.requests).toBe(tokens.length + backfill.stats.retries);
    const stored = await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM bars WHERE timeframe = '1m' AND flags & ${BarFlag.BACKFILLED} <> 0`);
    expect(stored[0].n).toBe(2 * tokens.length); // both minutes the gap touched, every instrument traded
  });
});
