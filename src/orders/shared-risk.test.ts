/**
 * Per-key risk counters in Redis (database 9, a unique prefix per test), as two gateways use them:
 * one atomic check-and-count across both, given back when fewer orders were placed, moved by
 * fills and ends, rolled with the IST day, seeded once, and no change lost while Redis is away.
 */
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { until } from '../../test/support/until.ts';
import { OrderRejection, SharedStateUnavailable } from './errors.ts';
import { RedisRisk, riskRejection, type RiskLimits } from './shared-risk.ts';

const URL = 'redis://127.0.0.1:6379/9';
const LIMITS: RiskLimits = { maxOrdersPerDay: 5, maxOpenQty: 100 };
const INFY = 408065;
const TCS = 2953217;
const prefixes: string[] = [];
let a: Redis;
let b: Redis;

const prefix = (): string => {
  const p = `test:risk:${process.pid}:${randomBytes(4).toString('hex')}:`;
  prefixes.push(p);
  return p;
};

beforeAll(() => {
  a = new Redis(URL, { connectionName: 'risk-test-a' });
  b = new Redis(URL, { connectionName: 'risk-test-b' });
});

afterAll(async () => {
  for (const p of prefixes) {
    const keys = await a.keys(`${p}*`);
    if (keys.length > 0) await a.del(...keys);
  }
  await Promise.all([a.quit(), b.quit()]);
});

/** Two gateways' counters on one prefix. */
function pair(limits = LIMITS, clock?: () => number): [RedisRisk, RedisRisk] {
  const p = prefix();
  return [new RedisRisk({ redis: a, limits, prefix: p, clock }), new RedisRisk({ redis: b, limits, prefix: p, clock })];
}

describe('RedisRisk', () => {
  it('counts orders per day once across gateways racing: exactly the limit pass', async () => {
    const [ga, gb] = pair();
    const decisions = await Promise.all(Array.from({ length: 12 }, (_, i) => (i % 2 === 0 ? ga : gb).reserve('alice', 1, [{ token: INFY, qty: 1 }])));
    expect(decisions.filter((d) => d.ok)).toHaveLength(5);
    const refused = decisions.find((d) => !d.ok);
    expect(refused).toMatchObject({ ok: false, rule: 'max_orders_per_day', counts: { ordersToday: 5 } });
    expect(await gb.read('alice', INFY)).toEqual({ ordersToday: 5, openQty: 5 });
    // Another key is counted apart.
    expect(await ga.reserve('bob', 1, [{ token: INFY, qty: 1 }])).toMatchObject({ ok: true });
  });

  it('refuses open quantity past the limit whichever gateway holds the rest, and counts nothing when it refuses', async () => {
    const [ga, gb] = pair();
    const [x, y] = await Promise.all([ga.reserve('alice', 1, [{ token: INFY, qty: 60 }]), gb.reserve('alice', 1, [{ token: INFY, qty: 60 }])]);
    const refused = [x, y].filter((d) => !d.ok);
    expect(refused).toEqual([{ ok: false, rule: 'max_open_qty', token: INFY, counts: { ordersToday: 1, openQty: 60 } }]);
    expect(await ga.read('alice', INFY)).toEqual({ ordersToday: 1, openQty: 60 });
    // Another instrument has its own room; a basket is all or nothing over its instruments.
    expect(await gb.reserve('alice', 2, [{ token: TCS, qty: 50 }, { token: INFY, qty: 50 }])).toMatchObject({ ok: false, rule: 'max_open_qty', token: INFY });
    expect(await gb.read('alice', TCS)).toEqual({ ordersToday: 1, openQty: 0 });
    expect(await gb.reserve('alice', 2, [{ token: TCS, qty: 50 }, { token: TCS, qty: 50 }])).toMatchObject({ ok: true });
    expect(await gb.reserve('alice', 1, [{ token: TCS, qty: 1 }])).toMatchObject({ ok: false, rule: 'max_open_qty', counts: { openQty: 100 } });
  });

  it('gives back what was reserved and not placed, and moves open quantity with fills and ends', async () => {
    const [ga, gb] = pair();
    const d = await ga.reserve('alice', 3, [{ token: INFY, qty: 90 }]);
    if (!d.ok) throw new Error('expected a reservation');
    // Two of three slices placed (30 + 30): one order and 30 units given back.
    ga.settle(d.ticket, 2, new Map([[INFY, 60]]));
    await ga.flush();
    expect(await gb.read('alice', INFY)).toEqual({ ordersToday: 2, openQty: 60 });
    // A BUY fill of 20: 20 less pending, net +20: open unchanged.
    ga.adjust('alice', INFY, { pending: -20, net: 20 });
    await ga.flush();
    expect(await gb.read('alice', INFY)).toEqual({ ordersToday: 2, openQty: 60 });
    // The rest ends (cancelled): 40 pending gone; the position of 20 stays.
    ga.adjust('alice', INFY, { pending: -40 });
    // A SELL of 50 fills at once: short 30.
    ga.adjust('alice', INFY, { net: -50 });
    await ga.flush();
    expect(await gb.read('alice', INFY)).toEqual({ ordersToday: 2, openQty: 30 });
    // An iceberg's later leg: placed without a reservation, counted as it is placed.
    gb.adjust('alice', INFY, { pending: 10 }, 1);
    await gb.flush();
    expect(await ga.read('alice', INFY)).toEqual({ ordersToday: 3, openQty: 40 });
    // Pending never goes below zero.
    ga.adjust('alice', INFY, { pending: -1000 });
    await ga.flush();
    expect(await ga.read('alice', INFY)).toEqual({ ordersToday: 3, openQty: 30 });
  });

  it('counts orders afresh each IST day, and a reservation of yesterday given back today leaves today alone', async () => {
    const clock = { t: Date.parse('2025-01-06T18:29:00Z') }; // 23:59 IST
    const [ga] = pair(LIMITS, () => clock.t);
    const d = await ga.reserve('alice', 5, [{ token: INFY, qty: 5 }]);
    if (!d.ok) throw new Error('expected a reservation');
    expect(await ga.reserve('alice', 1, [{ token: INFY, qty: 1 }])).toMatchObject({ ok: false, rule: 'max_orders_per_day' });
    clock.t += 60_000; // 00:00 IST
    expect(await ga.read('alice', INFY)).toEqual({ ordersToday: 0, openQty: 5 });
    expect(await ga.reserve('alice', 2, [{ token: INFY, qty: 2 }])).toMatchObject({ ok: true });
    ga.settle(d.ticket, 0, new Map());
    await ga.flush();
    expect(await ga.read('alice', INFY)).toEqual({ ordersToday: 2, openQty: 2 });
  });

  it('seeds the counters from the order store once: the next gateway to start leaves them alone', async () => {
    const [ga, gb] = pair();
    expect(await ga.seed([{ key: 'alice', ordersToday: 3, tokens: [{ token: INFY, pending: 10, net: -25 }] }])).toBe(true);
    expect(await gb.seed([{ key: 'alice', ordersToday: 0, tokens: [] }])).toBe(false);
    expect(await gb.read('alice', INFY)).toEqual({ ordersToday: 3, openQty: 35 });
  });

  it('keeps changes made while Redis is away and sends them when it is back; refuses to reserve meanwhile', async () => {
    const relay = await tcpRelay();
    const flaky = new Redis(`redis://127.0.0.1:${relay.port}/9`, { enableOfflineQueue: false, maxRetriesPerRequest: 0, retryStrategy: () => 20 });
    flaky.on('error', () => {});
    const p = prefix();
    const g = new RedisRisk({ redis: flaky, limits: LIMITS, prefix: p });
    const check = new RedisRisk({ redis: a, limits: LIMITS, prefix: p });
    try {
      await until('the relayed client to connect', () => flaky.status === 'ready');
      await relay.down();
      await until('the client to see Redis gone', () => flaky.status !== 'ready');
      await expect(g.reserve('alice', 1, [{ token: INFY, qty: 1 }])).rejects.toBeInstanceOf(SharedStateUnavailable);
      g.adjust('alice', INFY, { pending: 7, net: 3 }, 1);
      g.adjust('alice', INFY, { pending: 1 });
      await relay.up();
      await g.flush();
      expect(await check.read('alice', INFY)).toEqual({ ordersToday: 1, openQty: 11 });
    } finally {
      flaky.disconnect();
      await relay.close();
    }
  });

  it('words a refusal as the checks do, naming what may still be sent', () => {
    const open = riskRejection({ ok: false, rule: 'max_open_qty', token: INFY, counts: { ordersToday: 1, openQty: 70 } }, LIMITS, 'INFY', 1, 40);
    expect(open).toBeInstanceOf(OrderRejection);
    expect(open).toMatchObject({ kind: 'order', field: 'quantity', rule: 'max_open_qty' });
    expect(open.message).toBe('quantity: 70 units of INFY are already open for this key (positions and open orders); with 40 more that passes the limit of 100; send at most 30');
    const day = riskRejection({ ok: false, rule: 'max_orders_per_day', token: 0, counts: { ordersToday: 5, openQty: 0 } }, LIMITS, 'INFY', 3, 3);
    expect(day).toMatchObject({ field: 'order', rule: 'max_orders_per_day' });
    expect(day.message).toMatch(/placed 5 orders today and this one places 3; the limit is 5 per IST day/);
  });
});

/** A TCP relay to the real Redis that can be taken down and brought back on the same port. */
async function tcpRelay() {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(6379, '127.0.0.1');
    sockets.add(client).add(upstream);
    client.pipe(upstream).pipe(client);
    const end = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    for (const s of [client, upstream]) {
      s.on('error', end);
      s.on('close', end);
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    down: () => new Promise<void>((r) => {
      server.close(() => r());
      for (const s of sockets) s.destroy();
    }),
    up: () => new Promise<void>((r) => server.listen(port, '127.0.0.1', r)),
    close: () => new Promise<void>((r) => {
      for (const s of sockets) s.destroy();
      if (server.listening) server.close(() => r());
      else r();
    }),
  };
}
