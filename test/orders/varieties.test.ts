/**
 * Order varieties and the session's timers, through the order service with the paper broker: an
 * iceberg's legs placed one at a time, an autoslice's children and its partial failure on the rate
 * limit, after-market orders held until the open, DAY (and TTL) orders expired at the close, and
 * TTL validity. The parts are real (a FeedHub whose latest ticks the test writes, an OrderStore
 * over a migrated PGlite); see paper-broker.test.ts for the fills themselves.
 *
 * Session times come from an injected clock pinned to an IST instant. The service arms its
 * session timers from that clock (`nextIstWeekdayTime(now)`), so a clock pinned 200 ms before the
 * open or the close makes the timer fire 200 ms later in real time; the test waits for the state.
 * A pinned clock never passes the instant, so the timer re-arms every 200 ms: a state it misses
 * once (an order not yet OPEN) is caught on the next round.
 */
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import type { OrdersConfig } from '../../src/config.ts';
import { pgliteDb, type Db } from '../../src/core/db.ts';
import { migrate } from '../../src/core/migrate.ts';
import { OrderRejection } from '../../src/orders/errors.ts';
import { Status, type Order } from '../../src/orders/model.ts';
import type { PlaceRequest } from '../../src/orders/request.ts';
import { nextIstWeekdayTime, RateLimited, SESSION_CLOSE_MIN, SESSION_OPEN_MIN, type PlaceAnswer } from '../../src/orders/service.ts';
import { Market, paperSession, type PaperSession } from '../support/paper-orders.ts';
import { freshPglite } from '../support/pglite.ts';
import { until } from '../support/until.ts';

const KEY = 'paper-varieties';
/** A NIFTY weekly call of the test universe: lot 75, NIFTY's freeze 1,800. */
const OPT = 'NIFTY25D0926000CE';

/** Epoch ms of an IST wall-clock time ('2025-12-03T09:14:59.800'). 2025-12-03 is a Wednesday. */
const ist = (local: string): number => Date.parse(`${local}+05:30`);

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

/** An iceberg of NIFTY calls: `legs` legs of 150 (two lots). */
const iceberg = (over: Partial<PlaceRequest>): PlaceRequest =>
  req({ variety: 'iceberg', exchange: 'NFO', tradingsymbol: OPT, product: 'NRML', quantity: 450, iceberg_legs: 3, iceberg_quantity: 150, ...over });

async function place(s: Session, r: PlaceRequest): Promise<Order> {
  const { order_id } = await s.svc.place(KEY, r);
  return s.svc.order(KEY, order_id);
}

async function reach(s: Session, o: Order, status: string): Promise<void> {
  await until(() => `order ${o.id} ${status} (it is ${o.status}: ${o.statusMessage ?? ''})`, () => s.svc.order(KEY, o.id).status === status);
}

const statuses = (s: Session, o: Order): string[] => s.svc.history(KEY, o.id).map((r) => r.status as string);
const refusal = (p: Promise<unknown>): Promise<unknown> => p.then(() => null, (e: unknown) => e);
const OPENED = [Status.PUT_ORDER_REQ_RECEIVED, Status.VALIDATION_PENDING, Status.OPEN_PENDING, Status.OPEN];

// --- iceberg -------------------------------------------------------------------------------------

describe('iceberg orders', () => {
  it('places a marketable iceberg leg by leg, each after the previous completes, every leg after the first naming the first as parent, until the whole quantity is filled', async () => {
    const m = new Market();
    m.tick(`NFO:${OPT}`, { price: 100, bids: [[99.95, 1000]], asks: [[100.05, 1000]] });
    const s = await session(m);
    const { order_id } = await s.svc.place(KEY, iceberg({ price: 100.05 }));
    await until(() => `three legs complete (${s.svc.orders(KEY).map((o) => o.status).join(', ')})`,
      () => s.svc.orders(KEY).length === 3 && s.svc.orders(KEY).every((o) => o.status === Status.COMPLETE));

    const legs = s.svc.orders(KEY);
    // The answer names the first leg; the first leg has no parent (null, not its own id), as Kite.
    expect(legs[0].id).toBe(order_id);
    expect(legs.map((o) => o.parentId)).toEqual([null, order_id, order_id]);
    expect(legs.map((o) => [o.variety, o.quantity, o.filledQuantity])).toEqual([['iceberg', 150, 150], ['iceberg', 150, 150], ['iceberg', 150, 150]]);
    expect(legs.map((o) => o.meta)).toEqual([1, 2, 3].map((leg) => ({
      iceberg: { leg, legs: 3, leg_quantity: 150, total_quantity: 450, remaining_quantity: 450 - 150 * (leg - 1) },
    })));
    // Kite's rows carry the same, in every row of each leg's history.
    for (const o of legs) {
      for (const row of s.svc.history(KEY, o.id)) expect(row).toMatchObject({ parent_order_id: o.parentId, meta: o.meta, variety: 'iceberg' });
    }
    expect(s.svc.trades(KEY).reduce((a, t) => a + t.quantity, 0)).toBe(450);
    expect(s.svc.trades(KEY).every((t) => t.pricePaise === 100_05)).toBe(true);

    // One at a time: a leg's first row is pushed only after the previous leg's COMPLETE.
    const at = (id: string, status?: string) => s.orders.map((x) => x.row).findIndex((r) => r.order_id === id && (status === undefined || r.status === status));
    expect(at(legs[1].id)).toBeGreaterThan(at(legs[0].id, Status.COMPLETE));
    expect(at(legs[2].id)).toBeGreaterThan(at(legs[1].id, Status.COMPLETE));
  });

  it('works one resting leg at a time and places no further leg once a working leg is cancelled', async () => {
    const m = new Market();
    m.tick(`NFO:${OPT}`, { price: 100, bids: [[99.95, 1000]], asks: [[100.05, 1000]] });
    const s = await session(m);
    const first = await place(s, iceberg({ price: 99 }));
    await reach(s, first, Status.OPEN);
    expect(s.svc.orders(KEY)).toHaveLength(1);

    // A trade through its price completes leg 1; leg 2 follows and rests.
    m.tick(`NFO:${OPT}`, { price: 99, traded: 200 });
    expect(first.status).toBe(Status.COMPLETE);
    const second = await until('leg 2', () => s.svc.orders(KEY)[1]);
    await reach(s, second, Status.OPEN);
    expect(second).toMatchObject({ parentId: first.id, filledQuantity: 0, meta: { iceberg: { leg: 2, remaining_quantity: 300 } } });

    await s.svc.cancel(KEY, second.id);
    await reach(s, second, Status.CANCELLED);
    m.tick(`NFO:${OPT}`, { price: 98.5, traded: 1000 });
    expect(s.svc.orders(KEY)).toHaveLength(2);
    expect(second).toMatchObject({ filledQuantity: 0, cancelledQuantity: 150 });
    expect(s.svc.trades(KEY).reduce((a, t) => a + t.quantity, 0)).toBe(150);
  });

  it('places no further leg when the leg being cancelled completes before the cancel lands', async () => {
    const m = new Market();
    m.tick(`NFO:${OPT}`, { price: 100, bids: [[99.95, 1000]], asks: [[100.05, 1000]] });
    const s = await session(m, { paperLatencyMs: 50 });
    const first = await place(s, iceberg({ price: 99 }));
    await reach(s, first, Status.OPEN);
    m.tick(`NFO:${OPT}`, { price: 99, traded: 150 });
    const second = await until('leg 2', () => s.svc.orders(KEY)[1]);
    await reach(s, second, Status.OPEN);

    const cancelling = s.svc.cancel(KEY, second.id);
    expect(second.status).toBe(Status.CANCEL_PENDING);
    m.tick(`NFO:${OPT}`, { price: 99, traded: 150 });
    expect(second.status).toBe(Status.COMPLETE);
    await cancelling;
    // A marker placed now arrives after the cancel (the same latency, timers in order); a third
    // leg would have been recorded at once when leg 2 completed.
    const marker = await place(s, req({ price: 1400, quantity: 1 }));
    await reach(s, marker, Status.OPEN);
    expect(s.svc.orders(KEY).map((o) => o.id)).toEqual([first.id, second.id, marker.id]);
    expect(s.svc.trades(KEY).reduce((a, t) => a + t.quantity, 0)).toBe(300);
  });

  // The legs still to come are rebuilt at start from the stored legs' meta.iceberg
  // (OrderService.resumeIcebergs): the working leg completes after the restart and the next follows.
  it('places the remaining legs of an iceberg whose leg was working across a restart', async () => {
    const m = new Market();
    m.tick(`NFO:${OPT}`, { price: 100, bids: [[99.95, 1000]], asks: [[100.05, 1000]] });
    const s1 = await session(m);
    const first = await place(s1, iceberg({ price: 99 }));
    await reach(s1, first, Status.OPEN);
    await s1.close();

    const s2 = await session(m);
    m.tick(`NFO:${OPT}`, { price: 99, traded: 150 });
    expect(s2.svc.order(KEY, first.id).status).toBe(Status.COMPLETE);
    // Leg 2 is recorded as soon as leg 1 completes (see the cases above).
    expect(s2.svc.orders(KEY)).toHaveLength(2);
  });
});

// --- autoslice -----------------------------------------------------------------------------------

describe('autoslice', () => {
  const big = (over: Partial<PlaceRequest> = {}): PlaceRequest =>
    req({ exchange: 'NFO', tradingsymbol: OPT, product: 'NRML', price: 99, quantity: 4500, autoslice: true, ...over });

  it('slices an option order above the freeze into children of at most the freeze, the first child answering as the order', async () => {
    const m = new Market();
    m.tick(`NFO:${OPT}`, { price: 100, bids: [[99.95, 1000]], asks: [[100.05, 1000]] });
    const s = await session(m);
    // Without autoslice, above the freeze is refused.
    expect(await refusal(s.svc.place(KEY, big({ autoslice: false })))).toMatchObject({ field: 'quantity', rule: 'freeze' });

    const answer = await s.svc.place(KEY, big());
    const orders = s.svc.orders(KEY);
    expect(answer).toEqual({ order_id: orders[0].id, children: orders.map((o) => ({ order_id: o.id })) });
    // Freeze 1,800 is 24 lots of 75: two full slices and the rest.
    expect(orders.map((o) => o.quantity)).toEqual([1800, 1800, 900]);
    expect(orders.map((o) => o.parentId)).toEqual([null, answer.order_id, answer.order_id]);
    for (const o of orders) {
      await reach(s, o, Status.OPEN);
      expect(statuses(s, o)).toEqual(OPENED);
      expect(s.svc.history(KEY, o.id).at(-1)).toMatchObject({ variety: 'regular', parent_order_id: o.parentId, pending_quantity: o.quantity, meta: {} });
    }
  });

  it('reports a child refused by the per-second rate limit in its place and places only the others', async () => {
    const m = new Market();
    m.tick(`NFO:${OPT}`, { price: 100, bids: [[99.95, 1000]], asks: [[100.05, 1000]] });
    const pinned = ist('2025-12-03T10:00:00'); // one second that never passes
    const s = await session(m, { ratePerSec: 2 }, () => pinned);

    const answer: PlaceAnswer = await s.svc.place(KEY, big());
    const orders = s.svc.orders(KEY);
    expect(orders.map((o) => o.quantity)).toEqual([1800, 1800]);
    expect(answer).toEqual({
      order_id: orders[0].id,
      children: [
        { order_id: orders[0].id },
        { order_id: orders[1].id },
        { error: { code: 429, error_type: 'NetworkException', message: expect.stringMatching(/^Too many orders: the account's limit of 2 orders per second is used up/), data: null } },
      ],
    });
    expect(orders[1].parentId).toBe(orders[0].id);

    // With every child refused there is no order to answer with: the whole request is refused.
    const none = await refusal(s.svc.place(KEY, big()));
    expect(none).toBeInstanceOf(RateLimited);
    expect(none).toMatchObject({ code: 'RATE_LIMITED' });
    expect(s.svc.orders(KEY)).toHaveLength(2);
  });
});

// --- the session ---------------------------------------------------------------------------------

describe('the session with the exchange\'s hours', () => {
  it('finds the next weekday open and close strictly after now, over weekends', () => {
    const open = (t: string) => nextIstWeekdayTime(ist(t), SESSION_OPEN_MIN);
    expect(open('2025-12-03T09:14:59.800')).toBe(ist('2025-12-03T09:15:00'));
    expect(open('2025-12-03T09:15:00')).toBe(ist('2025-12-04T09:15:00'));
    expect(open('2025-12-05T16:00:00')).toBe(ist('2025-12-08T09:15:00')); // Friday evening: Monday
    expect(open('2025-12-06T09:00:00')).toBe(ist('2025-12-08T09:15:00')); // Saturday
    expect(nextIstWeekdayTime(ist('2025-12-03T15:29:59.800'), SESSION_CLOSE_MIN)).toBe(ist('2025-12-03T15:30:00'));
  });

  it('holds an after-market order as AMO REQ RECEIVED out of hours, unmatched by crossing trades, and refuses a regular one then', async () => {
    const m = new Market();
    m.tick('INFY', { price: 1500, bids: [[1499.95, 100]], asks: [[1500.05, 100]] });
    const evening = ist('2025-12-03T16:00:00');
    const s = await session(m, { marketHours: 'exchange' }, () => evening);

    const amo = await place(s, req({ variety: 'amo', price: 1500.05, quantity: 10 })); // marketable
    m.tick('INFY', { price: 1499, traded: 100, bids: [[1499, 100]], asks: [[1499.05, 100]] });
    expect(amo).toMatchObject({ status: Status.AMO_REQ_RECEIVED, filledQuantity: 0 });
    expect(statuses(s, amo)).toEqual([Status.AMO_REQ_RECEIVED]);
    expect(s.svc.broker.book.has(amo)).toBe(false);

    const regular = await refusal(s.svc.place(KEY, req({ price: 1499 })));
    expect(regular).toBeInstanceOf(OrderRejection);
    expect(regular).toMatchObject({ kind: 'input', field: 'variety', rule: 'market_hours' });
    expect(s.svc.orders(KEY)).toHaveLength(1);

    // A marker behind any arrival the broker might have had queued: the cancel goes the same way.
    await s.svc.cancel(KEY, amo.id);
    await reach(s, amo, Status.CANCELLED);
    expect(statuses(s, amo)).toEqual([Status.AMO_REQ_RECEIVED, Status.CANCEL_PENDING, Status.CANCELLED]);
    expect(s.svc.trades(KEY)).toHaveLength(0);
  });

  it('sends a stored after-market order to the exchange at the open, where it works as a regular order', async () => {
    const m = new Market();
    m.tick('INFY', { price: 1500, bids: [[1499.95, 100]], asks: [[1500.05, 100]] });
    const tuesdayEvening = ist('2025-12-02T18:00:00');
    const s1 = await session(m, { marketHours: 'exchange' }, () => tuesdayEvening);
    const amo = await place(s1, req({ variety: 'amo', price: 1499, quantity: 10 }));
    expect(amo.status).toBe(Status.AMO_REQ_RECEIVED);
    await s1.close();

    const beforeOpen = ist('2025-12-03T09:14:59.800');
    const s2 = await session(m, { marketHours: 'exchange' }, () => beforeOpen);
    const loaded = s2.svc.order(KEY, amo.id);
    expect(s2.svc.broker.book.has(loaded)).toBe(false);
    await reach(s2, loaded, Status.OPEN);
    expect(statuses(s2, loaded)).toEqual([Status.AMO_REQ_RECEIVED, Status.OPEN]);
    expect(s2.svc.broker.book.has(loaded)).toBe(true);

    m.tick('INFY', { price: 1499, traded: 50 });
    expect(loaded).toMatchObject({ status: Status.COMPLETE, filledQuantity: 10 });
  });

  it('expires working DAY and TTL orders at the close with a message saying so, stops included', async () => {
    const m = new Market();
    m.tick('INFY', { price: 1500, bids: [[1499.95, 100]], asks: [[1500.05, 100]] });
    const beforeClose = ist('2025-12-03T15:29:59.800');
    const s = await session(m, { marketHours: 'exchange' }, () => beforeClose);
    const day = await place(s, req({ price: 1499, quantity: 10 }));
    const stop = await place(s, req({ order_type: 'SL', trigger_price: 1510, price: 1511, quantity: 4 }));
    const ttl = await place(s, req({ price: 1498, quantity: 3, validity: 'TTL', validity_ttl: 30 }));

    for (const o of [day, stop, ttl]) await reach(s, o, Status.CANCELLED);
    expect(statuses(s, day)).toEqual([...OPENED, Status.CANCELLED]);
    expect(statuses(s, stop)).toEqual([...OPENED.slice(0, 3), Status.TRIGGER_PENDING, Status.CANCELLED]);
    expect(s.svc.history(KEY, day.id).at(-1)).toMatchObject({
      status: 'CANCELLED', status_message: 'DAY order expired at the close of the session', cancelled_quantity: 10, pending_quantity: 0,
    });
    expect(stop).toMatchObject({ statusMessage: 'DAY order expired at the close of the session', cancelledQuantity: 4 });
    expect(ttl).toMatchObject({ statusMessage: 'TTL order expired at the close of the session', cancelledQuantity: 3 });
    expect(s.svc.stats().working).toBe(0);
    expect(s.svc.trades(KEY)).toHaveLength(0);
  });
});

// --- TTL -----------------------------------------------------------------------------------------

describe('TTL validity', () => {
  it('records validity TTL with its minutes and arms the expiry, which cancels the order when the minutes pass', async () => {
    const m = new Market();
    m.tick('INFY', { price: 1500, bids: [[1499.95, 100]], asks: [[1500.05, 100]] });
    const s = await session(m);
    // A minute cannot be waited for: the timer accept arms is taken from setTimeout and run by hand.
    const timers = vi.spyOn(globalThis, 'setTimeout');
    let o: Order;
    let expiries: (() => void)[];
    try {
      o = await place(s, req({ price: 1499, quantity: 5, validity: 'TTL', validity_ttl: 1 }));
      await reach(s, o, Status.OPEN);
      // The expiry counts from placement: a minute less the moments since the order was created.
      expiries = timers.mock.calls.filter((c) => typeof c[1] === 'number' && c[1] > 59_000 && c[1] <= 60_000).map((c) => c[0] as () => void);
    } finally {
      timers.mockRestore();
    }
    expect(s.svc.history(KEY, o.id).at(-1)).toMatchObject({ status: 'OPEN', validity: 'TTL', validity_ttl: 1 });
    expect(expiries).toHaveLength(1);

    expiries[0]();
    await reach(s, o, Status.CANCELLED);
    expect(o).toMatchObject({ statusMessage: 'TTL of 1 min expired', cancelledQuantity: 5, filledQuantity: 0 });
    expect(statuses(s, o)).toEqual([...OPENED, Status.CANCELLED]);
  });
});
