/**
 * The chain analytics end to end: the whole service on the built-in simulator, real PostgreSQL and
 * Redis; the pool computes, REST and /ws serve, the cache holds the latest for another process.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { unpack } from 'msgpackr';
import { loadConfig } from '../../src/config.ts';
import { silentLogger } from '../../src/log.ts';
import { startService, type Service } from '../../src/service.ts';
import { RedisCache } from '../../src/cache/index.ts';
import { createUnpackr } from '../../src/gateway/messages.ts';
import { createTestDatabase, type TestDatabase } from '../support/pg.ts';
import { until } from '../support/until.ts';

const KEY = 'analytics-test-key-0123456789';
const PREFIX = `t_an_${randomBytes(3).toString('hex')}:`;
let db: TestDatabase;
let dataDir: string;
let service: Service;
let base: string;

const get = async (path: string): Promise<{ status: number; body: any }> => {
  const r = await fetch(`${base}${path}`, { headers: { authorization: `Bearer ${KEY}` } });
  return { status: r.status, body: await r.json() };
};

beforeAll(async () => {
  db = await createTestDatabase('analytics');
  dataDir = mkdtempSync(join(tmpdir(), 'analytics-'));
  service = await startService(loadConfig({
    DATABASE_URL: db.url, REDIS_URL: 'redis://127.0.0.1:6379/0', REDIS_PREFIX: PREFIX, DATA_DIR: dataDir, PORT: '0',
    API_KEYS: `ci:${KEY}`, WORKERS: '1', SIM_RATE: '3000', SIM_SEED: '11', OPTION_STRIKES: '6', OPTION_EXPIRIES: '2',
    // The simulator carries its futures and discounts its options at 6.5 %.
    ANALYTICS_REFRESH_MS: '100', RISK_FREE_RATE: '0.065',
  }), silentLogger);
  base = `http://127.0.0.1:${service.port}`;
});

afterAll(async () => {
  await service?.close();
  await db?.drop();
  rmSync(dataDir, { recursive: true, force: true });
});

/**
 * Undiscounted Black-76 and a plain bisection on it: an IV found apart from the service's solver.
 * The normal CDF is Numerical Recipes' erfcc (fractional error < 1.2e-7), not the service's (Cody's),
 * so agreement shows the two meet, not that they share code; to 5e-4 of volatility, which that
 * error allows even for the low-vega wings.
 */
function cdf(x: number): number {
  const z = Math.abs(x) / Math.SQRT2;
  const t = 1 / (1 + 0.5 * z);
  const r = t * Math.exp(-z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))));
  return x >= 0 ? 1 - r / 2 : r / 2;
}
function black(F: number, K: number, T: number, v: number, call: boolean): number {
  const sd = v * Math.sqrt(T);
  const d1 = Math.log(F / K) / sd + sd / 2;
  return call ? F * cdf(d1) - K * cdf(d1 - sd) : K * cdf(sd - d1) - F * cdf(-d1);
}
function bisectIv(price: number, F: number, K: number, T: number, call: boolean): number {
  let lo = 1e-4;
  let hi = 5;
  for (let i = 0; i < 200; i++) {
    const mid = (lo + hi) / 2;
    if (black(F, K, T, mid, call) > price) hi = mid;
    else lo = mid;
  }
  return (lo + hi) / 2;
}

describe('option-chain analytics', () => {
  it('adds IV and greeks to each leg of GET /api/option-chain, and the expiry\'s figures', async () => {
    const chain = await until('the option chain to carry analytics with an ATM IV', async () => {
      const r = await get('/api/option-chain');
      return r.status === 200 && r.body.analytics?.atmIv != null ? r.body : null;
    });
    const a = chain.analytics;
    expect(['future', 'parity']).toContain(a.forwardSource);
    expect(a.atmIv).toBeGreaterThan(0.05);
    expect(a.atmIv).toBeLessThan(0.6);
    const strikes: number[] = chain.strikes.map((s: any) => s.strike);
    expect(strikes).toContain(a.maxPain);
    expect(a.pcrOi).toBeCloseTo(a.putOi / a.callOi, 12);
    expect(a.expectedMove).toBeCloseTo(a.forward * a.atmIv * Math.sqrt(a.timeToExpiry), 6);
    expect(a.smile.length).toBeGreaterThan(3);
    expect(a.topOi.call.length).toBeGreaterThan(0);

    // Each leg with a mid has the IV an independent solver finds for that mid.
    let checked = 0;
    const D = Math.exp(-a.rate * a.timeToExpiry);
    for (const s of chain.strikes) {
      for (const leg of [s.ce, s.pe]) {
        const x = leg?.analytics;
        if (!x || x.ivMid === null) continue;
        const iv = bisectIv(x.mid / D, a.forward, s.strike, a.timeToExpiry, leg === s.ce);
        expect(x.ivMid, leg.symbol).toBeCloseTo(iv, 3);
        expect(x.greeksFrom).toBe('mid');
        expect(Math.abs(x.delta)).toBeLessThanOrEqual(1);
        expect(x.gamma).toBeGreaterThan(0);
        expect(x.vega).toBeGreaterThan(0);
        checked++;
      }
    }
    expect(checked).toBeGreaterThan(10);
  });

  it('pushes a chain\'s analytics and breadth to /ws subscribers at each refresh, as records and as plain maps', async () => {
    const expiry = service.analytics!.keys()[0].split(':')[1];
    for (const records of [true, false]) {
      const unpackr = createUnpackr();
      const ws = new WebSocket(`ws://127.0.0.1:${service.port}/ws?key=${KEY}${records ? '' : '&records=0'}`);
      const msgs: any[] = [];
      ws.on('message', (d: Buffer) => msgs.push(records ? unpackr.unpack(d) : unpack(d)));
      await new Promise((r) => ws.once('open', r));
      ws.send(JSON.stringify({ op: 'subscribe', id: 1, chain: [expiry, '2001-01-01'], breadth: true }));
      const ack = await until('the ack', () => msgs.find((m) => m.type === 'ack'));
      expect(ack.analytics).toEqual([`NIFTY:${expiry}`, 'breadth']);
      expect(ack.rejected[0]).toMatchObject({ chain: '2001-01-01' });
      // The latest at once, then one per refresh.
      const chains = await until('two chain frames', () => {
        const c = msgs.filter((m) => m.type === 'chain');
        return c.length >= 2 ? c : null;
      });
      expect(chains[0].d.key).toBe(`NIFTY:${expiry}`);
      expect(chains[1].d.seq).toBeGreaterThan(chains[0].d.seq);
      expect(chains[1].d.options.length).toBeGreaterThan(0);
      const breadth = await until('a breadth frame', () => msgs.find((m) => m.type === 'breadth'));
      expect(breadth.d.total).toBe(50);
      expect(breadth.d.advances + breadth.d.declines + breadth.d.unchanged + breadth.d.noData).toBe(50);
      ws.close();
    }
  });

  it('keeps the latest analytics in Redis, where another process reads them', async () => {
    const key = service.analytics!.keys()[0];
    const other = new RedisCache({ url: 'redis://127.0.0.1:6379/0', prefix: PREFIX });
    try {
      expect(await other.waitReady()).toBe(true);
      const text = await until('the analytics in Redis', () => other.getAnalytics(key));
      expect(JSON.parse(text)).toMatchObject({ key, name: 'NIFTY' });
      const breadth = JSON.parse((await until('breadth in Redis', () => other.getAnalytics('breadth')))!);
      expect(breadth.total).toBe(50);
    } finally {
      await other.close();
    }
  });

  it('skips a refresh that falls due while the previous one runs, and counts it', async () => {
    const a = service.analytics!;
    const before = a.stats().skipped;
    const first = a.refresh();
    const second = a.refresh();
    await Promise.all([first, second]);
    expect(a.stats().skipped).toBeGreaterThanOrEqual(before + 1);
  });

  it('serves the stored ATM IV minutes and the IV percentile from GET /api/analytics/iv', async () => {
    const key = service.analytics!.keys()[0];
    const expiry = key.split(':')[1];
    await until('a refresh with an ATM IV', () => service.analytics!.stats().refreshes > 3);
    await service.analytics!.flushHistory();
    const r = await get(`/api/analytics/iv?expiry=${expiry}`);
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ name: 'NIFTY', expiry, tf: '1m' });
    expect(r.body.count).toBeGreaterThan(0);
    const bar = r.body.bars[r.body.count - 1];
    expect(bar.low).toBeLessThanOrEqual(bar.close);
    expect(bar.high).toBeGreaterThanOrEqual(bar.close);
    expect(bar.samples).toBeGreaterThan(0);
    expect(r.body.ivPercentile.minutes).toBeGreaterThan(0);
    expect(r.body.ivPercentile.rank).toBe(0);
    const bad = await get('/api/analytics/iv?expiry=2001-01-01');
    expect(bad.status).toBe(400);
    expect(JSON.stringify(bad.body)).toContain('expiry');
  });

  it('reports the pool\'s figures on /health and /metrics', async () => {
    const h = (await (await fetch(`${base}/health`)).json()) as any;
    expect(h.analytics.refreshes).toBeGreaterThan(0);
    expect(h.analytics.chains).toBe(2);
    expect(h.analytics.lastWorkUs).toBeGreaterThan(0);
    const m = await (await fetch(`${base}/metrics`, { headers: { authorization: `Bearer ${KEY}` } })).text();
    expect(m).toMatch(/^n50_analytics_refreshes_total [1-9]/m);
    expect(m).toMatch(/^n50_analytics_skipped_total \d+/m);
  });
});
