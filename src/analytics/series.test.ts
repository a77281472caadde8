import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pgDb, type Db } from '../core/db.ts';
import { migrate } from '../core/migrate.ts';
import { createTestDatabase, type TestDatabase } from '../../test/support/pg.ts';
import { ChainSeries, ivPercentile, readIvSeries } from './series.ts';

const M0 = Date.UTC(2026, 11, 4, 4, 0, 0); // 09:30 IST, a minute boundary
const MIN = 60_000;

let t: TestDatabase;
let db: Db;

beforeAll(async () => {
  t = await createTestDatabase('chain_series');
  db = pgDb(t.sql);
  await migrate(db);
});
afterAll(async () => {
  await t.drop();
});

describe('the chain analytics history', () => {
  it('stores a one-minute bar of ATM IV and the ratios when the minute closes', async () => {
    const s = new ChainSeries(() => db);
    s.sample('NIFTY:2026-12-08', 'NIFTY', '2026-12-08', 0, M0 + 1000, 0.12, 0.9, 1.1, 26_000);
    s.sample('NIFTY:2026-12-08', 'NIFTY', '2026-12-08', 0, M0 + 2000, 0.15, 0.95, 1.2, 26_010);
    s.sample('NIFTY:2026-12-08', 'NIFTY', '2026-12-08', 0, M0 + 3000, 0.11, 1.0, 1.3, 26_020);
    expect(s.pending()).toBe(0); // the minute is still open
    s.sample('NIFTY:2026-12-08', 'NIFTY', '2026-12-08', 0, M0 + MIN + 10, 0.13, 1.0, 1.0, 26_030);
    await s.write();
    const r = await readIvSeries(db, 'NIFTY', '2026-12-08', M0, M0 + MIN, 100);
    expect(r.rows).toEqual([{ t: M0, open: 0.12, high: 0.15, low: 0.11, close: 0.11, pcrOi: 1.0, pcrVolume: 1.3, forward: 26_020, samples: 3 }]);
    // The open minute is stored as it stands (a checkpoint), and again as it grows, each sample once.
    s.sample('NIFTY:2026-12-08', 'NIFTY', '2026-12-08', 0, M0 + MIN + 20, 0.16, 1.0, 1.0, 26_040);
    await s.write();
    await s.write();
    s.sample('NIFTY:2026-12-08', 'NIFTY', '2026-12-08', 0, M0 + MIN + 30, 0.12, 1.0, 1.0, 26_050);
    await s.close();
    const all = await readIvSeries(db, 'NIFTY', '2026-12-08', M0, M0 + 10 * MIN, 100);
    expect(all.rows.map((x) => [x.t, x.open, x.high, x.low, x.close, x.samples])).toEqual([[M0, 0.12, 0.15, 0.11, 0.11, 3], [M0 + MIN, 0.13, 0.16, 0.12, 0.12, 3]]);
  });

  it('merges a minute written twice (a restart within the minute) instead of replacing it', async () => {
    const a = new ChainSeries(() => db);
    a.sample('k', 'NIFTY', '2026-12-15', 1, M0 + 1000, 0.2, NaN, NaN, 26_000);
    await a.close();
    const b = new ChainSeries(() => db);
    b.sample('k', 'NIFTY', '2026-12-15', 1, M0 + 30_000, 0.25, 0.8, NaN, 26_100);
    await b.close();
    const r = await readIvSeries(db, 'NIFTY', '2026-12-15', M0, M0 + MIN, 10);
    expect(r.rows).toEqual([{ t: M0, open: 0.2, high: 0.25, low: 0.2, close: 0.25, pcrOi: 0.8, pcrVolume: null, forward: 26_100, samples: 2 }]);
    expect(r.rank).toBe(1);
  });

  it('keeps bars through a database outage and stores them, in order, when it is back', async () => {
    let down = true;
    const flaky: Db = { ...db, query: (text, params) => (down ? Promise.reject(new Error('connection refused')) : db.query(text, params)) };
    const errors: unknown[] = [];
    const s = new ChainSeries(() => flaky, (e) => errors.push(e));
    for (let m = 0; m < 4; m++) s.sample('o', 'NIFTY', '2026-12-22', 0, M0 + m * MIN, [0.1, 0.11, 0.12, 0.13][m], 1, 1, 26_000);
    await s.write();
    expect(errors.length).toBeGreaterThan(0);
    expect(s.pending()).toBe(3);
    down = false;
    await s.close();
    const r = await readIvSeries(db, 'NIFTY', '2026-12-22', M0, M0 + 10 * MIN, 100);
    expect(r.rows.map((x) => x.close)).toEqual([0.1, 0.11, 0.12, 0.13]);
    expect(s.stats.barsWritten).toBe(4);
  });

  it('ranks the current ATM IV against the stored minutes of the same expiry rank', async () => {
    const s = new ChainSeries(() => db);
    // Ten minutes of rank 0 at 10 %, 11 %, ... 19 % (the last one open, stored as it stands), on an expiry of its own.
    for (let m = 0; m < 10; m++) s.sample('p', 'PCTL', '2026-12-29', 0, M0 + m * MIN, 0.1 + m / 100, 1, 1, 26_000);
    await s.write();
    const p = await ivPercentile(db, 'PCTL', 0, 0.155, M0 + 20 * MIN, 365);
    expect(p).toEqual({ percentile: 60, minutes: 10 });
    expect(await ivPercentile(db, 'PCTL', 1, 0.155, M0 + 20 * MIN, 365)).toEqual({ percentile: null, minutes: 0 });
  });

  it('reads at most the limit asked and says it cut the answer', async () => {
    const r = await readIvSeries(db, 'PCTL', '2026-12-29', M0, M0 + 60 * MIN, 4);
    expect(r.rows).toHaveLength(4);
    expect(r.truncated).toBe(true);
  });
});
