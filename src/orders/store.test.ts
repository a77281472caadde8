/**
 * The order store against the real PostgreSQL at 127.0.0.1:5432 and the embedded PGlite, each
 * migrated by src/core/migrate.ts (sql/003_orders.sql on the partitioned and plain paths), through
 * a direct Db (dbStore). test/storage/transact.test.ts drives it through Storage's threads.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { pgDb, pgliteDb, type Db } from '../core/db.ts';
import { migrate } from '../core/migrate.ts';
import { createTestDatabase } from '../../test/support/pg.ts';
import { freshPglite } from '../../test/support/pglite.ts';
import { rupeesToPaise, Status, type Order, type Trade } from './model.ts';
import {
  dbStore, OrderStore, type IdempotencyRecord, type OrderEventRecord, type OrderStoreDb, type PositionRecord, type Statement,
} from './store.ts';

const T0 = Date.UTC(2025, 0, 6, 4, 0, 0, 123); // 09:30:00.123 IST

function order(over: Partial<Order> = {}): Order {
  return {
    id: '1736136000123001', key: 'alice', mode: 'paper', parentId: null, variety: 'regular', exchange: 'NSE', symbol: 'INFY',
    token: 408065, side: 'BUY', product: 'CNC', orderType: 'LIMIT', validity: 'DAY', validityTtl: 0, quantity: 10,
    disclosedQuantity: 0, pricePaise: 150_005, triggerPaise: 0, marketProtection: null, tag: null, guid: null,
    status: Status.OPEN, statusMessage: null, filledQuantity: 0, filledValuePaise: 0, cancelledQuantity: 0, modifications: 0,
    createdMs: T0, updatedMs: T0, exchangeMs: null, meta: null, ...over,
  };
}

function trade(n: number, over: Partial<Trade> = {}): Trade {
  return {
    tradeId: String(90_000_000 + n), orderId: '1736136000123001', key: 'alice', mode: 'paper', exchange: 'NSE', symbol: 'INFY',
    token: 408065, product: 'CNC', side: 'BUY', quantity: 1, pricePaise: 150_005, timeMs: T0 + n, ...over,
  };
}

function position(over: Partial<PositionRecord> = {}): PositionRecord {
  return {
    key: 'alice', mode: 'paper', token: 408065, product: 'CNC', exchange: 'NSE', symbol: 'INFY', buyQty: 0, buyValuePaise: 0,
    sellQty: 0, sellValuePaise: 0, dayBuyQty: 0, dayBuyValuePaise: 0, daySellQty: 0, daySellValuePaise: 0, updatedMs: T0, ...over,
  };
}

function event(o: Order, seq: number): OrderEventRecord {
  return { orderId: o.id, seq, status: o.status, atMs: o.updatedMs, key: o.key, mode: o.mode, row: { order_id: o.id, status: o.status, price: o.pricePaise / 100, meta: {} } };
}

const backends = [
  {
    name: 'PostgreSQL',
    open: async () => {
      const t = await createTestDatabase('order_store');
      const db = pgDb(t.sql);
      await migrate(db);
      return { db, close: () => t.drop() };
    },
  },
  {
    name: 'the embedded PGlite',
    open: async () => {
      const p = await freshPglite();
      const db = pgliteDb(p.db);
      await migrate(db);
      return { db, close: p.close };
    },
  },
];

describe.each(backends)('order store on $name', ({ open }) => {
  let db: Db;
  let close: () => Promise<void>;
  beforeAll(async () => { ({ db, close } = await open()); }, 60_000);
  afterAll(async () => { await close(); });
  beforeEach(async () => { await db.exec('TRUNCATE orders, order_events, trades, positions, idempotency_keys'); });

  const count = async (table: string) => (await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${table}`))[0].n;

  it('gives back every order, event, trade, position and idempotency answer as written', async () => {
    const store = new OrderStore(dbStore(db));
    const placed = order();
    const leg = order({
      id: '1736136000123002', parentId: placed.id, variety: 'iceberg', side: 'SELL', product: 'MIS', orderType: 'SL-M', validity: 'TTL',
      validityTtl: 5, quantity: 500, disclosedQuantity: 50, pricePaise: 0, triggerPaise: 149_990, marketProtection: -1, tag: 'scalp',
      guid: 'g-1', status: Status.TRIGGER_PENDING, statusMessage: 'waiting', modifications: 3, updatedMs: T0 + 7, exchangeMs: T0 + 5,
      meta: { iceberg: { leg: 1, legs: 10, leg_quantity: 50, total_quantity: 500 } }, mode: 'live',
    });
    const idem: IdempotencyRecord = {
      key: 'alice', idemKey: 'k-1', bodySha256: 'ab'.repeat(32), orderId: placed.id, status: 200,
      response: { status: 'success', data: { order_id: placed.id }, price: 1500.05 }, createdMs: T0 + 1,
    };
    const refused: IdempotencyRecord = { key: 'bob', idemKey: 'k-1', bodySha256: 'cd'.repeat(32), orderId: null, status: 400, response: null, createdMs: T0 + 2 };
    const pos = position({ buyQty: 3, buyValuePaise: 450_015, sellQty: 1, sellValuePaise: 150_100, dayBuyQty: 2, dayBuyValuePaise: 300_010, daySellQty: 1, daySellValuePaise: 150_100, updatedMs: T0 + 9 });
    await store.write({
      orders: [placed, leg], events: [event(placed, 1), event(leg, 1), event(leg, 2)], trades: [trade(1), trade(2, { mode: 'live', side: 'SELL', product: 'MIS', quantity: 7, pricePaise: 1 })],
      positions: [pos, position({ key: 'bob', mode: 'live', token: 256265, product: 'NRML', exchange: 'NFO', symbol: 'NIFTY25JANFUT' })],
      idempotency: [idem, refused],
    });
    const s = await store.load();
    expect(s.orders).toEqual([placed, leg]);
    expect(s.events).toEqual([event(placed, 1), event(leg, 1), event(leg, 2)]);
    expect(s.trades).toEqual([trade(1), trade(2, { mode: 'live', side: 'SELL', product: 'MIS', quantity: 7, pricePaise: 1 })]);
    expect(s.positions).toEqual(expect.arrayContaining([pos, position({ key: 'bob', mode: 'live', token: 256265, product: 'NRML', exchange: 'NFO', symbol: 'NIFTY25JANFUT' })]));
    expect(s.positions).toHaveLength(2);
    expect(s.idempotency).toEqual([idem, refused]);
  });

  it("keeps an order's and a position's newest state, also when one write gives a row twice", async () => {
    const store = new OrderStore(dbStore(db));
    const o = order();
    await store.write({ orders: [o], positions: [position()] });
    const half = order({ status: Status.OPEN, filledQuantity: 5, filledValuePaise: 750_025, updatedMs: T0 + 10 });
    const done = order({ status: Status.COMPLETE, filledQuantity: 10, filledValuePaise: 1_500_050, updatedMs: T0 + 20, exchangeMs: T0 + 1 });
    await store.write({ orders: [half, done], positions: [position({ buyQty: 5, buyValuePaise: 750_025 }), position({ buyQty: 10, buyValuePaise: 1_500_050, updatedMs: T0 + 20 })] });
    const s = await store.load();
    expect(s.orders).toEqual([done]);
    expect(s.positions).toEqual([position({ buyQty: 10, buyValuePaise: 1_500_050, updatedMs: T0 + 20 })]);
  });

  it('commits a write in one transaction: a refused row leaves nothing of the write', async () => {
    const store = new OrderStore(dbStore(db));
    // The last table written refuses (a trade of quantity 0 breaks trades' check): the order,
    // its event and the position written before it in the same transaction go too.
    const w = store.write({ orders: [order()], events: [event(order(), 1)], positions: [position({ buyQty: 1 })], trades: [trade(1), trade(2, { quantity: 0 })] });
    await expect(w).rejects.toMatchObject({ code: 'ORDER_STORE_WRITE_FAILED', details: { sqlstate: '23514' } });
    for (const table of ['orders', 'order_events', 'trades', 'positions']) expect(await count(table), table).toBe(0);
  });

  it('refuses a repeated trade id with DUPLICATE_TRADE, from another write or within one, storing nothing of it', async () => {
    const store = new OrderStore(dbStore(db));
    await store.write({ orders: [order({ filledQuantity: 1, filledValuePaise: 150_005 })], trades: [trade(1)] });
    const again = store.write({ orders: [order({ filledQuantity: 2, filledValuePaise: 300_010 })], trades: [trade(1)] });
    await expect(again).rejects.toMatchObject({ code: 'DUPLICATE_TRADE', details: { sqlstate: '23505', constraint: 'trades_pkey' } });
    await expect(store.write({ trades: [trade(2), trade(2)] })).rejects.toMatchObject({ code: 'DUPLICATE_TRADE' });
    const s = await store.load();
    expect(s.trades).toEqual([trade(1)]);
    expect(s.orders[0].filledQuantity).toBe(1);
  });

  it('refuses a repeated order event and idempotency key, each with its own code', async () => {
    const store = new OrderStore(dbStore(db));
    const idem: IdempotencyRecord = { key: 'alice', idemKey: 'k', bodySha256: 'x', orderId: null, status: 200, response: {}, createdMs: T0 };
    await store.write({ events: [event(order(), 1)], idempotency: [idem] });
    await expect(store.write({ events: [event(order(), 1)] })).rejects.toMatchObject({ code: 'DUPLICATE_ORDER_EVENT' });
    await expect(store.write({ idempotency: [idem] })).rejects.toMatchObject({ code: 'DUPLICATE_IDEMPOTENCY_KEY' });
  });

  it('commits writes in the order they were made, grouping those that pile up into few transactions', async () => {
    let transactions = 0;
    const inner = dbStore(db);
    const store = new OrderStore({ ...inner, transact: (st) => { transactions++; return inner.transact(st); } });
    const writes: Promise<void>[] = [];
    for (let i = 1; i <= 300; i++) {
      writes.push(store.write({
        orders: [order({ filledQuantity: i, filledValuePaise: i * 150_005, updatedMs: T0 + i })],
        events: [event(order({ updatedMs: T0 + i }), i)],
      }));
    }
    await Promise.all(writes);
    expect(transactions).toBeLessThan(10);
    const s = await store.load();
    expect(s.orders).toEqual([order({ filledQuantity: 300, filledValuePaise: 300 * 150_005, updatedMs: T0 + 300 })]);
    expect(s.events.map((e) => e.seq)).toEqual(Array.from({ length: 300 }, (_, i) => i + 1));
  });

  it('fails only the bad write of a group: the writes around it commit, in order', async () => {
    const store = new OrderStore(dbStore(db));
    await store.write({ trades: [trade(1)] });
    const [a, b, c] = [
      store.write({ orders: [order({ filledQuantity: 1 })], trades: [trade(2)] }),
      store.write({ orders: [order({ filledQuantity: 99 })], trades: [trade(1)] }), // a trade id already stored
      store.write({ orders: [order({ filledQuantity: 3 })], trades: [trade(3)] }),
    ];
    await expect(a).resolves.toBeUndefined();
    await expect(b).rejects.toMatchObject({ code: 'DUPLICATE_TRADE' });
    await expect(c).resolves.toBeUndefined();
    const s = await store.load();
    expect(s.trades.map((t) => t.tradeId)).toEqual([trade(1).tradeId, trade(2).tradeId, trade(3).tradeId]);
    expect(s.orders[0].filledQuantity).toBe(3);
  });

  it('keeps money exact: 1,000 fills at 0.05-rupee steps sum to the paisa after load', async () => {
    const store = new OrderStore(dbStore(db));
    let filledValuePaise = 0;
    let floatSteps = 0;
    const writes: Promise<void>[] = [];
    for (let i = 0; i < 1000; i++) {
      const pricePaise = rupeesToPaise((1500 + i * 0.05).toFixed(2)); // 1500.00, 1500.05, ... 1549.95
      filledValuePaise += pricePaise;
      if (i > 0) floatSteps += 0.05;
      const o = order({ quantity: 1000, filledQuantity: i + 1, filledValuePaise, updatedMs: T0 + i });
      writes.push(store.write({
        orders: [o], trades: [trade(i, { pricePaise })],
        positions: [position({ buyQty: i + 1, buyValuePaise: filledValuePaise, dayBuyQty: i + 1, dayBuyValuePaise: filledValuePaise })],
      }));
    }
    await Promise.all(writes);
    const expected = 1000 * 150_000 + 5 * (999 * 1000) / 2; // Σ (150000 + 5 i), i = 0..999
    expect(filledValuePaise).toBe(expected);
    expect(floatSteps).not.toBe(49.95); // the steps summed in float rupees are off (49.94999...): why amounts are paise
    const s = await store.load();
    expect(s.trades.reduce((a, t) => a + t.pricePaise, 0)).toBe(expected);
    expect(s.orders[0].filledValuePaise).toBe(expected);
    expect(s.positions[0].buyValuePaise).toBe(expected);
    const [sum] = await db.query<{ v: number }>('SELECT sum(price_paise)::bigint AS v FROM trades');
    expect(sum.v).toBe(expected);
  });

  it('refuses a fraction of a paisa rather than round it', async () => {
    const store = new OrderStore(dbStore(db));
    await expect(store.write({ trades: [trade(1, { pricePaise: 150_005.5 })] })).rejects.toMatchObject({ code: 'ORDER_STORE_WRITE_FAILED', details: { sqlstate: '22P02' } });
    expect(await count('trades')).toBe(0);
  });

  it('waits out storage restarting (nothing was written), then writes', async () => {
    const inner = dbStore(db);
    let refusals = 2;
    const flaky: OrderStoreDb = {
      ...inner,
      transact: (st: readonly Statement[]) => (refusals-- > 0
        ? Promise.reject(Object.assign(new Error('the writer thread is restarting'), { code: 'STORAGE_RESTARTING' }))
        : inner.transact(st)),
    };
    const store = new OrderStore(flaky);
    await store.write({ orders: [order()] });
    expect(refusals).toBe(-1);
    expect((await store.load()).orders).toEqual([order()]);
  });

  it('loads once the schema is there, waiting for the writer thread to migrate it', async () => {
    const inner = dbStore(db);
    let missing = 3;
    const early: OrderStoreDb = {
      ...inner,
      query: (text, params) => (missing-- > 0 ? Promise.reject(Object.assign(new Error('relation "orders" does not exist'), { code: '42P01' })) : inner.query(text, params)),
    } as OrderStoreDb;
    await new OrderStore(dbStore(db)).write({ orders: [order()] });
    expect((await new OrderStore(early).load()).orders).toEqual([order()]);
    const never: OrderStoreDb = { ...inner, query: () => Promise.reject(Object.assign(new Error('relation "orders" does not exist'), { code: '42P01' })) };
    await expect(new OrderStore(never, { loadWaitMs: 200 }).load()).rejects.toMatchObject({ code: 'ORDER_STORE_UNAVAILABLE' });
  });
});
