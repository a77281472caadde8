/**
 * Gap repair end to end (issue 16), through the official client: the simulator and the service run
 * on one fast clock (SPEED simulated seconds a real second; exchange times, receive times, the bar
 * clock, gap times and gap repair all read it), the feed is cut for two simulated minutes while
 * the simulator's market keeps trading, then restored. Once feed_gaps.bars_backfilled_at is set,
 * the stored 1m bars of every minute the gap touched equal the simulator's own candles
 * (KiteConnect.getHistoricalData against the simulator), flagged BACKFILLED, the edge minutes merged
 * with their live part; KiteConnect pointed at our /kite serves them with no hole; /api/gaps shows
 * barsBackfilledAt; and the 5m bars over the gap are the sums of their minutes.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KiteConnect } from 'kiteconnect';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.ts';
import { BarFlag } from '../../src/core/bar.ts';
import { MINUTE_MS } from '../../src/core/ist.ts';
import { historicalLimiter, kiteTime } from '../../src/kite/historical.ts';
import { startSimulator } from '../../src/kite/sim/server.ts';
import { silentLogger } from '../../src/log.ts';
import { startService } from '../../src/service.ts';
import { bucketsOver, gapMinutes } from '../../src/storage/backfill.ts';
import { createTestDatabase } from '../support/pg.ts';
import { until } from '../support/until.ts';

const SPEED = 30;
/** 10:00 IST on a Wednesday. */
const T0 = Date.parse('2025-12-03T04:30:00Z');
const w0 = performance.now();
const clock = () => T0 + (performance.now() - w0) * SPEED;
const TOKENS = [256265, 408065, 2953217, 738561, 341249];
const KEY = 'ci';
const SECRET = 'abcdefghijklmnop0123';

const cleanups: (() => Promise<unknown> | unknown)[] = [];
afterAll(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

interface Candle { date: Date; open: number; high: number; low: number; close: number; volume: number }
type Row = { token: number; st: number; o: number; h: number; l: number; c: number; v: number; ticks: number; flags: number };

describe('gap repair', () => {
  it('fills a two-minute feed cut with the simulator\'s minute candles, flagged backfilled, with no hole at /kite', async () => {
    const sim = await startSimulator({ apiKey: 'sim-key', accessToken: 'sim-token', rate: 300, seed: 23, clock });
    cleanups.push(() => sim.close());
    const db = await createTestDatabase('backfill');
    cleanups.push(() => db.drop());
    const dataDir = mkdtempSync(join(tmpdir(), 'backfill-'));
    cleanups.push(() => rmSync(dataDir, { recursive: true, force: true }));
    const config = loadConfig({
      KITE_API_KEY: 'sim-key', KITE_ACCESS_TOKEN: 'sim-token', KITE_WS_URL: sim.wsUrl, KITE_API_URL: sim.apiUrl,
      KITE_INSTRUMENTS: TOKENS.join(','), DATABASE_URL: db.url, DATA_DIR: dataDir, PORT: '0',
      API_KEYS: `${KEY}:${SECRET}`, WORKERS: '1', WRITER_BATCH_MS: '20', ANALYTICS_REFRESH_MS: '0',
    });
    // 20 simulated seconds of grace: 0.7 s real, past the shard's bar clock and a writer batch.
    const service = await startService(config, silentLogger, { clock, backfillGraceMs: 20_000 });
    cleanups.push(() => service.close());

    const storedMinutes = async () => (await db.sql`SELECT count(DISTINCT bucket_start)::int AS n FROM bars WHERE timeframe = '1m'`)[0].n as number;
    await until('two live minutes stored', async () => (await storedMinutes()) >= 2);

    sim.cutFeed();
    const cutAt = clock();
    await until('two simulated minutes of cut', () => clock() >= cutAt + 2 * MINUTE_MS);
    sim.restoreFeed();

    const gap = await until('the gap repaired', async () => (await db.sql`
      SELECT id, (extract(epoch FROM started_at) * 1000)::float8 AS s, (extract(epoch FROM ended_at) * 1000)::float8 AS e, instruments, bars_backfilled_at
        FROM feed_gaps WHERE bars_backfilled_at IS NOT NULL`)[0], 40_000);
    const [fromMs, toMs] = gapMinutes(gap.s as number, gap.e as number);
    expect(toMs - fromMs).toBeGreaterThanOrEqual(3 * MINUTE_MS); // two minutes cut, both edges besides
    expect((gap.instruments as number[]).map(Number).sort()).toEqual([...TOKENS].sort());

    // The simulator's candles, through the official client and the process's one limiter.
    const simKc = new KiteConnect({ api_key: 'sim-key', root: sim.apiUrl });
    simKc.setAccessToken('sim-token');
    const minutes = async (kc: InstanceType<typeof KiteConnect>, token: number, from: number, to: number): Promise<Candle[]> => {
      return (await historicalLimiter.run(() => kc.getHistoricalData(token, 'minute', kiteTime(from), kiteTime(to - MINUTE_MS)))) as unknown as Candle[];
    };
    const simCandles = new Map<number, Candle[]>();
    for (const t of TOKENS) simCandles.set(t, await minutes(simKc, t, fromMs, toMs));
    const rows = (await db.sql`
      SELECT token::int AS token, (extract(epoch FROM bucket_start) * 1000)::float8 AS st, open AS o, high AS h, low AS l, close AS c,
             volume::int AS v, ticks, flags FROM bars
       WHERE timeframe = '1m' AND bucket_start >= to_timestamp(${fromMs / 1000}) AND bucket_start < to_timestamp(${toMs / 1000})
       ORDER BY token, bucket_start`) as unknown as Row[];

    let compared = 0;
    for (const t of TOKENS) {
      const want = simCandles.get(t)!;
      const have = rows.filter((r) => r.token === t);
      expect(want.length, `the simulator traded ${t} in the gap`).toBeGreaterThan(0);
      // Every minute Kite has a candle for is stored, equal in open, high, low, close and volume.
      for (const c of want) {
        const r = have.find((x) => x.st === c.date.getTime());
        expect(r, `${t} at ${kiteTime(c.date.getTime())}`).toBeDefined();
        expect([r!.o, r!.h, r!.l, r!.c, r!.v]).toEqual([c.open, c.high, c.low, c.close, c.volume]);
        compared++;
      }
      // Every stored minute of the gap is flagged; one Kite has no candle for holds no volume.
      for (const r of have) {
        expect(r.flags & (BarFlag.CLOSED | BarFlag.BACKFILLED)).toBe(BarFlag.CLOSED | BarFlag.BACKFILLED);
        if (!want.some((c) => c.date.getTime() === r.st)) expect(r.v).toBe(0);
      }
    }
    // The edges were merged with their live part: the live ticks are counted on backfilled rows.
    const edge = (st: number) => rows.filter((r) => r.st === st && r.ticks > 0 && (r.flags & BarFlag.BACKFILLED) !== 0);
    expect(edge(fromMs).length).toBeGreaterThan(0);
    expect(edge(toMs - MINUTE_MS).length).toBeGreaterThan(0);
    // A two-minute cut holds at least one whole minute: stored from Kite alone (compared above).
    const inner = rows.filter((r) => r.st >= (gap.s as number) && r.st + MINUTE_MS <= (gap.e as number));
    expect(inner.length).toBeGreaterThan(0);

    // The official client at our /kite: the gap's minutes with no hole, as the simulator has them.
    const ours = new KiteConnect({ api_key: KEY, root: `http://127.0.0.1:${service.port}/kite` });
    ours.setAccessToken(SECRET);
    for (const t of TOKENS) {
      const served = await ours.getHistoricalData(t, 'minute', kiteTime(fromMs), kiteTime(toMs - MINUTE_MS)) as unknown as Candle[];
      const byMinute = new Map(served.map((c) => [c.date.getTime(), c]));
      for (const c of simCandles.get(t)!) {
        expect(byMinute.get(c.date.getTime()), `/kite ${t} at ${kiteTime(c.date.getTime())}`).toMatchObject({ open: c.open, high: c.high, low: c.low, close: c.close, volume: c.volume });
      }
    }

    // /api/gaps says when.
    const gaps = await (await fetch(`http://127.0.0.1:${service.port}/api/gaps?from=${fromMs - MINUTE_MS}&to=${toMs}`, { headers: { Authorization: `Bearer ${SECRET}` } })).json() as { gaps: { barsBackfilledAt: string | null; ticksRecoverable: boolean }[] };
    expect(gaps.gaps[0]).toMatchObject({ ticksRecoverable: false, barsBackfilledAt: (gap.bars_backfilled_at as Date).toISOString() });

    // 5m bars over the gap: each the sum of its minutes, flagged, once its live bar was stored.
    const fives = bucketsOver(5 * MINUTE_MS, fromMs, toMs);
    await until('the 5m bars over the gap rebuilt', async () => {
      const r = await db.sql`
        SELECT f.token, f.volume::int AS v, f.flags, (SELECT coalesce(sum(m.volume), 0)::int FROM bars m WHERE m.token = f.token AND m.timeframe = '1m'
                 AND m.bucket_start >= f.bucket_start AND m.bucket_start < f.bucket_end) AS sum1m
          FROM bars f WHERE f.timeframe = '5m' AND f.bucket_start >= to_timestamp(${fives[0][0] / 1000}) AND f.bucket_start < to_timestamp(${fives[fives.length - 1][1] / 1000})`;
      return r.length >= fives.length * (TOKENS.length - 1) && r.every((x) => (x.flags & BarFlag.BACKFILLED) !== 0 && x.v === x.sum1m) && r;
    }, 30_000);
    console.log(`gap ${((gap.e as number) - (gap.s as number)) / 1000} simulated s over ${(toMs - fromMs) / MINUTE_MS} minutes; ${compared} candles compared; backfill ${JSON.stringify(service.health().backfill)}`);
  });
});
