/**
 * A strategy written for Kite, unchanged, paper-trading against the whole service (src/service.ts
 * with the built-in simulator, PostgreSQL): the official `KiteConnect` pointed at our /kite places,
 * modifies and cancels orders and reads orders, history, trades, positions and margins; the
 * official `KiteTicker` on our /kite gets `order_update` for its own key's orders only.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KiteConnect } from 'kiteconnect';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.ts';
import { silentLogger } from '../../src/log.ts';
import { startService, type Service } from '../../src/service.ts';
import { createTestDatabase, type TestDatabase } from '../support/pg.ts';
import { officialTicker, type OfficialTicker } from '../support/kite-official.ts';
import { until } from '../support/until.ts';

const ALICE = 'alice-key-0123456789abc';
const BOB = 'bob-key-0123456789abcdef';

let db: TestDatabase;
let dataDir: string;
let service: Service;
let alice: InstanceType<typeof KiteConnect>;
let bob: InstanceType<typeof KiteConnect>;
const tickers: OfficialTicker[] = [];

function env(): Record<string, string> {
  return {
    DATABASE_URL: db.url, DATA_DIR: dataDir, PORT: '0', API_KEYS: `alice:${ALICE},bob:${BOB}`, WORKERS: '1',
    SIM_RATE: '2000', PAPER_LATENCY_MS: '5', KITE_INSTRUMENTS: 'NSE:INFY,NSE:RELIANCE,NSE:TCS', WRITER_BATCH_MS: '20',
  };
}

async function start(): Promise<void> {
  service = await startService(loadConfig(env()), silentLogger);
  const root = `http://127.0.0.1:${service.port}/kite`;
  alice = new KiteConnect({ api_key: ALICE, access_token: ALICE, root });
  bob = new KiteConnect({ api_key: BOB, access_token: BOB, root });
  // Depth for the paper broker: every followed instrument has ticked.
  await until('every instrument to tick', () => service.tokens.every((t) => service.orders.mark(t) !== null));
}

beforeAll(async () => {
  db = await createTestDatabase('kite_orders');
  dataDir = mkdtempSync(join(tmpdir(), 'kite-orders-'));
  await start();
});

afterAll(async () => {
  for (const t of tickers) t.disconnect();
  for (const w of raws) w.close();
  await service?.close();
  await db?.drop();
  rmSync(dataDir, { recursive: true, force: true });
});

/**
 * The official ticker keeps its socket in module state (one per import), so the second key listens
 * with a plain WebSocket, collecting the same text frames.
 */
function rawListener(key: string): Promise<{ ws: WebSocket; updates: Record<string, any>[] }> {
  const ws = new WebSocket(`ws://127.0.0.1:${service.port}/kite?api_key=${key}&access_token=${key}`);
  const updates: Record<string, any>[] = [];
  ws.on('message', (d: Buffer, bin: boolean) => {
    if (bin) return;
    const m = JSON.parse(d.toString()) as { type: string; data: Record<string, any> };
    if (m.type === 'order') updates.push(m.data);
  });
  raws.push(ws);
  return new Promise((resolve) => ws.on('open', () => resolve({ ws, updates })));
}
const raws: WebSocket[] = [];

function ticker(key: string): Promise<{ t: OfficialTicker; updates: Record<string, any>[] }> {
  const t = officialTicker({ api_key: key, access_token: key, root: `ws://127.0.0.1:${service.port}/kite`, reconnect: false });
  tickers.push(t);
  const updates: Record<string, any>[] = [];
  t.on('order_update', (o) => updates.push(o));
  return new Promise((resolve) => {
    t.on('connect', () => resolve({ t, updates }));
    t.connect();
  });
}

function lastPrice(symbol: string): number {
  const token = service.tokens.find((t) => service.orders.mark(t) !== null && symbolOf(t) === symbol)!;
  return service.orders.mark(token)!.lastPaise / 100;
}

function symbolOf(token: number): string {
  return service.orders.kiteSymbol(token);
}

const statuses = (rows: { status: string }[]) => rows.map((r) => r.status);

describe('paper trading through /kite with the official clients', () => {
  it('a protected MARKET order fills against the depth; history, trades, positions and order_update follow', async () => {
    const { updates } = await ticker(ALICE);
    const { updates: bobUpdates } = await rawListener(BOB);
    const placed = await alice.placeOrder('regular', {
      exchange: 'NSE', tradingsymbol: 'INFY', transaction_type: 'BUY', quantity: 3, product: 'MIS', order_type: 'MARKET',
      market_protection: -1, tag: 'strat1',
    } as never);
    expect(placed.order_id).toMatch(/^\d+$/);
    const id = placed.order_id;
    await until('the order to complete', async () => (await alice.getOrderHistory(id)).some((r: any) => r.status === 'COMPLETE'));
    const history = await alice.getOrderHistory(id);
    expect(statuses(history)).toEqual(expect.arrayContaining(['PUT ORDER REQ RECEIVED', 'VALIDATION PENDING', 'OPEN PENDING', 'OPEN', 'COMPLETE']));
    const last = history[history.length - 1];
    expect(last).toMatchObject({ order_id: id, tradingsymbol: 'INFY', exchange: 'NSE', transaction_type: 'BUY', quantity: 3, filled_quantity: 3, pending_quantity: 0, tag: 'strat1', tags: ['strat1'], variety: 'regular' });
    expect(last.average_price).toBeGreaterThan(0);

    const trades = await alice.getOrderTrades(id);
    expect(trades.reduce((a: number, t: any) => a + t.quantity, 0)).toBe(3);
    expect(new Set(trades.map((t: any) => t.trade_id)).size).toBe(trades.length);
    const all = await alice.getTrades();
    expect(all.map((t: any) => t.trade_id)).toEqual(expect.arrayContaining(trades.map((t: any) => t.trade_id)));

    const pos = await alice.getPositions();
    const infy = pos.net.find((p: any) => p.tradingsymbol === 'INFY' && p.product === 'MIS');
    expect(infy).toMatchObject({ quantity: 3, buy_quantity: 3 });
    expect(pos.day.find((p: any) => p.tradingsymbol === 'INFY')).toBeTruthy();

    await until('order_update COMPLETE on the ticker', () => updates.some((u) => u.order_id === id && u.status === 'COMPLETE'));
    expect(bobUpdates.filter((u) => u.order_id === id)).toEqual([]);

    const margins = (await alice.getMargins('equity' as never)) as any;
    expect(margins.net).toBeGreaterThan(0);
    expect(margins.utilised.debits).toBeGreaterThan(0);
  });

  it('a far LIMIT rests OPEN, is modified, then cancelled; another key cannot see or touch it', async () => {
    const px = Math.floor(lastPrice('RELIANCE') * 0.9 * 20) / 20;
    const { order_id: id } = await alice.placeOrder('regular', {
      exchange: 'NSE', tradingsymbol: 'RELIANCE', transaction_type: 'BUY', quantity: 2, product: 'CNC', order_type: 'LIMIT', price: px,
    } as never);
    await until('OPEN', async () => (await alice.getOrders()).some((o: any) => o.order_id === id && o.status === 'OPEN'));

    await expect(bob.getOrderHistory(id)).rejects.toMatchObject({ error_type: 'InputException' });
    await expect(bob.cancelOrder('regular', id)).rejects.toMatchObject({ error_type: 'InputException' });
    expect((await bob.getOrders()).some((o: any) => o.order_id === id)).toBe(false);

    const px2 = Math.round((px - 1) * 20) / 20;
    await alice.modifyOrder('regular', id, { price: px2, quantity: 4 } as never);
    await until('the modification to apply', async () => {
      const o = (await alice.getOrders()).find((x: any) => x.order_id === id) as any;
      return o.price === px2 && o.quantity === 4 && o.status === 'OPEN';
    });
    await alice.cancelOrder('regular', id);
    await until('CANCELLED', async () => (await alice.getOrders()).some((o: any) => o.order_id === id && o.status === 'CANCELLED'));
    const h = statuses(await alice.getOrderHistory(id));
    expect(h).toEqual(expect.arrayContaining(['MODIFY VALIDATION PENDING', 'MODIFY PENDING', 'MODIFIED', 'CANCEL PENDING', 'CANCELLED']));
    const row = (await alice.getOrders()).find((x: any) => x.order_id === id);
    expect(row).toMatchObject({ cancelled_quantity: 4, pending_quantity: 0, filled_quantity: 0 });
  });

  it('refuses bad orders with the InputException the client raises, naming the field', async () => {
    const count = (await alice.getOrders()).length;
    const base = { exchange: 'NSE', tradingsymbol: 'INFY', transaction_type: 'BUY', quantity: 1, product: 'MIS', order_type: 'LIMIT', price: 100 };
    const cases: [Record<string, unknown>, string][] = [
      [{ quantity: -5 }, 'quantity'],
      [{ quantity: 1.5 }, 'quantity'],
      [{ price: 100.033 }, 'price'],
      [{ order_type: 'MARKET', price: undefined }, 'market_protection'],
      [{ tradingsymbol: "INFY'; DROP TABLE orders;--" }, 'tradingsymbol'],
      [{ tag: 'x'.repeat(21) }, 'tag'],
      [{ tradingsymbol: 'NIFTY 50', exchange: 'NSE' }, 'tradingsymbol'],
    ];
    for (const [change, field] of cases) {
      const params: Record<string, unknown> = { ...base, ...change };
      for (const k of Object.keys(params)) if (params[k] === undefined) delete params[k];
      const err = await alice.placeOrder('regular', params as never).then(() => null, (e: unknown) => e as { error_type: string; message: string });
      expect(err, JSON.stringify(change)).not.toBeNull();
      expect(err!.error_type, JSON.stringify(change)).toBe('InputException');
      expect(err!.message, JSON.stringify(change)).toContain(field);
    }
    // Nothing was placed by any of them.
    expect((await alice.getOrders()).length).toBe(count);
  });

  it('a restart keeps every order: a resting LIMIT rests again and keeps matching', async () => {
    const px = Math.floor(lastPrice('TCS') * 0.9 * 20) / 20;
    const { order_id: id } = await alice.placeOrder('regular', {
      exchange: 'NSE', tradingsymbol: 'TCS', transaction_type: 'BUY', quantity: 1, product: 'CNC', order_type: 'LIMIT', price: px,
    } as never);
    await until('OPEN', async () => (await alice.getOrders()).some((o: any) => o.order_id === id && o.status === 'OPEN'));
    const before = await alice.getOrders();
    for (const t of tickers.splice(0)) t.disconnect();
    for (const w of raws.splice(0)) w.close();
    await service.close();
    await start();
    const after = await alice.getOrders();
    expect(after.map((o: any) => [o.order_id, o.status])).toEqual(before.map((o: any) => [o.order_id, o.status]));
    expect(service.orders.stats().working).toBeGreaterThanOrEqual(1);
    // Still working: it can be modified to a marketable price and then fills.
    const up = Math.ceil(lastPrice('TCS') * 1.01 * 20) / 20;
    await alice.modifyOrder('regular', id, { price: up } as never);
    await until('the re-rested order to fill', async () => (await alice.getOrders()).some((o: any) => o.order_id === id && o.status === 'COMPLETE'), 30_000);
  });
});
