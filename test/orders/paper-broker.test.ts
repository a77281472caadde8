/**
 * The order service with the paper broker, at unit level but with real parts: a FeedHub over the
 * simulator universe whose latest ticks the test writes (price, traded volume, 5-level depth) and
 * delivers to the service as the hub does, a real OrderStore over a migrated PGlite, and the
 * service's pushes recorded. What is pinned: how MARKET, LIMIT, IOC, SL and SL-M orders fill
 * against the depth and the trades that follow, the status history in Kite's order, a fill that
 * beats a cancel, modifications and their limit, positions and realised P&L to the paisa, what a
 * restart gives back, duplicate trades, and the funds check.
 *
 * Arrivals, modifications and cancels travel on the broker's latency (0: a microtask; 50 ms in
 * the cancel race); the test waits for their state, never for a length of time. A tick's fills
 * happen inside service.tick, so they are checked as soon as it returns.
 */
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { OrdersConfig } from '../../src/config.ts';
import { pgliteDb, type Db } from '../../src/core/db.ts';
import { migrate } from '../../src/core/migrate.ts';
import { OrderRejection } from '../../src/orders/errors.ts';
import { averageRupees, Status, type Order, type Trade } from '../../src/orders/model.ts';
import type { PlaceRequest } from '../../src/orders/request.ts';
import { POSITION_PUSH_MS } from '../../src/orders/service.ts';
import { Market, paperSession, type PaperSession } from '../support/paper-orders.ts';
import { freshPglite } from '../support/pglite.ts';
import { until } from '../support/until.ts';

const KEY = 'paper-alice';

// --- the service ---------------------------------------------------------------------------------

let pg: Awaited<ReturnType<typeof freshPglite>>;
let db: Db;

beforeAll(async () => {
  pg = await freshPglite();
  db = pgliteDb(pg.db);
  await migrate(db);
}, 60_000);

afterAll(async () => {
  await pg?.close();
});

type Session = PaperSession;

const open: Session[] = [];

/** An OrderService over `market` and the file's database, started; closed after the test. */
async function session(market: Market, over: Partial<OrdersConfig> = {}, now?: () => number): Promise<Session> {
  const s = await paperSession(market, db, over, now);
  open.push(s);
  return s;
}

beforeEach(async () => {
  await db.exec('TRUNCATE orders, order_events, trades, positions, idempotency_keys');
});

afterEach(async () => {
  for (const s of open.splice(0)) await s.close();
});

function req(over: Partial<PlaceRequest>): PlaceRequest {
  return {
    variety: 'regular', exchange: 'NSE', tradingsymbol: 'INFY', transaction_type: 'BUY', quantity: 10, product: 'CNC',
    order_type: 'LIMIT', validity: 'DAY', autoslice: false, ...over,
  };
}

async function place(s: Session, r: Partial<PlaceRequest>): Promise<Order> {
  const { order_id } = await s.svc.place(KEY, req(r));
  return s.svc.order(KEY, order_id);
}

async function reach(s: Session, o: Order, status: string): Promise<void> {
  await until(() => `order ${o.id} ${status} (it is ${o.status}: ${o.statusMessage ?? ''})`, () => s.svc.order(KEY, o.id).status === status);
}

const statuses = (s: Session, o: Order): string[] => s.svc.history(KEY, o.id).map((r) => r.status as string);
const fills = (s: Session, o: Order): [qty: number, pricePaise: number][] => s.svc.orderTrades(KEY, o.id).map((t) => [t.quantity, t.pricePaise]);
const valueOf = (trades: readonly Trade[]): number => trades.reduce((a, t) => a + t.quantity * t.pricePaise, 0);

const RECEIVED = [Status.PUT_ORDER_REQ_RECEIVED, Status.VALIDATION_PENDING, Status.OPEN_PENDING];

// --- the cases -----------------------------------------------------------------------------------

describe('the order service with the paper broker', () => {
  it('walks the asks level by level for a protected MARKET BUY, one trade per level at its price, and completes', async () => {
    const m = new Market();
    m.tick('INFY', { price: 1500, bids: [[1499.95, 10]], asks: [[1500.05, 3], [1500.1, 4], [1500.2, 5], [1500.25, 10], [1500.3, 10]] });
    const s = await session(m);
    const o = await place(s, { order_type: 'MARKET', quantity: 9, market_protection: 2 });
    await reach(s, o, Status.COMPLETE);

    expect(fills(s, o)).toEqual([[3, 150005], [4, 150010], [2, 150020]]);
    const trades = s.svc.orderTrades(KEY, o.id);
    expect(new Set(trades.map((t) => t.tradeId)).size).toBe(3);
    expect(o.filledQuantity).toBe(9);
    expect(o.filledValuePaise).toBe(1_350_095);
    expect(o.filledValuePaise).toBe(valueOf(trades));
    // 1,350,095 paise / 9 = 150,010.555... paise: shown to 4 decimals of a rupee, half-even.
    const row = s.svc.history(KEY, o.id).at(-1)!;
    expect(row.average_price).toBe(1500.1056);
    expect(row.average_price).toBe(averageRupees(o.filledValuePaise, o.filledQuantity));
    expect(row).toMatchObject({ status: 'COMPLETE', filled_quantity: 9, pending_quantity: 0, cancelled_quantity: 0 });

    // Kite's order: received, validated, pending, open; an OPEN update per partial fill; complete.
    expect(statuses(s, o)).toEqual([...RECEIVED, Status.OPEN, Status.OPEN, Status.OPEN, Status.COMPLETE]);
    expect(s.svc.history(KEY, o.id).map((r) => r.filled_quantity)).toEqual([0, 0, 0, 0, 3, 7, 9]);
    // Every state was pushed to the key, in the same order.
    expect(s.orders.filter((p) => p.row.order_id === o.id).map((p) => [p.key, p.row.status])).toEqual(statuses(s, o).map((st) => [KEY, st]));
    expect(s.svc.stats().working).toBe(0);
  });

  it('rests what the depth within protection cannot fill as a LIMIT at the protection price, filled later on the volume traded at or through it', async () => {
    const m = new Market();
    // Protection 1 % of 1500.00: the order may walk to 1515.00; the 1520.00 level is beyond it.
    m.tick('INFY', { price: 1500, bids: [[1499.95, 10]], asks: [[1500.05, 2], [1510, 3], [1520, 50]] });
    const s = await session(m);
    const o = await place(s, { order_type: 'MARKET', quantity: 10, market_protection: 1 });
    await until('the walk to end', () => o.filledQuantity === 5 && s.svc.stats().working === 1);
    expect(fills(s, o)).toEqual([[2, 150005], [3, 151000]]);
    expect(o.status).toBe(Status.OPEN);
    expect(o.pricePaise).toBe(151_500);
    expect(s.svc.broker.book.has(o)).toBe(true);

    m.tick('INFY', { price: 1516, traded: 100 }); // above its price: no trade for it
    expect(o.filledQuantity).toBe(5);
    m.tick('INFY', { price: 1515, traded: 3 }); // at its price: what traded, 3
    expect(o.filledQuantity).toBe(8);
    m.tick('INFY', { price: 1514, traded: 1 }); // through it: still only what traded
    expect(o.filledQuantity).toBe(9);
    m.tick('INFY', { price: 1513, traded: 20 });
    expect(o.status).toBe(Status.COMPLETE);
    // Resting fills are at the order's own price, never better.
    expect(fills(s, o)).toEqual([[2, 150005], [3, 151000], [3, 151500], [1, 151500], [1, 151500]]);
    expect(o.filledValuePaise).toBe(valueOf(s.svc.orderTrades(KEY, o.id)));
    expect(s.svc.stats().working).toBe(0);
  });

  it('fills an IOC LIMIT for what the depth offers up to its price and cancels the rest', async () => {
    const m = new Market();
    m.tick('INFY', { price: 1500, bids: [[1499.95, 10]], asks: [[1500.05, 3], [1500.1, 4], [1500.15, 20]] });
    const s = await session(m);
    const o = await place(s, { validity: 'IOC', price: 1500.1, quantity: 10 });
    await reach(s, o, Status.CANCELLED);

    expect(fills(s, o)).toEqual([[3, 150005], [4, 150010]]);
    expect(o).toMatchObject({ filledQuantity: 7, cancelledQuantity: 3 });
    expect(o.statusMessage).toMatch(/IOC/);
    expect(statuses(s, o)).toEqual([...RECEIVED, Status.OPEN, Status.OPEN, Status.OPEN, Status.CANCELLED]);
    expect(s.svc.history(KEY, o.id).at(-1)).toMatchObject({ filled_quantity: 7, cancelled_quantity: 3, pending_quantity: 0 });
    expect(s.svc.stats().working).toBe(0);
  });

  it('fills a resting LIMIT only on ticks that trade at or through its price, bounded by the volume traded', async () => {
    const m = new Market();
    m.tick('INFY', { price: 1500, bids: [[1499.95, 10]], asks: [[1500.05, 50]] });
    const s = await session(m);
    const o = await place(s, { price: 1499, quantity: 10 });
    await reach(s, o, Status.OPEN);
    expect(o.filledQuantity).toBe(0);
    expect(s.svc.stats().working).toBe(1);

    m.tick('INFY', { price: 1499.5, traded: 100 });
    expect(o.filledQuantity).toBe(0);
    m.tick('INFY', { price: 1499, traded: 4 });
    expect(o).toMatchObject({ status: Status.OPEN, filledQuantity: 4 });
    m.tick('INFY', { price: 1498.5, traded: 50 });
    expect(o).toMatchObject({ status: Status.COMPLETE, filledQuantity: 10 });

    expect(fills(s, o)).toEqual([[4, 149900], [6, 149900]]);
    expect(statuses(s, o)).toEqual([...RECEIVED, Status.OPEN, Status.OPEN, Status.COMPLETE]);
    expect(s.svc.stats().working).toBe(0);
  });

  it('triggers an SL BUY when the last price rises to its trigger and fills it at most at its price', async () => {
    const m = new Market();
    m.tick('INFY', { price: 1500, close: 1495, bids: [[1499.95, 10]], asks: [[1500.05, 50]] });
    const s = await session(m);
    const o = await place(s, { order_type: 'SL', trigger_price: 1505, price: 1506, quantity: 10 });
    await reach(s, o, Status.TRIGGER_PENDING);

    m.tick('INFY', { price: 1504.95, traded: 10 });
    expect(o.status).toBe(Status.TRIGGER_PENDING);
    // At the trigger: it works as a LIMIT at 1506.00, takes the asks up to it, rests the rest; the
    // trigger tick's own volume is not offered to the part that rested during it.
    m.tick('INFY', { price: 1505, traded: 10, bids: [[1504.95, 10]], asks: [[1505.05, 3], [1505.5, 2], [1506.05, 100]] });
    expect(o).toMatchObject({ status: Status.OPEN, filledQuantity: 5 });
    expect(s.svc.broker.book.has(o)).toBe(true);
    m.tick('INFY', { price: 1506, traded: 10 });
    expect(o.status).toBe(Status.COMPLETE);

    expect(fills(s, o)).toEqual([[3, 150505], [2, 150550], [5, 150600]]);
    for (const [, p] of fills(s, o)) expect(p).toBeLessThanOrEqual(150_600);
    expect(statuses(s, o)).toEqual([...RECEIVED, Status.TRIGGER_PENDING, Status.OPEN, Status.OPEN, Status.OPEN, Status.COMPLETE]);
  });

  it('triggers an SL-M SELL when the last price falls to its trigger and walks the bids within its protection', async () => {
    const m = new Market();
    m.tick('TCS', { price: 3150, close: 3140, bids: [[3149.95, 10]], asks: [[3150.05, 10]] });
    const s = await session(m);
    const o = await place(s, { tradingsymbol: 'TCS', transaction_type: 'SELL', product: 'MIS', order_type: 'SL-M', trigger_price: 3145, market_protection: 2, quantity: 10 });
    await reach(s, o, Status.TRIGGER_PENDING);

    m.tick('TCS', { price: 3145.05, traded: 5 });
    expect(o.status).toBe(Status.TRIGGER_PENDING);
    m.tick('TCS', { price: 3145, traded: 5, bids: [[3144.95, 4], [3144.9, 3], [3100, 5]], asks: [[3145.05, 10]] });
    expect(o.status).toBe(Status.COMPLETE);
    // Protection: 3145.00 × 98 % = 3082.10, the lowest price it may sell at.
    expect(o.pricePaise).toBe(308_210);
    expect(fills(s, o)).toEqual([[4, 314495], [3, 314490], [3, 310000]]);
    expect(statuses(s, o)).toEqual([...RECEIVED, Status.TRIGGER_PENDING, Status.OPEN, Status.OPEN, Status.OPEN, Status.COMPLETE]);
  });

  it('lets a fill that lands before a cancel is processed win: the order completes and the late cancel changes nothing', async () => {
    const m = new Market();
    m.tick('INFY', { price: 1500, bids: [[1499.95, 10]], asks: [[1500.05, 50]] });
    const s = await session(m, { paperLatencyMs: 50 });
    const o = await place(s, { price: 1499, quantity: 10 });
    await reach(s, o, Status.OPEN);

    // The cancel is on its way (50 ms); a crossing trade lands first.
    const cancelling = s.svc.cancel(KEY, o.id);
    expect(o.status).toBe(Status.CANCEL_PENDING);
    m.tick('INFY', { price: 1499, traded: 25 });
    expect(o).toMatchObject({ status: Status.COMPLETE, filledQuantity: 10 });
    await cancelling;

    // A marker placed after the cancel arrives after it (the same latency, timers in order).
    const marker = await place(s, { price: 1490, quantity: 1 });
    await reach(s, marker, Status.OPEN);
    expect(o).toMatchObject({ status: Status.COMPLETE, filledQuantity: 10, cancelledQuantity: 0 });
    expect(statuses(s, o)).toEqual([...RECEIVED, Status.OPEN, Status.CANCEL_PENDING, Status.COMPLETE]);
    expect(s.orders.filter((p) => p.row.order_id === o.id).map((p) => p.row.status)).not.toContain(Status.CANCELLED);
    await expect(s.svc.cancel(KEY, o.id)).rejects.toMatchObject({ rule: 'not_open' });
  });

  it('fills a resting LIMIT modified to a marketable price against the depth', async () => {
    const m = new Market();
    m.tick('INFY', { price: 1500, bids: [[1499.95, 10]], asks: [[1500.05, 4], [1500.1, 6], [1500.15, 100]] });
    const s = await session(m);
    const o = await place(s, { price: 1499, quantity: 10 });
    await reach(s, o, Status.OPEN);

    await s.svc.modify(KEY, o.id, { price: 1500.1 });
    await reach(s, o, Status.COMPLETE);
    expect(fills(s, o)).toEqual([[4, 150005], [6, 150010]]);
    expect(o.modifications).toBe(1);
    expect(statuses(s, o)).toEqual([
      ...RECEIVED, Status.OPEN, Status.MODIFY_VALIDATION_PENDING, Status.MODIFY_PENDING, Status.MODIFIED, Status.OPEN, Status.OPEN, Status.COMPLETE,
    ]);
    expect(s.svc.history(KEY, o.id).at(-1)).toMatchObject({ modified: true, price: 1500.1 });
  });

  it('allows 25 modifications of an order and refuses the 26th with Kite\'s message', async () => {
    const m = new Market();
    m.tick('INFY', { price: 1500, bids: [[1499.95, 10]], asks: [[1500.05, 50]] });
    const s = await session(m);
    const o = await place(s, { price: 1490, quantity: 1 });
    await reach(s, o, Status.OPEN);

    for (let i = 1; i <= 25; i++) {
      await s.svc.modify(KEY, o.id, { price: (149_000 + 5 * i) / 100 });
      await until(`modification ${i} to apply`, () => o.status === Status.OPEN && o.pricePaise === 149_000 + 5 * i);
    }
    expect(o.modifications).toBe(25);

    const refused = await s.svc.modify(KEY, o.id, { price: 1489 }).then(() => null, (e: unknown) => e);
    expect(refused).toBeInstanceOf(OrderRejection);
    expect(refused).toMatchObject({ kind: 'order', rule: 'modifications' });
    expect((refused as Error).message).toMatch(/^Maximum allowed order modifications exceeded/);
    // Nothing of the refused modification happened.
    expect(o).toMatchObject({ status: Status.OPEN, modifications: 25, pricePaise: 149_125 });
    expect(s.svc.broker.book.has(o)).toBe(true);
  });

  it('keeps positions from fills: bought 10 at two prices, sold 4, net 6 and realised exact to the paisa, pushed to the key', async () => {
    const m = new Market();
    m.tick('INFY', { price: 1500, close: 1495, bids: [[1499.95, 10]], asks: [[1500.05, 7], [1500.1, 3], [1500.15, 100]] });
    const s = await session(m);
    const buy = await place(s, { order_type: 'MARKET', market_protection: 2, quantity: 10 });
    await reach(s, buy, Status.COMPLETE);
    expect(fills(s, buy)).toEqual([[7, 150005], [3, 150010]]);

    m.tick('INFY', { price: 1502, close: 1495, bids: [[1502, 10]], asks: [[1502.05, 10]] });
    const sell = await place(s, { transaction_type: 'SELL', price: 1502, quantity: 4 });
    await reach(s, sell, Status.COMPLETE);
    expect(fills(s, sell)).toEqual([[4, 150200]]);

    // Bought 1,500,065 paise (average 150,006.5), sold 4 at 150,200: realised 4 × 193.5 = 774 paise.
    const [p] = s.svc.kitePositions(KEY).net as Record<string, any>[];
    expect(p).toMatchObject({
      tradingsymbol: 'INFY', product: 'CNC', quantity: 6, buy_quantity: 10, buy_value: 15000.65, buy_price: 1500.065,
      sell_quantity: 4, sell_value: 6008, realised: 7.74,
      // pnl = 6008.00 − 15000.65 + 6 × 1502.00 = 19.35; unrealised = pnl − realised.
      pnl: 19.35, unrealised: 11.61,
    });
    expect(s.svc.funds(KEY).realisedPaise).toBe(774);

    const pushed = await until('a positions push with the sale', () =>
      s.positions.find((x) => x.key === KEY && x.rows.some((r) => r.quantity === 6 && r.sell_quantity === 4)));
    expect(pushed.rows).toHaveLength(1);
    expect(pushed.rows[0]).toMatchObject({ instrument_token: buy.token, quantity: 6, realised: 7.74 });
  });

  // The push interval is the only throttle: a service on an injected (here pinned) clock still
  // pushes after every fill.
  it('pushes positions after each fill while the service runs on a pinned clock', async () => {
    const m = new Market();
    m.tick('INFY', { price: 1500, bids: [[1499.95, 10]], asks: [[1500.05, 50]] });
    const pinned = Date.UTC(2025, 11, 3, 4, 0, 0); // a Wednesday, 09:30 IST
    const s = await session(m, {}, () => pinned);
    const o = await place(s, { product: 'MIS', price: 1499, quantity: 100 });
    await reach(s, o, Status.OPEN);
    const pushedQty = () => s.positions.filter((x) => x.key === KEY).map((x) => x.rows[0]?.quantity as number);

    m.tick('INFY', { price: 1499, traded: 1 });
    await until('a positions push with quantity 1', () => pushedQty().includes(1));
    m.tick('INFY', { price: 1499, traded: 1 });
    // Pushes come every POSITION_PUSH_MS while positions change: eight periods are plenty.
    await until(() => `a positions push with quantity 2 (pushed: ${pushedQty().join(', ')})`, () => pushedQty().includes(2), 8 * POSITION_PUSH_MS);
  });

  it('gives a restarted service the same orders, trades, history and positions, with the resting order back in the book', async () => {
    const m = new Market();
    m.tick('INFY', { price: 1500, bids: [[1499.95, 10]], asks: [[1500.05, 4], [1500.1, 3], [1500.2, 100]] });
    const s1 = await session(m);
    // A: 10 at 1500.10, of which the depth offers 7 within its price; the rest rests.
    const a = await place(s1, { price: 1500.1, quantity: 10 });
    await until('A to take the depth', () => a.filledQuantity === 7);
    const b = await place(s1, { price: 1490, quantity: 5 });
    await reach(s1, b, Status.OPEN);
    // A trade at 1490.00 of 5: A (the higher bid) takes its 3, B the other 2.
    m.tick('INFY', { price: 1490, traded: 5 });
    expect(a.status).toBe(Status.COMPLETE);
    expect(b).toMatchObject({ status: Status.OPEN, filledQuantity: 2 });
    await s1.close();

    const s2 = await session(m);
    expect(s2.svc.orders(KEY)).toHaveLength(2);
    expect(s2.svc.orders(KEY)).toEqual(s1.svc.orders(KEY));
    expect(s2.svc.trades(KEY)).toEqual(s1.svc.trades(KEY));
    expect(s2.svc.trades(KEY)).toHaveLength(4);
    for (const o of [a, b]) expect(s2.svc.history(KEY, o.id)).toEqual(s1.svc.history(KEY, o.id));
    expect(s2.svc.kitePositions(KEY)).toEqual(s1.svc.kitePositions(KEY));
    expect(s2.svc.kitePositions(KEY).net[0]).toMatchObject({ quantity: 12 });

    const b2 = s2.svc.order(KEY, b.id);
    expect(s2.svc.stats().working).toBe(1);
    expect(s2.svc.broker.book.has(b2)).toBe(true);
    // It works there: the next trade through its price fills it, with a trade id never used before.
    m.tick('INFY', { price: 1489, traded: 10 });
    expect(b2).toMatchObject({ status: Status.COMPLETE, filledQuantity: 5 });
    const ids = s2.svc.trades(KEY).map((t) => t.tradeId);
    expect(new Set(ids).size).toBe(5);
    expect(BigInt(ids[4])).toBeGreaterThan(BigInt(ids[3]));
  });

  it('refuses a repeated trade id in the store as DUPLICATE_TRADE', async () => {
    const m = new Market();
    m.tick('INFY', { price: 1500, bids: [[1499.95, 10]], asks: [[1500.05, 50]] });
    const s = await session(m);
    const o = await place(s, { order_type: 'MARKET', market_protection: 2, quantity: 1 });
    await reach(s, o, Status.COMPLETE);
    await s.close(); // every write of the fill has committed
    const count = async () => (await db.query<{ n: number }>('SELECT count(*)::int AS n FROM trades'))[0].n;
    expect(await count()).toBe(1);

    const [stored] = s.svc.trades(KEY);
    await expect(s.store.write({ trades: [stored] })).rejects.toMatchObject({ code: 'DUPLICATE_TRADE' });
    const fresh: Trade = { ...stored, tradeId: `${stored.tradeId}7`, quantity: 2 };
    await s.store.write({ trades: [fresh] });
    await expect(s.store.write({ trades: [fresh] })).rejects.toMatchObject({ code: 'DUPLICATE_TRADE' });
    expect(await count()).toBe(2);
  });

  it('refuses an order whose margin exceeds the paper capital as a margin refusal, but not a SELL that only reduces a held CNC position', async () => {
    const m = new Market();
    m.tick('INFY', { price: 1500, bids: [[1500, 20]], asks: [[1500, 20]] });
    const s = await session(m, { paperCapitalPaise: 20_000_00 });

    // CNC pays the full value: 20 × 1500.00 = 30,000.00 against 20,000.00.
    const big = await s.svc.place(KEY, req({ price: 1500, quantity: 20 })).then(() => null, (e: unknown) => e);
    expect(big).toBeInstanceOf(OrderRejection);
    expect(big).toMatchObject({ kind: 'margin', rule: 'margin' });
    expect((big as Error).message).toMatch(/^Insufficient funds/);
    expect(s.svc.orders(KEY)).toHaveLength(0);

    const buy = await place(s, { price: 1500, quantity: 10 });
    await reach(s, buy, Status.COMPLETE);
    // The position blocks 15,000.00: 5,000.00 left, less than a sale of 10 is worth.
    expect(s.svc.funds(KEY).availablePaise).toBe(5_000_00);

    // Selling more than is held opens a short: funds apply, and are short.
    const over = await s.svc.place(KEY, req({ transaction_type: 'SELL', price: 1500, quantity: 11 })).then(() => null, (e: unknown) => e);
    expect(over).toMatchObject({ kind: 'margin', rule: 'margin' });
    // Selling what is held only frees margin: no funds check.
    const sell = await place(s, { transaction_type: 'SELL', price: 1500, quantity: 10 });
    await reach(s, sell, Status.COMPLETE);
    expect(s.svc.kitePositions(KEY).net[0]).toMatchObject({ quantity: 0 });
    expect(s.svc.funds(KEY).availablePaise).toBe(20_000_00);
  });
});
