import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../test/support/pg.ts';
import { pgDb } from '../core/db.ts';
import { migrate } from '../core/migrate.ts';
import { silentLogger } from '../log.ts';
import { lastStoredTicks } from './last-stored.ts';

describe('what a restart reads of the processes before it', () => {
  let t: TestDatabase;
  beforeAll(async () => {
    t = await createTestDatabase('laststored');
    await migrate(pgDb(t.sql));
    await t.sql`SELECT storage_ensure_partitions(now() - interval '1 day', now() + interval '1 day')`;
  });
  afterAll(async () => { await t.drop(); });

  it('names the instruments every process since the one that stored the last tick followed, not older ones', async () => {
    const now = Date.now();
    const at = (ms: number) => new Date(now + ms);
    // Three processes: one an hour ago (other strikes), the one that stored the last tick, and one
    // that started after it and died before storing anything.
    await t.sql`INSERT INTO feed_sessions (started_at, instruments) VALUES
      (${at(-3_600_000)}, '{256265,111}'), (${at(-60_000)}, '{256265,222,333}'), (${at(-5_000)}, '{256265,444}')`;
    await t.sql`INSERT INTO market_data (token, time, recv_time, kind, price, last_qty, avg_price, volume, volume_delta, buy_qty, sell_qty,
        open, high, low, close, change_pct, oi, oi_high, oi_low, conn, seq)
      VALUES (256265, ${at(-10_000)}, ${at(-10_000)}, 3, 24000, 0, 0, 0, 0, 0, 0, 24000, 24000, 24000, 24000, 0, 0, 0, 0, 1, 1)`;
    const r = await lastStoredTicks(t.url, [256265, 555], silentLogger);
    expect(r.lastRecvMs).toBe(now - 10_000);
    expect(r.ticks.map((x) => x.token)).toEqual([256265]);
    expect(r.earlierTokens.sort((a, b) => a - b)).toEqual([222, 333, 444, 256265]);
  });
});
