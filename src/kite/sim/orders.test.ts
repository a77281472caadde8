/**
 * The simulator's order API as the official `kiteconnect` client sees it (only `root` pointed at
 * the simulator): placing, the order history, fills against the simulator's market, trades,
 * positions and funds, modifications and cancels, Kite's input errors, each fault switch, order
 * updates on the ticker and postbacks.
 *
 * Most tests run the market at rate 0, so the book a test reads is the book the order meets;
 * tests that need the market to trade through an order raise the rate once the order rests.
 */
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { KiteConnect } from 'kiteconnect';
import WebSocket from 'ws';
import { afterEach, describe, expect, it } from 'vitest';
import { until } from '../../../test/support/until.ts';
import { ModeCode } from './market.ts';
import { DEFAULT_REJECT_MESSAGE } from './order-faults.ts';
import { NO_PROTECTION_MESSAGE } from './orders.ts';
import type { KiteSegmentMargins } from './portfolio.ts';
import { type KiteOrderRow, type OrderUpdate, type Simulator, type SimulatorOptions, startSimulator } from './server.ts';

const KEY = 'simkey';
const OTHER_KEY = 'otherkey';
const TOKEN = 'simtoken';

type Kc = InstanceType<typeof KiteConnect>;
/** The client's typings lack market_protection and guid, which it sends all the same. */
type PlaceFields = Omit<Parameters<Kc['placeOrder']>[1], 'exchange' | 'transaction_type' | 'product' | 'order_type' | 'validity'> & {
  exchange: string;
  transaction_type: string;
  product: string;
  order_type: string;
  validity?: string;
  market_protection?: number;
  guid?: string;
};

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function sim(opts: SimulatorOptions = {}): Promise<Simulator> {
  const s = await startSimulator({ accessToken: TOKEN, rate: 0, seed: 5, ...opts });
  cleanups.push(() => s.close());
  return s;
}

function client(s: Simulator, apiKey = KEY, timeout?: number): Kc {
  const kc = new KiteConnect({ api_key: apiKey, root: s.apiUrl, ...(timeout === undefined ? {} : { timeout }) });
  kc.setAccessToken(TOKEN);
  return kc;
}

async function place(kc: Kc, fields: PlaceFields, variety = 'regular'): Promise<string> {
  const r = await kc.placeOrder(variety as never, fields as never);
  return r.order_id as string;
}

const buyMarket = (tradingsymbol: string, quantity: number): PlaceFields => ({
  exchange: 'NSE', tradingsymbol, transaction_type: 'BUY', quantity, product: 'MIS', order_type: 'MARKET', market_protection: -1,
});
const limit = (side: 'BUY' | 'SELL', tradingsymbol: string, quantity: number, pricePaise: number): PlaceFields => ({
  exchange: 'NSE', tradingsymbol, transaction_type: side, quantity, product: 'MIS', order_type: 'LIMIT', price: pricePaise / 100,
});

/** The instrument's live packet in full mode (prices in paise). */
function book(s: Simulator, tradingsymbol: string) {
  const row = s.instruments.findIndex((t) => t.exchange === 'NSE' && t.tradingsymbol === tradingsymbol);
  return s.market.tickOf(row, ModeCode.FULL);
}

/** The client types a segment's margins as the whole answer's shape. */
const equityOf = async (kc: Kc) => (await kc.getMargins('equity')) as unknown as KiteSegmentMargins;

const statuses = (rows: readonly { status: string }[]) => rows.map((r) => r.status);
const last = (s: Simulator, id: string): KiteOrderRow | undefined => s.orderHistory(id)?.at(-1);
const reachesStatus = (s: Simulator, id: string, status: string) =>
  until(() => `order ${id} ${status} (now ${last(s, id)?.status})`, () => last(s, id)?.status === status && last(s, id));

/** What an order of `qty` takes walking the asks, level by level: [qty, price paise][]. */
function walkAsks(s: Simulator, symbol: string, qty: number): [number, number][] {
  const out: [number, number][] = [];
  for (let k = 5; k < 10 && qty > 0; k++) {
    const l = book(s, symbol).depth[k];
    const q = Math.min(qty, l.quantity);
    out.push([q, l.price]);
    qty -= q;
  }
  return out;
}

/** A ticker connection's order updates. */
async function tickerUpdates(s: Simulator, apiKey: string): Promise<OrderUpdate[]> {
  const ws = new WebSocket(`${s.wsUrl}?api_key=${apiKey}&access_token=${TOKEN}`);
  const updates: OrderUpdate[] = [];
  ws.on('message', (data, isBinary) => {
    if (isBinary) return;
    const m = JSON.parse(String(data)) as { type: string; data: OrderUpdate };
    if (m.type === 'order') updates.push(m.data);
  });
  await once(ws, 'open');
  cleanups.push(() => ws.close());
  return updates;
}

describe('Kite simulator orders: the life of an order', () => {
  it('fills a MARKET order at once against the depth: history, trades, positions and funds', async () => {
    const s = await sim();
    const kc = client(s);
    const walk = walkAsks(s, 'INFY', 10);
    const id = await place(kc, { ...buyMarket('INFY', 10), tag: 'strat1', guid: 'g-1' });
    expect(id).toMatch(/^\d+$/);
    await reachesStatus(s, id, 'COMPLETE');

    const history = await kc.getOrderHistory(id);
    expect(statuses(history)).toEqual(['PUT ORDER REQ RECEIVED', 'VALIDATION PENDING', 'OPEN PENDING', 'OPEN', 'COMPLETE']);
    const done = history.at(-1)!;
    const value = walk.reduce((a, [q, p]) => a + q * p, 0);
    expect(done).toMatchObject({
      order_id: id, status: 'COMPLETE', exchange: 'NSE', tradingsymbol: 'INFY', transaction_type: 'BUY', order_type: 'MARKET',
      quantity: 10, filled_quantity: 10, pending_quantity: 0, cancelled_quantity: 0, average_price: value / 10 / 100,
      market_protection: -1, tag: 'strat1', tags: ['strat1'], guid: 'g-1', variety: 'regular', product: 'MIS',
    });
    expect(done.exchange_order_id).toMatch(/^\d+$/);
    // The client turns Kite's 'YYYY-MM-DD HH:MM:SS' into a Date.
    expect(done.order_timestamp).toBeInstanceOf(Date);

    const trades = await kc.getOrderTrades(id);
    expect(trades.map((t) => [t.quantity, Math.round(t.average_price * 100)])).toEqual(walk);
    expect(trades.every((t) => t.order_id === id && t.exchange_order_id === done.exchange_order_id)).toBe(true);
    expect((await kc.getTrades()).map((t) => t.trade_id)).toEqual(trades.map((t) => t.trade_id));

    const orders = await kc.getOrders();
    expect(orders).toHaveLength(1);
    expect(orders[0]).toMatchObject({ order_id: id, status: 'COMPLETE', filled_quantity: 10 });

    const { net, day } = await kc.getPositions();
    expect(net).toHaveLength(1);
    expect(net[0]).toMatchObject({ tradingsymbol: 'INFY', product: 'MIS', quantity: 10, buy_quantity: 10, sell_quantity: 0, buy_value: value / 100, value: -value / 100 });
    const lastPaise = book(s, 'INFY').lastPrice;
    expect(Math.round(net[0].pnl * 100)).toBe(10 * lastPaise - value);
    expect(day).toEqual(net);

    const equity = await equityOf(kc);
    expect(equity.available.opening_balance).toBe(1_00_00_000);
    expect(equity.utilised.debits).toBeGreaterThan(0);
    expect(equity.net).toBeLessThan(equity.available.opening_balance);
    const all = await kc.getMargins();
    expect(all.equity).toEqual(equity);
    expect(all.commodity?.enabled).toBe(false);
  });

  it('rests a LIMIT away from the touch, modifies its price and quantity, then cancels it', async () => {
    const s = await sim();
    const kc = client(s);
    const bid = book(s, 'INFY').depth[0].price;
    const id = await place(kc, limit('BUY', 'INFY', 5, bid - 100));
    await reachesStatus(s, id, 'OPEN');
    expect((await equityOf(kc)).utilised.debits).toBeGreaterThan(0);

    expect(await kc.modifyOrder('regular', id, { price: (bid - 50) / 100, quantity: 10 } as never)).toEqual({ order_id: id });
    await until('the modification to land', () => s.orderHistory(id)!.some((r) => r.status === 'MODIFIED') && last(s, id)!.status === 'OPEN');
    expect(last(s, id)).toMatchObject({ price: (bid - 50) / 100, quantity: 10, pending_quantity: 10, modified: true });

    expect(await kc.cancelOrder('regular', id)).toEqual({ order_id: id });
    const cancelled = await reachesStatus(s, id, 'CANCELLED');
    expect(cancelled).toMatchObject({ filled_quantity: 0, pending_quantity: 0, cancelled_quantity: 10 });
    expect(statuses(await kc.getOrderHistory(id))).toEqual([
      'PUT ORDER REQ RECEIVED', 'VALIDATION PENDING', 'OPEN PENDING', 'OPEN',
      'MODIFY VALIDATION PENDING', 'MODIFY PENDING', 'MODIFIED', 'OPEN',
      'CANCEL PENDING', 'CANCELLED',
    ]);
    expect((await equityOf(kc)).utilised.debits).toBe(0);
    await expect(kc.cancelOrder('regular', id)).rejects.toMatchObject({ error_type: 'OrderException', message: 'Order cannot be cancelled as it is CANCELLED.' });
    await expect(kc.modifyOrder('regular', id, { price: 1 } as never)).rejects.toMatchObject({ error_type: 'OrderException' });
    expect(await kc.getTrades()).toEqual([]);
  });

  it('cancels what an IOC order cannot take at once', async () => {
    const s = await sim();
    const kc = client(s);
    const bid = book(s, 'INFY').depth[0].price;
    const id = await place(kc, { ...limit('BUY', 'INFY', 7, bid), validity: 'IOC' });
    const done = await reachesStatus(s, id, 'CANCELLED');
    expect(done).toMatchObject({ filled_quantity: 0, cancelled_quantity: 7, validity: 'IOC' });
    expect(statuses(s.orderHistory(id)!)).toEqual(['PUT ORDER REQ RECEIVED', 'VALIDATION PENDING', 'OPEN PENDING', 'OPEN', 'CANCELLED']);
  });

  it('fills a resting LIMIT at its price once the market trades through it, with no ticker connected', async () => {
    const s = await sim();
    const kc = client(s);
    const bid = book(s, 'INFY').depth[0].price;
    const id = await place(kc, limit('BUY', 'INFY', 1, bid));
    await reachesStatus(s, id, 'OPEN');
    expect(last(s, id)!.filled_quantity).toBe(0);
    // The market trades the rows with working orders even when no connection follows them.
    s.setRate(5000);
    await reachesStatus(s, id, 'COMPLETE');
    const trades = await kc.getOrderTrades(id);
    expect(trades.map((t) => [t.quantity, Math.round(t.average_price * 100)])).toEqual([[1, bid]]);
  });

  it('holds an SL-M in TRIGGER PENDING until the last price reaches its trigger, then fills it', async () => {
    const s = await sim();
    const kc = client(s);
    const trigger = book(s, 'INFY').lastPrice - 5;
    const id = await place(kc, { exchange: 'NSE', tradingsymbol: 'INFY', transaction_type: 'SELL', quantity: 3, product: 'MIS', order_type: 'SL-M', trigger_price: trigger / 100, market_protection: -1 });
    await reachesStatus(s, id, 'TRIGGER PENDING');
    s.setRate(5000);
    await reachesStatus(s, id, 'COMPLETE');
    expect(statuses(s.orderHistory(id)!)).toEqual(['PUT ORDER REQ RECEIVED', 'VALIDATION PENDING', 'OPEN PENDING', 'TRIGGER PENDING', 'OPEN', 'COMPLETE']);
    const { net } = await kc.getPositions();
    expect(net[0]).toMatchObject({ tradingsymbol: 'INFY', quantity: -3, sell_quantity: 3 });
  });

  it('keeps orders per api_key: another key neither sees nor touches them', async () => {
    const s = await sim();
    const mine = client(s, KEY);
    const theirs = client(s, OTHER_KEY);
    const bid = book(s, 'INFY').depth[0].price;
    const id = await place(mine, limit('BUY', 'INFY', 1, bid - 100));
    await reachesStatus(s, id, 'OPEN');
    expect(await theirs.getOrders()).toEqual([]);
    await expect(theirs.getOrderHistory(id)).rejects.toMatchObject({ error_type: 'InputException', message: "Couldn't find that `order_id`." });
    await expect(theirs.cancelOrder('regular', id)).rejects.toMatchObject({ error_type: 'InputException' });
    expect(s.orders(OTHER_KEY)).toEqual([]);
    expect(s.orders(KEY).map((o) => o.order_id)).toEqual([id]);
    expect(last(s, id)!.status).toBe('OPEN');
  });

  it('rejects an order its funds do not cover, as Kite\'s RMS does: answered with an id, then REJECTED', async () => {
    const s = await sim({ capitalPaise: 1000_00 });
    const kc = client(s);
    const id = await place(kc, { ...buyMarket('INFY', 10), product: 'CNC' });
    const rejected = await reachesStatus(s, id, 'REJECTED');
    expect(rejected.status_message).toMatch(/^Insufficient funds\. Required margin is [\d.]+ but available margin is 1000\.00\.$/);
    expect(statuses(s.orderHistory(id)!)).toEqual(['PUT ORDER REQ RECEIVED', 'VALIDATION PENDING', 'REJECTED']);
  });
});

describe('Kite simulator orders: input errors', () => {
  it('refuses bad placements with Kite\'s InputException and places nothing', async () => {
    const s = await sim();
    const kc = client(s);
    const fut = s.instruments.find((t) => t.instrumentType === 'FUT')!;
    const refused = (fields: PlaceFields, message: string | RegExp, variety = 'regular') =>
      expect(place(kc, fields, variety)).rejects.toMatchObject({ status: 'error', error_type: 'InputException', message });

    await refused(buyMarket('NOPE', 1), /NSE:NOPE is not in the instrument master/);
    await refused({ ...buyMarket(fut.tradingsymbol, 1), exchange: 'NFO', product: 'NRML' }, `Quantity should be a multiple of the lot size ${fut.lotSize} for ${fut.tradingsymbol}: send ${fut.lotSize}, ${2 * fut.lotSize}, ...`);
    await refused({ ...limit('BUY', 'INFY', 1, 0), price: undefined }, 'Price is required for LIMIT orders: send `price` above 0.');
    await refused({ ...buyMarket('INFY', 1), market_protection: undefined }, NO_PROTECTION_MESSAGE);
    await refused({ ...buyMarket('INFY', 1), market_protection: 0 }, NO_PROTECTION_MESSAGE);
    await refused({ ...buyMarket('INFY', 1), tag: 'x'.repeat(21) }, /^Tag length should not exceed 20 characters/);
    await refused(buyMarket('INFY', 0), 'Invalid `quantity`: send a whole number above 0.');
    await refused({ ...limit('BUY', 'INFY', 1, 150_003) }, /is not a multiple of the tick size 0\.05/);
    await refused(buyMarket('NIFTY 50', 1), /is an index and cannot be traded/);
    await refused(buyMarket('INFY', 1), /does not take co orders/, 'co');
    expect(NO_PROTECTION_MESSAGE).toBe('Market orders without market protection are not allowed via API');

    await expect(kc.modifyOrder('regular', '123', { price: 1 } as never)).rejects.toMatchObject({ error_type: 'InputException', message: "Couldn't find that `order_id`." });
    expect(s.orders()).toEqual([]);
  });

  it('refuses a wrong access token with Kite\'s TokenException', async () => {
    const s = await sim();
    const kc = new KiteConnect({ api_key: KEY, root: s.apiUrl });
    kc.setAccessToken('wrong');
    await expect(place(kc, buyMarket('INFY', 1))).rejects.toMatchObject({ error_type: 'TokenException', message: 'Incorrect `api_key` or `access_token`.' });
    await expect(kc.getOrders()).rejects.toMatchObject({ error_type: 'TokenException' });
    expect(s.orders()).toEqual([]);
  });

  it('refuses bad options and fault switches by name', async () => {
    await expect(startSimulator({ postbackUrl: 'http://127.0.0.1:1/pb' })).rejects.toThrow(/apiSecret/);
    await expect(startSimulator({ postbackUrl: 'ftp://x', apiSecret: 's' })).rejects.toThrow(/postbackUrl/);
    await expect(startSimulator({ acceptLatencyMs: -1 })).rejects.toThrow(/acceptLatencyMs/);
    const s = await sim();
    expect(() => s.orderFaults({ rateLimt: 1 } as never)).toThrow(/unknown switch "rateLimt"/);
    expect(() => s.orderFaults({ rateLimit: -1 })).toThrow(/rateLimit/);
    expect(s.orderFaults().rateLimit).toBe(0);
  });
});

describe('Kite simulator orders: fault switches', () => {
  it('dropPlaceResponse: the order is placed and fills, but its answer never comes', async () => {
    const s = await sim();
    const kc = client(s);
    expect(s.orderFaults({ dropPlaceResponse: 1 }).dropPlaceResponse).toBe(1);
    await expect(place(kc, buyMarket('INFY', 2))).rejects.toMatchObject({ error_type: 'NetworkException', message: expect.stringMatching(/^No response from server/) });
    const [lost] = await until('the unanswered order', () => s.orders(KEY).length === 1 && s.orders(KEY));
    await reachesStatus(s, lost.order_id, 'COMPLETE');
    expect((await kc.getOrders()).map((o) => o.order_id)).toEqual([lost.order_id]);
    // Once only: the next placement is answered.
    const id = await place(kc, buyMarket('INFY', 2));
    expect(s.orders(KEY).map((o) => o.order_id)).toEqual([lost.order_id, id]);
    expect(s.stats.droppedAnswers).toBe(1);
  });

  it('slowMs: answers come late, so a client with a short timeout gives up on an order that exists', async () => {
    const s = await sim();
    s.orderFaults({ slowMs: 400 });
    await expect(place(client(s, KEY, 100), buyMarket('INFY', 1))).rejects.toMatchObject({ error_type: 'NetworkException' });
    const [order] = await until('the order the client gave up on', () => s.orders(KEY).length === 1 && s.orders(KEY));
    await reachesStatus(s, order.order_id, 'COMPLETE');
    const t0 = performance.now();
    expect((await client(s).getOrders()).map((o) => o.order_id)).toEqual([order.order_id]);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(390);
    s.orderFaults({ slowMs: 0 });
  });

  it('rateLimit: the next N order requests get 429 "Too many requests" and do nothing; reads pass', async () => {
    const s = await sim();
    const kc = client(s);
    s.orderFaults({ rateLimit: 2 });
    expect(await kc.getOrders()).toEqual([]);
    for (let i = 0; i < 2; i++) {
      await expect(place(kc, buyMarket('INFY', 1))).rejects.toMatchObject({ error_type: 'NetworkException', message: 'Too many requests' });
    }
    expect(s.orders()).toEqual([]);
    const id = await place(kc, buyMarket('INFY', 1));
    expect(s.orders().map((o) => o.order_id)).toEqual([id]);
    // The status is Kite's 429, for clients that look at it.
    s.orderFaults({ rateLimit: 1 });
    const r = await fetch(`${s.apiUrl}/orders/regular/${id}`, { method: 'DELETE', headers: { Authorization: `token ${KEY}:${TOKEN}` } });
    expect(r.status).toBe(429);
  });

  it('tokenExpired: TokenException 403 (the client\'s session hook fires) for N requests, or until cleared', async () => {
    const s = await sim();
    const kc = client(s);
    let expiries = 0;
    kc.setSessionExpiryHook(() => expiries++);
    s.orderFaults({ tokenExpired: true });
    await expect(kc.getOrders()).rejects.toMatchObject({ error_type: 'TokenException', message: 'Incorrect `api_key` or `access_token`.' });
    await expect(place(kc, buyMarket('INFY', 1))).rejects.toMatchObject({ error_type: 'TokenException' });
    expect(expiries).toBe(2);
    expect(s.orderFaults({ tokenExpired: false }).tokenExpired).toBe(0);
    expect(await kc.getOrders()).toEqual([]);
    s.orderFaults({ tokenExpired: 1 });
    await expect(kc.getPositions()).rejects.toMatchObject({ error_type: 'TokenException' });
    expect(await kc.getPositions()).toEqual({ net: [], day: [] });
    expect(s.orders()).toEqual([]);
  });

  it('rejectNext: the exchange rejects the next order after OPEN PENDING, with the message set', async () => {
    const s = await sim();
    const kc = client(s);
    s.orderFaults({ rejectNext: 2 });
    const first = await place(kc, buyMarket('INFY', 1));
    expect(await reachesStatus(s, first, 'REJECTED')).toMatchObject({ status_message: DEFAULT_REJECT_MESSAGE, filled_quantity: 0, pending_quantity: 0 });
    expect(statuses(s.orderHistory(first)!)).toEqual(['PUT ORDER REQ RECEIVED', 'VALIDATION PENDING', 'OPEN PENDING', 'REJECTED']);
    s.orderFaults({ rejectMessage: '16388 : Order price is out of the day\'s range' });
    const second = await place(kc, buyMarket('INFY', 1));
    expect((await reachesStatus(s, second, 'REJECTED')).status_message).toBe('16388 : Order price is out of the day\'s range');
    const third = await place(kc, buyMarket('INFY', 1));
    await reachesStatus(s, third, 'COMPLETE');
  });

  it('takes the switches over HTTP too (POST /sim/order-faults), and shows the book (GET /sim/orders)', async () => {
    const s = await sim();
    const kc = client(s);
    const set = (body: unknown) => fetch(`${s.apiUrl}/sim/order-faults`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
    const ok = await set({ rateLimit: 1 });
    expect(ok.status).toBe(200);
    expect(((await ok.json()) as { data: { rateLimit: number } }).data.rateLimit).toBe(1);
    await expect(place(kc, buyMarket('INFY', 1))).rejects.toMatchObject({ error_type: 'NetworkException' });
    const now = (await (await fetch(`${s.apiUrl}/sim/order-faults`)).json()) as { data: { rateLimit: number } };
    expect(now.data.rateLimit).toBe(0);
    const bad = await set({ dropEverything: true });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { message: string }).message).toMatch(/unknown switch "dropEverything"/);

    const id = await place(kc, buyMarket('INFY', 1));
    await reachesStatus(s, id, 'COMPLETE');
    const listed = (await (await fetch(`${s.apiUrl}/sim/orders?api_key=${KEY}`)).json()) as { data: KiteOrderRow[] };
    expect(listed.data.map((o) => [o.order_id, o.status])).toEqual([[id, 'COMPLETE']]);
  });
});

describe('Kite simulator orders: updates and postbacks', () => {
  it('sends each status change to the ticker connections of the order\'s api_key only', async () => {
    const s = await sim();
    const mine = await tickerUpdates(s, KEY);
    const theirs = await tickerUpdates(s, OTHER_KEY);
    const id = await place(client(s, KEY), buyMarket('INFY', 4));
    await until('the COMPLETE update', () => mine.some((u) => u.order_id === id && u.status === 'COMPLETE'));
    expect(statuses(mine)).toEqual(statuses(s.orderHistory(id)!));
    expect(mine.at(-1)).toMatchObject({ user_id: 'SIM001', app_id: 1, unfilled_quantity: 0, filled_quantity: 4, placed_by: 'SIM001' });
    // The other key's own order: had the first order's updates reached that connection, they would have come first.
    const theirId = await place(client(s, OTHER_KEY), buyMarket('INFY', 1));
    await until('the other key\'s COMPLETE', () => theirs.some((u) => u.status === 'COMPLETE'));
    expect(new Set(theirs.map((u) => u.order_id))).toEqual(new Set([theirId]));
  });

  it('sends partial fills of a resting order as UPDATE', async () => {
    const s = await sim();
    const updates = await tickerUpdates(s, KEY);
    const bid = book(s, 'INFY').depth[0].price;
    const id = await place(client(s), limit('BUY', 'INFY', 500, bid));
    await reachesStatus(s, id, 'OPEN');
    s.setRate(20_000);
    await until('a partial fill', () => updates.some((u) => u.status === 'UPDATE'));
    const partial = updates.find((u) => u.status === 'UPDATE')!;
    expect(partial.filled_quantity).toBeGreaterThan(0);
    expect(partial.filled_quantity + partial.pending_quantity).toBe(500);
    expect(partial.unfilled_quantity).toBe(partial.pending_quantity);
  });

  it('posts back COMPLETE, UPDATE (a modification) and CANCELLED with a checksum that verifies', async () => {
    const received: (OrderUpdate & { checksum: string })[] = [];
    const server: Server = createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString('utf8')));
      req.on('end', () => {
        received.push(JSON.parse(body) as OrderUpdate & { checksum: string });
        res.end('ok');
      });
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    cleanups.push(() => new Promise((r) => server.close(r)));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/postback`;
    const s = await sim({ postbackUrl: url, apiSecret: 'shh', appId: 4242 });
    const kc = client(s);

    const done = await place(kc, buyMarket('INFY', 2));
    await until('the COMPLETE postback', () => received.some((p) => p.order_id === done && p.status === 'COMPLETE'));
    const bid = book(s, 'INFY').depth[0].price;
    const resting = await place(kc, limit('BUY', 'INFY', 1, bid - 100));
    await reachesStatus(s, resting, 'OPEN');
    await kc.modifyOrder('regular', resting, { price: (bid - 95) / 100 } as never);
    await until('the modification', () => s.orderHistory(resting)!.some((r) => r.status === 'MODIFIED'));
    await kc.cancelOrder('regular', resting);
    await until('the CANCELLED postback', () => received.some((p) => p.order_id === resting && p.status === 'CANCELLED'));

    // Only what Kite posts back: no OPEN, no PENDING.
    expect(received.map((p) => [p.order_id, p.status])).toEqual([[done, 'COMPLETE'], [resting, 'UPDATE'], [resting, 'CANCELLED']]);
    for (const p of received) {
      const expected = createHash('sha256').update(p.order_id + p.order_timestamp + 'shh').digest('hex');
      expect(p.checksum).toBe(expected);
      expect(p).toMatchObject({ user_id: 'SIM001', app_id: 4242 });
    }
    expect(received[0]).toMatchObject({ filled_quantity: 2, unfilled_quantity: 0 });
    expect(received[1]).toMatchObject({ price: (bid - 95) / 100, modified: true, unfilled_quantity: 1 });
    await until('the simulator to count the posts answered', () => s.stats.postbacks === 3);
    expect(s.stats.postbackFailures).toBe(0);
  });
});
