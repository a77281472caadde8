/**
 * The JSON REST API on a real uWS app on loopback: keys, validation naming the field, 404/405/413/429,
 * quotes from the quote source, bars from a real PostgreSQL database, the option chain, /ready and
 * /metrics.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pgDb, type Db } from '../../src/core/db.ts';
import { migrate } from '../../src/core/migrate.ts';
import { createTestDatabase, type TestDatabase } from '../support/pg.ts';
import {
  bySymbol, ensurePartitions, followed, insertBars, KEY, minuteBars, OTHER_KEY, reference, sessionOpen,
  startRestServer, tickSpecs, type RestServer, type SeedBar,
} from './rest-fixture.ts';
import { MINUTE_MS } from '../../src/core/ist.ts';

const DATES = ['2025-12-02', '2025-12-03'];
const INFY = bySymbol('NSE:INFY');
const H = { Authorization: `Bearer ${KEY}` };

let tdb: TestDatabase;
let db: Db;
let srv: RestServer;
let bars: SeedBar[];

const ticksIn = { n: 12345 };

beforeAll(async () => {
  tdb = await createTestDatabase('rest');
  db = pgDb(tdb.sql);
  await migrate(db);
  await ensurePartitions(db, sessionOpen(DATES[0]) - 86_400_000, sessionOpen(DATES[1]) + 86_400_000);
  bars = minuteBars(INFY.instrumentToken, DATES, 3, false);
  await insertBars(db, [...bars, ...reference(bars, 15 * MINUTE_MS)]);
  srv = await startRestServer({
    db, maxBodyBytes: 1024, barsLimit: 500,
    metrics: {
      pipeline: () => ({ ticksIn: ticksIn.n, ticksOut: ticksIn.n - 5, quarantined: 5, duplicates: 2, barsClosed: 77, quarantineByReason: { price_out_of_band: 3, stale: 2 } }),
      decode: () => ({ frames: 10, packets: 400, errors: { short_frame: 1, bad_length: 0 } }),
      rings: () => [{ shard: 0, depth: 3, highWater: 50, drops: 0, capacity: 65536 }],
      ws: () => ({ clients: 2, subscriptionSets: 1, ticksPublished: 900, conflations: 1, slowCloses: 0, stallCloses: 1, maxUnsentBytes: 70_000 }),
      kiteWs: () => ({ clients: 1, packets: 300, stallCloses: 0, maxUnsentBytes: 0 }),
    },
  });
});

afterAll(async () => {
  srv?.close();
  await tdb?.drop();
});

const get = (path: string, headers: Record<string, string> = H) => fetch(`${srv.base}${path}`, { headers });

describe('JSON REST API', () => {
  it('needs an API key everywhere but /health and /ready', async () => {
    for (const p of ['/api/instruments', '/api/quote?symbols=INFY', '/api/bars?symbol=INFY&tf=1m&from=2025-12-02', '/api/option-chain', '/metrics']) {
      const r = await get(p, {});
      expect(r.status, p).toBe(401);
      expect(await r.json() as any).toMatchObject({ error: 'unauthorized' });
    }
    expect((await get('/api/instruments', { Authorization: 'Bearer wrong-key-0123456789' })).status).toBe(401);
    expect((await get(`/api/instruments?key=${KEY}`, {})).status).toBe(200);
    expect((await get('/health', {})).status).toBe(200);
    expect((await get('/ready', {})).status).toBe(200);
  });

  it('GET /api/instruments lists followed instruments, filtered by segment, name and expiry', async () => {
    const all = await (await get('/api/instruments')).json() as any;
    expect(all.count).toBe(followed.length);
    const expiry = followed.find((i) => i.instrumentType === 'CE')!.expiry;
    const r = await (await get(`/api/instruments?segment=NFO-OPT&name=NIFTY&expiry=${expiry}`)).json() as any;
    expect(r.count).toBe(followed.filter((i) => i.segment === 'NFO-OPT' && i.expiry === expiry).length);
    expect(r.instruments[0]).toMatchObject({ segment: 'NFO-OPT', name: 'NIFTY', expiry, followed: true });
    const master = await (await get('/api/instruments?scope=all&exchange=NFO&type=FUT')).json() as any;
    expect(master.count).toBeGreaterThan(0);
    const bad = await get('/api/instruments?expiry=2025-12');
    expect(bad.status).toBe(400);
    expect(await bad.json() as any).toMatchObject({ error: 'invalid_query', field: 'expiry' });
    const unknown = await get('/api/instruments?colour=red');
    expect(unknown.status).toBe(400);
    expect(await unknown.json() as any).toMatchObject({ field: 'colour' });
  });

  it('GET /api/quote answers the latest quotes and says which symbols it could not', async () => {
    const specs = tickSpecs();
    const noTick = followed.find((i) => !specs.has(i.instrumentToken))!;
    const r = await get(`/api/quote?symbols=NSE:INFY,NIFTY 50,NOPE&symbols=${noTick.instrumentToken}`);
    expect(r.status).toBe(200);
    const body = await r.json() as any;
    expect(body.quotes.map((q: { symbol: string }) => q.symbol)).toEqual(['INFY', 'NIFTY 50']);
    const s = specs.get(INFY.instrumentToken)!;
    expect(body.quotes[0]).toMatchObject({ token: INFY.instrumentToken, exchange: 'NSE', price: s.price, volume: s.volume, ohlc: { close: s.close } });
    expect(body.quotes[0].depth.buy).toHaveLength(5);
    expect(body.missing).toEqual([
      { symbol: 'NOPE', reason: 'not an instrument this service follows' },
      { symbol: String(noTick.instrumentToken), reason: 'no tick yet' },
    ]);
    const none = await get('/api/quote');
    expect(none.status).toBe(400);
    expect(await none.json() as any).toMatchObject({ field: 'symbols' });
  });

  it('POST /api/quote takes a JSON body; bad JSON is a 400 naming the body, a big body 413', async () => {
    const r = await fetch(`${srv.base}/api/quote`, { method: 'POST', headers: { ...H, 'Content-Type': 'application/json' }, body: JSON.stringify({ symbols: ['INFY'] }) });
    expect(r.status).toBe(200);
    expect((await r.json() as any).quotes[0].symbol).toBe('INFY');
    const bad = await fetch(`${srv.base}/api/quote`, { method: 'POST', headers: H, body: '{"symbols": [' });
    expect(bad.status).toBe(400);
    expect(await bad.json() as any).toMatchObject({ field: 'body' });
    const wrong = await fetch(`${srv.base}/api/quote`, { method: 'POST', headers: H, body: JSON.stringify({ symbols: 'INFY', extra: 1 }) });
    expect(wrong.status).toBe(400);
    expect(await wrong.json() as any).toMatchObject({ field: 'extra' });
    const big = await fetch(`${srv.base}/api/quote`, { method: 'POST', headers: H, body: JSON.stringify({ symbols: Array(300).fill('NSE:INFY') }) });
    expect(big.status).toBe(413);
    expect(await big.json() as any).toMatchObject({ error: 'body_too_large' });
    // Without Content-Length (chunked), the cap applies to the bytes as they arrive.
    const stream = new ReadableStream({ start(c) { for (let i = 0; i < 8; i++) c.enqueue(new TextEncoder().encode(' '.repeat(500))); c.close(); } });
    const chunked = await fetch(`${srv.base}/api/quote`, { method: 'POST', headers: H, body: stream, duplex: 'half' } as RequestInit);
    expect(chunked.status).toBe(413);
    // The connection pool recovers: the next request is served.
    expect((await get('/api/quote?symbols=INFY')).status).toBe(200);
  });

  it('GET /api/bars reads stored bars from the database, rolls up others, and caps the rows', async () => {
    const day = bars.filter((b) => b.st >= sessionOpen('2025-12-02') && b.st < sessionOpen('2025-12-03'));
    const r = await get('/api/bars?symbol=INFY&tf=1m&from=2025-12-02&to=2025-12-03');
    expect(r.status).toBe(200);
    const body = await r.json() as any;
    expect(body).toMatchObject({ symbol: 'INFY', tf: '1m', source: '1m', count: 375, truncated: false });
    expect(body.bars[0]).toEqual({ st: day[0].st, o: day[0].o, h: day[0].h, l: day[0].l, c: day[0].c, v: day[0].v, vw: day[0].vw, n: day[0].n, oi: 0, bf: false });
    const hour = await (await get(`/api/bars?symbol=NSE:INFY&tf=1h&from=${sessionOpen('2025-12-02')}&to=2025-12-04T00:00:00%2B05:30`)).json() as any;
    expect(hour.source).toBe('15m');
    const ref = reference(bars, 60 * MINUTE_MS);
    expect(hour.bars.map((b: SeedBar) => [b.st, b.o, b.h, b.l, b.c, b.v])).toEqual(ref.map((b) => [b.st, b.o, b.h, b.l, b.c, b.v]));
    const capped = await (await get('/api/bars?symbol=INFY&tf=1m&from=2025-12-02&to=2025-12-04&limit=100')).json() as any;
    expect(capped).toMatchObject({ count: 100, truncated: true });
    const over = await get('/api/bars?symbol=INFY&tf=1m&from=2025-12-02&limit=501');
    expect(over.status).toBe(400);
    expect(await over.json() as any).toMatchObject({ field: 'limit' });
  });

  it('GET /api/bars names the bad field: tf, from, to, symbol', async () => {
    const cases: [string, string][] = [
      ['/api/bars?symbol=INFY&tf=1x&from=2025-12-02', 'tf'],
      ['/api/bars?symbol=INFY&tf=90s&from=2025-12-02', 'tf'],
      ['/api/bars?symbol=INFY&tf=1m&from=yesterday', 'from'],
      ['/api/bars?symbol=INFY&tf=1m', 'from'],
      ['/api/bars?symbol=INFY&tf=1m&from=2025-12-03&to=2025-12-02', 'to'],
      ['/api/bars?symbol=NOPE&tf=1m&from=2025-12-02', 'symbol'],
      ['/api/bars?tf=1m&from=2025-12-02', 'symbol'],
    ];
    for (const [path, field] of cases) {
      const r = await get(path);
      expect(r.status, path).toBe(400);
      const body = await r.json() as any;
      expect(body.field, path).toBe(field);
      expect(body.message, path).toContain(field);
    }
  });

  it('GET /api/option-chain answers strikes with CE/PE price, change, OI and the PCR', async () => {
    const specs = tickSpecs();
    const r = await (await get('/api/option-chain')).json() as any;
    const expiries = [...new Set(followed.filter((i) => i.segment === 'NFO-OPT').map((i) => i.expiry))].sort();
    expect(r).toMatchObject({ name: 'NIFTY', expiry: expiries[0], expiries });
    const chain = followed.filter((i) => i.segment === 'NFO-OPT' && i.expiry === expiries[0]);
    expect(r.strikes.map((s: { strike: number }) => s.strike)).toEqual([...new Set(chain.map((i) => i.strike))].sort((a, b) => a - b));
    const ce = chain.find((i) => i.instrumentType === 'CE' && specs.has(i.instrumentToken))!;
    const leg = r.strikes.find((s: { strike: number }) => s.strike === ce.strike).ce;
    const s = specs.get(ce.instrumentToken)!;
    expect(leg).toMatchObject({ symbol: ce.tradingsymbol, lastPrice: s.price, oi: s.oi, change: Math.round((s.price - s.close) * 100) / 100 });
    const sum = (t: string) => chain.filter((i) => i.instrumentType === t).reduce((a, i) => a + (specs.get(i.instrumentToken)?.oi ?? 0), 0);
    expect(r.callOi).toBe(sum('CE'));
    expect(r.putOi).toBe(sum('PE'));
    expect(r.pcr).toBeCloseTo(sum('PE') / sum('CE'), 12);
    expect(r.underlying).toMatchObject({ symbol: 'NIFTY 50', price: specs.get(256265)!.price });
    const bad = await get('/api/option-chain?expiry=2020-01-07');
    expect(bad.status).toBe(400);
    expect(await bad.json() as any).toMatchObject({ field: 'expiry' });
  });

  it('unknown paths are 404, wrong methods 405 with Allow', async () => {
    const r = await get('/api/nope');
    expect(r.status).toBe(404);
    const m = await fetch(`${srv.base}/api/bars`, { method: 'DELETE', headers: H });
    expect(m.status).toBe(405);
    expect(m.headers.get('allow')).toBe('GET');
  });

  it('GET /ready is 503 naming the failing parts', async () => {
    srv.readyState.dbOk = false;
    srv.readyState.ringsOk = false;
    const r = await get('/ready', {});
    expect(r.status).toBe(503);
    expect(await r.json() as any).toEqual({ ready: false, checks: { feed: true, database: false, cache: true, rings: false }, failing: ['database', 'rings'] });
    srv.readyState.dbOk = true;
    srv.readyState.ringsOk = true;
    expect((await get('/ready', {})).status).toBe(200);
  });

  it('GET /metrics is Prometheus text with the pipeline, ring, feed and REST latency series', async () => {
    const r = await get('/metrics');
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toContain('text/plain');
    const text = await r.text();
    expect(text).toContain('# TYPE n50_ticks_in_total counter');
    expect(text).toContain('n50_ticks_in_total 12345');
    expect(text).toContain('n50_quarantined_ticks_total{reason="price_out_of_band"} 3');
    expect(text).toContain('n50_decode_errors_total{reason="short_frame"} 1');
    expect(text).toContain('n50_ring_depth{shard="0"} 3');
    expect(text).toContain('n50_ws_clients{endpoint="kite"} 1');
    expect(text).toContain('n50_ws_slow_client_actions_total{action="conflate"} 1');
    expect(text).toContain('n50_ws_subscription_sets 1');
    expect(text).toContain('n50_ws_max_unsent_bytes{endpoint="ws"} 70000');
    expect(text).toContain('n50_ws_stall_closes_total{endpoint="ws"} 1');
    expect(text).toMatch(/n50_rest_request_duration_seconds_count\{route="\/api\/bars",method="GET",status="200"\} \d+/);
    expect(text).not.toContain('n50_writer_rows_total'); // no writer source: no series
    ticksIn.n = 20000;
    expect(await (await get('/metrics')).text()).toContain('n50_ticks_in_total 20000');
  });
});

describe('rate limit', () => {
  let limited: RestServer;
  beforeAll(async () => {
    limited = await startRestServer({ db: null, ratePerSec: 1, burst: 3 });
  });
  afterAll(() => limited?.close());

  it('answers 429 with Retry-After once a key spends its burst; other keys are not affected', async () => {
    const url = `${limited.base}/api/quote?symbols=INFY`;
    for (let i = 0; i < 3; i++) expect((await fetch(url, { headers: H })).status).toBe(200);
    const r = await fetch(url, { headers: H });
    expect(r.status).toBe(429);
    expect(r.headers.get('retry-after')).toBe('1');
    expect(await r.json() as any).toMatchObject({ error: 'rate_limited' });
    expect((await fetch(url, { headers: { Authorization: `Bearer ${OTHER_KEY}` } })).status).toBe(200);
    // The Kite routes share the key's budget and answer in Kite's envelope.
    const k = await fetch(`${limited.base}/kite/quote/ltp?i=NSE:INFY`, { headers: { Authorization: `token ${KEY}:${KEY}` } });
    expect(k.status).toBe(429);
    expect(k.headers.get('retry-after')).toBe('1');
    expect(await k.json() as any).toMatchObject({ status: 'error', error_type: 'NetworkException' });
    // /ready is not rate limited (no key).
    for (let i = 0; i < 5; i++) expect((await fetch(`${limited.base}/ready`)).status).toBe(200);
  });

  it('without a database, bars answer 503 saying so', async () => {
    const r = await fetch(`${limited.base}/api/bars?symbol=INFY&tf=1m&from=2025-12-02`, { headers: { Authorization: `Bearer ${OTHER_KEY}` } });
    expect(r.status).toBe(503);
    expect(await r.json() as any).toMatchObject({ error: 'storage_unavailable' });
  });
});

describe('bars JSON built by the database', () => {
  it('equals the row path, on PostgreSQL and on the embedded PGlite, for every shape', async () => {
    const { PGlite } = await import('@electric-sql/pglite');
    const { pgliteDb } = await import('../../src/core/db.ts');
    const { history, historyJson, kiteCandleTime } = await import('../../src/gateway/history.ts');
    const lite = new PGlite();
    const liteDb = pgliteDb(lite);
    try {
      await migrate(liteDb);
      await insertBars(liteDb, bars);
      for (const d of [db, liteDb]) {
        const q = { token: INFY.instrumentToken, tfMs: MINUTE_MS, fromMs: sessionOpen('2025-12-02') + 7 * MINUTE_MS, toMs: sessionOpen('2025-12-03') + 20 * MINUTE_MS, limit: 300 };
        const rows = await history(d, [MINUTE_MS], q);
        expect(rows.candles).toHaveLength(300);
        const api = await historyJson(d, [MINUTE_MS], q, 'api');
        expect({ ...api, json: JSON.parse(api.json) }).toEqual({ json: rows.candles, count: 300, sourceMs: MINUTE_MS, truncated: true });
        const kite = await historyJson(d, [MINUTE_MS], q, 'kite-oi');
        expect(JSON.parse(kite.json)).toEqual(rows.candles.map((c) => [kiteCandleTime(c.st), c.o, c.h, c.l, c.c, c.v, c.oi]));
        const all = await historyJson(d, [MINUTE_MS], { ...q, limit: 10_000 }, 'kite');
        expect(all).toMatchObject({ count: 375 - 7 + 20, truncated: false });
        expect(JSON.parse(all.json)[0][0]).toBe('2025-12-02T09:22:00+0530');
      }
    } finally {
      await lite.close();
    }
  });
});
