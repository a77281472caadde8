/**
 * The order service with the paper broker over real parts, for tests: a FeedHub over the test
 * universe whose latest ticks the test writes (price, traded volume, 5-level depth) and delivers to
 * the listening services as the hub does, and an OrderService over a real OrderStore, its pushes
 * recorded. Used by test/orders/paper-broker.test.ts and test/orders/varieties.test.ts.
 */
import { loadConfig, type OrdersConfig } from '../../src/config.ts';
import type { Db } from '../../src/core/db.ts';
import { N, N_FIELDS, NType } from '../../src/core/tick.ts';
import { FeedHub } from '../../src/gateway/hub.ts';
import { silentLogger } from '../../src/log.ts';
import { OrderService, type OrderPush, type SharedOrderState } from '../../src/orders/service.ts';
import { dbStore, OrderStore } from '../../src/orders/store.ts';
import { followed, master } from '../gateway/rest-fixture.ts';

/** A depth level as the feed carries it: price in rupees, quantity. */
export type Level = readonly [price: number, qty: number];

export interface TickSpec {
  /** Last traded price, rupees. */
  price: number;
  /** Previous close, rupees (the band's reference); 1 % under the price when not given. */
  close?: number;
  /** VOLUME_DELTA: units traded since the row's previous tick. */
  traded?: number;
  /** Best first, at most 5 each; no depth at all when both are absent. */
  bids?: readonly Level[];
  asks?: readonly Level[];
}

/** The hub's latest ticks, written by the test and delivered to the listening services. */
export class Market {
  readonly hub = new FeedHub(followed, [60_000]);
  readonly listeners = new Set<OrderService>();
  private readonly volume = new Float64Array(this.hub.rows);

  /** The hub row of `symbol`: NSE's, or `EXCHANGE:SYMBOL`. */
  row(symbol: string): number {
    const [ex, sym] = symbol.includes(':') ? symbol.split(':') : ['NSE', symbol];
    const i = followed.find((x) => x.exchange === ex && x.tradingsymbol === sym);
    if (i === undefined) throw new Error(`${symbol} is not followed in the test universe`);
    return this.hub.rowOfToken.get(i.instrumentToken)!;
  }

  /** Write `symbol`'s latest tick and hand it to every listening service, as FeedHub does. */
  tick(symbol: string, t: TickSpec): void {
    const row = this.row(symbol);
    const f = this.hub.latestTicks;
    const o = row * N_FIELDS;
    const traded = t.traded ?? 0;
    this.volume[row] += traded;
    f.fill(0, o, o + N_FIELDS);
    f[o + N.TYPE] = NType.TICK;
    f[o + N.TOKEN] = followed[row].instrumentToken;
    f[o + N.KIND] = 5;
    f[o + N.EXCH_TIME_MS] = Date.now();
    f[o + N.PRICE] = t.price;
    f[o + N.LAST_QTY] = traded;
    f[o + N.VOLUME] = this.volume[row];
    f[o + N.VOLUME_DELTA] = traded;
    f[o + N.CLOSE] = t.close ?? Math.round(t.price * 99) / 100;
    f[o + N.INSTR] = row;
    if (t.bids !== undefined || t.asks !== undefined) {
      f[o + N.DEPTH_LEVELS] = 5;
      const side = (levels: readonly Level[] | undefined, first: number) =>
        (levels ?? []).slice(0, 5).forEach(([price, qty], k) => f.set([qty, price, 1], o + N.DEPTH + 3 * (first + k)));
      side(t.bids, 0);
      side(t.asks, 5);
    }
    this.hub.hasTick[row] = 1;
    for (const s of this.listeners) s.tick(f, o, row);
  }
}

export interface PaperSession {
  svc: OrderService;
  store: OrderStore;
  /** Every order row pushed, in push order. */
  orders: { key: string; row: Record<string, any> }[];
  /** Every positions push. */
  positions: { key: string; rows: Record<string, any>[] }[];
  close(): Promise<void>;
}

const bySym = new Map(master.map((i) => [`${i.exchange}:${i.tradingsymbol}`, i]));
const byTok = new Map(master.map((i) => [i.instrumentToken, i]));

/**
 * An OrderService over `market` and `db` (migrated), started and listening to the market. The
 * account's rate budget is raised (rate-limit.test.ts tests it): 26 modifications in a second pass.
 */
export interface SessionWiring {
  /** State shared with other sessions (gateways): OrderServiceOptions.shared. */
  shared?: SharedOrderState;
  /** What the service pushes through, given the recording push (an update bus wraps it). */
  push?: (recording: OrderPush) => OrderPush;
}

export async function paperSession(market: Market, db: Db, over: Partial<OrdersConfig> = {}, now?: () => number, wiring: SessionWiring = {}): Promise<PaperSession> {
  const store = new OrderStore(dbStore(db));
  const orders: PaperSession['orders'] = [];
  const positions: PaperSession['positions'] = [];
  const svc = new OrderService({
    config: { ...loadConfig({}).orders, marketHours: 'always', paperLatencyMs: 0, ratePerSec: 1000, ...over },
    store,
    instrument: (e, sym) => bySym.get(`${e}:${sym}`) ?? null,
    instrumentByToken: (t) => byTok.get(t) ?? null,
    market: market.hub,
    rows: market.hub.rows,
    modeOf: () => 'paper',
    push: (wiring.push ?? ((p: OrderPush) => p))({
      order: (key, row) => orders.push({ key, row }),
      positions: (key, rows) => positions.push({ key, rows: rows as Record<string, any>[] }),
    }),
    log: silentLogger,
    now,
    shared: wiring.shared,
  });
  await svc.start();
  market.listeners.add(svc);
  let closed = false;
  return {
    svc, store, orders, positions,
    close: async () => {
      if (closed) return;
      closed = true;
      market.listeners.delete(svc);
      await svc.close();
    },
  };
}
