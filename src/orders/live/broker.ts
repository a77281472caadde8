/**
 * The live broker: live keys' orders go to Kite through the official `KiteConnect` client, behind
 * the same `Broker` interface as the paper broker (paper/broker.ts). It owns no order state: the
 * order service does, and hears of every change through `BrokerEvents`; this class only sends, looks,
 * and reports what Kite says, each change once.
 *
 * Kite's answers, as the order service hears them:
 *
 * | Kite says                                  | event                                              |
 * |--------------------------------------------|----------------------------------------------------|
 * | place: { order_id }                        | acknowledged(order, order_id); the status flow     |
 * |                                            | comes by update                                    |
 * | InputException, OrderException,            | rejected(order, Kite's message as phrased)         |
 * | MarginException, PermissionException       |                                                    |
 * | TokenException                             | rejected(order, "renew KITE_ACCESS_TOKEN ...");    |
 * |                                            | `tokenExpired` is true until `renewToken`          |
 * | 429 Too many requests                      | backs off (doubling, capped), logs, sends again    |
 * | no answer (timeout, reset, 5xx)            | looks the order up by its mark: found,             |
 * |                                            | acknowledged; certainly absent, sent once more     |
 * | update OPEN / TRIGGER PENDING              | opened, once                                       |
 * | update of a stop past its trigger          | triggered, once                                    |
 * | update with filled_quantity grown          | filled(qty, price) per trade not yet reported      |
 * |                                            | (Kite's trades of the order; progress.ts)          |
 * | update COMPLETE                            | (the last fill completes the order)                |
 * | update CANCELLED / REJECTED                | cancelled / rejected with Kite's status_message    |
 *
 * Never twice: every order carries our mark in Kite's `tag` (mark.ts). A placement that gets no
 * answer is not sent again blindly: the order book is read for the mark first, and the order is
 * sent again only when two readings, the second a request timeout after the first (a request that
 * timed out may still be on its way to Kite's OMS), both lack it; at most two placements of one
 * order are ever sent. If the order book cannot be read, the order is left "lost" and the poller
 * keeps looking; nothing is sent meanwhile. An order older than this broker (handed to `place`
 * after a restart) is looked up before it is sent. Should a second order with our mark surface
 * anyway, it is logged as an error and cancelled.
 *
 * Updates arrive from Kite's ticker, postbacks and this broker's own polls, late, twice or out of
 * order: each order's updates are applied one after another, and progress.ts lets only what moves
 * the order forward through. An order with no update for `pollMs` has its history read (the last
 * row goes through `update`). Every non-order request (order book, history, trades, positions,
 * margins) waits for a token of one budget (budget.ts: Kite's 10 a second). Order requests are
 * budgeted by the order service before it calls here; a retry after a 429 or a lost answer is not.
 *
 * Varieties: regular and amo go as they are. An iceberg leg goes as a regular order: the order
 * service works iceberg legs itself, one order per leg (as on paper), and Kite's own iceberg would
 * split each leg again. Autoslice children are separate orders of the service, so each goes alone.
 */
import { KiteConnect } from 'kiteconnect';
import { AppError } from '../../core/errors.ts';
import type { Logger } from '../../log.ts';
import type { Broker, BrokerEvents, ModifyFields } from '../broker.ts';
import { FINAL_STATUSES, Status, type Order } from '../model.ts';
import { ReadBudget } from './budget.ts';
import { classify, orderIdOfAnswer, readRow, rupeesText, tokenMessage, type KiteClient, type KiteFailure, type KiteRow } from './kite.ts';
import { markOf, orderIdOfMark, rowHasMark } from './mark.ts';
import { PRE_EXCHANGE, Progress } from './progress.ts';

/** The service's orders, as the broker finds them from Kite's rows. */
export interface LiveLookup {
  /** By Kite's order_id (orders acknowledged so far). */
  byBrokerId(id: string): Order | null;
  /** By our id (a mark names it). */
  byId(id: string): Order | null;
}

export interface LiveBrokerOptions {
  /** KiteConnect's `root` (KITE_API_URL). */
  apiUrl: string;
  apiKey: string;
  accessToken: string;
  events: BrokerEvents;
  /** A request to Kite without an answer this long counts as lost (KITE_TIMEOUT_MS), ms. */
  timeoutMs: number;
  /** A working order with no update this long has its history read (LIVE_POLL_MS), ms. */
  pollMs: number;
  lookup: LiveLookup;
  log: Logger;
  /** Epoch ms, for when an order was last heard of. Default Date.now. */
  now?: () => number;
  /** Non-order requests per second (Kite's limit: 10). */
  readsPerSec?: number;
  /** Waits after a 429, an unanswered request or a failed lookup: the first, doubling up to the cap, ms. */
  backoff?: { firstMs: number; maxMs: number };
  /** The Kite client; default the official KiteConnect. Tests of the update logic pass a stand-in. */
  client?: KiteClient;
}

/** Kite's limit on non-order requests (order book, history, trades, portfolio) per second. */
export const KITE_READS_PER_SEC = 10;
const DEFAULT_BACKOFF = { firstMs: 250, maxMs: 8000 } as const;
/** 429s in a row on one request before it is given up (about 40 s of backing off at the defaults). */
const MAX_RATE_RETRIES = 8;
/** Placements of one order sent at most (the second only once the first is certainly absent). */
const MAX_SENDS = 2;
/** Failed readings of the order book in one lookup before the order is left to the poller. */
const MAX_LOOKUP_FAILURES = 5;
/** Readings of an order's trades that may come up short (Kite's trade book can lag its order rows) before the fill is derived. */
const TRADE_READS = 3;
/** Readings of an order's history after a modification got no answer. */
const MODIFY_READS = 4;

const KITE_FINAL: ReadonlySet<string> = new Set([Status.COMPLETE, Status.CANCELLED, Status.REJECTED]);

/** A request to Kite outside an order's flow (order book, trades, positions, margins) failed. */
export class LiveKiteError extends AppError {
  constructor(readonly failure: KiteFailure) {
    const code = failure.kind === 'token' ? 'KITE_TOKEN_EXPIRED' : failure.kind === 'rate' ? 'KITE_RATE_LIMITED' : failure.kind === 'refused' ? 'KITE_REFUSED' : 'KITE_UNREACHABLE';
    const message = failure.kind === 'token' ? tokenMessage(failure.message)
      : failure.kind === 'rate' ? `Kite answered 429 Too many requests: try again in a second (${failure.message})`
      : failure.kind === 'refused' ? failure.message
      : `Kite did not answer (${failure.message}): check the network to Kite and KITE_API_URL, then try again`;
    super(code, message, { errorType: failure.errorType });
    this.name = 'LiveKiteError';
  }
}

/** One order this broker is working. */
interface Watch {
  readonly order: Order;
  readonly progress: Progress;
  /** Kite's order_id once known (the service records it through `acknowledged`). */
  kiteId: string | null;
  /** Updates of this order, applied one after another. */
  queue: Promise<void>;
  lastHeardMs: number;
  /** A placement (or its lookup) is running: the poller leaves the order be. */
  sending: boolean;
  /** A placement's answer was lost and the order book could not be read: the poller looks again. */
  lost: boolean;
  polling: boolean;
  /** Placements sent (whose answer was lost, or is awaited). */
  sends: number;
  /** A cancel asked for before Kite's order id was known: sent once it is. */
  cancelWanted: boolean;
  cancelMessage: string | null;
}

/** A lookup by mark: Kite's row, null (certainly absent), 'unknown' (could not tell), 'known' (acknowledged meanwhile). */
type Found = Record<string, unknown> | null | 'unknown' | 'known';

export class LiveBroker implements Broker {
  private readonly kc: KiteClient;
  private readonly watches = new Map<string, Watch>();
  private readonly budget: ReadBudget;
  private readonly now: () => number;
  private readonly bornMs: number;
  private readonly backoff: { firstMs: number; maxMs: number };
  private readonly pauses = new Map<NodeJS.Timeout, () => void>();
  /** Kite order ids of second orders with our mark, already handled. */
  private readonly strays = new Set<string>();
  private readonly pollTimer: NodeJS.Timeout;
  /** Kite's message when it refused the access token; null while the token is good. */
  private expired: string | null = null;
  private closed = false;

  constructor(private readonly opts: LiveBrokerOptions) {
    for (const k of ['apiUrl', 'apiKey', 'accessToken'] as const) {
      if (typeof opts[k] !== 'string' || opts[k] === '') throw new TypeError(`LiveBroker: ${k} must be a non-empty string`);
    }
    for (const k of ['timeoutMs', 'pollMs'] as const) {
      if (!(Number.isSafeInteger(opts[k]) && opts[k] > 0)) throw new RangeError(`LiveBroker: ${k} must be a whole number of ms above 0, got ${String(opts[k])}`);
    }
    const b = opts.backoff ?? DEFAULT_BACKOFF;
    if (!(b.firstMs > 0 && b.maxMs >= b.firstMs)) throw new RangeError(`LiveBroker: backoff needs 0 < firstMs <= maxMs, got ${b.firstMs} and ${b.maxMs}`);
    this.backoff = { firstMs: b.firstMs, maxMs: b.maxMs };
    this.kc = opts.client ?? (new KiteConnect({ api_key: opts.apiKey, access_token: opts.accessToken, root: opts.apiUrl, timeout: opts.timeoutMs }) as unknown as KiteClient);
    this.budget = new ReadBudget(opts.readsPerSec ?? KITE_READS_PER_SEC);
    this.now = opts.now ?? Date.now;
    this.bornMs = this.now();
    // Looks often enough that an order is read within a quarter of pollMs of falling due.
    this.pollTimer = setInterval(() => this.pollDue(), Math.max(10, Math.min(1000, Math.floor(opts.pollMs / 4))));
    this.pollTimer.unref();
  }

  /** Kite refused the access token: live orders are refused until `renewToken` (the service and /ready say so). */
  get tokenExpired(): boolean {
    return this.expired !== null;
  }

  /** What to tell a caller while the token is refused; null while it is good. */
  get tokenProblem(): string | null {
    return this.expired === null ? null : tokenMessage(this.expired);
  }

  /** A new access token (Kite's daily login): requests go with it, and lost orders are looked up again. */
  renewToken(accessToken: string): void {
    if (typeof accessToken !== 'string' || accessToken === '') throw new TypeError('LiveBroker.renewToken: accessToken must be a non-empty string');
    this.kc.setAccessToken(accessToken);
    this.expired = null;
    for (const w of this.watches.values()) w.lastHeardMs = -Infinity;
  }

  get working(): number {
    return this.watches.size;
  }

  // --- Broker ------------------------------------------------------------------------------------

  place(order: Order): void {
    if (this.closed || FINAL_STATUSES.has(order.status)) return;
    const w = this.watch(order);
    if (w.sending) return; // handed over twice: one placement is on its way
    if (w.kiteId !== null) {
      // Kite has it already (handed over again after a restart): read where it stands.
      w.lastHeardMs = -Infinity;
      return;
    }
    // An order older than this broker may have been sent by the process before a restart.
    this.startPlacing(w, order.createdMs < this.bornMs);
  }

  modify(order: Order, change: ModifyFields, apply: () => void): void {
    if (this.closed || FINAL_STATUSES.has(order.status)) return;
    const w = this.watch(order);
    this.modifying(w, change, apply).catch((err: unknown) => {
      this.opts.log.error({ err, orderId: order.id }, 'live modification failed unexpectedly');
      this.opts.events.modifyRejected(order, 'The modification failed inside the service before Kite confirmed it: check the order, and modify again');
    });
  }

  cancel(order: Order, message: string | null = null): void {
    if (this.closed || FINAL_STATUSES.has(order.status)) return;
    const w = this.watch(order);
    w.cancelMessage = message;
    if (w.kiteId === null) {
      if (w.sending || w.lost) {
        w.cancelWanted = true; // sent as soon as Kite's order id is known
        return;
      }
      // Never sent (an after-market order waiting for the open): there is nothing at Kite to cancel.
      this.opts.events.cancelled(order, message);
      this.forget(w);
      return;
    }
    this.sendCancel(w);
  }

  restore(order: Order, _status: string): void {
    if (this.closed || FINAL_STATUSES.has(order.status)) return;
    const w = this.watch(order);
    // Without Kite's id (it was never recorded) the order is found by its mark.
    if (w.kiteId === null) w.lost = true;
    w.lastHeardMs = -Infinity;
  }

  /**
   * Kite's order row, from its ticker (`{"type":"order"}`), a postback or a poll. Finds our order by
   * Kite's order_id, or by the mark in its tag (then Kite's id is news: acknowledged). Rows of
   * orders that are not ours are ignored; late, repeated and out-of-order rows change nothing.
   */
  update(row: Record<string, unknown>, source: 'ticker' | 'postback' | 'poll'): void {
    if (this.closed) return;
    const v = readRow(row);
    if (v === null) {
      this.opts.log.debug({ source }, 'Kite order update without order_id or status: ignored');
      return;
    }
    let o = this.opts.lookup.byBrokerId(v.orderId);
    if (o === null) {
      const ours = orderIdOfMark(v.tag);
      o = ours === null ? null : this.opts.lookup.byId(ours);
      if (o === null) {
        this.opts.log.debug({ source, kiteOrderId: v.orderId }, 'Kite order update of an order not placed here: ignored');
        return;
      }
      const known = this.watches.get(o.id)?.kiteId ?? o.brokerOrderId ?? null;
      // Another Kite order with this mark, or one of an order we gave up as never placed.
      if ((known !== null && known !== v.orderId) || (known === null && FINAL_STATUSES.has(o.status))) {
        this.stray(o, v.orderId, v.status);
        return;
      }
    }
    if (o.mode !== 'live' || FINAL_STATUSES.has(o.status)) return;
    const w = this.watch(o);
    w.lastHeardMs = this.now();
    // The placement's answer was lost, or is still on its way: the row says what Kite's id is.
    if (w.kiteId === null) this.ack(w, v.orderId);
    this.enqueue(w, v);
  }

  /** Resolves once every update handed in so far has been applied (for tests, and before close). */
  async settled(): Promise<void> {
    await Promise.all([...this.watches.values()].map((w) => w.queue));
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.pollTimer);
    for (const [t, resolve] of this.pauses) {
      clearTimeout(t);
      resolve();
    }
    this.pauses.clear();
    this.budget.close();
  }

  // --- reads for the gateway (inside the read budget) --------------------------------------------

  /** Kite's order book of the day. Throws LiveKiteError. */
  orders(): Promise<Record<string, unknown>[]> {
    return this.readOrThrow(() => this.kc.getOrders());
  }

  /** One order's history, by Kite's order_id. Throws LiveKiteError. */
  orderHistory(kiteOrderId: string): Promise<Record<string, unknown>[]> {
    return this.readOrThrow(() => this.kc.getOrderHistory(kiteOrderId));
  }

  /** Kite's trade book of the day. Throws LiveKiteError. */
  trades(): Promise<Record<string, unknown>[]> {
    return this.readOrThrow(() => this.kc.getTrades());
  }

  /** Kite's positions, `{ net, day }`. Throws LiveKiteError. */
  positions(): Promise<{ net: Record<string, unknown>[]; day: Record<string, unknown>[] }> {
    return this.readOrThrow(() => this.kc.getPositions());
  }

  /** Kite's funds and margins by segment. Throws LiveKiteError. */
  margins(): Promise<Record<string, unknown>> {
    return this.readOrThrow(() => this.kc.getMargins());
  }

  // --- placing -----------------------------------------------------------------------------------

  private startPlacing(w: Watch, lookFirst: boolean): void {
    w.sending = true;
    w.lost = false;
    this.placing(w, lookFirst)
      .catch((err: unknown) => {
        w.lost = true;
        this.opts.log.error({ err, orderId: w.order.id }, 'live placement failed unexpectedly: the poller will look the order up by its mark');
      })
      .finally(() => {
        w.sending = false;
      });
  }

  private async placing(w: Watch, lookFirst: boolean): Promise<void> {
    const o = w.order;
    const log = this.opts.log;
    if (lookFirst) {
      if (this.settle(w, await this.findByMark(w, false))) return;
    }
    let limited = 0;
    while (!this.closed && w.kiteId === null) {
      if (this.expired !== null) return this.refuse(w, tokenMessage(this.expired));
      if (w.sends >= MAX_SENDS) {
        return this.refuse(w, `Kite did not answer ${w.sends} placements and the order is not in Kite's order book: it was not placed. Place it again if you still want it.`);
      }
      w.sends++;
      let answer: unknown = null;
      let failure: KiteFailure | null = null;
      try {
        answer = await this.kc.placeOrder(kiteVariety(o), placeParams(o));
      } catch (e) {
        failure = classify(e);
      }
      if (this.closed) return;
      const id = failure === null ? orderIdOfAnswer(answer) : null;
      if (id !== null) return this.ack(w, id);
      failure ??= { kind: 'lost', errorType: 'DataException', message: `Kite answered without an order_id: ${String(JSON.stringify(answer)).slice(0, 200)}` };
      switch (failure.kind) {
        case 'rate': {
          w.sends--; // refused before any work: it was not placed
          if (++limited > MAX_RATE_RETRIES) return this.refuse(w, `Kite answered 429 Too many requests to ${limited - 1} placements in a row: the order was not placed. Place it again in a few seconds.`);
          const waitMs = this.backoffMs(limited);
          log.warn({ orderId: o.id, retry: limited, waitMs, kite: failure.message }, 'Kite rate-limited a placement (429): backing off before sending it again');
          await this.pause(waitMs);
          continue;
        }
        case 'token':
          this.expire(failure.message);
          return this.refuse(w, tokenMessage(failure.message));
        case 'refused':
          return this.refuse(w, failure.message);
        case 'lost': {
          log.warn({ orderId: o.id, mark: markOf(o), sends: w.sends, kite: failure.message }, 'Kite did not answer a placement: looking the order up by its mark before sending anything again');
          if (this.settle(w, await this.findByMark(w, true))) return;
          if (w.sends < MAX_SENDS) log.warn({ orderId: o.id, mark: markOf(o) }, 'the unanswered placement is certainly not at Kite: sending it once more');
        }
      }
    }
  }

  /** Acts on a lookup's outcome; true when the placement is settled (found, acknowledged, or left lost). */
  private settle(w: Watch, f: Found): boolean {
    if (this.closed || f === 'known') return true;
    if (f === 'unknown') {
      w.lost = true;
      w.lastHeardMs = this.now();
      this.opts.log.error({ orderId: w.order.id, mark: markOf(w.order) },
        'Kite did not answer a placement and its order book could not be read: the order may or may not be at Kite, so it is not sent again; the poller keeps looking for its mark');
      return true;
    }
    if (f === null) return false;
    const v = readRow(f);
    if (v === null) return false;
    this.opts.log.info({ orderId: w.order.id, kiteOrderId: v.orderId }, 'the unanswered placement is at Kite: acknowledged, not sent again');
    this.ack(w, v.orderId);
    this.enqueue(w, v);
    return true;
  }

  /**
   * Reads Kite's order book for the order's mark. Absent means absent twice, the second reading a
   * request timeout after the first: a placement that timed out may still reach Kite's OMS.
   */
  private async findByMark(w: Watch, afterLoss: boolean): Promise<Found> {
    const mark = markOf(w.order);
    let absentOnce = false;
    let failures = 0;
    let limited = 0;
    let waitMs = afterLoss ? this.backoffMs(1) : 0;
    while (!this.closed) {
      if (waitMs > 0) await this.pause(waitMs);
      if (this.closed) return 'unknown';
      if (w.kiteId !== null) return 'known'; // an update carrying the mark came first
      let rows: Record<string, unknown>[];
      try {
        rows = await this.read(() => this.kc.getOrders());
      } catch (e) {
        const f = classify(e);
        if (f.kind === 'token') {
          this.expire(f.message);
          return 'unknown';
        }
        if (f.kind === 'rate') {
          if (++limited > MAX_RATE_RETRIES) return 'unknown';
          waitMs = this.backoffMs(limited);
          this.opts.log.warn({ orderId: w.order.id, retry: limited, waitMs }, 'Kite rate-limited an order book reading (429): backing off');
          continue;
        }
        if (++failures >= MAX_LOOKUP_FAILURES) return 'unknown';
        waitMs = this.backoffMs(failures + 1);
        continue;
      }
      if (w.kiteId !== null) return 'known';
      const mine = Array.isArray(rows) ? rows.filter((r) => r !== null && typeof r === 'object' && rowHasMark(r, mark)) : [];
      if (mine.length > 0) {
        // Kite lists orders in placing order: the first is the one we keep.
        for (let i = 1; i < mine.length; i++) {
          const s = readRow(mine[i]);
          if (s !== null) this.stray(w.order, s.orderId, s.status);
        }
        return mine[0];
      }
      if (absentOnce) return null;
      absentOnce = true;
      waitMs = Math.max(this.opts.timeoutMs, this.backoffMs(1));
    }
    return 'unknown';
  }

  private ack(w: Watch, kiteId: string): void {
    if (w.kiteId === kiteId) return;
    if (w.kiteId !== null) {
      this.stray(w.order, kiteId, null);
      return;
    }
    w.kiteId = kiteId;
    w.lost = false;
    w.lastHeardMs = this.now();
    this.opts.events.acknowledged(w.order, kiteId);
    if (w.cancelWanted) {
      w.cancelWanted = false;
      this.sendCancel(w);
    }
  }

  private refuse(w: Watch, message: string): void {
    this.opts.events.rejected(w.order, message);
    this.forget(w);
  }

  /** A second order at Kite with our mark: logged, and cancelled unless it is final already. */
  private stray(o: Order, kiteId: string, status: string | null): void {
    if (this.strays.has(kiteId)) return;
    this.strays.add(kiteId);
    const log = this.opts.log;
    log.error({ orderId: o.id, kiteOrderId: kiteId, keptKiteOrderId: o.brokerOrderId ?? null, status },
      'Kite holds a second order with our mark (a placement without an answer reached Kite after all): cancelling the second one');
    if (status !== null && KITE_FINAL.has(status)) return;
    this.kc.cancelOrder(kiteVariety(o), kiteId).catch((e: unknown) => {
      log.error({ orderId: o.id, kiteOrderId: kiteId, kite: classify(e).message }, 'the second order at Kite could not be cancelled: cancel it in Kite by hand');
    });
  }

  // --- updates -----------------------------------------------------------------------------------

  private enqueue(w: Watch, v: KiteRow): void {
    w.queue = w.queue
      .then(() => this.apply(w, v))
      .catch((err: unknown) => this.opts.log.error({ err, orderId: w.order.id }, 'applying a Kite order update failed'));
  }

  /** One row, in its turn: only what moves the order forward is reported. */
  private async apply(w: Watch, v: KiteRow): Promise<void> {
    const o = w.order;
    const p = w.progress;
    const ev = this.opts.events;
    if (this.closed) return;
    if (FINAL_STATUSES.has(o.status)) return this.forget(w);
    const st = v.status;
    if (st === Status.REJECTED) {
      ev.rejected(o, v.statusMessage ?? 'Rejected by Kite without a reason: see the order in Kite');
      return this.forget(w);
    }
    if (!p.atExchange && reachedExchange(v)) {
      p.atExchange = true;
      if (PRE_EXCHANGE.has(o.status)) ev.opened(o, waitsForTrigger(v) ? Status.TRIGGER_PENDING : Status.OPEN);
    }
    if (!p.triggered && isStop(v.orderType) && (st === Status.OPEN || st === Status.COMPLETE || v.filled > 0)) {
      p.triggered = true;
      if (o.status === Status.TRIGGER_PENDING) ev.triggered(o);
    }
    p.seeFilled(v.filled);
    if (p.owed > 0) await this.fillTo(w, v);
    if (this.closed) return;
    if (FINAL_STATUSES.has(o.status)) return this.forget(w); // the last fill completed it
    if (st === Status.CANCELLED) {
      if (p.owed > 0) this.opts.log.error({ orderId: o.id, owed: p.owed }, 'Kite cancelled an order whose last fills could not be read: they are missing from its record');
      ev.cancelled(o, v.statusMessage ?? w.cancelMessage);
      return this.forget(w);
    }
    if (st === Status.COMPLETE && p.owed === 0) {
      this.opts.log.error({ orderId: o.id, kiteQuantity: v.quantity, quantity: o.quantity, filled: o.filledQuantity },
        'Kite says the order is COMPLETE but its fills do not make its quantity here: compare the order with Kite');
    }
  }

  /** Reports fills up to what Kite's rows showed: from its trades, else derived from the row. */
  private async fillTo(w: Watch, v: KiteRow): Promise<void> {
    const o = w.order;
    const p = w.progress;
    const id = w.kiteId ?? v.orderId;
    for (let i = 1; i <= TRADE_READS && p.owed > 0 && !this.closed; i++) {
      try {
        const trades = await this.read(() => this.kc.getOrderTrades(id));
        if (this.closed) return;
        for (const f of p.takeTrades(Array.isArray(trades) ? trades : [])) this.opts.events.filled(o, f.qty, f.pricePaise);
      } catch (e) {
        const f = classify(e);
        this.opts.log.warn({ orderId: o.id, kite: f.message }, 'the order\'s trades could not be read from Kite');
        if (f.kind === 'token') {
          this.expire(f.message);
          break;
        }
      }
      if (p.owed > 0 && i < TRADE_READS) await this.pause(this.backoffMs(i));
    }
    if (p.owed === 0 || this.closed) return;
    const f = p.derive(v.filled, v.averagePrice);
    if (f !== null) {
      this.opts.log.warn({ orderId: o.id, qty: f.qty, pricePaise: f.pricePaise }, 'fill derived from Kite\'s filled_quantity and average_price: its trades could not be read');
      this.opts.events.filled(o, f.qty, f.pricePaise);
    }
  }

  // --- polling -----------------------------------------------------------------------------------

  private pollDue(): void {
    if (this.closed || this.expired !== null) return;
    const now = this.now();
    for (const w of this.watches.values()) {
      if (w.sending || w.polling || now - w.lastHeardMs < this.opts.pollMs) continue;
      if (w.lost) {
        w.lastHeardMs = now;
        this.startPlacing(w, true);
        continue;
      }
      if (w.kiteId === null) continue;
      w.polling = true;
      this.poll(w).finally(() => {
        w.polling = false;
      });
    }
  }

  private async poll(w: Watch): Promise<void> {
    try {
      const rows = await this.read(() => this.kc.getOrderHistory(w.kiteId!));
      w.lastHeardMs = this.now();
      const last = Array.isArray(rows) ? rows[rows.length - 1] : undefined;
      if (last !== undefined && last !== null && typeof last === 'object') this.update(last, 'poll');
    } catch (e) {
      const f = classify(e);
      w.lastHeardMs = this.now();
      if (f.kind === 'token') this.expire(f.message);
      this.opts.log.warn({ orderId: w.order.id, kite: f.message }, 'polling a live order\'s history failed: trying again after the poll interval');
    }
  }

  // --- modify and cancel -------------------------------------------------------------------------

  private async modifying(w: Watch, change: ModifyFields, apply: () => void): Promise<void> {
    const o = w.order;
    const ev = this.opts.events;
    const id = w.kiteId;
    if (id === null) return ev.modifyRejected(o, 'Kite has not acknowledged the order yet: modify it again in a moment');
    if (this.expired !== null) return ev.modifyRejected(o, tokenMessage(this.expired));
    const params = modifyParams(o, change);
    if (Object.keys(params).length === 0) return this.applied(w, apply);
    let limited = 0;
    while (!this.closed) {
      let failure: KiteFailure | null = null;
      try {
        await this.kc.modifyOrder(kiteVariety(o), id, { ...params });
      } catch (e) {
        failure = classify(e);
      }
      if (this.closed) return;
      if (failure === null) return this.applied(w, apply);
      switch (failure.kind) {
        case 'rate': {
          if (++limited > MAX_RATE_RETRIES) return ev.modifyRejected(o, `Kite answered 429 Too many requests to ${limited - 1} modifications in a row: not made. Modify again in a few seconds.`);
          const waitMs = this.backoffMs(limited);
          this.opts.log.warn({ orderId: o.id, retry: limited, waitMs }, 'Kite rate-limited a modification (429): backing off before sending it again');
          await this.pause(waitMs);
          continue;
        }
        case 'token':
          this.expire(failure.message);
          return ev.modifyRejected(o, tokenMessage(failure.message));
        case 'refused':
          return ev.modifyRejected(o, failure.message);
        case 'lost': {
          this.opts.log.warn({ orderId: o.id, kite: failure.message }, 'Kite did not answer a modification: reading the order to see whether it was made');
          const made = await this.modificationMade(w, id, change);
          if (made === true) return this.applied(w, apply);
          return ev.modifyRejected(o, made === false
            ? 'Kite did not answer the modification and the order at Kite is unchanged: it was not made. Modify again.'
            : 'Kite did not answer the modification and the order could not be read to tell whether it was made: check the order, and modify again if it shows the old values.');
        }
      }
    }
  }

  private applied(w: Watch, apply: () => void): void {
    apply();
    // A stop that Kite triggered while the modification travelled: the service put it back to
    // TRIGGER PENDING with the new fields, and the trigger must still be told.
    const o = w.order;
    if (w.progress.triggered && o.status === Status.TRIGGER_PENDING) this.opts.events.triggered(o);
  }

  /** Whether Kite's order now shows the change: true, false, or null when it could not be read. */
  private async modificationMade(w: Watch, id: string, c: ModifyFields): Promise<boolean | null> {
    for (let i = 1; i <= MODIFY_READS && !this.closed; i++) {
      await this.pause(this.backoffMs(i));
      let rows: Record<string, unknown>[];
      try {
        rows = await this.read(() => this.kc.getOrderHistory(id));
      } catch {
        continue;
      }
      const last = Array.isArray(rows) && rows.length > 0 ? readRow(rows[rows.length - 1]) : null;
      if (last === null || last.status.startsWith('MODIFY')) continue; // still being made
      const limit = c.orderType === 'LIMIT' || c.orderType === 'SL';
      return last.quantity === c.quantity && last.orderType === c.orderType
        && (!limit || last.pricePaise === c.pricePaise) && (!isStop(c.orderType) || last.triggerPaise === c.triggerPaise);
    }
    return null;
  }

  private sendCancel(w: Watch): void {
    this.cancelling(w).catch((err: unknown) => this.opts.log.error({ err, orderId: w.order.id }, 'live cancel failed unexpectedly'));
  }

  /** DELETE; the outcome comes by update (CANCELLED, or the fill that won). Repeating a cancel is harmless. */
  private async cancelling(w: Watch): Promise<void> {
    const o = w.order;
    const id = w.kiteId!;
    let limited = 0;
    let lost = 0;
    while (!this.closed) {
      let failure: KiteFailure | null = null;
      try {
        await this.kc.cancelOrder(kiteVariety(o), id);
      } catch (e) {
        failure = classify(e);
      }
      if (this.closed || failure === null) return;
      if (failure.kind === 'rate' && ++limited <= MAX_RATE_RETRIES) {
        const waitMs = this.backoffMs(limited);
        this.opts.log.warn({ orderId: o.id, retry: limited, waitMs }, 'Kite rate-limited a cancel (429): backing off before sending it again');
        await this.pause(waitMs);
        continue;
      }
      if (failure.kind === 'lost' && ++lost < MAX_SENDS) {
        this.opts.log.warn({ orderId: o.id, kite: failure.message }, 'Kite did not answer a cancel: sending it again (a second cancel of one order changes nothing)');
        await this.pause(this.backoffMs(lost));
        continue;
      }
      if (failure.kind === 'token') this.expire(failure.message);
      // Refused (the order is complete or cancelled already) or never answered: read where it is.
      const working = await this.readNow(w);
      if (working && o.status === Status.CANCEL_PENDING) {
        this.opts.events.modifyRejected(o, `the cancel was not made: ${failure.kind === 'token' ? tokenMessage(failure.message) : failure.message}`);
      }
      return;
    }
  }

  /** Reads the order's history now and applies its last row; whether Kite shows it still working. */
  private async readNow(w: Watch): Promise<boolean> {
    let rows: Record<string, unknown>[];
    try {
      rows = await this.read(() => this.kc.getOrderHistory(w.kiteId!));
    } catch (e) {
      this.opts.log.warn({ orderId: w.order.id, kite: classify(e).message }, 'reading a live order\'s history failed: the poller will try again');
      return false;
    }
    const last = Array.isArray(rows) ? rows[rows.length - 1] : undefined;
    if (last === undefined) return false;
    this.update(last, 'poll');
    await w.queue;
    const v = readRow(last);
    return v !== null && !KITE_FINAL.has(v.status);
  }

  // --- plumbing ----------------------------------------------------------------------------------

  private watch(order: Order): Watch {
    let w = this.watches.get(order.id);
    if (w === undefined) {
      w = {
        order, progress: new Progress(order), kiteId: order.brokerOrderId ?? null, queue: Promise.resolve(), lastHeardMs: this.now(),
        sending: false, lost: false, polling: false, sends: 0, cancelWanted: false, cancelMessage: null,
      };
      this.watches.set(order.id, w);
    }
    return w;
  }

  private forget(w: Watch): void {
    this.watches.delete(w.order.id);
  }

  private expire(kiteMessage: string): void {
    if (this.expired === null) {
      this.opts.log.error({ kite: kiteMessage }, 'Kite refused the access token: live orders are refused until KITE_ACCESS_TOKEN is renewed (it expires daily at 06:00 IST)');
    }
    this.expired = kiteMessage;
  }

  /** A non-order request, when the read budget allows it. */
  private async read<T>(fn: () => Promise<T>): Promise<T> {
    await this.budget.take();
    return fn();
  }

  private async readOrThrow<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await this.read(fn);
    } catch (e) {
      const f = classify(e);
      if (f.kind === 'token') this.expire(f.message);
      throw new LiveKiteError(f);
    }
  }

  private backoffMs(attempt: number): number {
    return Math.min(this.backoff.maxMs, this.backoff.firstMs * 2 ** Math.min(30, attempt - 1));
  }

  /** Waits `ms`; close() ends every wait at once. */
  private pause(ms: number): Promise<void> {
    if (this.closed) return Promise.resolve();
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        this.pauses.delete(t);
        resolve();
      }, ms);
      this.pauses.set(t, resolve);
    });
  }
}

// --- Kite's request fields -----------------------------------------------------------------------

function isStop(type: string): boolean {
  return type === 'SL' || type === 'SL-M';
}

/** The variety Kite knows the order by: iceberg legs go as regular orders (see the header). */
export function kiteVariety(o: Pick<Order, 'variety'>): string {
  return o.variety === 'iceberg' ? 'regular' : o.variety;
}

/** The fields of a placement: prices as exact rupee text, our mark as the tag. */
export function placeParams(o: Order): Record<string, string | number> {
  const p: Record<string, string | number> = {
    exchange: o.exchange,
    tradingsymbol: o.symbol,
    transaction_type: o.side,
    quantity: o.quantity,
    product: o.product,
    order_type: o.orderType,
    validity: o.validity,
    tag: markOf(o),
  };
  if (o.validity === 'TTL') p.validity_ttl = o.validityTtl;
  if (o.disclosedQuantity > 0) p.disclosed_quantity = o.disclosedQuantity;
  if (o.orderType === 'LIMIT' || o.orderType === 'SL') p.price = rupeesText(o.pricePaise);
  if (isStop(o.orderType)) p.trigger_price = rupeesText(o.triggerPaise);
  if ((o.orderType === 'MARKET' || o.orderType === 'SL-M') && o.marketProtection !== null) p.market_protection = o.marketProtection;
  return p;
}

/** The fields a modification changes (with the price, trigger and protection a new order type needs). */
export function modifyParams(o: Order, c: ModifyFields): Record<string, string | number> {
  const p: Record<string, string | number> = {};
  const typeChanged = c.orderType !== o.orderType;
  if (typeChanged) p.order_type = c.orderType;
  if (c.quantity !== o.quantity) p.quantity = c.quantity;
  if ((c.orderType === 'LIMIT' || c.orderType === 'SL') && (typeChanged || c.pricePaise !== o.pricePaise)) p.price = rupeesText(c.pricePaise);
  if (isStop(c.orderType) && (typeChanged || c.triggerPaise !== o.triggerPaise)) p.trigger_price = rupeesText(c.triggerPaise);
  if (c.validity !== o.validity) p.validity = c.validity;
  if (c.disclosedQuantity !== o.disclosedQuantity) p.disclosed_quantity = c.disclosedQuantity;
  if ((c.orderType === 'MARKET' || c.orderType === 'SL-M') && c.marketProtection !== null && (typeChanged || c.marketProtection !== o.marketProtection)) {
    p.market_protection = c.marketProtection;
  }
  return p;
}

/** The row shows the order at the exchange (it worked there, or still does). */
function reachedExchange(v: KiteRow): boolean {
  if (v.filled > 0 || v.exchangeOrderId !== null) return true;
  return v.status === Status.OPEN || v.status === Status.TRIGGER_PENDING || v.status === Status.COMPLETE;
}

/** The first status to report for an order first seen at the exchange in this row. */
function waitsForTrigger(v: KiteRow): boolean {
  if (v.status === Status.TRIGGER_PENDING) return true;
  return isStop(v.orderType) && v.filled === 0 && v.status !== Status.OPEN && v.status !== Status.COMPLETE;
}
