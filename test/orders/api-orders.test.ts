/**
 * The JSON order API on /api against the whole service (simulator, PostgreSQL, paper broker):
 * placing answers 201 with the order; Idempotency-Key; ownership; baskets all or none; closing
 * positions at the freeze quantity; bad bodies refused naming the field; and the Kite account's
 * shared rate limit, which no second ever passes and no single key takes whole.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.ts';
import { silentLogger } from '../../src/log.ts';
import { startService, type Service } from '../../src/service.ts';
import { createTestDatabase, type TestDatabase } from '../support/pg.ts';
import { until } from '../support/until.ts';

const ALICE = 'alice-key-0123456789abc';
const BOB = 'bob-key-0123456789abcdef';

let db: TestDatabase;
let dataDir: string;
let service: Service;
let base: string;
let option: { symbol: string; lot: number; token: number };
/** A BUY price for INFY inside its band but well under the market, so LIMIT orders rest. */
let far = 0;
const px = (steps: number) => Math.round((far - steps * 0.05) * 100) / 100;

async function startIt(): Promise<void> {
  service = await startService(loadConfig({
    DATABASE_URL: db.url, DATA_DIR: dataDir, PORT: '0', API_KEYS: `alice:${ALICE},bob:${BOB}`, WORKERS: '1',
    SIM_RATE: '5000', PAPER_LATENCY_MS: '2', OPTION_STRIKES: '1', OPTION_EXPIRIES: '1', WRITER_BATCH_MS: '20',
    API_RATE_PER_SEC: '1000', API_RATE_BURST: '1000',
  }), silentLogger);
  base = `http://127.0.0.1:${service.port}`;
}

beforeAll(async () => {
  db = await createTestDatabase('api_orders');
  dataDir = mkdtempSync(join(tmpdir(), 'api-orders-'));
  await startIt();
  const inst = (await (await call(ALICE, 'GET', '/api/instruments?type=CE')).json()) as { instruments: { symbol: string; token: number; lotSize?: number; lot_size?: number }[] };
  const ce = inst.instruments[0];
  option = { symbol: ce.symbol, lot: (ce.lotSize ?? ce.lot_size)!, token: ce.token };
  await until('INFY and the option to tick', () => service.orders.mark(option.token) !== null &&
    service.tokens.some((t) => service.orders.kiteSymbol(t) === 'INFY' && service.orders.mark(t) !== null));
  const infy = service.tokens.find((t) => service.orders.kiteSymbol(t) === 'INFY')!;
  far = Math.floor((service.orders.mark(infy)!.lastPaise / 100) * 0.9 * 20) / 20;
});

afterAll(async () => {
  await service?.close();
  await db?.drop();
  rmSync(dataDir, { recursive: true, force: true });
});

function call(key: string, method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(`${base}${path}`, {
    method,
    headers: { Authorization: `Bearer ${key}`, ...(body === undefined ? {} : { 'Content-Type': 'application/json' }), ...headers },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
}

const limitBuy = (over: Record<string, unknown> = {}) => ({
  variety: 'regular', exchange: 'NSE', tradingsymbol: 'INFY', transaction_type: 'BUY', quantity: 1, product: 'CNC',
  order_type: 'LIMIT', price: far, ...over,
});

// Each test starts with the account's per-second order budget free again (the limit is real here).
beforeEach(async () => {
  await until('the per-second order budget to free up', () => service.orders.limiter.stats().second === 0);
});

describe('JSON order API', () => {
  it('answers 201 with the order as GET /api/orders/:id shows it, events included', async () => {
    const r = await call(ALICE, 'POST', '/api/orders', limitBuy());
    expect(r.status).toBe(201);
    const o = (await r.json()) as Record<string, any>;
    expect(o).toMatchObject({ tradingsymbol: 'INFY', quantity: 1, price: far, order_type: 'LIMIT' });
    expect(o.events.map((e: any) => e.status)).toEqual(['PUT ORDER REQ RECEIVED', 'VALIDATION PENDING', 'OPEN PENDING']);
    await until('OPEN', async () => ((await (await call(ALICE, 'GET', `/api/orders/${o.order_id}`)).json()) as any).status === 'OPEN');
    const list = (await (await call(ALICE, 'GET', '/api/orders?status=open&symbol=INFY')).json()) as { orders: any[] };
    expect(list.orders.map((x) => x.order_id)).toContain(o.order_id);
    const del = await call(ALICE, 'DELETE', `/api/orders/${o.order_id}`);
    expect(del.status).toBe(200);
    await until('CANCELLED', async () => ((await (await call(ALICE, 'GET', `/api/orders/${o.order_id}`)).json()) as any).status === 'CANCELLED');
  });

  it('Idempotency-Key: a retry returns the original order and places nothing; another body is 409', async () => {
    const before = ((await (await call(ALICE, 'GET', '/api/orders')).json()) as { orders: unknown[] }).orders.length;
    const h = { 'Idempotency-Key': 'retry-me-1' };
    const a = await call(ALICE, 'POST', '/api/orders', limitBuy({ price: px(1) }), h);
    const b = await call(ALICE, 'POST', '/api/orders', limitBuy({ price: px(1) }), h);
    expect(a.status).toBe(201);
    expect(b.status).toBe(201);
    const ja = (await a.json()) as any;
    const jb = (await b.json()) as any;
    expect(jb.order_id).toBe(ja.order_id);
    const after = ((await (await call(ALICE, 'GET', '/api/orders')).json()) as { orders: unknown[] }).orders.length;
    expect(after).toBe(before + 1);
    const c = await call(ALICE, 'POST', '/api/orders', limitBuy({ price: px(2) }), h);
    expect(c.status).toBe(409);
    expect(((await c.json()) as any).field).toBe('Idempotency-Key');
    // The same key name under another API key is another key.
    const d = await call(BOB, 'POST', '/api/orders', limitBuy({ price: px(2) }), h);
    expect(d.status).toBe(201);
    const stored = await db.sql`SELECT count(*)::int AS n FROM idempotency_keys WHERE idem_key = 'retry-me-1'`;
    expect(stored[0].n).toBe(2);
  });

  it('orders belong to their key: another key gets 404 and cannot modify or cancel', async () => {
    const o = (await (await call(ALICE, 'POST', '/api/orders', limitBuy({ price: px(3) }))).json()) as any;
    expect((await call(BOB, 'GET', `/api/orders/${o.order_id}`)).status).toBe(404);
    expect((await call(BOB, 'PUT', `/api/orders/${o.order_id}`, { price: px(4) })).status).toBe(404);
    expect((await call(BOB, 'DELETE', `/api/orders/${o.order_id}`)).status).toBe(404);
    const bobs = (await (await call(BOB, 'GET', '/api/orders')).json()) as { orders: any[] };
    expect(bobs.orders.some((x) => x.order_id === o.order_id)).toBe(false);
  });

  it('refuses bad bodies with 400 naming the field, and places nothing', async () => {
    const before = ((await (await call(ALICE, 'GET', '/api/orders')).json()) as { orders: unknown[] }).orders.length;
    const cases: [unknown, string][] = [
      ['{not json', 'body'],
      [limitBuy({ quantity: '1' }), 'quantity'],
      [limitBuy({ quantity: -1 }), 'quantity'],
      [limitBuy({ quantity: 0.5 }), 'quantity'],
      [limitBuy({ quantity: 1e15 }), 'quantity'],
      [limitBuy({ price: 'ten' }), 'price'],
      [limitBuy({ price: 1e300 }), 'price'],
      [limitBuy({ colour: 'red' }), 'colour'],
      [limitBuy({ tradingsymbol: "INFY' OR 1=1 --" }), 'tradingsymbol'],
      [limitBuy({ tradingsymbol: 'NOSUCH' }), 'tradingsymbol'],
      [limitBuy({ order_type: 'SL', trigger_price: 5 }), 'trigger_price'],
      [limitBuy({ validity: 'TTL' }), 'validity_ttl'],
      [limitBuy({ tradingsymbol: option.symbol, exchange: 'NFO', quantity: option.lot + 1, product: 'NRML', price: 1 }), 'quantity'],
    ];
    for (const [body, field] of cases) {
      const r = await call(ALICE, 'POST', '/api/orders', body);
      const j = (await r.json()) as { field?: string; message: string };
      expect(r.status, JSON.stringify(body)).toBe(400);
      expect(j.field ?? j.message, JSON.stringify(body)).toContain(field);
    }
    const after = ((await (await call(ALICE, 'GET', '/api/orders')).json()) as { orders: unknown[] }).orders.length;
    expect(after).toBe(before);
  });

  it('a basket is all or none: one bad leg places nothing', async () => {
    const before = ((await (await call(ALICE, 'GET', '/api/orders')).json()) as { orders: unknown[] }).orders.length;
    const bad = await call(ALICE, 'POST', '/api/orders/basket', { orders: [limitBuy({ price: px(5) }), limitBuy({ quantity: -2 })] });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as any).field).toContain('quantity');
    expect(((await (await call(ALICE, 'GET', '/api/orders')).json()) as { orders: unknown[] }).orders.length).toBe(before);
    const good = await call(ALICE, 'POST', '/api/orders/basket', { orders: [limitBuy({ price: px(5) }), limitBuy({ price: px(6) })] });
    expect(good.status).toBe(201);
    expect(((await good.json()) as any).orders).toHaveLength(2);
  });

  it('closing a position slices it at the freeze quantity', async () => {
    // 2,000 units of a NIFTY option: above the 1,800 freeze, so the buy is autosliced too.
    const qty = Math.ceil(2000 / option.lot) * option.lot;
    const r = await call(ALICE, 'POST', '/api/orders', {
      variety: 'regular', exchange: 'NFO', tradingsymbol: option.symbol, transaction_type: 'BUY', quantity: qty, product: 'NRML',
      order_type: 'MARKET', market_protection: 100, autoslice: true,
    });
    expect(r.status).toBe(201);
    const placed = (await r.json()) as any;
    expect(placed.children.length).toBe(2);
    for (const c of placed.children) expect(c.order_id).toMatch(/^\d+$/);
    await until('the buy to fill completely', async () => {
      const p = (await (await call(ALICE, 'GET', '/api/positions')).json()) as any;
      return p.net.find((x: any) => x.tradingsymbol === option.symbol)?.quantity === qty;
    }, 30_000);
    const c = await call(ALICE, 'POST', '/api/positions/close', { symbol: option.symbol });
    expect(c.status).toBe(201);
    const closing = ((await c.json()) as any).orders as any[];
    expect(closing.length).toBe(2);
    for (const o of closing) expect(o.quantity).toBeLessThanOrEqual(1800);
    expect(closing.reduce((a, o) => a + o.quantity, 0)).toBe(qty);
  });

  it("a burst from two keys never puts more than 10 orders in any second, and neither key takes the whole budget", async () => {
    const fire = (key: string, i: number) => call(key, 'POST', '/api/orders', limitBuy({ price: px(10 + (i % 10)) }));
    const rs = await Promise.all(Array.from({ length: 30 }, (_, i) => fire(i % 2 === 0 ? ALICE : BOB, i)));
    const accepted = rs.filter((r) => r.status === 201).length;
    const refused = rs.filter((r) => r.status === 429);
    expect(accepted + refused.length).toBe(30);
    expect(refused.length).toBeGreaterThan(0);
    expect(Number(refused[0].headers.get('Retry-After'))).toBeGreaterThanOrEqual(1);
    // Every accepted order's acceptance time: no 1,000 ms window holds more than 10 of them.
    const rows = await db.sql`SELECT api_key, created_at FROM orders ORDER BY created_at`;
    const times = rows.map((x) => new Date(x.created_at as string).getTime());
    for (let i = 0; i < times.length; i++) {
      let n = 0;
      for (let j = i; j < times.length && times[j] - times[i] < 1000; j++) n++;
      expect(n).toBeLessThanOrEqual(10);
    }
    const perKey = new Map<string, number>();
    const t0 = times[times.length - 1] - 999;
    for (const x of rows) if (new Date(x.created_at as string).getTime() >= t0) perKey.set(x.api_key as string, (perKey.get(x.api_key as string) ?? 0) + 1);
    for (const n of perKey.values()) expect(n).toBeLessThan(10);
  });

  it('Idempotency-Key holds across a restart: the retry after it gets the same order', async () => {
    const h = { 'Idempotency-Key': 'survives-restart' };
    const first = (await (await call(BOB, 'POST', '/api/orders', limitBuy({ price: px(30) }), h)).json()) as any;
    await service.close();
    await startIt();
    const again = await call(BOB, 'POST', '/api/orders', limitBuy({ price: px(30) }), h);
    expect(again.status).toBe(201);
    expect(((await again.json()) as any).order_id).toBe(first.order_id);
    const n = await db.sql`SELECT count(*)::int AS n FROM orders WHERE api_key = 'bob' AND price_paise = ${Math.round(px(30) * 100)}`;
    expect(n[0].n).toBe(1);
  });
});
