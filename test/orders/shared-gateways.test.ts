/**
 * Two gateways' order services over one PostgreSQL and one Redis, as ROLE=gateway runs them
 * (issue #15): each with its own Redis connections and database pool, its own paper broker and
 * its own sockets (recorded), sharing the account's rate budget (RedisRateLimiter), Idempotency-Key
 * claims (PgIdempotency), per-key risk counters (RedisRisk), order updates (OrderUpdateBus) and
 * the id space (IdSlotLease).
 *
 * Pinned: a burst spread over both never passes Kite's limits (read off the shared log itself, in
 * Redis's time), and the orders the two make in the same instants have distinct ids; an Idempotency-Key sent to both at once, or retried on the other, places one order
 * and answers alike; a key's orders per day and open quantity are counted over both, and freed by
 * a cancel or moved by a fill on either; an order's updates reach the key's sockets on the other
 * gateway, once. Redis database 9 with a prefix per test; a database of this file's own.
 */
import { randomBytes } from 'node:crypto';
import postgres from 'postgres';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig, type OrdersConfig } from '../../src/config.ts';
import { pgDb, pgOptions, type Db } from '../../src/core/db.ts';
import { migrate } from '../../src/core/migrate.ts';
import { IdempotencyConflict, OrderRejection } from '../../src/orders/errors.ts';
import { IdSlotLease } from '../../src/orders/id-slot.ts';
import type { PlaceRequest } from '../../src/orders/request.ts';
import { RateLimited } from '../../src/orders/service.ts';
import { PgIdempotency } from '../../src/orders/shared-idempotency.ts';
import { RedisRateLimiter } from '../../src/orders/shared-limits.ts';
import { RedisRisk } from '../../src/orders/shared-risk.ts';
import { OrderUpdateBus } from '../../src/orders/update-bus.ts';
import { createTestDatabase, type TestDatabase } from '../support/pg.ts';
import { Market, paperSession, type PaperSession } from '../support/paper-orders.ts';
import { until } from '../support/until.ts';

const REDIS_URL = 'redis://127.0.0.1:6379/9';

let t: TestDatabase;
const pools: postgres.Sql<any>[] = [];
const redises: Redis[] = [];
const prefixes: string[] = [];
const sessions: PaperSession[] = [];
const buses: OrderUpdateBus[] = [];
const leases: IdSlotLease[] = [];

beforeAll(async () => {
  t = await createTestDatabase('shared_gateways');
  await migrate(pgDb(t.sql));
}, 60_000);

afterEach(async () => {
  for (const s of sessions.splice(0)) await s.close();
  await Promise.all(buses.splice(0).map((b) => b.close()));
  await Promise.all(leases.splice(0).map((l) => l.close()));
});

afterAll(async () => {
  const admin = new Redis(REDIS_URL);
  for (const p of prefixes) {
    const keys = await admin.keys(`${p}*`);
    if (keys.length > 0) await admin.del(...keys);
  }
  await admin.quit();
  await Promise.all(redises.map((r) => r.quit()));
  await Promise.all(pools.map((p) => p.end({ timeout: 1 })));
  await t?.drop();
});

interface Gateway {
  s: PaperSession;
  risk: RedisRisk;
  redis: Redis;
}

/** Two gateways sharing a fresh Redis prefix and the file's database. */
async function gateways(market: Market, over: Partial<OrdersConfig>): Promise<{ a: Gateway; b: Gateway; prefix: string }> {
  const prefix = `test:gw:${process.pid}:${randomBytes(4).toString('hex')}:`;
  prefixes.push(prefix);
  const config = { ...loadConfig({}).orders, marketHours: 'always' as const, paperLatencyMs: 0, ...over };
  const one = async (): Promise<Gateway> => {
    const redis = new Redis(REDIS_URL);
    const sub = new Redis(REDIS_URL);
    redises.push(redis, sub);
    const pool = postgres(t.url, pgOptions({ max: 4 }));
    pools.push(pool);
    const db: Db = pgDb(pool);
    const risk = new RedisRisk({ redis, limits: config, prefix });
    const ids = await IdSlotLease.acquire({ redis, prefix });
    leases.push(ids);
    let bus: OrderUpdateBus | undefined;
    const s = await paperSession(market, db, config, undefined, {
      shared: {
        limits: new RedisRateLimiter({ redis, config, prefix }),
        idempotency: new PgIdempotency({ db }),
        risk,
        ids,
      },
      push: (local) => {
        bus = new OrderUpdateBus({ pub: redis, sub, prefix, local });
        return bus.push;
      },
    });
    await bus!.start();
    buses.push(bus!);
    sessions.push(s);
    return { s, risk, redis };
  };
  return { a: await one(), b: await one(), prefix };
}

function limitBuy(over: Partial<PlaceRequest> = {}): PlaceRequest {
  // Well under the market (1500): it rests OPEN.
  return {
    variety: 'regular', exchange: 'NSE', tradingsymbol: 'INFY', transaction_type: 'BUY', quantity: 1, product: 'CNC',
    order_type: 'LIMIT', price: 1450, validity: 'DAY', autoslice: false, ...over,
  };
}

/** Most timestamps (sorted) inside any half-open interval [x, x + span). */
function maxInAnyInterval(sorted: number[], span: number): number {
  let best = 0;
  let j = 0;
  for (let i = 0; i < sorted.length; i++) {
    while (j < sorted.length && sorted[j] < sorted[i] + span) j++;
    best = Math.max(best, j - i);
  }
  return best;
}

const ordersOf = async (key: string) => (await t.sql`SELECT order_id FROM orders WHERE api_key = ${key}`).map((r) => r.order_id as string);

describe('two gateways sharing the order path', () => {
  it('never pass the account\'s limits with a burst of orders spread over both', async () => {
    const m = new Market();
    m.tick('INFY', { price: 1500 });
    const { a, b, prefix } = await gateways(m, { ratePerSec: 10, ratePerMin: 15, ratePerDay: 5000 });
    const keys = ['burst-alice', 'burst-bob'];
    const results = await Promise.allSettled(Array.from({ length: 40 }, (_, i) => (i % 2 === 0 ? a : b).s.svc.place(keys[(i >> 1) % 2], limitBuy())));
    const placed = results.filter((r) => r.status === 'fulfilled');
    const refused = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    for (const r of refused) expect(r.reason).toBeInstanceOf(RateLimited);
    expect(placed.length).toBeGreaterThan(0);
    expect(placed.length).toBeLessThanOrEqual(15); // the minute's limit
    // The shared log holds every accepted request with Redis's time: no 1000 ms holds more than 10.
    const log = await a.redis.zrange(`${prefix}{orders}:rl:log`, '0', '-1', 'WITHSCORES');
    const times = log.filter((_, i) => i % 2 === 1).map(Number).sort((x, y) => x - y);
    expect(times).toHaveLength(placed.length);
    expect(maxInAnyInterval(times, 1000)).toBeLessThanOrEqual(10);
    // Both gateways placed some, none counted in its own memory, and every order is in the database
    // under an id of its own (orders are upserted by id: two gateways making one id would lose a row).
    expect((await ordersOf('burst-alice')).length + (await ordersOf('burst-bob')).length).toBe(placed.length);
    expect(a.s.svc.orders('burst-alice').length + a.s.svc.orders('burst-bob').length).toBeGreaterThan(0);
    expect(b.s.svc.orders('burst-alice').length + b.s.svc.orders('burst-bob').length).toBeGreaterThan(0);
    expect([a.s.svc.limiter.stats().minute, b.s.svc.limiter.stats().minute]).toEqual([0, 0]);
  });

  it('answers an Idempotency-Key sent to both at once, and retried on the other, with the same one order', async () => {
    const m = new Market();
    m.tick('INFY', { price: 1500 });
    const { a, b } = await gateways(m, {});
    const key = 'idem-alice';
    const req = limitBuy({ quantity: 3 });
    const body = Buffer.from(JSON.stringify(req));
    let runs = 0;
    const handler = (g: Gateway) => async () => {
      runs++;
      const r = await g.s.svc.place(key, req);
      return { status: 201, body: { order_id: r.order_id } };
    };
    const [ra, rb] = await Promise.all([a.s.svc.idempotent(key, 'buy-3-infy', body, handler(a)), b.s.svc.idempotent(key, 'buy-3-infy', body, handler(b))]);
    expect(runs).toBe(1);
    expect(rb).toEqual(ra);
    expect(await ordersOf(key)).toEqual([(ra.body as { order_id: string }).order_id]);
    // Retried later on either: the same answer, nothing placed.
    expect(await b.s.svc.idempotent(key, 'buy-3-infy', body, handler(b))).toEqual(ra);
    expect(await a.s.svc.idempotent(key, 'buy-3-infy', body, handler(a))).toEqual(ra);
    expect(runs).toBe(1);
    // Another body under the key: 409, on either gateway.
    await expect(b.s.svc.idempotent(key, 'buy-3-infy', Buffer.from('{"quantity":4}'), handler(b))).rejects.toBeInstanceOf(IdempotencyConflict);
    expect(await ordersOf(key)).toHaveLength(1);
  });

  it('counts a key\'s open quantity and orders per day over both, freed by a cancel and raised by a modification on either', async () => {
    const m = new Market();
    m.tick('INFY', { price: 1500 });
    const { a, b } = await gateways(m, { maxOpenQty: 100, maxOrdersPerDay: 4 });
    const key = 'risk-carol';
    const first = await a.s.svc.place(key, limitBuy({ quantity: 60 }));
    const refusal = await b.s.svc.place(key, limitBuy({ quantity: 60 })).catch((e: unknown) => e);
    expect(refusal).toBeInstanceOf(OrderRejection);
    expect(refusal).toMatchObject({ rule: 'max_open_qty' });
    expect((refusal as Error).message).toContain('60 units of INFY are already open for this key');
    expect((refusal as Error).message).toContain('send at most 40');
    const second = await b.s.svc.place(key, limitBuy({ quantity: 40 }));
    // A modification up is counted too (B's order is B's to modify).
    await expect(b.s.svc.modify(key, second.order_id, { quantity: 41 })).rejects.toMatchObject({ rule: 'max_open_qty' });
    // A's cancel frees its 60 for B.
    await a.s.svc.cancel(key, first.order_id);
    await until('the cancel to land', () => a.s.svc.order(key, first.order_id).status === 'CANCELLED');
    await a.risk.flush();
    expect(await b.risk.read(key, a.s.svc.order(key, first.order_id).token)).toEqual({ ordersToday: 2, openQty: 40 });
    await b.s.svc.modify(key, second.order_id, { quantity: 90 });
    await until('the modification to land', () => b.s.svc.order(key, second.order_id).quantity === 90);
    await b.risk.flush();
    expect(await a.risk.read(key, b.s.svc.order(key, second.order_id).token)).toEqual({ ordersToday: 2, openQty: 90 });
    // Orders per day: 2 placed (one refused, never counted); 2 more pass, the fifth does not.
    await a.s.svc.place(key, limitBuy({ quantity: 5 }));
    await b.s.svc.place(key, limitBuy({ quantity: 5 }));
    await expect(a.s.svc.place(key, limitBuy({ quantity: 1, tradingsymbol: 'TCS', price: 3000 }))).rejects.toMatchObject({ rule: 'max_orders_per_day' });
  });

  it('moves the open quantity with a fill on the gateway that works the order', async () => {
    const m = new Market();
    m.tick('INFY', { price: 1500, bids: [[1499.95, 10]], asks: [[1500.05, 50]] });
    const { a, b } = await gateways(m, { maxOpenQty: 100 });
    const key = 'fill-dave';
    const { order_id } = await a.s.svc.place(key, limitBuy({ quantity: 10, price: 1500.05 }));
    await until('the order to fill', () => a.s.svc.order(key, order_id).status === 'COMPLETE');
    await a.risk.flush();
    const token = a.s.svc.order(key, order_id).token;
    // Pending 0, net +10: still 10 open.
    expect(await b.risk.read(key, token)).toEqual({ ordersToday: 1, openQty: 10 });
    // Selling it back on the other gateway counts 10 pending beside the 10 held, then the fill nets both to 0.
    const sell = await b.s.svc.place(key, limitBuy({ transaction_type: 'SELL', quantity: 10, price: 1499.95 }));
    await until('the sell to fill', () => b.s.svc.order(key, sell.order_id).status === 'COMPLETE');
    await b.risk.flush();
    expect(await a.risk.read(key, token)).toEqual({ ordersToday: 2, openQty: 0 });
  });

  it('brings an order\'s updates to the key\'s sockets on the other gateway, once', async () => {
    const m = new Market();
    m.tick('INFY', { price: 1500 });
    const { a, b } = await gateways(m, {});
    const key = 'bus-erin';
    const { order_id } = await a.s.svc.place(key, limitBuy());
    await a.s.svc.cancel(key, order_id);
    await until('the cancel to land', () => a.s.svc.order(key, order_id).status === 'CANCELLED');
    const statusesAt = (s: PaperSession) => s.orders.filter((o) => o.key === key && o.row.order_id === order_id).map((o) => o.row.status as string);
    const want = a.s.svc.history(key, order_id).map((r) => r.status as string);
    expect(statusesAt(a.s)).toEqual(want);
    await until('every update at the other gateway', () => statusesAt(b.s).length === want.length);
    expect(statusesAt(b.s)).toEqual(want);
    // A marker from B heard back at A: every echo of A's own updates has arrived by then, and was dropped.
    const marker = await b.s.svc.place(key, limitBuy());
    await until('the marker at the first gateway', () => a.s.orders.some((o) => o.row.order_id === marker.order_id));
    expect(statusesAt(a.s)).toEqual(want);
  });
});
