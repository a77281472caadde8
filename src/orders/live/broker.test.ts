/**
 * The live broker against Kite's contract: the simulator's order API on loopback, driven by the
 * official KiteConnect client the broker builds, its order updates taken from the simulator's
 * ticker as the gateway would take them. The events the broker reports go to a recorder that
 * moves the order as the order service would (status, fills, Kite's id).
 *
 * The last block drives the update logic with hand-made rows through a stand-in client, for the
 * cases the simulator cannot stage: trades that cannot be read, an unanswered placement that is
 * certainly absent, Kite's rows in every order.
 */
import { KiteConnect } from 'kiteconnect';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { until } from '../../../test/support/until.ts';
import { startSimulator, type Simulator } from '../../kite/sim/server.ts';
import { createLogger } from '../../log.ts';
import type { BrokerEvents, ModifyFields } from '../broker.ts';
import { FINAL_STATUSES, IdSource, type Order, type OrderStatus } from '../model.ts';
import { LiveBroker, type LiveBrokerOptions } from './broker.ts';
import type { KiteClient } from './kite.ts';
import { markOf } from './mark.ts';

const API_KEY = 'livekey';
const ACCESS_TOKEN = 'livetoken';
const INFY = { exchange: 'NSE', symbol: 'INFY', token: 408065 };

/** Every call the broker made, and the order moved as the order service moves it. */
class Recorder implements BrokerEvents {
  readonly calls: { id: string; event: string; args: unknown[] }[] = [];
  readonly byId = new Map<string, Order>();
  readonly byKite = new Map<string, Order>();
  readonly lookup = { byBrokerId: (id: string) => this.byKite.get(id) ?? null, byId: (id: string) => this.byId.get(id) ?? null };

  add(o: Order): Order {
    this.byId.set(o.id, o);
    if (o.brokerOrderId) this.byKite.set(o.brokerOrderId, o);
    return o;
  }

  of(o: Order, event?: string): { event: string; args: unknown[] }[] {
    return this.calls.filter((c) => c.id === o.id && (event === undefined || c.event === event)).map(({ event: e, args }) => ({ event: e, args }));
  }

  private rec(o: Order, event: string, ...args: unknown[]): boolean {
    this.calls.push({ id: o.id, event, args });
    return !FINAL_STATUSES.has(o.status);
  }

  opened(o: Order, status: 'OPEN' | 'TRIGGER PENDING'): void {
    if (this.rec(o, 'opened', status)) o.status = status;
  }
  filled(o: Order, qty: number, pricePaise: number): void {
    if (!this.rec(o, 'filled', qty, pricePaise)) return;
    o.filledQuantity += qty;
    o.filledValuePaise += qty * pricePaise;
    if (o.filledQuantity >= o.quantity) o.status = 'COMPLETE';
    else if (o.status === 'TRIGGER PENDING') o.status = 'OPEN';
  }
  triggered(o: Order): void {
    if (this.rec(o, 'triggered')) o.status = 'OPEN';
  }
  cancelled(o: Order, message: string | null): void {
    if (!this.rec(o, 'cancelled', message)) return;
    o.status = 'CANCELLED';
    o.statusMessage = message;
  }
  rejected(o: Order, message: string): void {
    if (!this.rec(o, 'rejected', message)) return;
    o.status = 'REJECTED';
    o.statusMessage = message;
  }
  modifyRejected(o: Order, message: string): void {
    if (!this.rec(o, 'modifyRejected', message)) return;
    o.status = 'OPEN';
    o.statusMessage = message;
  }
  acknowledged(o: Order, brokerOrderId: string): void {
    this.rec(o, 'acknowledged', brokerOrderId);
    o.brokerOrderId = brokerOrderId;
    this.byKite.set(brokerOrderId, o);
  }
}

const ids = new IdSource();

function liveOrder(over: Partial<Order> = {}): Order {
  const now = Date.now();
  return {
    id: ids.next(), key: 'desk', mode: 'live', parentId: null, variety: 'regular', ...INFY, side: 'BUY', product: 'MIS',
    orderType: 'LIMIT', validity: 'DAY', validityTtl: 0, quantity: 10, disclosedQuantity: 0, pricePaise: 0, triggerPaise: 0,
    marketProtection: null, tag: 'caller-tag', guid: null, status: 'OPEN PENDING', statusMessage: null, filledQuantity: 0,
    filledValuePaise: 0, cancelledQuantity: 0, modifications: 0, createdMs: now, updatedMs: now, exchangeMs: null, meta: null, ...over,
  };
}

/** The service's `apply` of a modification, as far as the broker can see it. */
function applier(o: Order, ch: ModifyFields): () => void {
  return () => {
    o.quantity = ch.quantity;
    o.pricePaise = ch.pricePaise;
    o.triggerPaise = ch.triggerPaise;
    o.orderType = ch.orderType;
    o.validity = ch.validity;
    o.modifications++;
    o.status = 'OPEN';
  };
}

function change(o: Order, over: Partial<ModifyFields>): ModifyFields {
  return {
    quantity: o.quantity, pricePaise: o.pricePaise, triggerPaise: o.triggerPaise, orderType: o.orderType, validity: o.validity,
    disclosedQuantity: o.disclosedQuantity, marketProtection: o.marketProtection, ...over,
  };
}

function logLines(): { lines: Record<string, unknown>[]; log: ReturnType<typeof createLogger> } {
  const lines: Record<string, unknown>[] = [];
  return { lines, log: createLogger('debug', 'live', { write: (s: string) => { lines.push(JSON.parse(s) as Record<string, unknown>); } }) };
}

const statusOf = (o: Order): OrderStatus => o.status;

describe('LiveBroker against the Kite simulator', () => {
  let sim: Simulator;
  let kc: InstanceType<typeof KiteConnect>;
  let ticker: WebSocket;
  /** Every order update the ticker delivered, in arrival order. */
  const tickerRows: Record<string, unknown>[] = [];
  /** Where the ticker's updates go: the broker under test. */
  let route: ((row: Record<string, unknown>) => void) | null = null;
  const brokers: LiveBroker[] = [];

  beforeAll(async () => {
    sim = await startSimulator({ apiKey: API_KEY, accessToken: ACCESS_TOKEN, rate: 2000, seed: 12 });
    kc = new KiteConnect({ api_key: API_KEY, access_token: ACCESS_TOKEN, root: sim.apiUrl });
    ticker = new WebSocket(`${sim.wsUrl}?api_key=${API_KEY}&access_token=${ACCESS_TOKEN}`);
    ticker.on('message', (data, isBinary) => {
      if (isBinary) return;
      const m = JSON.parse(String(data)) as { type?: string; data?: Record<string, unknown> };
      if (m.type !== 'order' || m.data === undefined) return;
      tickerRows.push(m.data);
      route?.(m.data);
    });
    await new Promise<void>((resolve, reject) => {
      ticker.once('open', () => resolve());
      ticker.once('error', reject);
    });
  });

  afterEach(() => {
    route = null;
    for (const b of brokers.splice(0)) b.close();
    sim.orderFaults({ dropPlaceResponse: 0, slowMs: 0, rateLimit: 0, tokenExpired: false, rejectNext: 0 });
  });

  afterAll(async () => {
    ticker?.close();
    await sim?.close();
  });

  function broker(rec: Recorder, over: Partial<LiveBrokerOptions> = {}, withTicker = true): { b: LiveBroker; lines: Record<string, unknown>[] } {
    const { lines, log } = logLines();
    const b = new LiveBroker({
      apiUrl: sim.apiUrl, apiKey: API_KEY, accessToken: ACCESS_TOKEN, events: rec, timeoutMs: 2000, pollMs: 60_000,
      lookup: rec.lookup, log, backoff: { firstMs: 20, maxMs: 200 }, ...over,
    });
    brokers.push(b);
    if (withTicker) route = (row) => b.update(row, 'ticker');
    return { b, lines };
  }

  async function lastPaise(): Promise<number> {
    const q = await kc.getLTP([`${INFY.exchange}:${INFY.symbol}`]);
    return Math.round(q[`${INFY.exchange}:${INFY.symbol}`].last_price * 100);
  }

  /** A BUY LIMIT 10 % under the market, on the 5-paise grid: it rests. */
  async function restingBuy(rec: Recorder, over: Partial<Order> = {}): Promise<Order> {
    const price = Math.floor((await lastPaise()) * 0.9 / 5) * 5;
    return rec.add(liveOrder({ pricePaise: price, ...over }));
  }

  const atSim = (o: Order) => sim.orders(API_KEY).filter((r) => r.tag === markOf(o));

  it('places through Kite, is acknowledged, and follows its ticker updates to COMPLETE with fills equal to Kite\'s trades', async () => {
    const rec = new Recorder();
    const { b } = broker(rec);
    const o = rec.add(liveOrder({ orderType: 'MARKET', marketProtection: -1, quantity: 25 }));
    b.place(o);
    await until('the order COMPLETE', () => statusOf(o) === 'COMPLETE');
    await b.settled();
    const [row] = atSim(o);
    expect(row.tag).toBe(markOf(o));
    expect(rec.of(o, 'acknowledged')).toEqual([{ event: 'acknowledged', args: [row.order_id] }]);
    expect(rec.of(o, 'opened')).toEqual([{ event: 'opened', args: ['OPEN'] }]);
    const trades = await kc.getOrderTrades(row.order_id);
    expect(rec.of(o, 'filled').map((c) => c.args)).toEqual(trades.map((t) => [t.quantity, Math.round(t.average_price * 100)]));
    expect(o.filledQuantity).toBe(25);
    expect(rec.of(o).map((c) => c.event)).toEqual(['acknowledged', 'opened', ...trades.map(() => 'filled')]);
    expect(b.working).toBe(0);
    // The caller's own tag stays ours; Kite carries the mark.
    expect(o.tag).toBe('caller-tag');
  });

  it('reports each change once when the same rows come again, late and out of order', async () => {
    // A completed order's every row, from Kite's history and its ticker, fed to a fresh broker
    // twice over and newest first: the events are those of one pass.
    const first = new Recorder();
    const { b: b1 } = broker(first);
    const done = first.add(liveOrder({ orderType: 'MARKET', marketProtection: -1, quantity: 40 }));
    b1.place(done);
    await until('the first order COMPLETE', () => statusOf(done) === 'COMPLETE');
    const kiteId = done.brokerOrderId!;
    const rows = [...sim.orderHistory(kiteId)!, ...tickerRows.filter((r) => r.order_id === kiteId)] as unknown as Record<string, unknown>[];
    const trades = await kc.getOrderTrades(kiteId);

    for (const order of [(r: Record<string, unknown>[]) => [...r, ...r], (r: Record<string, unknown>[]) => [...r].reverse()]) {
      const rec = new Recorder();
      const { b } = broker(rec, {}, false);
      const o = rec.add({ ...liveOrder(), id: done.id, quantity: 40, orderType: 'MARKET', brokerOrderId: kiteId });
      for (const r of order(rows)) b.update(r, 'postback');
      await b.settled();
      const fills = rec.of(o, 'filled').map((c) => c.args);
      expect(fills).toEqual(trades.map((t) => [t.quantity, Math.round(t.average_price * 100)]));
      expect(rec.of(o, 'opened')).toHaveLength(1);
      expect(rec.of(o).filter((c) => c.event !== 'filled' && c.event !== 'opened')).toEqual([]);
      expect(o.status).toBe('COMPLETE');
      // An older row after the last: nothing.
      b.update(rows[0], 'ticker');
      await b.settled();
      expect(rec.of(o)).toHaveLength(1 + trades.length);
    }
  });

  it('a placement whose answer is lost is found by its mark: one order at Kite, acknowledged with its id', async () => {
    const rec = new Recorder();
    const { b, lines } = broker(rec);
    const o = await restingBuy(rec);
    const dropped = sim.stats.droppedAnswers;
    sim.orderFaults({ dropPlaceResponse: 1 });
    b.place(o);
    await until('acknowledged', () => o.brokerOrderId);
    await until('opened', () => statusOf(o) === 'OPEN');
    expect(sim.stats.droppedAnswers).toBe(dropped + 1);
    const mine = atSim(o);
    expect(mine).toHaveLength(1);
    expect(o.brokerOrderId).toBe(mine[0].order_id);
    expect(rec.of(o, 'acknowledged')).toHaveLength(1);
    expect(lines.some((l) => /did not answer a placement/.test(String(l.msg)))).toBe(true);
    b.cancel(o);
    await until('cancelled', () => statusOf(o) === 'CANCELLED');
    expect(atSim(o)).toHaveLength(1);
  });

  it('a placement that times out while Kite\'s book cannot be read either is never sent again: it is looked for until found', async () => {
    const rec = new Recorder();
    const { b, lines } = broker(rec, { timeoutMs: 100, pollMs: 50 });
    route = null; // no ticker: only the order book can tell
    const o = await restingBuy(rec);
    sim.orderFaults({ slowMs: 400 }); // every answer, order book included, comes after the timeout
    b.place(o);
    await until('left lost', () => lines.some((l) => /order book could not be read/.test(String(l.msg))));
    expect(atSim(o)).toHaveLength(1); // Kite did place it
    expect(o.brokerOrderId).toBeUndefined();
    sim.orderFaults({ slowMs: 0 });
    await until('found by the poller', () => o.brokerOrderId);
    expect(o.brokerOrderId).toBe(atSim(o)[0].order_id);
    expect(atSim(o)).toHaveLength(1);
    await until('opened', () => statusOf(o) === 'OPEN');
    b.cancel(o);
    await until('cancelled', () => statusOf(o) === 'CANCELLED');
  });

  it('backs off on 429 Too many requests, says so in the log, then places once', async () => {
    const rec = new Recorder();
    const { b, lines } = broker(rec);
    const o = await restingBuy(rec);
    sim.orderFaults({ rateLimit: 2 });
    b.place(o);
    await until('acknowledged', () => o.brokerOrderId);
    const warned = lines.filter((l) => /rate-limited a placement/.test(String(l.msg)));
    expect(warned.map((l) => [l.retry, l.waitMs])).toEqual([[1, 20], [2, 40]]);
    expect(atSim(o)).toHaveLength(1);
    expect(sim.orderFaults().rateLimit).toBe(0);
    b.cancel(o);
    await until('cancelled', () => statusOf(o) === 'CANCELLED');
  });

  it('an expired access token rejects the order saying to renew KITE_ACCESS_TOKEN, and refuses more until renewed', async () => {
    const rec = new Recorder();
    const { b } = broker(rec);
    const o = await restingBuy(rec);
    sim.orderFaults({ tokenExpired: 1 });
    b.place(o);
    await until('rejected', () => statusOf(o) === 'REJECTED');
    expect(o.statusMessage).toMatch(/access token.*06:00 IST.*KITE_ACCESS_TOKEN/);
    expect(b.tokenExpired).toBe(true);
    expect(b.tokenProblem).toMatch(/KITE_ACCESS_TOKEN/);
    const requests = sim.stats.orderRequests;
    const next = await restingBuy(rec);
    b.place(next);
    await until('the next refused', () => statusOf(next) === 'REJECTED');
    expect(sim.stats.orderRequests).toBe(requests); // refused here, nothing sent
    b.renewToken(ACCESS_TOKEN);
    expect(b.tokenExpired).toBe(false);
    const third = await restingBuy(rec);
    b.place(third);
    await until('placed after renewal', () => third.brokerOrderId);
    b.cancel(third);
    await until('cancelled', () => statusOf(third) === 'CANCELLED');
  });

  it('an order the exchange rejects is rejected with Kite\'s status_message', async () => {
    const rec = new Recorder();
    const { b } = broker(rec);
    const o = await restingBuy(rec);
    sim.orderFaults({ rejectNext: 1, rejectMessage: 'RMS:Rule: Check circuit limit including square off order exceeds' });
    b.place(o);
    await until('rejected', () => statusOf(o) === 'REJECTED');
    expect(rec.of(o, 'rejected')).toEqual([{ event: 'rejected', args: ['RMS:Rule: Check circuit limit including square off order exceeds'] }]);
    expect(rec.of(o, 'acknowledged')).toHaveLength(1);
  });

  it('insufficient funds: Kite\'s REJECTED row with its message, whichever of the update and the answer comes first', async () => {
    const rec = new Recorder();
    const { b } = broker(rec);
    const o = await restingBuy(rec, { quantity: 1_000_000, product: 'CNC' });
    b.place(o);
    await until('rejected', () => statusOf(o) === 'REJECTED');
    await until('acknowledged', () => o.brokerOrderId);
    expect(o.statusMessage).toMatch(/^Insufficient funds\. Required margin is/);
    expect(rec.of(o, 'acknowledged')).toHaveLength(1);
    expect(rec.of(o, 'rejected')).toHaveLength(1);
  });

  it('an input error is shown as Kite phrased it', async () => {
    const rec = new Recorder();
    const { b } = broker(rec);
    const o = rec.add(liveOrder({ symbol: 'NOSUCHSYMBOL', pricePaise: 100_00 }));
    b.place(o);
    await until('rejected', () => statusOf(o) === 'REJECTED');
    expect(o.statusMessage).toBe('Instrument not found: NSE:NOSUCHSYMBOL is not in the instrument master; check the exchange and tradingsymbol against /instruments.');
    expect(rec.of(o, 'acknowledged')).toEqual([]);
  });

  it('modifies at Kite then applies; a modification Kite refuses is modifyRejected with its message; cancel ends in CANCELLED', async () => {
    const rec = new Recorder();
    const { b } = broker(rec);
    const o = await restingBuy(rec);
    b.place(o);
    await until('opened', () => statusOf(o) === 'OPEN');
    const ch = change(o, { pricePaise: o.pricePaise - 500, quantity: 12 });
    o.status = 'MODIFY PENDING';
    b.modify(o, ch, applier(o, ch));
    await until('applied', () => o.modifications === 1);
    // Kite answers once it has the request (MODIFY PENDING); the new fields show when it is made.
    await until('modified at Kite', () => atSim(o)[0].status === 'OPEN' && atSim(o)[0].quantity === 12);
    expect(atSim(o)[0].price).toBe(ch.pricePaise / 100);

    const bad = change(o, { pricePaise: o.pricePaise + 1 }); // off the 5-paise tick
    o.status = 'MODIFY PENDING';
    b.modify(o, bad, applier(o, bad));
    await until('modify refused', () => rec.of(o, 'modifyRejected').length === 1);
    expect(rec.of(o, 'modifyRejected')[0].args[0]).toMatch(/^Price \d+\.\d\d is not a multiple of the tick size 0\.05 for INFY\.$/);
    expect(o.modifications).toBe(1);

    b.cancel(o, 'asked by the test');
    await until('cancelled', () => statusOf(o) === 'CANCELLED');
    expect(rec.of(o, 'cancelled')).toEqual([{ event: 'cancelled', args: ['asked by the test'] }]);
    expect(atSim(o)[0].status).toBe('CANCELLED');
  });

  it('after a restart, an order handed to place again is looked up by its mark first and not sent twice; a restored one is polled', async () => {
    const before = new Recorder();
    const { b: first } = broker(before, {}, false);
    const o = await restingBuy(before);
    first.place(o);
    await until('acknowledged', () => o.brokerOrderId);
    first.close();

    // The record as a crash left it: Kite's id never written.
    const rec = new Recorder();
    const { b } = broker(rec, { pollMs: 50, now: () => Date.now() + 1 }, false);
    const again = rec.add({ ...o, brokerOrderId: null, status: 'OPEN PENDING' });
    b.place(again);
    await until('found at Kite', () => again.brokerOrderId);
    expect(again.brokerOrderId).toBe(o.brokerOrderId);
    expect(atSim(o)).toHaveLength(1);
    await until('opened', () => statusOf(again) === 'OPEN');

    // A working order with Kite's id, restored: its history is read, and a cancel made elsewhere shows.
    const rec2 = new Recorder();
    const { b: third } = broker(rec2, { pollMs: 50 }, false);
    const restored = rec2.add({ ...o, status: 'OPEN' });
    third.restore(restored, 'OPEN');
    await kc.cancelOrder('regular', o.brokerOrderId!);
    await until('cancelled, by a poll', () => statusOf(restored) === 'CANCELLED');
    expect(rec2.of(restored).map((c) => c.event)).toEqual(['cancelled']);
  });

  it('with no update coming, polls the order\'s history and follows it from there', async () => {
    const rec = new Recorder();
    const { b } = broker(rec, { pollMs: 50 }, false);
    const o = await restingBuy(rec);
    b.place(o);
    await until('opened by a poll', () => statusOf(o) === 'OPEN');
    b.cancel(o);
    await until('cancelled by a poll', () => statusOf(o) === 'CANCELLED');
    expect(rec.of(o).map((c) => c.event)).toEqual(['acknowledged', 'opened', 'cancelled']);
  });

  it('cancelling an order Kite completed already changes nothing but reports the fills', async () => {
    const rec = new Recorder();
    const { b } = broker(rec, {}, false);
    const o = rec.add(liveOrder({ orderType: 'MARKET', marketProtection: -1, quantity: 5 }));
    b.place(o);
    await until('acknowledged', () => o.brokerOrderId);
    await until('complete at Kite', () => atSim(o)[0]?.status === 'COMPLETE');
    o.status = 'CANCEL PENDING';
    b.cancel(o);
    await until('complete here', () => statusOf(o) === 'COMPLETE');
    expect(rec.of(o, 'cancelled')).toEqual([]);
    expect(rec.of(o, 'modifyRejected')).toEqual([]);
  });
});

// --- hand-made rows, a stand-in client ------------------------------------------------------------

class StandIn implements KiteClient {
  placed: Record<string, string | number>[] = [];
  book: Record<string, unknown>[] = [];
  trades = new Map<string, Record<string, unknown>[]>();
  placeAnswers: (() => Promise<unknown>)[] = [];
  tradesFail = false;
  async placeOrder(_variety: string, params: Record<string, string | number>): Promise<unknown> {
    this.placed.push(params);
    const next = this.placeAnswers.shift();
    return next ? next() : { order_id: `K${this.placed.length}` };
  }
  async modifyOrder(): Promise<unknown> { return {}; }
  cancels: string[] = [];
  async cancelOrder(_variety: string, id: string): Promise<unknown> {
    this.cancels.push(id);
    return { order_id: id };
  }
  async getOrders(): Promise<Record<string, unknown>[]> { return this.book; }
  async getOrderHistory(): Promise<Record<string, unknown>[]> { return []; }
  async getOrderTrades(id: string): Promise<Record<string, unknown>[]> {
    if (this.tradesFail) throw { error_type: 'NetworkException', message: 'No response from server with error code: ECONNRESET' };
    return this.trades.get(id) ?? [];
  }
  async getTrades(): Promise<Record<string, unknown>[]> { return []; }
  async getPositions(): Promise<{ net: Record<string, unknown>[]; day: Record<string, unknown>[] }> { return { net: [], day: [] }; }
  async getMargins(): Promise<Record<string, unknown>> { return {}; }
  setAccessToken(): void {}
}

describe('LiveBroker update logic, with hand-made rows', () => {
  const made: LiveBroker[] = [];
  afterEach(() => {
    for (const b of made.splice(0)) b.close();
  });

  function standIn(rec: Recorder, client: StandIn, over: Partial<LiveBrokerOptions> = {}): { b: LiveBroker; lines: Record<string, unknown>[] } {
    const { lines, log } = logLines();
    const b = new LiveBroker({
      apiUrl: 'http://127.0.0.1:9', apiKey: 'k', accessToken: 't', events: rec, timeoutMs: 30, pollMs: 60_000,
      lookup: rec.lookup, log, backoff: { firstMs: 5, maxMs: 20 }, client, ...over,
    });
    made.push(b);
    return { b, lines };
  }

  const row = (o: Order, status: string, filled: number, average_price = 0, extra: Record<string, unknown> = {}) => ({
    order_id: o.brokerOrderId, status, filled_quantity: filled, average_price, order_type: o.orderType, quantity: o.quantity,
    exchange_order_id: status === 'OPEN PENDING' ? null : 'X1', tag: markOf(o), status_message: null, ...extra,
  });

  it('moves only forward: duplicates and older rows between partial fills change nothing', async () => {
    const rec = new Recorder();
    const kite = new StandIn();
    const { b } = standIn(rec, kite);
    const o = rec.add(liveOrder({ quantity: 10, pricePaise: 100_00, brokerOrderId: 'K9' }));
    kite.trades.set('K9', [{ trade_id: 't1', quantity: 4, average_price: 99.95 }]);
    const open = row(o, 'OPEN', 0);
    const four = row(o, 'UPDATE', 4, 99.95);
    for (const r of [row(o, 'OPEN PENDING', 0), open, open, four, four, open]) b.update(r, 'ticker');
    await b.settled();
    kite.trades.set('K9', [{ trade_id: 't1', quantity: 4, average_price: 99.95 }, { trade_id: 't2', quantity: 6, average_price: 100 }]);
    for (const r of [row(o, 'COMPLETE', 10, 99.98), four, row(o, 'COMPLETE', 10, 99.98), open]) b.update(r, 'postback');
    await b.settled();
    expect(rec.of(o)).toEqual([
      { event: 'opened', args: ['OPEN'] },
      { event: 'filled', args: [4, 9995] },
      { event: 'filled', args: [6, 10000] },
    ]);
    expect(o.status).toBe('COMPLETE');
  });

  it('a stop: TRIGGER PENDING once, triggered once, whatever order the rows come in', async () => {
    const rec = new Recorder();
    const kite = new StandIn();
    const { b } = standIn(rec, kite);
    const o = rec.add(liveOrder({ orderType: 'SL', pricePaise: 101_00, triggerPaise: 100_00, quantity: 5, brokerOrderId: 'K7' }));
    kite.trades.set('K7', [{ trade_id: 'a', quantity: 5, average_price: 100.5 }]);
    const pending = row(o, 'TRIGGER PENDING', 0);
    const open = row(o, 'OPEN', 0);
    for (const r of [pending, pending, open, pending, open, row(o, 'COMPLETE', 5, 100.5), pending]) b.update(r, 'ticker');
    await b.settled();
    expect(rec.of(o).map((c) => [c.event, ...c.args])).toEqual([['opened', 'TRIGGER PENDING'], ['triggered'], ['filled', 5, 10050]]);
  });

  it('when the trades cannot be read, derives the fill from filled_quantity and average_price, then cancels after it', async () => {
    const rec = new Recorder();
    const kite = new StandIn();
    kite.tradesFail = true;
    const { b, lines } = standIn(rec, kite);
    const o = rec.add(liveOrder({ quantity: 10, pricePaise: 100_00, brokerOrderId: 'K5', status: 'OPEN' }));
    // 3 filled at an average of 100.0667 (Kite's rounding of 300.20 / 3), then cancelled.
    b.update(row(o, 'CANCELLED', 3, 100.0667, { status_message: 'Cancelled by the exchange' }), 'poll');
    await b.settled();
    expect(rec.of(o)).toEqual([
      { event: 'filled', args: [3, 10007] },
      { event: 'cancelled', args: ['Cancelled by the exchange'] },
    ]);
    expect(lines.some((l) => /fill derived/.test(String(l.msg)))).toBe(true);
  });

  it('an unanswered placement certainly absent from Kite\'s book is sent once more; absent again, it is rejected, never sent a third time', async () => {
    const rec = new Recorder();
    const kite = new StandIn();
    const lostAnswer = () => Promise.reject({ error_type: 'NetworkException', message: 'No response from server with error code: ECONNABORTED' });
    kite.placeAnswers = [lostAnswer];
    const { b } = standIn(rec, kite);
    const o = rec.add(liveOrder({ pricePaise: 100_00 }));
    b.place(o);
    await until('acknowledged', () => o.brokerOrderId);
    expect(kite.placed.map((p) => p.tag)).toEqual([markOf(o), markOf(o)]);
    expect(o.brokerOrderId).toBe('K2');

    const p = rec.add(liveOrder({ pricePaise: 100_00 }));
    kite.placed = [];
    kite.placeAnswers = [lostAnswer, lostAnswer, lostAnswer];
    b.place(p);
    await until('rejected', () => statusOf(p) === 'REJECTED');
    expect(kite.placed).toHaveLength(2);
    expect(p.statusMessage).toMatch(/did not answer 2 placements and the order is not in Kite's order book/);
  });

  it('an order with our mark surfacing at Kite after all (given up, or a second one) is logged and cancelled, never taken as ours', async () => {
    const rec = new Recorder();
    const kite = new StandIn();
    const { b, lines } = standIn(rec, kite);
    const gaveUp = rec.add(liveOrder({ status: 'REJECTED' }));
    b.update({ order_id: 'K70', status: 'OPEN', tag: markOf(gaveUp), order_type: 'LIMIT' }, 'ticker');
    const kept = rec.add(liveOrder({ status: 'OPEN', brokerOrderId: 'K71' }));
    b.update({ order_id: 'K72', status: 'OPEN', tag: markOf(kept), order_type: 'LIMIT' }, 'ticker');
    b.update({ order_id: 'K72', status: 'OPEN', tag: markOf(kept), order_type: 'LIMIT' }, 'postback');
    await until('both cancelled', () => kite.cancels.length === 2);
    expect(kite.cancels).toEqual(['K70', 'K72']);
    expect(lines.filter((l) => /second order with our mark/.test(String(l.msg))).map((l) => [l.level, l.kiteOrderId])).toEqual([[50, 'K70'], [50, 'K72']]);
    expect(rec.calls).toEqual([]);
  });

  it('an update carrying our mark acknowledges an order whose answer is still out, and the answer adds nothing', async () => {
    const rec = new Recorder();
    const kite = new StandIn();
    let answer!: (v: unknown) => void;
    kite.placeAnswers = [() => new Promise((r) => { answer = r; })];
    const { b } = standIn(rec, kite);
    const o = rec.add(liveOrder({ pricePaise: 100_00 }));
    b.place(o);
    await until('sent', () => kite.placed.length === 1);
    b.update({ order_id: 'K42', status: 'OPEN', filled_quantity: 0, exchange_order_id: 'X', tag: markOf(o), order_type: 'LIMIT' }, 'ticker');
    await b.settled();
    answer({ order_id: 'K42' });
    await until('answered', () => rec.of(o).length >= 2);
    await b.settled();
    expect(rec.of(o)).toEqual([{ event: 'acknowledged', args: ['K42'] }, { event: 'opened', args: ['OPEN'] }]);
  });

  it('ignores rows of orders not placed here, and rows that are not order rows', async () => {
    const rec = new Recorder();
    const { b } = standIn(rec, new StandIn());
    b.update({ order_id: 'K1', status: 'OPEN', tag: 'someone-else' }, 'ticker');
    b.update({ status: 'OPEN' }, 'ticker');
    b.update({ order_id: 'K2', status: 'OPEN', tag: markOf({ id: '123' }) }, 'postback');
    await b.settled();
    expect(rec.calls).toEqual([]);
  });

  it('names a bad option', () => {
    const rec = new Recorder();
    const { log } = logLines();
    const base = { apiUrl: 'http://127.0.0.1:9', apiKey: 'k', accessToken: 't', events: rec, timeoutMs: 1000, pollMs: 1000, lookup: rec.lookup, log };
    expect(() => new LiveBroker({ ...base, accessToken: '' })).toThrow(/accessToken must be a non-empty string/);
    expect(() => new LiveBroker({ ...base, pollMs: 0 })).toThrow(/pollMs must be a whole number of ms above 0/);
  });
});
