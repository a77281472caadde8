/**
 * Live orders end to end: the whole service with Kite credentials (the simulator standing in for
 * Kite, its order API included), a key marked live, and a strategy using the official
 * `KiteConnect` against our /kite. The order goes to "Kite" through the live broker, Kite's ticker
 * update comes back over our upstream connection, and our order book follows Kite's; the simulator
 * holds exactly one order for each one placed, even when its answer to the place is lost.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KiteConnect } from 'kiteconnect';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KeyStore, keysFilePath } from '../../src/auth/keys.ts';
import { loadConfig } from '../../src/config.ts';
import { silentLogger } from '../../src/log.ts';
import { startSimulator, type Simulator } from '../../src/kite/sim/server.ts';
import { startService, type Service } from '../../src/service.ts';
import { createTestDatabase, type TestDatabase } from '../support/pg.ts';
import { until } from '../support/until.ts';

let sim: Simulator;
let db: TestDatabase;
let dataDir: string;
let service: Service;
let live: InstanceType<typeof KiteConnect>;
let liveSecret: string;

function env(): Record<string, string> {
  return {
    KITE_API_KEY: 'sim-key', KITE_ACCESS_TOKEN: 'sim-token', KITE_WS_URL: sim.wsUrl, KITE_API_URL: sim.apiUrl,
    KITE_INSTRUMENTS: 'NSE:INFY,NSE:TCS', MARKET_HOURS: 'always', DATABASE_URL: db.url, DATA_DIR: dataDir, PORT: '0',
    WORKERS: '1', LIVE_POLL_MS: '500', KITE_TIMEOUT_MS: '1000',
  };
}

async function startIt(): Promise<void> {
  service = await startService(loadConfig(env()), silentLogger);
  live = new KiteConnect({ api_key: liveSecret, access_token: liveSecret, root: `http://127.0.0.1:${service.port}/kite` });
  await until('the instruments to tick', () => service.tokens.every((t) => service.orders.mark(t) !== null));
}

beforeAll(async () => {
  sim = await startSimulator({ apiKey: 'sim-key', accessToken: 'sim-token', rate: 2000, seed: 5 });
  db = await createTestDatabase('live_orders');
  dataDir = mkdtempSync(join(tmpdir(), 'live-orders-'));
  // A live key, made as `npm run keys -- create trader --live` makes it.
  const keys = await KeyStore.load({ configured: [], file: keysFilePath(dataDir) });
  liveSecret = (await keys.create('trader', 'live')).secret;
  await startIt();
});

afterAll(async () => {
  await service?.close();
  await sim?.close();
  await db?.drop();
  rmSync(dataDir, { recursive: true, force: true });
});

const buy = { exchange: 'NSE', tradingsymbol: 'INFY', transaction_type: 'BUY', quantity: 2, product: 'MIS', order_type: 'MARKET', market_protection: -1 };

describe('live orders through Kite (the simulator), with the official KiteConnect on /kite', () => {
  it('goes to Kite, and our order book follows Kite\'s updates to COMPLETE with its trades', async () => {
    const { order_id: id } = await live.placeOrder('regular', buy as never);
    await until('our order to complete from Kite\'s updates', async () => (await live.getOrderHistory(id)).some((r: any) => r.status === 'COMPLETE'), 20_000);
    const ours = service.orders.orderById(id)!;
    expect(ours.mode).toBe('live');
    expect(ours.brokerOrderId).toMatch(/^\d+$/);
    const atKite = sim.orders('sim-key').filter((o) => o.order_id === ours.brokerOrderId);
    expect(atKite).toHaveLength(1);
    expect(atKite[0]).toMatchObject({ status: 'COMPLETE', filled_quantity: 2 });
    const trades = await live.getOrderTrades(id);
    expect(trades.reduce((a: number, t: any) => a + t.quantity, 0)).toBe(2);
    // A live key's funds are the Kite account's.
    const direct = new KiteConnect({ api_key: 'sim-key', access_token: 'sim-token', root: sim.apiUrl });
    expect(Object.keys(await live.getMargins() as object).sort()).toEqual(Object.keys(await direct.getMargins() as object).sort());
    const stored = await db.sql`SELECT mode, broker_order_id, status FROM orders WHERE order_id = ${id}`;
    expect(stored[0]).toMatchObject({ mode: 'live', broker_order_id: ours.brokerOrderId, status: 'COMPLETE' });
  });

  it('never places twice: a lost answer to the place leaves exactly one order at Kite, found by our mark', async () => {
    const before = sim.orders('sim-key').length;
    sim.orderFaults({ dropPlaceResponse: 1 });
    const { order_id: id } = await live.placeOrder('regular', buy as never);
    await until('the order to be acknowledged by lookup', () => service.orders.orderById(id)?.brokerOrderId, 20_000);
    await until('our order to complete', () => service.orders.orderById(id)?.status === 'COMPLETE', 20_000);
    expect(sim.orders('sim-key').length).toBe(before + 1);
  });

  it('reconciles at start: an order Kite completed while we were down is brought up to date, one placed behind our back appears as external', async () => {
    const last = service.orders.mark(service.tokens.find((t) => service.orders.kiteSymbol(t) === 'TCS')!)!.lastPaise / 100;
    const far = Math.floor(last * 0.9 * 20) / 20;
    const { order_id: id } = await live.placeOrder('regular', { ...buy, tradingsymbol: 'TCS', order_type: 'LIMIT', price: far, market_protection: undefined } as never);
    await until('OPEN at Kite and here', () => service.orders.orderById(id)?.status === 'OPEN', 20_000);
    const kiteId = service.orders.orderById(id)!.brokerOrderId!;
    await service.close();
    // While the service is down: the order is made marketable at Kite, and another app places one.
    const direct = new KiteConnect({ api_key: 'sim-key', access_token: 'sim-token', root: sim.apiUrl });
    await direct.modifyOrder('regular', kiteId, { price: Math.ceil(last * 1.05 * 20) / 20 } as never);
    await until('Kite to complete it', () => sim.orders('sim-key').find((o) => o.order_id === kiteId)?.status === 'COMPLETE', 20_000);
    const { order_id: outside } = await direct.placeOrder('regular', { ...buy, tradingsymbol: 'TCS', order_type: 'LIMIT', price: far, market_protection: undefined } as never);

    await startIt();
    await until('our order brought up to date', () => service.orders.orderById(id)?.status === 'COMPLETE', 20_000);
    const report = await until('a reconciliation report', () => service.orders.reconciliation());
    expect(report.external).toContain(outside);
    expect(service.orders.orderByBrokerId(outside)).toMatchObject({ key: '', mode: 'live', meta: { external: true } });
    // Owned by no key: the live key does not see it.
    expect((await live.getOrders()).some((o: any) => o.order_id === outside)).toBe(false);
    const health = service.health() as { orders: { reconciliation: unknown } };
    expect(health.orders.reconciliation).toBeTruthy();
  });

  it('reconciles again after an upstream outage (Kite\'s connection cut and reconnected)', async () => {
    const first = await until('a reconciliation report', () => service.orders.reconciliation());
    const last = service.orders.mark(service.tokens.find((t) => service.orders.kiteSymbol(t) === 'INFY')!)!.lastPaise / 100;
    // Placed at Kite by another app, as the connection drops: reconciliation finds it.
    const outside = await new KiteConnect({ api_key: 'sim-key', access_token: 'sim-token', root: sim.apiUrl })
      .placeOrder('regular', { ...buy, order_type: 'LIMIT', price: Math.floor(last * 0.9 * 20) / 20, market_protection: undefined } as never);
    sim.dropAllConnections();
    const again = await until('a reconciliation after the reconnect', () => {
      const r = service.orders.reconciliation();
      return r !== null && r !== first ? r : null;
    }, 20_000);
    expect(again.external).toContain(outside.order_id);
  });

  // Last: an expired token stays expired until the service gets a new one.
  it('an expired access token: the order is rejected saying to renew it, later ones are refused with TokenException, and /ready says why', async () => {
    sim.orderFaults({ tokenExpired: true });
    const { order_id: id } = await live.placeOrder('regular', buy as never);
    await until('the order to be rejected', () => service.orders.orderById(id)?.status === 'REJECTED', 20_000);
    expect(service.orders.orderById(id)!.statusMessage).toContain('KITE_ACCESS_TOKEN');
    const err = await live.placeOrder('regular', buy as never).then(() => null, (e: unknown) => e as { error_type: string; message: string });
    expect(err).toMatchObject({ error_type: 'TokenException' });
    expect(err!.message).toContain('KITE_ACCESS_TOKEN');
    const ready = await fetch(`http://127.0.0.1:${service.port}/ready`);
    expect(ready.status).toBe(503);
    const body = (await ready.json()) as { failing: string[]; liveOrders?: string };
    expect(body.failing).toContain('liveOrders');
    expect(body.liveOrders).toContain('KITE_ACCESS_TOKEN');
    sim.orderFaults({ tokenExpired: false });
  });
});
