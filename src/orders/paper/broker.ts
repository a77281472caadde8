/**
 * The paper broker: fills orders against the live feed, as an exchange would, without sending
 * anything anywhere. It owns no order state: the order service (src/orders/service.ts) does, and
 * hears of every change through `BrokerEvents` (broker.ts). A key marked live never reaches this class.
 *
 * What it models, in order of an order's life:
 *
 * | step      | what happens                                                                          |
 * |-----------|---------------------------------------------------------------------------------------|
 * | arrive    | `latencyMs` after acceptance (default 20 ms): the order reaches the "exchange"        |
 * | MARKET    | walks the opposite side of the 5-level depth, level by level, up to its protection   |
 * |           | price; the rest rests as a LIMIT at that price (IOC: the rest is cancelled)           |
 * | LIMIT     | marketable (BUY at or above the best ask, SELL at or below the best bid): walks the   |
 * |           | depth up to its price first; the rest rests in the book (book.ts)                     |
 * | resting   | fills when the market trades at or through its price, bounded by the volume traded   |
 * |           | there since it rested (book.ts shares each tick's volume in price-time priority)      |
 * | SL, SL-M  | wait in the book for the last price to cross the trigger, then arrive as LIMIT        |
 * |           | (SL, at its price) or MARKET (SL-M, with its protection)                             |
 * | modify    | `latencyMs` later the new price/quantity/type apply and the order is re-indexed       |
 * | cancel    | `latencyMs` later; a fill that lands before the cancel is processed wins              |
 *
 * Market protection (Kite's `market_protection`): a percentage of the last price the order may
 * walk to (BUY: last × (1 + p%), SELL: last × (1 − p%)), rounded to the tick inward. `-1`
 * (automatic) is our choice of Kite's unpublished table: 5 % under ₹100, 3 % under ₹500, else 2 %.
 * With no depth in the feed (ltp or quote mode) a marketable order cannot walk: it rests at its
 * limit (or protection price) and fills on the trades that follow, which need the tick's volume:
 * in ltp mode (no volume) resting orders never fill, so paper trading wants KITE_MODE full.
 */
import { N, N_FIELDS } from '../../core/tick.ts';
import type { Order } from '../model.ts';
import { feedPaise, pendingQuantity } from '../model.ts';
import { DepthFills, RestingBook, walkDepth } from './book.ts';
import type { Broker, BrokerEvents, ModifyFields } from '../broker.ts';

/** Read-only view of the feed the broker fills against (the hub's latest tick per row). */
export interface MarketView {
  readonly latestTicks: Float64Array;
  readonly hasTick: Uint8Array;
  rowOf(token: number): number;
}

export interface PaperOptions {
  latencyMs: number;
  market: MarketView;
  rows: number;
  events: BrokerEvents;
  /** Tick size in paise of a token (the instrument master's), for rounding protection prices. */
  tickPaise(token: number): number;
}

/** Protection percent for `-1` (automatic), by last price in paise. */
export function autoProtectionPct(lastPaise: number): number {
  if (lastPaise < 100_00) return 5;
  if (lastPaise < 500_00) return 3;
  return 2;
}

/** The price a MARKET order may walk to: last ± protection, rounded to the tick towards last. */
export function protectionPrice(side: 'BUY' | 'SELL', lastPaise: number, protection: number | null, tickPaise: number): number {
  const pct = protection === null || protection === 0 ? 0 : protection < 0 ? autoProtectionPct(lastPaise) : protection;
  if (pct === 0) return side === 'BUY' ? Number.MAX_SAFE_INTEGER : 0;
  const tick = Math.max(1, tickPaise);
  if (side === 'BUY') {
    const p = Math.floor((lastPaise * (100 + pct)) / 100);
    return Math.floor(p / tick) * tick;
  }
  const p = Math.ceil((lastPaise * (100 - pct)) / 100);
  return Math.max(tick, Math.ceil(p / tick) * tick);
}

export class PaperBroker implements Broker {
  readonly book: RestingBook;
  private readonly depth = new DepthFills();
  private readonly timers = new Set<NodeJS.Timeout>();
  /** Orders whose arrival is scheduled, by id: a cancel before arrival cancels them there. */
  private readonly inFlight = new Map<string, Order>();
  private closed = false;

  constructor(private readonly opts: PaperOptions) {
    this.book = new RestingBook(opts.rows, {
      fill: (order, _row, qty, pricePaise) => opts.events.filled(order, qty, pricePaise),
      trigger: (order) => this.trigger(order),
    });
  }

  /** The hub's tick: resting orders and stops of this row (book.ts; O(1) when nothing crosses). */
  tick(f: Float64Array, o: number, row: number): void {
    if (this.book.sizeOf(row) !== 0) this.book.onTick(f, o, row);
  }

  /** An accepted order: it arrives at the exchange `latencyMs` later. */
  place(order: Order): void {
    this.inFlight.set(order.id, order);
    this.later(() => {
      if (!this.inFlight.delete(order.id)) return;
      this.arrive(order);
    });
  }

  /** Put an order that was working before a restart back where it was, without a new arrival. */
  restore(order: Order, status: string): void {
    const row = this.opts.market.rowOf(order.token);
    if (row < 0) return;
    if (status === 'TRIGGER PENDING') this.book.addStop(order, row);
    else if (order.pricePaise > 0) this.book.addLimit(order, row);
    else this.opts.events.cancelled(order, 'A market order without a price to rest at cannot resume after a restart; the rest is cancelled');
  }

  /**
   * Apply a modification `latencyMs` from now: the order leaves the book, `apply` changes its
   * fields and status (the service records the event), and it works again as it now stands.
   */
  modify(order: Order, _change: ModifyFields, apply: () => void): void {
    this.later(() => {
      if (pendingQuantity(order) <= 0) return; // filled or cancelled while the modification travelled
      this.book.remove(order);
      apply();
      if (pendingQuantity(order) <= 0) return;
      if (order.status === 'TRIGGER PENDING') this.rest(order, true);
      else if (order.status !== 'AMO REQ RECEIVED') this.work(order);
    });
  }

  /** Cancel `latencyMs` from now, unless it fills first. */
  cancel(order: Order, message: string | null = null): void {
    if (this.inFlight.delete(order.id)) {
      // Not yet at the exchange: it never works.
      this.later(() => this.opts.events.cancelled(order, message));
      return;
    }
    this.later(() => {
      if (pendingQuantity(order) <= 0) return;
      this.book.remove(order);
      this.opts.events.cancelled(order, message);
    });
  }

  get working(): number {
    return this.book.size;
  }

  close(): void {
    this.closed = true;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
  }

  // --- internals ---------------------------------------------------------------------------------

  private later(fn: () => void): void {
    if (this.closed) return;
    if (this.opts.latencyMs === 0) {
      queueMicrotask(() => {
        if (!this.closed) fn();
      });
      return;
    }
    const t = setTimeout(() => {
      this.timers.delete(t);
      if (!this.closed) fn();
    }, this.opts.latencyMs);
    this.timers.add(t);
  }

  private arrive(order: Order): void {
    const row = this.opts.market.rowOf(order.token);
    if (row < 0 || this.opts.market.hasTick[row] === 0) {
      if (order.orderType === 'MARKET' || order.orderType === 'SL-M') {
        this.opts.events.rejected(order, `No market data for ${order.exchange}:${order.symbol} yet: a market order cannot be priced. Place a LIMIT order or retry when the instrument has ticked.`);
        return;
      }
    }
    if (order.orderType === 'SL' || order.orderType === 'SL-M') {
      this.opts.events.opened(order, 'TRIGGER PENDING');
      this.rest(order, true);
      return;
    }
    this.opts.events.opened(order, 'OPEN');
    this.work(order);
  }

  /** A working order (LIMIT or MARKET, or a triggered stop): take what the depth offers, rest the rest. */
  private work(order: Order): void {
    const m = this.opts.market;
    const row = m.rowOf(order.token);
    let limit = order.pricePaise;
    if (row >= 0 && m.hasTick[row] === 1) {
      const f = m.latestTicks;
      const o = row * N_FIELDS;
      if (order.orderType === 'MARKET' || order.orderType === 'SL-M') {
        const last = feedPaise(f[o + N.PRICE]);
        limit = protectionPrice(order.side, last, order.marketProtection, this.opts.tickPaise(order.token));
        // From here on the rest works as a LIMIT at the protection price (Kite turns a protected
        // market order into a limit at that price).
        order.pricePaise = limit === Number.MAX_SAFE_INTEGER ? 0 : limit;
      }
      const want = pendingQuantity(order);
      const d = this.depth;
      d.reset();
      const got = walkDepth(f, o, order.side, want, order.side === 'BUY' ? (limit === 0 ? Infinity : limit) : limit, d);
      if (got > 0) {
        for (let i = 0; i < d.n; i++) this.opts.events.filled(order, d.qty[i], d.pricePaise[i]);
      }
    }
    if (pendingQuantity(order) <= 0) return;
    if (order.validity === 'IOC') {
      this.opts.events.cancelled(order, 'IOC order: the rest was not available and is cancelled');
      return;
    }
    if (order.pricePaise === 0) {
      // An unprotected market order that found no depth: it has no price to rest at.
      this.opts.events.cancelled(order, 'No depth to fill the market order against; the rest is cancelled');
      return;
    }
    this.rest(order, false);
  }

  private rest(order: Order, stop: boolean): void {
    const row = this.opts.market.rowOf(order.token);
    if (row < 0) return;
    if (stop) this.book.addStop(order, row);
    else this.book.addLimit(order, row);
  }

  private trigger(order: Order): void {
    this.opts.events.triggered(order);
    this.work(order);
  }
}
