/**
 * The binary COPY rows, read back from a real PostgreSQL and from PGlite: every field lands in its
 * column with the exact value the ring slot held.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../test/support/pg.ts';
import { freshPgliteDir } from '../../test/support/pglite.ts';
import { N, N_FIELDS, NType } from '../../src/core/tick.ts';
import { B, BAR_FIELDS, BarFlag } from '../../src/core/bar.ts';
import { QuarantineReason } from '../../src/core/tick.ts';
import { BatchBuilder, barStream, tickStream } from './batch.ts';
import { PgSink } from './sink-pg.ts';
import { PgliteSink } from './sink-pglite.ts';
import type { Sink } from './sink.ts';

const EPOCH = '6f1c2d3e-4a5b-4c6d-8e7f-0a1b2c3d4e5f';
const T = Date.parse('2025-12-03T04:00:01.250Z');

function tick(over: Partial<Record<keyof typeof N, number>>): Float64Array {
  const f = new Float64Array(N_FIELDS);
  f[N.TYPE] = NType.TICK;
  f[N.TOKEN] = 12_073_986;
  f[N.KIND] = 5;
  f[N.EXCH_TIME_MS] = T;
  f[N.RECV_TIME_US] = T * 1000 + 123;
  f[N.PRICE] = 24_000.05;
  f[N.LAST_QTY] = 75;
  f[N.AVG_PRICE] = 23_990.4;
  f[N.VOLUME] = 3_000_000_000; // past 2^31
  f[N.VOLUME_DELTA] = 150;
  f[N.BUY_QTY] = 1_234_567;
  f[N.SELL_QTY] = 7_654_321;
  f[N.OPEN] = 23_900.1;
  f[N.HIGH] = 24_100.95;
  f[N.LOW] = 23_850;
  f[N.CLOSE] = 23_950.3;
  f[N.CHANGE_PCT] = ((24_000.05 - 23_950.3) * 100) / 23_950.3;
  f[N.OI] = 9_007_199_254_740; // far past 2^32
  f[N.OI_HIGH] = 9_007_199_254_741;
  f[N.OI_LOW] = 1;
  f[N.LAST_TRADE_MS] = T - 1000;
  f[N.SEQ] = 4_000_000_000;
  f[N.CONN] = 2;
  f[N.DEPTH_LEVELS] = 5;
  for (let i = 0; i < 10; i++) {
    f[N.DEPTH + 3 * i] = 100 + i; // qty
    f[N.DEPTH + 3 * i + 1] = i < 5 ? 24_000 - 0.05 * i : 24_000.1 + 0.05 * (i - 5); // price
    f[N.DEPTH + 3 * i + 2] = i + 1; // orders
  }
  for (const [k, v] of Object.entries(over)) f[N[k as keyof typeof N]] = v as number;
  return f;
}

function bar(over: Partial<Record<keyof typeof B, number>>): Float64Array {
  const f = new Float64Array(BAR_FIELDS);
  f[B.TOKEN] = 256_265;
  f[B.TF_MS] = 60_000;
  f[B.START_MS] = Date.parse('2025-12-03T04:00:00Z');
  f[B.END_MS] = Date.parse('2025-12-03T04:01:00Z');
  f[B.OPEN] = 26_000.5;
  f[B.HIGH] = 26_010.25;
  f[B.LOW] = 25_990;
  f[B.CLOSE] = 26_001.75;
  f[B.VOLUME] = 0;
  f[B.VWAP] = NaN;
  f[B.TRADES] = 0;
  f[B.OI] = 0;
  f[B.TICKS] = 42;
  f[B.FLAGS] = BarFlag.CLOSED | BarFlag.PARTIAL;
  for (const [k, v] of Object.entries(over)) f[B[k as keyof typeof B]] = v as number;
  return f;
}

async function writeSamples(sink: Sink): Promise<void> {
  const ticks = new BatchBuilder(EPOCH, tickStream(0));
  ticks.begin(0);
  ticks.addTick(tick({}), 0);
  ticks.addTick(tick({ KIND: 4, DEPTH_LEVELS: 0, LAST_TRADE_MS: 0, SEQ: 2 }), 0);
  ticks.addTick(tick({ TYPE: NType.QUARANTINE, REASON: QuarantineReason.PRICE_JUMP, PRICE: 99_999 }), 0);
  await sink.commit(ticks, 'direct');
  const bars = new BatchBuilder(EPOCH, barStream(0));
  bars.begin(0);
  bars.addBar(bar({}), 0);
  bars.addBar(bar({ TOKEN: 738_561, TF_MS: 1000, VOLUME: 500, VWAP: 1550.4, TRADES: 7, OI: 3, FLAGS: BarFlag.CLOSED }), 0);
  bars.addBar(bar({ TOKEN: 1, FLAGS: 0 }), 0); // an update: not stored
  await sink.commit(bars, 'direct');
}

async function expectSamples(q: (text: string) => Promise<Record<string, any>[]>): Promise<void> {
  const md = await q(`SELECT token, time, recv_time, kind, price, last_qty, avg_price, volume, volume_delta, buy_qty, sell_qty,
    open, high, low, close, change_pct, oi, oi_high, oi_low, last_trade_time, bid_price, bid_qty, ask_price, ask_qty, depth, conn, seq,
    (extract(epoch from recv_time) * 1000000)::float8 AS recv_us
    FROM market_data ORDER BY seq DESC`);
  expect(md).toHaveLength(2);
  const a = md[0];
  const f = tick({});
  expect(a).toMatchObject({
    token: 12_073_986, kind: 5, price: 24_000.05, last_qty: 75, avg_price: 23_990.4, volume: 3_000_000_000, volume_delta: 150,
    buy_qty: 1_234_567, sell_qty: 7_654_321, open: 23_900.1, high: 24_100.95, low: 23_850, close: 23_950.3, change_pct: f[N.CHANGE_PCT],
    oi: 9_007_199_254_740, oi_high: 9_007_199_254_741, oi_low: 1, bid_price: 24_000, bid_qty: 100, ask_price: 24_000.1, ask_qty: 105,
    conn: 2, seq: 4_000_000_000,
  });
  expect((a.time as Date).getTime()).toBe(T);
  expect(a.recv_us).toBe(T * 1000 + 123); // microseconds survive
  expect((a.last_trade_time as Date).getTime()).toBe(T - 1000);
  expect(a.depth).toHaveLength(10);
  expect(a.depth[0]).toEqual([100, 24_000, 1]);
  expect(a.depth[5]).toEqual([105, 24_000.1, 6]);
  expect(a.depth[9][1]).toBe(24_000.1 + 0.05 * 4);
  const b = md[1];
  expect(b).toMatchObject({ kind: 4, last_trade_time: null, bid_price: null, bid_qty: null, ask_price: null, ask_qty: null, depth: null });
  const qt = await q('SELECT token, reason, price, volume, oi, kind, conn, seq FROM quarantined_ticks');
  expect(qt).toEqual([{ token: 12_073_986, reason: 'price_jump', price: 99_999, volume: 3_000_000_000, oi: 9_007_199_254_740, kind: 5, conn: 2, seq: 4_000_000_000 }]);
  const bars = await q('SELECT token, timeframe, bucket_start, bucket_end, open, high, low, close, volume, vwap, trades, oi, ticks, partial, flags FROM bars ORDER BY token');
  expect(bars).toHaveLength(2);
  expect(bars[0]).toMatchObject({ token: 256_265, timeframe: '1m', open: 26_000.5, high: 26_010.25, low: 25_990, close: 26_001.75, volume: 0, vwap: null, trades: 0, ticks: 42, partial: true, flags: 3 });
  expect((bars[0].bucket_start as Date).toISOString()).toBe('2025-12-03T04:00:00.000Z');
  expect((bars[0].bucket_end as Date).toISOString()).toBe('2025-12-03T04:01:00.000Z');
  expect(bars[1]).toMatchObject({ token: 738_561, timeframe: '1s', volume: 500, vwap: 1550.4, trades: 7, oi: 3, partial: false, flags: 1 });
}

describe('binary COPY rows', () => {
  let t: TestDatabase;
  beforeAll(async () => { t = await createTestDatabase('copy'); });
  afterAll(async () => { await t.drop(); });

  it('land in PostgreSQL with every value exact: prices, µs times, int8 past 2^32, depth as [10][3], NULLs', async () => {
    const sink = new PgSink({ url: t.url, lanes: 1, marketDataRetentionDays: 0, barsRetentionDays: 0, instruments: null, log: () => {} });
    try {
      await sink.open();
      await writeSamples(sink);
      await expectSamples((text) => t.sql.unsafe(text));
    } finally {
      await sink.close();
    }
  });

  it('land in the embedded PGlite the same way', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'copy-pglite-'));
    const sink = new PgliteSink({ dir: await freshPgliteDir(join(dir, 'pglite')), instruments: null, log: () => {} });
    try {
      await sink.open();
      await writeSamples(sink);
      await expectSamples(async (text) => (await sink.query(text, [])) as Record<string, any>[]);
    } finally {
      await sink.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
