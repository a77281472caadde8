/**
 * The order service: the one owner of every order, trade and position, for both APIs (/kite and
 * /api) and every key. A request goes through it in this order; each step refuses by throwing
 * (OrderRejection, RateLimited, OrderNotFound) and nothing after a refusal happens:
 *
 * | step           | what                                                                          |
 * |----------------|-------------------------------------------------------------------------------|
 * | idempotency    | the same Idempotency-Key and body answer the first answer; another body: 409  |
 * | checks         | checks.ts: instrument, lot, freeze, tick, band, coherence, hours, risk, funds |
 * | rate limit     | rate-limit.ts: the Kite account's budget, shared fairly by the keys           |
 * | record         | the order and its first events in one transaction, then the answer           |
 * |                | (the answer waits for the commit, so an acknowledged order survives a crash:  |
 * |                | the round trip is bounded below by the database's commit latency, which     |
 * |                | bench/orders.bench.ts prints beside it)                                       |
 * | broker         | the paper broker (paper/broker.ts) works it; its events come back here        |
 *
 * Every state change is one `order_events` row, persisted with the order's new state (and the
 * trade and position of a fill) in one transaction (store.ts), and pushed to the owning key's
 * sockets (`OrderPush`). The state only moves through `transition`, which refuses to leave a
 * final status: a fill that lands before a cancel is processed wins, and the cancel then finds
 * nothing left.
 *
 * Ownership: an order belongs to the key that placed it; to any other key it does not exist
 * (the same "not found" as an unknown id, so ids reveal nothing).
 *
 * Margin (what `/kite/margins/orders` answers and the funds check uses) is an approximation:
 * SPAN is not available here. checks.ts `requiredMarginPaise` prices an order; positions are
 * charged the same way on their open quantity at the average price.
 *
 * Shared state (several gateways, issue #15): `shared` moves what must hold for the account or the
 * key as a whole out of this process, each part optional; without it everything is in memory as
 * above (ROLE=all), and not one await is added to that path.
 *
 * | part        | instead of                    | held in                                            |
 * |-------------|-------------------------------|----------------------------------------------------|
 * | limits      | `limiter`                     | Redis, one Lua script per take (shared-limits.ts)  |
 * | idempotency | the Idempotency-Key map       | PostgreSQL, claimed before placing (shared-idempotency.ts) |
 * | risk        | this process's orders today   | Redis: read for the checks, then reserved atomically |
 * |             | and open quantity per key     | (shared-risk.ts); transitions and fills move it    |
 * | ids         | ids unique in this process    | a slot of the id space leased in Redis (id-slot.ts) |
 *
 * With limits or risk shared, a key's place, basket and modify run one at a time in this process
 * (`serial`): their checks read memory, await Redis, then record; a second request of the key must
 * not be checked against memory the first is about to change. What the gateways do not share is
 * said in shared-risk.ts (funds) and is theirs to route (an order is worked, modified and
 * cancelled by the gateway that placed it; update-bus.ts carries its updates to the others).
 */
import { createHash } from 'node:crypto';
import type { OrdersConfig } from '../config.ts';
import { AppError } from '../core/errors.ts';
import type { Instrument } from '../core/instrument.ts';
import { DAY_MS, IST_OFFSET_MS, istDayStart } from '../core/ist.ts';
import { N, N_FIELDS } from '../core/tick.ts';
import type { Logger } from '../log.ts';
import { checkModify, checkPlace, freezeQuantity, requiredMarginPaise, type CheckContext, type CheckedModify, type CheckedOrder } from './checks.ts';
import { IdempotencyConflict, OrderRejection } from './errors.ts';
import {
  FINAL_STATUSES, IdSource, kiteOrderRow, kiteTradeRow, pendingQuantity, Status, WORKING_STATUSES,
  type BrokerMode, type Order, type OrderStatus, type Trade,
} from './model.ts';
import { PaperBroker, type MarketView } from './paper/broker.ts';
import type { Broker, BrokerEvents } from './broker.ts';
import { orderIdOfMark } from './live/mark.ts';
import { PositionBook } from './positions.ts';
import { OrderRateLimiter } from './rate-limit.ts';
import type { ModifyRequest, PlaceRequest } from './request.ts';
import type { SharedIdempotency } from './shared-idempotency.ts';
import type { SharedRateLimiter } from './shared-limits.ts';
import { riskRejection, type RiskCounts, type RiskTicket, type SharedRisk } from './shared-risk.ts';
import type { IdempotencyRecord, OrderChange, OrderEventRecord, OrderStore } from './store.ts';

/** Pushes to the owning key's sockets (/kite text frames, /ws msgpack frames). */
export interface OrderPush {
  order(key: string, row: Record<string, unknown>): void;
  positions(key: string, rows: readonly object[]): void;
}

/** The account's budget is used up: answer 429 with Retry-After. */
export class RateLimited extends AppError {
  constructor(message: string, readonly retryAfterMs: number, readonly window: string) {
    super('RATE_LIMITED', message, { window, retryAfterMs });
    this.name = 'RateLimited';
  }
}

/** No such order for this key (it may exist for another: to this key it does not). */
export class OrderNotFound extends AppError {
  constructor(id: string) {
    super('ORDER_NOT_FOUND', `Order ${id.slice(0, 32)} not found: check the order_id (orders are visible only to the API key that placed them)`, { orderId: id });
    this.name = 'OrderNotFound';
  }
}

// Defined beside the order path's other refusals; exported here too, where the gateway imports them.
export { IdempotencyConflict, IdempotencyInProgress } from './errors.ts';

export interface OrderServiceOptions {
  config: OrdersConfig;
  store: OrderStore;
  /** Instrument by exchange and trading symbol (Kite's master), or by token. */
  instrument(exchange: string, symbol: string): Instrument | null;
  instrumentByToken(token: number): Instrument | null;
  market: MarketView;
  rows: number;
  /** Which broker a key trades through. */
  modeOf(key: string): BrokerMode;
  push: OrderPush;
  /** Builds the live broker for live keys' orders (given the events to report); none: live keys are refused. */
  live?: (events: BrokerEvents) => Broker;
  log: Logger;
  now?: () => number;
  /**
   * State shared with the other gateways (ROLE=gateway; issue #15), each part optional; absent,
   * this process holds it all in memory (ROLE=all). See "Shared state" in the header.
   */
  shared?: SharedOrderState;
  /**
   * Which of the stored working orders this process puts back to work at start (default: all).
   * Gateways load every order but work only theirs (id-slot.ts adopt()): a paper order worked by
   * two processes would fill twice.
   */
  works?: (ids: readonly string[]) => Promise<ReadonlySet<string>>;
}

/** The order path's state held outside the process, so that several gateways act as one. */
export interface SharedOrderState {
  /** Kite's account-wide budget (shared-limits.ts RedisRateLimiter) instead of `limiter`. */
  limits?: SharedRateLimiter;
  /** Idempotency-Key claims and answers (shared-idempotency.ts PgIdempotency) instead of the map. */
  idempotency?: SharedIdempotency;
  /** Orders per day and open quantity per key (shared-risk.ts RedisRisk) instead of this process's sums. */
  risk?: SharedRisk;
  /**
   * This gateway's slot of the order and trade id space (id-slot.ts IdSlotLease), so that no two
   * gateways make the same id; read at every id.
   */
  ids?: { readonly slot: number; readonly slots: number };
}

/** What a reservation of shared risk became: the orders placed under it and their quantity by token. */
interface Placed {
  orders: number;
  qty: Map<number, number>;
}

export interface PlaceAnswer {
  order_id: string;
  /** Autoslice: one entry per child, `{order_id}` or `{error}` as Kite answers. */
  children?: ({ order_id: string } | { error: { code: number; error_type: string; message: string; data: null } })[];
}

/** An answer kept for an Idempotency-Key. */
export interface Remembered {
  status: number;
  body: unknown;
}

/** NSE's normal session in IST minutes after midnight: 09:15 to 15:30. */
export const SESSION_OPEN_MIN = 9 * 60 + 15;
export const SESSION_CLOSE_MIN = 15 * 60 + 30;

/**
 * The first weekday time `minuteOfDay` (IST) strictly after `nowMs`. Exchange holidays are not
 * known here (Kite publishes no holiday list): a holiday is taken for a trading day.
 */
export function nextIstWeekdayTime(nowMs: number, minuteOfDay: number): number {
  let day = istDayStart(nowMs);
  for (;;) {
    const t = day + minuteOfDay * 60_000;
    const weekday = new Date(day + IST_OFFSET_MS).getUTCDay();
    if (t > nowMs && weekday !== 0 && weekday !== 6) return t;
    day += DAY_MS;
  }
}

/**
 * The owner of orders found at Kite that no key of ours placed (Kite web, another app): no key
 * name can be empty, so no key sees or touches them; they are kept, marked external, so that the
 * account's book, trades and positions are whole.
 */
export const EXTERNAL_KEY = '';

/** What the last reconciliation with Kite found (shown in /health). */
export interface ReconcileReport {
  at: string;
  /** Kite's orders read. */
  orders: number;
  /** Ours brought up to date from Kite's rows (through the live broker's update). */
  updated: number;
  /** Found at Kite, placed outside the service: recorded as external. */
  external: string[];
  /** Net quantity per instrument and product where Kite and our book disagree. */
  positionDiffs: { tradingsymbol: string; product: string; kite: number; ours: number }[];
  error: string | null;
}

/** How long close() waits for shared risk changes to reach Redis, ms. */
const CLOSE_FLUSH_MS = 2000;

/** Push positions of a key at most this often while they change, ms. */
export const POSITION_PUSH_MS = 250;

interface KeyState {
  orders: Order[];
  /** Its orders not yet final: what the risk, funds and margin sums walk (not the day's whole book). */
  open: Set<Order>;
  trades: Trade[];
  /** Orders placed per IST day, for the daily risk limit. */
  day: number;
  ordersToday: number;
  positionsDirty: boolean;
  positionsPushedAt: number;
}

export class OrderService {
  /** The paper broker (every paper key's orders). */
  readonly broker: PaperBroker;
  /** The live broker (live keys' orders); null until one is configured (issue #12). */
  private readonly liveBroker: Broker | null;
  readonly positions = new PositionBook();
  readonly limiter: OrderRateLimiter;
  private readonly ids: IdSource;
  private readonly tradeIds: IdSource;
  private readonly byId = new Map<string, Order>();
  /** Live orders by Kite's order_id. */
  private readonly byBrokerId = new Map<string, Order>();
  private readonly events = new Map<string, OrderEventRecord[]>();
  private readonly tradesByOrder = new Map<string, Trade[]>();
  private readonly keys = new Map<string, KeyState>();
  private readonly margins = new Map<string, number>();
  /** Iceberg legs still to place, by the id of the leg now working. */
  private readonly icebergNext = new Map<string, { legs: CheckedOrder; key: string; leg: number; parentId: string }>();
  private readonly idem = new Map<string, IdempotencyRecord>();
  private readonly idemInFlight = new Map<string, Promise<Remembered>>();
  /** Rows whose instruments some key holds a position in: their ticks move m2m. */
  private readonly heldRows: Uint8Array;
  private readonly now: () => number;
  private pushTimer: NodeJS.Timeout | null = null;
  private sessionTimers: NodeJS.Timeout[] = [];
  private readonly ttlTimers = new Set<NodeJS.Timeout>();
  private writes: Promise<void> = Promise.resolve();
  private reconciled: ReconcileReport | null = null;
  private writeErrors = 0;
  private readonly shared: SharedOrderState | null;
  /** Limits or risk shared: checks await Redis, so a key's requests are serialised (serial()). */
  private readonly serialized: boolean;
  /** Shared limits or risk: requests of a key run one at a time here (their checks await Redis). */
  private readonly keyLocks = new Map<string, Promise<void>>();
  /** Shared risk: the pending quantity each open order has counted there. */
  private readonly riskSynced = new Map<string, number>();
  /** Shared risk: quantity reserved for a modification that has not landed yet, by order id. */
  private readonly modReserved = new Map<string, number>();

  constructor(private readonly opts: OrderServiceOptions) {
    this.now = opts.now ?? Date.now;
    this.ids = new IdSource(null, this.now, opts.shared?.ids ?? null);
    this.tradeIds = new IdSource(null, this.now, opts.shared?.ids ?? null);
    this.limiter = new OrderRateLimiter(opts.config, this.now);
    const sh = opts.shared;
    this.shared = sh !== undefined && (sh.limits !== undefined || sh.idempotency !== undefined || sh.risk !== undefined || sh.ids !== undefined) ? sh : null;
    this.serialized = sh?.limits !== undefined || sh?.risk !== undefined;
    this.heldRows = new Uint8Array(opts.rows);
    const events: BrokerEvents = {
      opened: (o, status) => this.transition(o, status, null),
      filled: (o, qty, price) => this.fill(o, qty, price),
      triggered: (o) => this.transition(o, Status.OPEN, null),
      cancelled: (o, message) => this.cancelled(o, message),
      rejected: (o, message) => this.transition(o, Status.REJECTED, message),
      modifyRejected: (o, message) => this.transition(o, this.lastWorkingStatus(o) as OrderStatus, `Modification refused: ${message}`),
      acknowledged: (o, brokerOrderId) => {
        o.brokerOrderId = brokerOrderId;
        this.byBrokerId.set(brokerOrderId, o);
        this.write({ orders: [o] }).catch(() => {}); // logged by write()
      },
    };
    this.broker = new PaperBroker({
      latencyMs: opts.config.paperLatencyMs,
      market: opts.market,
      rows: opts.rows,
      tickPaise: (token) => Math.round((opts.instrumentByToken(token)?.tickSize ?? 0.05) * 100),
      events,
    });
    this.liveBroker = opts.live?.(events) ?? null;
  }

  /** The broker an order works through: by the mode it was placed in. */
  private brokerOf(o: Order): Broker {
    if (o.mode === 'live') {
      if (this.liveBroker === null) throw new AppError('LIVE_BROKER_MISSING', 'a live order exists but no live broker is configured: set the Kite credentials');
      return this.liveBroker;
    }
    return this.broker;
  }

  /** Load what the store holds and put working orders back to work. */
  /** The service's clock, epoch ms: the wall clock, or a replay session's replayed time. */
  clock(): number {
    return this.now();
  }

  async start(): Promise<void> {
    const s = await this.opts.store.load();
    for (const o of s.orders) {
      this.byId.set(o.id, o);
      if (o.brokerOrderId) this.byBrokerId.set(o.brokerOrderId, o);
      const ks = this.keyState(o.key);
      ks.orders.push(o);
      if (!FINAL_STATUSES.has(o.status)) {
        ks.open.add(o);
        // Counted in the shared risk by whoever placed it (or by the seed below).
        if (this.shared?.risk !== undefined && o.key !== EXTERNAL_KEY) this.riskSynced.set(o.id, pendingQuantity(o));
      }
      this.ids.observe(o.id);
    }
    for (const e of s.events) {
      let list = this.events.get(e.orderId);
      if (list === undefined) this.events.set(e.orderId, (list = []));
      list.push(e);
    }
    for (const list of this.events.values()) list.sort((a, b) => a.seq - b.seq);
    for (const t of s.trades) {
      this.tradeIds.observe(t.tradeId);
      this.keyState(t.key).trades.push(t);
      let list = this.tradesByOrder.get(t.orderId);
      if (list === undefined) this.tradesByOrder.set(t.orderId, (list = []));
      list.push(t);
    }
    for (const p of s.positions) {
      this.positions.restore(p);
      this.markHeld(p.token);
    }
    for (const r of s.idempotency) this.idem.set(`${r.key}\n${r.idemKey}`, r);
    const today = istDayStart(this.now());
    this.positions.rollDay(today);
    for (const o of s.orders) if (o.createdMs >= today) this.keyState(o.key).ordersToday++;
    if (this.shared?.risk !== undefined) await this.seedRisk(s.positions.map((p) => p.key));
    const working = s.orders.filter((o) => !FINAL_STATUSES.has(o.status));
    const ours = this.opts.works ? await this.opts.works(working.map((o) => o.id)) : null;
    for (const o of working) {
      if (ours !== null && !ours.has(o.id)) continue;
      if (o.mode === 'live' && this.liveBroker === null) {
        this.opts.log.warn({ orderId: o.id, status: o.status }, 'a live order is still working but no live broker is configured (no Kite credentials): it is left as stored');
        continue;
      }
      this.margins.set(o.id, this.marginOf(o));
      if (o.status === Status.OPEN || o.status === Status.TRIGGER_PENDING) {
        this.brokerOf(o).restore(o, o.status);
      } else if (o.status === Status.CANCEL_PENDING) {
        this.brokerOf(o).restore(o, this.lastWorkingStatus(o));
        this.brokerOf(o).cancel(o);
      } else if (o.status === Status.MODIFY_PENDING || o.status === Status.MODIFY_VALIDATION_PENDING) {
        // The modification's outcome was lost with the process: it did not apply, say so.
        const st = this.lastWorkingStatus(o);
        o.statusMessage = 'Modification not applied: the service restarted while it was pending. Modify again.';
        this.transition(o, st as OrderStatus, o.statusMessage);
        this.brokerOf(o).restore(o, st);
      } else if (o.status === Status.AMO_REQ_RECEIVED && this.opts.config.marketHours === 'exchange') {
        // Waits for the session's open (sessionTimers).
      } else {
        // Accepted but not yet at the exchange: it arrives now.
        this.brokerOf(o).place(o);
      }
    }
    for (const o of s.orders) if (!FINAL_STATUSES.has(o.status) && (o.mode === 'paper' || this.liveBroker !== null)) this.armTtl(o);
    this.resumeIcebergs(s.orders);
    if (this.opts.config.marketHours === 'exchange') {
      this.atSession(SESSION_OPEN_MIN, () => this.openAfterMarketOrders());
      this.atSession(SESSION_CLOSE_MIN, () => this.expireDayOrders());
    }
    this.pushTimer = setInterval(() => this.pushPositions(), POSITION_PUSH_MS);
    this.pushTimer.unref();
    this.opts.log.info({ orders: s.orders.length, trades: s.trades.length, working: this.broker.working + (this.liveBroker?.working ?? 0) }, 'orders loaded');
  }

  /**
   * Shared risk: build the counters from what the store holds, if no gateway has since Redis last
   * lost its data (RedisRisk.seed). A Redis that cannot be reached is logged: orders then wait for
   * it anyway (their reservation fails with SharedStateUnavailable).
   */
  private async seedRisk(positionKeys: readonly string[]): Promise<void> {
    const risk = this.shared?.risk;
    if (risk === undefined) return;
    const keys = new Set([...this.keys.keys(), ...positionKeys]);
    keys.delete(EXTERNAL_KEY);
    const seeds = [...keys].map((key) => {
      const tokens = new Map<number, { token: number; pending: number; net: number }>();
      const at = (token: number) => {
        let t = tokens.get(token);
        if (t === undefined) tokens.set(token, (t = { token, pending: 0, net: 0 }));
        return t;
      };
      for (const o of this.keys.get(key)?.open ?? []) at(o.token).pending += pendingQuantity(o);
      for (const p of this.positions.forKey(key)) at(p.token).net += p.buyQty - p.sellQty;
      return { key, ordersToday: this.keys.get(key)?.ordersToday ?? 0, tokens: [...tokens.values()] };
    });
    try {
      if (await risk.seed(seeds)) this.opts.log.info({ keys: seeds.length }, 'shared risk counters built from the order store');
    } catch (err) {
      this.opts.log.warn({ err }, 'shared risk counters could not be seeded (Redis unreachable): orders are refused until Redis answers');
    }
  }

  /** Wait for every pending write, then stop matching. */
  async close(): Promise<void> {
    if (this.pushTimer) clearInterval(this.pushTimer);
    for (const t of this.sessionTimers) clearTimeout(t);
    for (const t of this.ttlTimers) clearTimeout(t);
    this.broker.close();
    this.liveBroker?.close();
    await this.writes;
    const risk = this.shared?.risk;
    if (risk !== undefined) {
      // Changes of the shared counters still queued go out, unless Redis stays away.
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([risk.flush(), new Promise<void>((r) => { timer = setTimeout(r, CLOSE_FLUSH_MS); })]);
      clearTimeout(timer);
    }
  }

  // --- hub listener ------------------------------------------------------------------------------

  tick(f: Float64Array, o: number, row: number): void {
    this.broker.tick(f, o, row);
    if (this.heldRows[row] === 1) this.heldRows[row] = 2;
  }

  // --- requests ----------------------------------------------------------------------------------

  /**
   * Run `fn` once per (key, Idempotency-Key): a retry with the same body gets the first answer and
   * places nothing; another body is an IdempotencyConflict. A retry while the first is still in
   * flight waits for it. Refusals (4xx) are remembered too: the same request gets the same answer.
   * With shared idempotency the same holds across gateways (shared-idempotency.ts), and a first
   * request that does not answer within its wait is IdempotencyInProgress (409).
   */
  async idempotent(key: string, idemKey: string | null, body: Buffer | null, fn: () => Promise<Remembered>): Promise<Remembered> {
    if (idemKey === null) return fn();
    const k = `${key}\n${idemKey}`;
    const sha = createHash('sha256').update(body ?? Buffer.alloc(0)).digest('hex');
    // Shared with the other gateways: claimed in PostgreSQL before anything is placed.
    const shared = this.shared?.idempotency;
    if (shared !== undefined) return shared.run(key, idemKey, sha, fn);
    const known = this.idem.get(k);
    if (known !== undefined) {
      if (known.bodySha256 !== sha) throw new IdempotencyConflict(idemKey);
      return { status: known.status, body: known.response };
    }
    const running = this.idemInFlight.get(k);
    if (running !== undefined) {
      const r = await running;
      if (this.idem.get(k)?.bodySha256 !== sha) throw new IdempotencyConflict(idemKey);
      return r;
    }
    const p = (async () => {
      const r = await fn();
      if (r.status < 500) {
        const rec: IdempotencyRecord = { key, idemKey, bodySha256: sha, orderId: (r.body as { order_id?: string } | null)?.order_id ?? null, status: r.status, response: r.body, createdMs: this.now() };
        this.idem.set(k, rec);
        await this.write({ idempotency: [rec] });
      }
      return r;
    })();
    this.idemInFlight.set(k, p);
    try {
      return await p;
    } finally {
      this.idemInFlight.delete(k);
    }
  }

  /** Place one order (or an autoslice or an iceberg) for `key`. Resolves once it is recorded. */
  async place(key: string, req: PlaceRequest): Promise<PlaceAnswer> {
    if (this.serialized) return this.serial(key, () => this.placeShared(key, req));
    const checked = this.check(key, req);
    this.live(key);
    if (checked.slices.length > 1 && !checked.iceberg) return this.placeSlices(key, checked);
    this.take(key, 1);
    if (checked.iceberg) return { order_id: (await this.placeIcebergLeg(key, checked, 1, null)).id };
    const o = this.newOrder(key, checked, checked.slices[0], null, null);
    await this.accept(o, checked.marginPaise);
    return { order_id: o.id };
  }

  /**
   * place() with shared state: the same steps, the checks fed the key's counts over every gateway,
   * then those counts reserved (atomically: a gateway that counted first wins), the account's
   * budget taken in Redis, and what was not placed given back.
   */
  private async placeShared(key: string, req: PlaceRequest): Promise<PlaceAnswer> {
    const inst = this.opts.instrument(req.exchange, req.tradingsymbol);
    const checked = this.check(key, req, 0, undefined, await this.riskRead(key, inst));
    this.live(key);
    const token = checked.instrument.instrumentToken;
    const ticket = await this.riskReserve(key, checked.slices.length, [{ token, qty: req.quantity }]);
    const placed: Placed = { orders: 0, qty: new Map() };
    try {
      if (checked.slices.length > 1 && !checked.iceberg) return await this.placeSlices(key, checked, placed);
      await this.takeShared(key, 1);
      if (checked.iceberg) return { order_id: (await this.placeIcebergLeg(key, checked, 1, null, placed)).id };
      const o = this.newOrder(key, checked, checked.slices[0], null, null);
      await this.accept(o, checked.marginPaise, placed);
      return { order_id: o.id };
    } finally {
      if (ticket !== null) this.shared!.risk!.settle(ticket, placed.orders, placed.qty);
    }
  }

  /**
   * Place several orders, all or none: every leg passes the checks (funds counted cumulatively)
   * and the rate limit takes them at once before any is recorded.
   */
  async basket(key: string, reqs: readonly PlaceRequest[]): Promise<Order[]> {
    if (this.serialized) return this.serial(key, () => this.basketShared(key, reqs));
    this.live(key);
    const checked: CheckedOrder[] = [];
    let extraMargin = 0;
    for (let i = 0; i < reqs.length; i++) {
      try {
        const c = this.check(key, reqs[i], extraMargin);
        if (c.slices.length > 1 || c.iceberg) throw new OrderRejection('input', 'quantity', 'basket_leg', 'a basket leg is one order: autoslice and iceberg legs are not allowed in a basket');
        extraMargin += c.marginPaise;
        checked.push(c);
      } catch (e) {
        if (e instanceof OrderRejection) throw e.inLeg(i);
        throw e;
      }
    }
    this.take(key, checked.length);
    const orders = checked.map((c) => this.newOrder(key, c, c.slices[0], null, null));
    await Promise.all(orders.map((o, i) => this.accept(o, checked[i].marginPaise)));
    return orders;
  }

  /**
   * basket() with shared state. The legs' orders and quantities are reserved together, so a
   * basket is refused when the legs together pass a limit (in memory each leg is checked alone).
   */
  private async basketShared(key: string, reqs: readonly PlaceRequest[]): Promise<Order[]> {
    this.live(key);
    const checked: CheckedOrder[] = [];
    const seen = new Map<number, RiskCounts | null>();
    let extraMargin = 0;
    for (let i = 0; i < reqs.length; i++) {
      try {
        const inst = this.opts.instrument(reqs[i].exchange, reqs[i].tradingsymbol);
        const t = inst?.instrumentToken ?? -1;
        if (!seen.has(t)) seen.set(t, await this.riskRead(key, inst));
        const c = this.check(key, reqs[i], extraMargin, undefined, seen.get(t) ?? null);
        if (c.slices.length > 1 || c.iceberg) throw new OrderRejection('input', 'quantity', 'basket_leg', 'a basket leg is one order: autoslice and iceberg legs are not allowed in a basket');
        extraMargin += c.marginPaise;
        checked.push(c);
      } catch (e) {
        if (e instanceof OrderRejection) throw e.inLeg(i);
        throw e;
      }
    }
    const ticket = await this.riskReserve(key, checked.length, checked.map((c) => ({ token: c.instrument.instrumentToken, qty: c.req.quantity })));
    const placed: Placed = { orders: 0, qty: new Map() };
    try {
      await this.takeShared(key, checked.length);
      const orders = checked.map((c) => this.newOrder(key, c, c.slices[0], null, null));
      await Promise.all(orders.map((o, i) => this.accept(o, checked[i].marginPaise, placed)));
      return orders;
    } finally {
      if (ticket !== null) this.shared!.risk!.settle(ticket, placed.orders, placed.qty);
    }
  }

  async modify(key: string, id: string, req: ModifyRequest): Promise<{ order_id: string }> {
    if (this.serialized) return this.serial(key, () => this.modifyShared(key, id, req));
    const o = this.modifiable(key, id);
    const inst = this.opts.instrumentByToken(o.token);
    const ch = checkModify(o, req, this.context(key, inst, 0));
    this.take(key, 1);
    this.applyModify(o, ch);
    await this.writes;
    return { order_id: o.id };
  }

  /**
   * modify() with shared state: a larger quantity is reserved in the shared open quantity until
   * the modification lands or is refused (transition() then counts the order's new pending).
   */
  private async modifyShared(key: string, id: string, req: ModifyRequest): Promise<{ order_id: string }> {
    let o = this.modifiable(key, id);
    const inst = this.opts.instrumentByToken(o.token);
    const seen = await this.riskRead(key, inst);
    const ch = checkModify(o, req, this.context(key, inst, 0, seen));
    const extra = ch.quantity - o.quantity;
    if (extra > 0 && (await this.riskReserve(key, 0, [{ token: o.token, qty: extra }])) !== null) {
      this.modReserved.set(o.id, (this.modReserved.get(o.id) ?? 0) + extra);
      this.riskSynced.set(o.id, (this.riskSynced.get(o.id) ?? 0) + extra);
    }
    try {
      await this.takeShared(key, 1);
      // The order may have moved on while Redis answered (filled, cancelled): the same refusals then.
      o = this.modifiable(key, id);
    } catch (e) {
      if (this.modReserved.delete(o.id)) this.syncRisk(o);
      throw e;
    }
    this.applyModify(o, ch);
    await this.writes;
    return { order_id: o.id };
  }

  /** The key's order `id` if it can be modified now; else the refusal. */
  private modifiable(key: string, id: string): Order {
    const o = this.owned(key, id);
    if (!WORKING_STATUSES.has(o.status) && o.status !== Status.OPEN) {
      throw new OrderRejection('order', 'order_id', 'not_open', `Order ${id} is ${o.status}: only OPEN or TRIGGER PENDING orders can be modified`);
    }
    if (o.modifications >= this.opts.config.modificationsPerOrder) {
      throw new OrderRejection('order', 'order_id', 'modifications', `Maximum allowed order modifications exceeded (${this.opts.config.modificationsPerOrder} per order): cancel and place a new order`);
    }
    return o;
  }

  /** A checked modification, its budget taken: to the broker, and applied when it lands. */
  private applyModify(o: Order, ch: CheckedModify): void {
    const back = o.status;
    o.modifications++;
    this.transition(o, Status.MODIFY_VALIDATION_PENDING, null);
    this.transition(o, Status.MODIFY_PENDING, null);
    this.brokerOf(o).modify(o, ch, () => {
      if (FINAL_STATUSES.has(o.status)) return;
      if (ch.quantity < o.filledQuantity) {
        this.transition(o, back, `Modification refused: quantity ${ch.quantity} is below the ${o.filledQuantity} already filled`);
        return;
      }
      o.quantity = ch.quantity;
      o.pricePaise = ch.pricePaise;
      o.triggerPaise = ch.triggerPaise;
      o.orderType = ch.orderType;
      o.validity = ch.validity;
      o.disclosedQuantity = ch.disclosedQuantity;
      o.marketProtection = ch.marketProtection;
      this.margins.set(o.id, this.marginOf(o));
      this.transition(o, Status.MODIFIED, null);
      const stop = (o.orderType === 'SL' || o.orderType === 'SL-M') && back === Status.TRIGGER_PENDING;
      // An after-market order not yet at the exchange stays waiting for the open.
      this.transition(o, back === Status.AMO_REQ_RECEIVED ? back : stop ? Status.TRIGGER_PENDING : Status.OPEN, null);
      if (o.filledQuantity >= o.quantity) this.transition(o, Status.COMPLETE, null);
    });
  }

  async cancel(key: string, id: string): Promise<{ order_id: string }> {
    let o = this.cancellable(key, id);
    if (o === null) return { order_id: id };
    if (this.shared?.limits !== undefined) {
      await this.takeShared(key, 1);
      // It may have ended, or been cancelled by another request, while Redis answered.
      o = this.cancellable(key, id);
      if (o === null) return { order_id: id };
    } else {
      this.take(key, 1);
    }
    this.transition(o, Status.CANCEL_PENDING, null);
    this.brokerOf(o).cancel(o);
    // Iceberg: cancelling a leg cancels the legs still to come.
    this.icebergNext.delete(o.id);
    await this.writes;
    return { order_id: o.id };
  }

  /** The key's order `id` to cancel; null when a cancellation is already pending; a refusal when final. */
  private cancellable(key: string, id: string): Order | null {
    const o = this.owned(key, id);
    if (FINAL_STATUSES.has(o.status)) {
      throw new OrderRejection('order', 'order_id', 'not_open', `Order ${id} is ${o.status} and cannot be cancelled`);
    }
    return o.status === Status.CANCEL_PENDING ? null : o;
  }

  // --- reads -------------------------------------------------------------------------------------

  orders(key: string): readonly Order[] {
    return this.keys.get(key)?.orders ?? [];
  }

  order(key: string, id: string): Order {
    return this.owned(key, id);
  }

  /** Kite's order history: one row per status the order went through. */
  history(key: string, id: string): Record<string, unknown>[] {
    this.owned(key, id);
    return (this.events.get(id) ?? []).map((e) => e.row);
  }

  events_(key: string, id: string): readonly OrderEventRecord[] {
    this.owned(key, id);
    return this.events.get(id) ?? [];
  }

  trades(key: string): readonly Trade[] {
    return this.keys.get(key)?.trades ?? [];
  }

  orderTrades(key: string, id: string): readonly Trade[] {
    this.owned(key, id);
    return this.tradesByOrder.get(id) ?? [];
  }

  tradeRow(t: Trade): Record<string, unknown> {
    return kiteTradeRow(t, this.byId.get(t.orderId) ?? { id: t.orderId, createdMs: t.timeMs });
  }

  kitePositions(key: string): { net: object[]; day: object[] } {
    return this.positions.kitePositions(key, (t) => this.mark(t));
  }

  kiteHoldings(key: string): object[] {
    return this.positions.kiteHoldings(key, (t) => this.mark(t));
  }

  /** The paper account's funds, as Kite's `GET /user/margins` shows them (equity segment). */
  funds(key: string): { capitalPaise: number; usedPaise: number; availablePaise: number; realisedPaise: number; unrealisedPaise: number } {
    const totals = this.positions.totals(key, (t) => this.mark(t));
    const used = this.usedMargin(key);
    const capital = this.opts.config.paperCapitalPaise;
    return {
      capitalPaise: capital,
      usedPaise: used,
      availablePaise: capital + totals.realisedPaise + Math.min(0, totals.unrealisedPaise) - used,
      realisedPaise: totals.realisedPaise,
      unrealisedPaise: totals.unrealisedPaise,
    };
  }

  /** The margin our checks would require for `req` (Kite's `POST /margins/orders`), without placing it. */
  marginFor(key: string, req: PlaceRequest): CheckedOrder {
    return this.check(key, req, 0, { funds: false });
  }

  /**
   * An update of a live order from Kite (its ticker's `{"type":"order"}` text, a postback, a
   * poll), handed to the live broker, which records only what moves the order forward. False when
   * there is no live broker to take it.
   */
  liveUpdate(row: Record<string, unknown>, source: 'ticker' | 'postback' | 'poll'): boolean {
    if (this.liveBroker?.update === undefined) return false;
    this.liveBroker.update(row, source);
    return true;
  }

  /**
   * Reconcile with Kite (at start, and after an upstream outage): read Kite's day order book;
   * every order of ours goes through the live broker's update (an order we thought open that Kite
   * completed is brought up to date); orders Kite has that we never placed are recorded as
   * external, owned by no key; net positions that differ are logged and kept for /health.
   */
  async reconcile(): Promise<ReconcileReport | null> {
    const b = this.liveBroker;
    if (b === null || b.orders === undefined) return null;
    const report: ReconcileReport = { at: new Date(this.now()).toISOString(), orders: 0, updated: 0, external: [], positionDiffs: [], error: null };
    try {
      const rows = await b.orders();
      report.orders = rows.length;
      for (const row of rows) {
        const kiteId = String(row.order_id ?? '');
        if (kiteId === '') continue;
        const known = this.byBrokerId.get(kiteId) ?? null;
        const ours = known ?? this.ownMark(row);
        if (ours !== null) {
          b.update?.(row, 'poll');
          report.updated++;
        } else {
          this.adoptExternal(row);
          report.external.push(kiteId);
        }
      }
      if (b.positions !== undefined) report.positionDiffs = this.positionDiffs((await b.positions()).net);
    } catch (e) {
      report.error = (e as Error).message;
    }
    if (report.external.length > 0 || report.positionDiffs.length > 0 || report.error !== null) {
      this.opts.log.warn({ external: report.external, positionDiffs: report.positionDiffs, error: report.error }, 'reconciliation with Kite found differences');
    }
    this.reconciled = report;
    return report;
  }

  /** The last reconciliation's findings, for /health. */
  reconciliation(): ReconcileReport | null {
    return this.reconciled;
  }

  /** One of our live orders by the mark in a Kite row's tag (live/mark.ts), not yet acknowledged. */
  private ownMark(row: Record<string, unknown>): Order | null {
    const id = typeof row.tag === 'string' ? orderIdOfMark(row.tag) : null;
    return id === null ? null : (this.byId.get(id) ?? null);
  }

  /** Record an order Kite has that no key of ours placed: external, owned by no key, as Kite shows it. */
  private adoptExternal(row: Record<string, unknown>): void {
    const num = (v: unknown) => (typeof v === 'number' ? v : Number(v ?? 0)) || 0;
    const paise = (v: unknown) => Math.round(num(v) * 100);
    const inst = this.opts.instrument(String(row.exchange ?? ''), String(row.tradingsymbol ?? ''));
    const now = this.now();
    const filled = num(row.filled_quantity);
    const o: Order = {
      id: this.ids.next(), key: EXTERNAL_KEY, mode: 'live', parentId: null,
      variety: (String(row.variety ?? 'regular')) as Order['variety'], exchange: String(row.exchange ?? ''), symbol: String(row.tradingsymbol ?? ''),
      token: inst?.instrumentToken ?? num(row.instrument_token), side: row.transaction_type === 'SELL' ? 'SELL' : 'BUY',
      product: String(row.product ?? 'CNC') as Order['product'], orderType: String(row.order_type ?? 'LIMIT') as Order['orderType'],
      validity: String(row.validity ?? 'DAY') as Order['validity'], validityTtl: num(row.validity_ttl), quantity: num(row.quantity),
      disclosedQuantity: num(row.disclosed_quantity), pricePaise: paise(row.price), triggerPaise: paise(row.trigger_price),
      marketProtection: row.market_protection === undefined ? null : num(row.market_protection),
      tag: typeof row.tag === 'string' ? row.tag : null, guid: typeof row.guid === 'string' ? row.guid : null,
      status: String(row.status ?? 'OPEN') as OrderStatus, statusMessage: typeof row.status_message === 'string' ? row.status_message : null,
      // Kite shows the average, not the fills: their value is the average times the quantity, to the paisa.
      filledQuantity: filled, filledValuePaise: paise(row.average_price) * filled, cancelledQuantity: num(row.cancelled_quantity),
      modifications: 0, createdMs: now, updatedMs: now, exchangeMs: now,
      meta: { external: true, kite: row.meta ?? null }, brokerOrderId: String(row.order_id),
    };
    this.byId.set(o.id, o);
    this.byBrokerId.set(o.brokerOrderId!, o);
    this.keyState(EXTERNAL_KEY).orders.push(o);
    const e = this.event(o, o.status);
    this.write({ orders: [o], events: [e] }).catch(() => {}); // logged by write()
  }

  /** Kite's net positions against ours (live orders of every key, external ones included). */
  private positionDiffs(kiteNet: readonly Record<string, unknown>[]): ReconcileReport['positionDiffs'] {
    const ours = new Map<string, { tradingsymbol: string; product: string; qty: number }>();
    for (const [key] of this.keys) {
      for (const p of this.positions.forKey(key)) {
        if (p.mode !== 'live') continue;
        const k = `${p.token}\n${p.product}`;
        const e = ours.get(k) ?? { tradingsymbol: p.symbol, product: p.product, qty: 0 };
        e.qty += p.buyQty - p.sellQty;
        ours.set(k, e);
      }
    }
    const diffs: ReconcileReport['positionDiffs'] = [];
    const seen = new Set<string>();
    for (const r of kiteNet) {
      const inst = this.opts.instrument(String(r.exchange ?? ''), String(r.tradingsymbol ?? ''));
      const k = `${inst?.instrumentToken ?? Number(r.instrument_token)}\n${String(r.product)}`;
      seen.add(k);
      const kite = Number(r.quantity ?? 0);
      const mine = ours.get(k)?.qty ?? 0;
      if (kite !== mine) diffs.push({ tradingsymbol: String(r.tradingsymbol), product: String(r.product), kite, ours: mine });
    }
    for (const [k, e] of ours) if (!seen.has(k) && e.qty !== 0) diffs.push({ tradingsymbol: e.tradingsymbol, product: e.product, kite: 0, ours: e.qty });
    return diffs;
  }

  /**
   * A live key's funds are the Kite account's: Kite's own `/user/margins` (by segment), or null for
   * a paper key (whose funds are the paper account's, `funds`).
   */
  async liveMargins(key: string): Promise<Record<string, unknown> | null> {
    if (this.opts.modeOf(key) !== 'live' || this.liveBroker?.margins === undefined) return null;
    return this.liveBroker.margins();
  }

  /** The live broker's state for /ready: null when there is none. */
  liveStatus(): { ok: boolean; problem: string | null } | null {
    if (this.liveBroker === null) return null;
    const problem = this.liveBroker.tokenProblem ?? null;
    return { ok: problem === null, problem };
  }

  /** A live order by Kite's order_id (updates from Kite's ticker, postbacks, polls name it so). */
  orderByBrokerId(brokerOrderId: string): Order | null {
    return this.byBrokerId.get(brokerOrderId) ?? null;
  }

  /** Any order by our id, whoever owns it (for brokers; the APIs go through `order(key, id)`). */
  orderById(id: string): Order | null {
    return this.byId.get(id) ?? null;
  }

  /** An instrument of Kite's master by exchange and trading symbol, or null. */
  instrument(exchange: string, symbol: string): Instrument | null {
    return this.opts.instrument(exchange, symbol);
  }

  /** The trading symbol of a token ('' when the master does not know it). */
  kiteSymbol(token: number): string {
    return this.opts.instrumentByToken(token)?.tradingsymbol ?? '';
  }

  /** NSE's freeze quantity of an F&O instrument (config table by underlying), null when none applies. */
  freezeOf(inst: Instrument): number | null {
    return freezeQuantity(this.opts.config, inst);
  }

  stats(): { orders: number; working: number; writeErrors: number } {
    return { orders: this.byId.size, working: this.broker.working + (this.liveBroker?.working ?? 0), writeErrors: this.writeErrors };
  }

  /** The latest price and previous close of a token, paise; null before its first tick. */
  mark(token: number): { lastPaise: number; closePaise: number } | null {
    const m = this.opts.market;
    const row = m.rowOf(token);
    if (row < 0 || m.hasTick[row] === 0) return null;
    const o = row * N_FIELDS;
    return { lastPaise: Math.round(m.latestTicks[o + N.PRICE] * 100), closePaise: Math.round(m.latestTicks[o + N.CLOSE] * 100) };
  }

  // --- internals: the session (MARKET_HOURS=exchange) -------------------------------------------

  /** Run `fn` at every weekday `minuteOfDay` IST, from now on. */
  private atSession(minuteOfDay: number, fn: () => void): void {
    const arm = () => {
      const wait = nextIstWeekdayTime(this.now(), minuteOfDay) - this.now();
      const t = setTimeout(() => {
        this.sessionTimers = this.sessionTimers.filter((x) => x !== t);
        fn();
        arm();
      }, Math.max(1, wait));
      t.unref();
      this.sessionTimers.push(t);
    };
    arm();
  }

  /** At the open: after-market orders go to the exchange. */
  private openAfterMarketOrders(): void {
    for (const o of this.byId.values()) {
      if (o.status === Status.AMO_REQ_RECEIVED && o.mode === 'paper') this.brokerOf(o).place(o);
    }
  }

  /** At the close: DAY orders still working expire (Kite cancels them), as do TTL orders. */
  private expireDayOrders(): void {
    for (const o of this.byId.values()) {
      // Every order still in the market or on its way there (not an AMO waiting for the next open).
      if (o.mode === 'live') continue; // Kite expires live DAY orders itself
      if (!FINAL_STATUSES.has(o.status) && o.status !== Status.AMO_REQ_RECEIVED && o.validity !== 'IOC') {
        this.brokerOf(o).cancel(o, `${o.validity} order expired at the close of the session`);
      }
    }
  }

  // --- internals: checks -------------------------------------------------------------------------

  private check(key: string, req: PlaceRequest, extraMargin = 0, opt: { funds: boolean } = { funds: true }, shared: RiskCounts | null = null): CheckedOrder {
    const inst = this.opts.instrument(req.exchange, req.tradingsymbol);
    const ctx = this.context(key, inst, extraMargin, shared);
    // An order that only reduces the key's position in that product (a sell of what it holds, a
    // cover of a short) frees margin rather than using it: the funds check does not apply.
    const reduces = inst !== null && this.reduces(key, inst.instrumentToken, req);
    if (!opt.funds || reduces) ctx.availablePaise = Number.MAX_SAFE_INTEGER;
    return checkPlace(req, ctx);
  }

  private reduces(key: string, token: number, req: PlaceRequest): boolean {
    const p = this.positions.get(key, token, req.product);
    if (p === undefined) return false;
    const net = p.buyQty - p.sellQty;
    let pendingSameSide = 0;
    for (const o of this.keyState(key).open) {
      if (o.token === token && o.product === req.product && o.side === req.transaction_type && !FINAL_STATUSES.has(o.status)) pendingSameSide += pendingQuantity(o);
    }
    const room = req.transaction_type === 'SELL' ? net - pendingSameSide : -net - pendingSameSide;
    return room > 0 && req.quantity <= room;
  }

  /** `shared`: the key's counts over every gateway (shared risk), used instead of this process's. */
  private context(key: string, inst: Instrument | null, extraMargin: number, shared: RiskCounts | null = null): CheckContext {
    const m = inst === null ? null : this.mark(inst.instrumentToken);
    const ks = this.keyState(key);
    this.rollKeyDay(ks);
    let openQty = 0;
    if (inst !== null) {
      openQty = Math.abs(this.positions.netQuantity(key, inst.instrumentToken));
      for (const o of ks.open) if (o.token === inst.instrumentToken) openQty += pendingQuantity(o);
    }
    return {
      config: this.opts.config,
      instrument: inst,
      lastPricePaise: m?.lastPaise ?? null,
      closePaise: m !== null && m.closePaise > 0 ? m.closePaise : null,
      nowMs: this.now(),
      openQty: shared?.openQty ?? openQty,
      ordersToday: shared?.ordersToday ?? ks.ordersToday,
      availablePaise: this.funds(key).availablePaise - extraMargin,
    };
  }

  /** Live keys need the live broker: without one (no Kite credentials) their orders are refused. */
  private live(key: string): void {
    const problem = this.opts.modeOf(key) === 'live' ? (this.liveBroker?.tokenProblem ?? null) : null;
    if (problem !== null) throw new OrderRejection('token', 'api_key', 'kite_token', problem);
    if (this.opts.modeOf(key) === 'live' && this.liveBroker === null) {
      throw new OrderRejection('permission', 'api_key', 'live_broker',
        'This key is marked live, and live orders through Kite are not available in this build: use a paper key (npm run keys -- create NAME) until the live broker is enabled');
    }
  }

  private take(key: string, n: number): void {
    const d = this.limiter.take(key, n);
    if (!d.ok) throw new RateLimited(d.message, d.retryAfterMs, d.window);
  }

  // --- internals: shared state (SharedOrderState) ------------------------------------------------

  /** The account's budget: in Redis when shared, else in memory. */
  private async takeShared(key: string, n: number): Promise<void> {
    const limits = this.shared?.limits;
    if (limits === undefined) return this.take(key, n);
    const d = await limits.take(key, n);
    if (!d.ok) throw new RateLimited(d.message, d.retryAfterMs, d.window);
  }

  /** The key's shared counts for the checks; null when risk is not shared (or no instrument: the checks refuse it). */
  private async riskRead(key: string, inst: Instrument | null): Promise<RiskCounts | null> {
    const risk = this.shared?.risk;
    return risk === undefined || inst === null ? null : risk.read(key, inst.instrumentToken);
  }

  /** Reserve in the shared risk, or refuse as the checks would; null when risk is not shared. */
  private async riskReserve(key: string, orders: number, legs: readonly { token: number; qty: number }[]): Promise<RiskTicket | null> {
    const risk = this.shared?.risk;
    if (risk === undefined) return null;
    const d = await risk.reserve(key, orders, legs);
    if (d.ok) return d.ticket;
    const qty = legs.filter((l) => l.token === d.token).reduce((a, l) => a + l.qty, 0);
    throw riskRejection(d, this.opts.config, this.opts.instrumentByToken(d.token)?.tradingsymbol ?? String(d.token), orders, qty);
  }

  /**
   * Shared risk: tell Redis how the order's pending quantity (plus a modification's reservation)
   * moved since last told. Called by every transition; an order not tracked is left alone.
   */
  private syncRisk(o: Order): void {
    const risk = this.shared?.risk;
    const had = this.riskSynced.get(o.id);
    if (risk === undefined || had === undefined) return;
    const want = pendingQuantity(o) + (this.modReserved.get(o.id) ?? 0);
    if (want !== had) risk.adjust(o.key, o.token, { pending: want - had });
    if (FINAL_STATUSES.has(o.status)) {
      this.riskSynced.delete(o.id);
      this.modReserved.delete(o.id);
    } else {
      this.riskSynced.set(o.id, want);
    }
  }

  /**
   * Run a key's requests one at a time (shared state only): their checks read memory, then await
   * Redis, and a second request of the key must not check against memory the first is about to
   * change. A key's requests were already serial in memory (no await between check and record).
   */
  private serial<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const before = this.keyLocks.get(key) ?? Promise.resolve();
    const run = before.then(fn);
    const after = run.then(() => {}, () => {});
    this.keyLocks.set(key, after);
    void after.then(() => {
      if (this.keyLocks.get(key) === after) this.keyLocks.delete(key);
    });
    return run;
  }

  private usedMargin(key: string): number {
    let used = 0;
    const ks = this.keys.get(key);
    if (ks === undefined) return 0;
    for (const o of ks.open) used += this.margins.get(o.id) ?? 0;
    for (const p of this.positions.forKey(key)) {
      const net = p.buyQty - p.sellQty;
      if (net === 0) continue;
      const inst = this.opts.instrumentByToken(p.token);
      const avgValue = net > 0 ? Math.ceil((p.buyValuePaise * net) / Math.max(1, p.buyQty)) : Math.ceil((p.sellValuePaise * -net) / Math.max(1, p.sellQty));
      used += requiredMarginPaise(this.opts.config, inst, p.product, net > 0 ? 'BUY' : 'SELL', avgValue);
    }
    return used;
  }

  private marginOf(o: Order): number {
    const inst = this.opts.instrumentByToken(o.token);
    const price = o.pricePaise > 0 ? o.pricePaise : (this.mark(o.token)?.lastPaise ?? 0);
    return requiredMarginPaise(this.opts.config, inst, o.product, o.side, price * pendingQuantity(o));
  }

  // --- internals: orders -------------------------------------------------------------------------

  private newOrder(key: string, c: CheckedOrder, quantity: number, parentId: string | null, meta: Record<string, unknown> | null): Order {
    const now = this.now();
    const r = c.req;
    return {
      id: this.ids.next(),
      key,
      mode: this.opts.modeOf(key),
      parentId,
      variety: r.variety,
      exchange: c.instrument.exchange,
      symbol: c.instrument.tradingsymbol,
      token: c.instrument.instrumentToken,
      side: r.transaction_type,
      product: r.product,
      orderType: r.order_type,
      validity: r.validity,
      validityTtl: r.validity_ttl ?? 0,
      quantity,
      disclosedQuantity: r.disclosed_quantity ?? 0,
      pricePaise: c.pricePaise,
      triggerPaise: c.triggerPaise,
      marketProtection: c.marketProtection,
      tag: r.tag ?? null,
      guid: r.guid ?? null,
      status: Status.PUT_ORDER_REQ_RECEIVED,
      statusMessage: null,
      filledQuantity: 0,
      filledValuePaise: 0,
      cancelledQuantity: 0,
      modifications: 0,
      createdMs: now,
      updatedMs: now,
      exchangeMs: null,
      meta,
    };
  }

  /**
   * Record a new order with its first three events in one transaction, then hand it to the broker.
   * Shared risk: once recorded, the order is counted under `placed` (its reservation's) or, with
   * none (an iceberg's later leg), counted now.
   */
  private async accept(o: Order, marginPaise: number, placed: Placed | null = null): Promise<void> {
    this.byId.set(o.id, o);
    const ks = this.keyState(o.key);
    ks.orders.push(o);
    ks.open.add(o);
    ks.ordersToday++;
    this.margins.set(o.id, marginPaise);
    const amo = o.variety === 'amo';
    const first = this.event(o, amo ? Status.AMO_REQ_RECEIVED : Status.PUT_ORDER_REQ_RECEIVED);
    const events = amo ? [first] : [first, this.event(o, Status.VALIDATION_PENDING), this.event(o, Status.OPEN_PENDING)];
    o.status = events[events.length - 1].status as OrderStatus;
    try {
      // Alone: no other write knows this order yet, so it need not queue behind theirs.
      await this.write({ orders: [o], events }, true);
    } catch (e) {
      // Not recorded, so not placed: forget it, and the caller gets the error (nothing to retry blindly).
      this.byId.delete(o.id);
      ks.orders.splice(ks.orders.indexOf(o), 1);
      ks.open.delete(o);
      ks.ordersToday--;
      this.margins.delete(o.id);
      this.events.delete(o.id);
      throw e;
    }
    const risk = this.shared?.risk;
    if (risk !== undefined) {
      const pending = pendingQuantity(o);
      if (placed !== null) {
        placed.orders++;
        placed.qty.set(o.token, (placed.qty.get(o.token) ?? 0) + pending);
      } else {
        risk.adjust(o.key, o.token, { pending }, 1);
      }
      this.riskSynced.set(o.id, pending);
    }
    for (const e of events) this.opts.push.order(o.key, e.row);
    this.armTtl(o);
    // An after-market order waits for the open when the exchange's hours apply.
    // (Kite holds a live AMO itself: it goes to Kite at once.)
    if (!(amo && this.opts.config.marketHours === 'exchange' && o.mode === 'paper')) this.brokerOf(o).place(o);
  }

  /** A TTL order is cancelled `validity_ttl` minutes after it was placed (also after a restart). */
  private armTtl(o: Order): void {
    // Kite expires a live TTL order itself; its CANCELLED comes back as an update.
    if (o.validity !== 'TTL' || o.validityTtl <= 0 || o.mode === 'live') return;
    const wait = Math.max(0, o.createdMs + o.validityTtl * 60_000 - this.now());
    const t = setTimeout(() => {
      this.ttlTimers.delete(t);
      if (!FINAL_STATUSES.has(o.status)) this.brokerOf(o).cancel(o, `TTL of ${o.validityTtl} min expired`);
    }, wait);
    t.unref();
    this.ttlTimers.add(t);
  }

  /**
   * After a restart, an iceberg whose legs were not all placed goes on: the legs still to come are
   * rebuilt from the stored legs' `meta.iceberg` (the newest leg tells which comes next); a newest
   * leg that completed while the service was down is followed at once.
   */
  private resumeIcebergs(orders: readonly Order[]): void {
    const newest = new Map<string, { o: Order; leg: number; legs: number; total: number; legQty: number }>();
    for (const o of orders) {
      const ice = (o.meta as { iceberg?: { leg?: number; legs?: number; total_quantity?: number; leg_quantity?: number } } | null)?.iceberg;
      if (ice?.leg === undefined || ice.legs === undefined || ice.total_quantity === undefined || ice.leg_quantity === undefined) continue;
      const parent = o.parentId ?? o.id;
      const seen = newest.get(parent);
      if (seen === undefined || ice.leg > seen.leg) newest.set(parent, { o, leg: ice.leg, legs: ice.legs, total: ice.total_quantity, legQty: ice.leg_quantity });
    }
    for (const [parent, n] of newest) {
      if (n.leg >= n.legs || n.o.status === Status.CANCELLED || n.o.status === Status.REJECTED) continue;
      const inst = this.opts.instrumentByToken(n.o.token);
      if (inst === null) continue;
      const o = n.o;
      const slices = Array.from({ length: n.legs }, (_, i) => (i < n.legs - 1 ? n.legQty : n.total - n.legQty * (n.legs - 1)));
      const c: CheckedOrder = {
        req: {
          variety: 'iceberg', exchange: o.exchange, tradingsymbol: o.symbol, transaction_type: o.side, quantity: n.total, product: o.product,
          order_type: o.orderType, validity: o.validity, autoslice: false, price: o.pricePaise / 100, trigger_price: o.triggerPaise / 100,
          ...(o.validityTtl > 0 ? { validity_ttl: o.validityTtl } : {}), ...(o.tag !== null ? { tag: o.tag } : {}),
          ...(o.marketProtection !== null ? { market_protection: o.marketProtection } : {}),
        },
        instrument: inst, pricePaise: o.pricePaise, triggerPaise: o.triggerPaise, marketProtection: o.marketProtection,
        slices, iceberg: true, valuePaise: o.pricePaise * n.total,
        marginPaise: requiredMarginPaise(this.opts.config, inst, o.product, o.side, o.pricePaise * n.total),
      };
      const next = { legs: c, key: o.key, leg: n.leg + 1, parentId: parent };
      if (o.status === Status.COMPLETE) {
        this.icebergNext.set(o.id, next);
        this.nextIcebergLeg(o);
      } else {
        this.icebergNext.set(o.id, next);
      }
    }
  }

  private async placeSlices(key: string, c: CheckedOrder, placed: Placed | null = null): Promise<PlaceAnswer> {
    const children: PlaceAnswer['children'] = [];
    let parent: string | null = null;
    const limits = this.shared?.limits;
    for (const q of c.slices) {
      const d = limits !== undefined ? await limits.take(key, 1) : this.limiter.take(key, 1);
      if (!d.ok) {
        children.push({ error: { code: 429, error_type: 'NetworkException', message: d.message, data: null } });
        continue;
      }
      const o = this.newOrder(key, c, q, parent, null);
      parent ??= o.id;
      await this.accept(o, Math.ceil((c.marginPaise * q) / c.req.quantity), placed);
      children.push({ order_id: o.id });
    }
    if (parent === null) {
      const first = children[0] as { error: { message: string } };
      throw new RateLimited(first.error.message, 1000, 'second');
    }
    return { order_id: parent, children };
  }

  /** Iceberg: legs go one at a time, the next when the previous completes (as Kite works them). */
  private async placeIcebergLeg(key: string, c: CheckedOrder, leg: number, parentId: string | null, placed: Placed | null = null): Promise<Order> {
    const legs = c.slices.length;
    const legQty = c.slices[leg - 1];
    const done = c.slices.slice(0, leg - 1).reduce((a: number, b: number) => a + b, 0);
    const meta = { iceberg: { leg, legs, leg_quantity: legQty, total_quantity: c.req.quantity, remaining_quantity: c.req.quantity - done } };
    const o = this.newOrder(key, c, legQty, parentId, meta);
    const parent = parentId ?? o.id;
    if (leg < legs) this.icebergNext.set(o.id, { legs: c, key, leg: leg + 1, parentId: parent });
    await this.accept(o, Math.ceil((c.marginPaise * legQty) / c.req.quantity), placed);
    return o;
  }

  private owned(key: string, id: string): Order {
    const o = this.byId.get(id);
    if (o === undefined || o.key !== key) throw new OrderNotFound(id);
    return o;
  }

  private lastWorkingStatus(o: Order): string {
    const list = this.events.get(o.id) ?? [];
    for (let i = list.length - 1; i >= 0; i--) {
      if (list[i].status === Status.OPEN || list[i].status === Status.TRIGGER_PENDING) return list[i].status;
    }
    return Status.OPEN;
  }

  private event(o: Order, status: string): OrderEventRecord {
    let list = this.events.get(o.id);
    if (list === undefined) this.events.set(o.id, (list = []));
    const at = this.now();
    const e: OrderEventRecord = { orderId: o.id, seq: list.length + 1, status, atMs: at, key: o.key, mode: o.mode, row: kiteOrderRow(o, status, at) };
    list.push(e);
    return e;
  }

  /**
   * The one way an order's status changes: refused once final (a fill before the cancel wins,
   * and the late cancel finds nothing); recorded, persisted and pushed.
   */
  private transition(o: Order, status: OrderStatus, message: string | null, extra: Omit<OrderChange, 'orders' | 'events'> = {}): void {
    if (FINAL_STATUSES.has(o.status)) return;
    o.status = status;
    if (message !== null) o.statusMessage = message;
    o.updatedMs = this.now();
    if ((status === Status.OPEN || status === Status.TRIGGER_PENDING) && o.exchangeMs === null) o.exchangeMs = o.updatedMs;
    if (status === Status.REJECTED || status === Status.CANCELLED) this.margins.delete(o.id);
    if (FINAL_STATUSES.has(status)) this.keys.get(o.key)?.open.delete(o);
    if (this.shared?.risk !== undefined) {
      // A modification's reservation lasts while it is pending; then the order's own quantity counts.
      if (status !== Status.MODIFY_VALIDATION_PENDING && status !== Status.MODIFY_PENDING) this.modReserved.delete(o.id);
      this.syncRisk(o);
    }
    const e = this.event(o, status);
    this.write({ ...extra, orders: [o], events: [e] }).catch(() => {}); // logged by write()
    this.opts.push.order(o.key, e.row);
    if (status === Status.COMPLETE) this.nextIcebergLeg(o);
  }

  private fill(o: Order, qty: number, pricePaise: number): void {
    if (FINAL_STATUSES.has(o.status) || qty <= 0) return;
    const now = this.now();
    const t: Trade = {
      tradeId: this.tradeIds.next(), orderId: o.id, key: o.key, mode: o.mode, exchange: o.exchange, symbol: o.symbol,
      token: o.token, product: o.product, side: o.side, quantity: qty, pricePaise, timeMs: now,
    };
    o.filledQuantity += qty;
    o.filledValuePaise += qty * pricePaise;
    const ks = this.keyState(o.key);
    ks.trades.push(t);
    let list = this.tradesByOrder.get(o.id);
    if (list === undefined) this.tradesByOrder.set(o.id, (list = []));
    list.push(t);
    const pos = this.positions.apply(t, istDayStart(now));
    if (o.key !== EXTERNAL_KEY) this.shared?.risk?.adjust(o.key, o.token, { net: o.side === 'BUY' ? qty : -qty });
    this.markHeld(o.token);
    ks.positionsDirty = true;
    const complete = o.filledQuantity >= o.quantity;
    if (complete) this.margins.delete(o.id);
    else this.margins.set(o.id, this.marginOf(o));
    // Kite reports a partial fill as an update of the OPEN order; the last fill completes it.
    const status = complete ? Status.COMPLETE : o.status === Status.TRIGGER_PENDING ? Status.OPEN : o.status;
    this.transition(o, status, null, { trades: [t], positions: [this.positions.record(pos)] });
  }

  private cancelled(o: Order, message: string | null): void {
    if (FINAL_STATUSES.has(o.status)) return;
    o.cancelledQuantity = o.quantity - o.filledQuantity;
    this.icebergNext.delete(o.id);
    this.transition(o, Status.CANCELLED, message);
  }

  private nextIcebergLeg(o: Order): void {
    const next = this.icebergNext.get(o.id);
    if (next === undefined) return;
    this.icebergNext.delete(o.id);
    this.placeIcebergLeg(next.key, next.legs, next.leg, next.parentId).catch((err: unknown) => {
      this.opts.log.error({ err, parent: next.parentId }, 'iceberg leg could not be placed');
    });
  }

  private markHeld(token: number): void {
    const row = this.opts.market.rowOf(token);
    if (row >= 0 && this.heldRows[row] === 0) this.heldRows[row] = 1;
  }

  private pushPositions(): void {
    const now = this.now();
    // A held instrument that ticked moves m2m: every key holding it gets fresh positions.
    const ticked = new Set<number>();
    for (let r = 0; r < this.heldRows.length; r++) {
      if (this.heldRows[r] === 2) {
        ticked.add(r);
        this.heldRows[r] = 1;
      }
    }
    for (const [key, ks] of this.keys) {
      let due = ks.positionsDirty;
      if (!due && ticked.size > 0) {
        for (const p of this.positions.forKey(key)) {
          if (p.buyQty !== p.sellQty && ticked.has(this.opts.market.rowOf(p.token))) {
            due = true;
            break;
          }
        }
      }
      // The interval itself spaces pushes POSITION_PUSH_MS apart: at most one per key per period.
      if (!due) continue;
      ks.positionsDirty = false;
      ks.positionsPushedAt = now;
      this.opts.push.positions(key, this.kitePositions(key).net);
    }
  }

  private keyState(key: string): KeyState {
    let ks = this.keys.get(key);
    if (ks === undefined) {
      ks = { orders: [], open: new Set(), trades: [], day: istDayStart(this.now()), ordersToday: 0, positionsDirty: false, positionsPushedAt: 0 };
      this.keys.set(key, ks);
    }
    return ks;
  }

  private rollKeyDay(ks: KeyState): void {
    const day = istDayStart(this.now());
    if (day !== ks.day) {
      ks.day = day;
      ks.ordersToday = 0;
      this.positions.rollDay(day);
    }
  }

  /**
   * Persist (the store commits in call order). A failed write is logged and counted here, so a
   * caller that does not await it leaves no unhandled rejection; one that awaits gets the error.
   */
  private write(change: OrderChange, alone = false): Promise<void> {
    const p = this.opts.store.write(change, { alone });
    const logged = p.catch((err: unknown) => {
      this.writeErrors++;
      this.opts.log.error({ err }, 'order store write failed: the order state in memory is ahead of the database');
    });
    this.writes = this.writes.then(() => logged);
    return p;
  }
}

