import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../test/support/pg.ts';
import { pgDb } from '../../src/core/db.ts';
import { migrate } from '../../src/core/migrate.ts';
import { DAY_MS, IST_OFFSET_MS } from '../../src/core/ist.ts';
import { PARTITIONS_AHEAD_DAYS, PgSink } from './sink-pg.ts';
import { B, BAR_FIELDS, BarFlag } from '../../src/core/bar.ts';
import { BatchBuilder, barStream } from './batch.ts';

const istDayName = (ms: number) => new Date(Math.floor((ms + IST_OFFSET_MS) / DAY_MS) * DAY_MS).toISOString().slice(0, 10).replace(/-/g, '');

describe('PostgreSQL sink maintenance (partitioned path)', () => {
  let t: TestDatabase;
  beforeAll(async () => { t = await createTestDatabase('sinkpg'); });
  afterAll(async () => { await t.drop(); });

  it('creates day partitions ahead of today and detaches and drops those past retention', async () => {
    await migrate(pgDb(t.sql));
    const old = Date.now() - 40 * DAY_MS;
    await t.sql`SELECT storage_ensure_partitions(${new Date(old)}, ${new Date(old)})`;
    await t.sql`INSERT INTO quarantined_ticks (token, time, recv_time, reason, kind, price, volume, oi, conn, seq)
      VALUES (1, ${new Date(old)}, ${new Date(old)}, 'bad_price', 5, 0, 0, 0, 0, 1), (1, now(), now(), 'bad_price', 5, 0, 0, 0, 0, 2)`;
    const logs: string[] = [];
    const sink = new PgSink({ url: t.url, lanes: 1, marketDataRetentionDays: 30, barsRetentionDays: 60, instruments: null, log: (_l, _o, m) => logs.push(m) });
    try {
      await sink.open();
    } finally {
      await sink.close();
    }
    const parts = (await t.sql`SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent
      WHERE p.relname = 'market_data' ORDER BY 1`).map((r) => r.relname as string);
    expect(parts).not.toContain(`market_data_p${istDayName(old)}`);
    for (let d = 0; d <= PARTITIONS_AHEAD_DAYS; d++) expect(parts).toContain(`market_data_p${istDayName(Date.now() + d * DAY_MS)}`);
    const gone = await t.sql`SELECT to_regclass(${`market_data_p${istDayName(old)}`}) AS r`;
    expect(gone[0].r).toBeNull(); // dropped, not only detached
    // Bars keep 60 days: the 40-day-old bars partition stays.
    const bars = await t.sql`SELECT to_regclass(${`bars_p${istDayName(old)}`}) AS r`;
    expect(bars[0].r).not.toBeNull();
    expect(logs.filter((m) => /detached and dropped/.test(m))).toHaveLength(1);
    const q = await t.sql`SELECT seq FROM quarantined_ticks`;
    expect(q.map((r) => r.seq)).toEqual([2]);
  });

  it('merges a second bar of one bucket (a restart inside it) instead of failing or doubling', async () => {
    const sink = new PgSink({ url: t.url, lanes: 1, marketDataRetentionDays: 0, barsRetentionDays: 0, instruments: null, log: () => {} });
    const start = Date.parse('2025-12-03T04:00:00Z');
    const bar = (o: number, h: number, l: number, c: number, v: number, vwap: number, flags: number) => {
      const f = new Float64Array(BAR_FIELDS);
      f[B.TOKEN] = 738_561; f[B.TF_MS] = 60_000; f[B.START_MS] = start; f[B.END_MS] = start + 60_000;
      f[B.OPEN] = o; f[B.HIGH] = h; f[B.LOW] = l; f[B.CLOSE] = c; f[B.VOLUME] = v; f[B.VWAP] = vwap;
      f[B.TRADES] = v / 10; f[B.OI] = 0; f[B.TICKS] = v / 10; f[B.FLAGS] = flags;
      return f;
    };
    try {
      await sink.open();
      // The first run's bar, cut by its shutdown; then the next run's bar of the same minute.
      for (const [epoch, f] of [
        ['11111111-1111-4111-8111-111111111111', bar(100, 105, 99, 104, 100, 102, BarFlag.CLOSED | BarFlag.PARTIAL)],
        ['22222222-2222-4222-8222-222222222222', bar(104, 108, 103, 107, 300, 106, BarFlag.CLOSED)],
      ] as const) {
        const b = new BatchBuilder(epoch, barStream(0));
        b.begin(0);
        b.addBar(f, 0);
        await sink.commit(b, 'direct');
      }
    } finally {
      await sink.close();
    }
    const rows = await t.sql`SELECT open, high, low, close, volume, vwap, trades, ticks, partial FROM bars WHERE token = 738561`;
    expect(rows).toEqual([{ open: 100, high: 108, low: 99, close: 107, volume: 400, vwap: (102 * 100 + 106 * 300) / 400, trades: 40, ticks: 40, partial: true }]);
  });

  it('commits only while its fence token is the ingest lease\'s current one (ROLE=ingest)', async () => {
    // The lease table as src/scale/lease.ts keeps it: a later owner has taken token 2.
    await t.sql`CREATE TABLE IF NOT EXISTS ingest_lease (name text PRIMARY KEY, token bigint NOT NULL, holder text NOT NULL, acquired_at timestamptz NOT NULL)`;
    await t.sql`INSERT INTO ingest_lease VALUES ('fence-test', 2, 'b:2', now())`;
    const start = Date.parse('2025-12-04T04:00:00Z');
    const f = new Float64Array(BAR_FIELDS);
    f[B.TOKEN] = 738_562; f[B.TF_MS] = 60_000; f[B.START_MS] = start; f[B.END_MS] = start + 60_000;
    f[B.OPEN] = 1; f[B.HIGH] = 1; f[B.LOW] = 1; f[B.CLOSE] = 1; f[B.VOLUME] = 1; f[B.VWAP] = 1; f[B.TRADES] = 1; f[B.TICKS] = 1; f[B.FLAGS] = BarFlag.CLOSED;
    const batch = (epoch: string) => {
      const b = new BatchBuilder(epoch, barStream(0));
      b.begin(0);
      b.addBar(f, 0);
      return b;
    };
    const stale = new PgSink({ url: t.url, lanes: 1, marketDataRetentionDays: 0, barsRetentionDays: 0, instruments: null, fence: { name: 'fence-test', token: '1' }, log: () => {} });
    const owner = new PgSink({ url: t.url, lanes: 1, marketDataRetentionDays: 0, barsRetentionDays: 0, instruments: null, fence: { name: 'fence-test', token: '2' }, log: () => {} });
    try {
      await stale.open();
      await owner.open();
      await expect(stale.commit(batch('33333333-3333-4333-8333-333333333333'), 'direct')).rejects.toThrow(/newer than this process/);
      expect((await t.sql`SELECT count(*)::int AS n FROM bars WHERE token = 738562`)[0].n).toBe(0);
      await owner.commit(batch('44444444-4444-4444-8444-444444444444'), 'direct');
      expect((await t.sql`SELECT count(*)::int AS n FROM bars WHERE token = 738562`)[0].n).toBe(1);
    } finally {
      await stale.close();
      await owner.close();
    }
  });
});
