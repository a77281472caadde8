/**
 * The simulator's order book: Kite's orders, trades, positions and funds per api_key, matched
 * against the simulator's own market (market.ts), so a client can be tested against Kite's order
 * contract without a broker account. order-routes.ts serves it over HTTP as Kite's REST API; this
 * module knows no HTTP.
 *
 * An order's life, as Kite's order history lists it (one row per status):
 *
 * | step               | statuses                                                                |
 * |--------------------|-------------------------------------------------------------------------|
 * | placed (the answer)| PUT ORDER REQ RECEIVED, VALIDATION PENDING, OPEN PENDING                |
 * |                    | (REJECTED instead of OPEN PENDING when funds do not cover its margin)   |
 * | `acceptLatencyMs`  | OPEN, or TRIGGER PENDING for SL / SL-M; REJECTED for a `rejectNext`     |
 * | later              | OPEN again per partial fill, COMPLETE when filled, CANCELLED (IOC rest, |
 * |                    | cancel, TTL)                                                            |
 * | modify (answer)    | MODIFY VALIDATION PENDING, MODIFY PENDING; `acceptLatencyMs` later      |
 * |                    | MODIFIED, then OPEN or TRIGGER PENDING with the new fields              |
 * | cancel (answer)    | CANCEL PENDING; `acceptLatencyMs` later CANCELLED (a fill first wins)   |
 *
 * Matching (the simulator's market never feels our orders: what one order takes, the next can
 * take again):
 * - On arrival an order walks the opposite side of its instrument's 5-level depth, level by level
 *   at each level's price, up to its limit: the LIMIT price, or for MARKET (and a triggered SL-M)
 *   the protection price, last price ± `market_protection` percent (-1: 5 % under ₹100, 3 % under
 *   ₹500, else 2 %), rounded to the tick towards the last price. The rest rests at that limit;
 *   IOC cancels it.
 * - A resting order fills when the market prints at or through its limit, at its limit price,
 *   taking at most the volume traded since it last had its chance; one print's volume is shared
 *   by the resting orders of each side in time order.
 * - SL and SL-M wait in TRIGGER PENDING until the last price reaches the trigger (BUY: at or
 *   above, SELL: at or below), then arrive as LIMIT or MARKET.
 * The market trades only the rows someone follows, so a row with working orders is followed for
 * as long as they work (Followers): an order fills with no ticker connected.
 *
 * Every status change is an order update for the api_key's ticker connections (Kite's
 * `{"type":"order"}` text frame, with `user_id`, `app_id` and `unfilled_quantity` added as Kite
 * does); a partial fill goes out as status UPDATE. Kite posts back COMPLETE, CANCELLED, REJECTED
 * and UPDATE (a partial fill, a modification): `onUpdate` says which (postbacks.ts sends them).
 *
 * Not modelled: co and auction orders (refused), iceberg legs (an iceberg order works as one order
 * with its legs in `meta`), autoslice (the simulator has no freeze limits), market hours (amo
 * works as regular), holdings. Timestamps come from the simulator's clock; latencies are real time.
 */
import type { Instrument } from '../../core/instrument.ts';
import { AppError } from '../../core/errors.ts';
import { IdSource, averageRupees, kiteTime, paiseToRupees, rupeesToPaise } from '../../orders/model.ts';
import { type Market, ModeCode } from './market.ts';
import type { FaultState } from './order-faults.ts';
import { type Funds, type KitePositionRow, type Position, marginOf, positionPnl, positionRow } from './portfolio.ts';
import type { Followers } from './subscriptions.ts';

// --- Kite's errors -------------------------------------------------------------------------------

export type KiteErrorType = 'InputException' | 'TokenException' | 'OrderException' | 'MarginException' | 'NetworkException' | 'GeneralException';

/** HTTP status per error type. The official client reads only `error_type`, never the status. */
const HTTP_STATUS: Readonly<Record<KiteErrorType, number>> = {
  InputException: 400,
  OrderException: 400,
  MarginException: 400,
  TokenException: 403,
  NetworkException: 429,
  GeneralException: 500,
};

/** A request Kite refuses: its error type, its message, its HTTP status. */
export class KiteApiError extends AppError {
  readonly httpStatus: number;

  constructor(readonly errorType: KiteErrorType, message: string) {
    super('SIM_KITE_REFUSED', message, { errorType });
    this.name = 'KiteApiError';
    this.httpStatus = HTTP_STATUS[errorType];
  }

  /** Kite's error body. */
  body(): string {
    return JSON.stringify({ status: 'error', message: this.message, data: null, error_type: this.errorType });
  }
}

const input = (message: string) => new KiteApiError('InputException', message);

/** Kite's message for a MARKET or SL-M order without protection, as its API answers. */
export const NO_PROTECTION_MESSAGE = 'Market orders without market protection are not allowed via API';

// --- rows ----------------------------------------------------------------------------------------

/** An order as Kite's order book, order history, ticker updates and postbacks carry it. */
export interface KiteOrderRow {
  account_id: string;
  placed_by: string;
  order_id: string;
  exchange_order_id: string | null;
  parent_order_id: string | null;
  status: string;
  status_message: string | null;
  status_message_raw: string | null;
  order_timestamp: string;
  exchange_update_timestamp: string | null;
  exchange_timestamp: string | null;
  variety: string;
  modified: boolean;
  exchange: string;
  tradingsymbol: string;
  instrument_token: number;
  order_type: string;
  transaction_type: string;
  validity: string;
  validity_ttl: number;
  product: string;
  quantity: number;
  disclosed_quantity: number;
  price: number;
  trigger_price: number;
  average_price: number;
  filled_quantity: number;
  pending_quantity: number;
  cancelled_quantity: number;
  market_protection: number;
  meta: Record<string, unknown>;
  tag: string | null;
  tags: string[];
  guid: string | null;
}

/** A trade as Kite's trade book carries it. */
export interface KiteTradeRow {
  trade_id: string;
  order_id: string;
  exchange_order_id: string;
  exchange: string;
  tradingsymbol: string;
  instrument_token: number;
  product: string;
  average_price: number;
  quantity: number;
  fill_timestamp: string;
  order_timestamp: string;
  exchange_timestamp: string;
  transaction_type: string;
}

/** An order update as the ticker sends it and a postback carries it (before its checksum). */
export interface OrderUpdate extends KiteOrderRow {
  user_id: string;
  app_id: number;
  unfilled_quantity: number;
}

// --- orders --------------------------------------------------------------------------------------

const VARIETIES = ['regular', 'amo', 'iceberg'];
const NOT_TAKEN = ['co', 'auction'];
const ORDER_TYPES = ['MARKET', 'LIMIT', 'SL', 'SL-M'];
const PRODUCTS = ['CNC', 'NRML', 'MIS', 'MTF'];
const VALIDITIES = ['DAY', 'IOC', 'TTL'];
const FINAL = new Set(['COMPLETE', 'CANCELLED', 'REJECTED']);
const TAG_MAX = 20;
const TTL_MAX_MINUTES = 24 * 60;
/** Kite allows this many modifications of one order. */
export const MAX_MODIFICATIONS = 25;
const ICEBERG_LEGS_MIN = 2;
const ICEBERG_LEGS_MAX = 50;

/** Where an order is in the book. */
const OUT = 0;
const RESTING = 1;
const WAITING = 2;

/** The fields a placement sets and a modification may change. */
interface Terms {
  orderType: string;
  validity: string;
  validityTtl: number;
  quantity: number;
  disclosed: number;
  pricePaise: number;
  triggerPaise: number;
  /** -1 automatic, 1-100 percent; 0 for LIMIT and SL. */
  protection: number;
}

interface SimOrder extends Terms {
  readonly id: string;
  readonly apiKey: string;
  readonly variety: string;
  readonly inst: Instrument;
  readonly row: number;
  readonly side: 'BUY' | 'SELL';
  readonly product: string;
  readonly tag: string | null;
  readonly guid: string | null;
  readonly meta: Record<string, unknown>;
  status: string;
  statusMessage: string | null;
  filled: number;
  filledValuePaise: number;
  cancelled: number;
  modifications: number;
  exchangeId: string | null;
  exchangeMs: number | null;
  /** A stop that has triggered works as a LIMIT (SL) or MARKET (SL-M) from then on. */
  triggered: boolean;
  /** A cancel request is on its way: no modification meanwhile. */
  cancelPending: boolean;
  /** OUT, RESTING (a limit in the row's list) or WAITING (a stop). */
  where: number;
  /** The price it rests at: its LIMIT price, or the protection price of a MARKET order. */
  limitPaise: number;
  /** Day volume of its row up to which it has had its chance to fill. */
  mark: number;
  readonly history: KiteOrderRow[];
  readonly trades: KiteTradeRow[];
}

/** What a key holds. */
interface Account {
  readonly orders: SimOrder[];
  readonly trades: KiteTradeRow[];
  readonly positions: Map<string, Position>;
  turnoverPaise: number;
}

export interface SimOrdersOptions {
  market: Market;
  /** The simulator's followed rows: rows with working orders are added, so the market trades them. */
  followers: Followers;
  /** Epoch ms for timestamps. */
  clock: () => number;
  /** Between OPEN PENDING and the exchange (and for modifications and cancels), ms. */
  acceptLatencyMs: number;
  /** Funds of every key, paise. */
  capitalPaise: number;
  /** Kite's user id: `placed_by`, `account_id`, the updates' `user_id`. */
  userId: string;
  /** The updates' `app_id`. */
  appId: number;
  faults: FaultState;
  /** An order update for `apiKey`'s ticker connections; `postback` when Kite would post it back too. */
  onUpdate(apiKey: string, update: OrderUpdate, postback: boolean): void;
}

/** Form fields as sent (the last of a repeated one). */
export type Form = Readonly<Record<string, string>>;

export class SimOrders {
  private readonly market: Market;
  private readonly instruments: readonly Instrument[];
  /** `EXCHANGE:TRADINGSYMBOL`, upper case, to market row. */
  private readonly rowByKey = new Map<string, number>();
  private readonly accounts = new Map<string, Account>();
  private readonly byId = new Map<string, SimOrder>();
  /** Working orders per market row, in arrival order; undefined when none. */
  private readonly rows: (SimOrder[] | undefined)[];
  /** Day volume of each row when its working orders were last examined. */
  private readonly seen: Float64Array;
  private readonly ids: IdSource;
  private nextTrade = 10_000_000;
  private nextExchangeId = 1_100_000_000_000_000;
  private readonly timers = new Set<NodeJS.Timeout>();
  private closed = false;

  constructor(private readonly opts: SimOrdersOptions) {
    this.market = opts.market;
    this.instruments = opts.market.instruments;
    this.instruments.forEach((t, i) => this.rowByKey.set(`${t.exchange}:${t.tradingsymbol}`.toUpperCase(), i));
    this.rows = new Array<SimOrder[] | undefined>(this.instruments.length);
    this.seen = new Float64Array(this.instruments.length);
    this.ids = new IdSource(null, opts.clock);
  }

  /** Orders working at the exchange (OPEN or TRIGGER PENDING). */
  get working(): number {
    let n = 0;
    for (const list of this.rows) if (list !== undefined) n += list.length;
    return n;
  }

  // --- requests ----------------------------------------------------------------------------------

  /** `POST /orders/:variety`: the new order's id. Throws KiteApiError for a bad request. */
  place(apiKey: string, variety: string, form: Form): string {
    checkVariety(variety);
    const exchange = form.exchange ?? '';
    const symbol = form.tradingsymbol ?? '';
    if (exchange === '' || symbol === '') throw input('`exchange` and `tradingsymbol` are required: send e.g. exchange=NSE&tradingsymbol=INFY.');
    const row = this.rowByKey.get(`${exchange}:${symbol}`.toUpperCase());
    if (row === undefined) throw input(`Instrument not found: ${exchange}:${symbol} is not in the instrument master; check the exchange and tradingsymbol against /instruments.`);
    const inst = this.instruments[row];
    if (inst.segment === 'INDICES') throw input(`${inst.tradingsymbol} is an index and cannot be traded; trade its futures or options.`);
    const side = form.transaction_type;
    if (side !== 'BUY' && side !== 'SELL') throw input('Invalid `transaction_type`: send BUY or SELL.');
    const product = form.product ?? '';
    if (!PRODUCTS.includes(product)) throw input(`Invalid \`product\`: send one of ${PRODUCTS.join(', ')}.`);
    const derivative = inst.instrumentType !== 'EQ';
    if (derivative ? product !== 'NRML' && product !== 'MIS' : product === 'NRML') {
      throw input(`Product ${product} is not allowed for ${inst.exchange} ${derivative ? 'derivatives' : 'equity'}; send ${derivative ? 'NRML or MIS' : 'CNC, MIS or MTF'}.`);
    }
    const orderType = form.order_type ?? '';
    const terms = this.checkTerms(inst, row, side, {
      orderType,
      validity: form.validity ?? 'DAY',
      validityTtl: intField(form, 'validity_ttl') ?? 0,
      quantity: intField(form, 'quantity') ?? 0,
      disclosed: intField(form, 'disclosed_quantity') ?? 0,
      pricePaise: priceField(form, 'price'),
      triggerPaise: priceField(form, 'trigger_price'),
      protection: intField(form, 'market_protection') ?? 0,
    }, true);
    const tag = form.tag === undefined || form.tag === '' ? null : form.tag;
    if (tag !== null && tag.length > TAG_MAX) throw input(`Tag length should not exceed ${TAG_MAX} characters: "${tag}" has ${tag.length}.`);
    const meta: Record<string, unknown> = {};
    if (variety === 'iceberg') meta.iceberg = icebergMeta(form, terms.quantity, inst);

    const now = this.opts.clock();
    const o: SimOrder = {
      ...terms,
      id: this.ids.next(),
      apiKey,
      variety,
      inst,
      row,
      side,
      product,
      tag,
      guid: form.guid === undefined || form.guid === '' ? null : form.guid,
      meta,
      status: '',
      statusMessage: null,
      filled: 0,
      filledValuePaise: 0,
      cancelled: 0,
      modifications: 0,
      exchangeId: null,
      exchangeMs: null,
      triggered: false,
      cancelPending: false,
      where: OUT,
      limitPaise: 0,
      mark: 0,
      history: [],
      trades: [],
    };
    this.byId.set(o.id, o);
    this.account(apiKey).orders.push(o);
    this.record(o, 'PUT ORDER REQ RECEIVED', now);
    this.record(o, 'VALIDATION PENDING', now);
    const need = this.marginNeeded(o);
    const available = this.availablePaise(apiKey) + this.blockedBy(o);
    if (need > available) {
      o.statusMessage = `Insufficient funds. Required margin is ${rs(need)} but available margin is ${rs(Math.max(0, available))}.`;
      this.record(o, 'REJECTED', now);
      return o.id;
    }
    this.record(o, 'OPEN PENDING', now);
    this.later(() => this.arrive(o));
    return o.id;
  }

  /** `PUT /orders/:variety/:order_id`. Throws KiteApiError for a bad request. */
  modify(apiKey: string, variety: string, orderId: string, form: Form): string {
    const o = this.owned(apiKey, orderId, variety);
    if (FINAL.has(o.status)) throw new KiteApiError('OrderException', `Order cannot be modified as it is ${o.status}.`);
    if (o.cancelPending) throw new KiteApiError('OrderException', 'Order cannot be modified while it is being cancelled.');
    if (o.modifications >= MAX_MODIFICATIONS) throw new KiteApiError('OrderException', `Maximum allowed order modifications exceeded: Kite allows ${MAX_MODIFICATIONS} per order; cancel it and place a new one.`);
    const orderType = form.order_type ?? o.orderType;
    const typeChanged = orderType !== o.orderType;
    const has = (k: string) => form[k] !== undefined && form[k] !== '';
    const terms = this.checkTerms(o.inst, o.row, o.side, {
      orderType,
      validity: form.validity ?? o.validity,
      validityTtl: intField(form, 'validity_ttl') ?? o.validityTtl,
      quantity: intField(form, 'quantity') ?? o.quantity,
      disclosed: intField(form, 'disclosed_quantity') ?? o.disclosed,
      pricePaise: has('price') ? priceField(form, 'price') : typeChanged ? 0 : o.pricePaise,
      triggerPaise: has('trigger_price') ? priceField(form, 'trigger_price') : typeChanged && !isStop(orderType) ? 0 : o.triggerPaise,
      protection: intField(form, 'market_protection') ?? o.protection,
    }, isStop(orderType) && !o.triggered);
    if (terms.quantity <= o.filled) throw input(`Quantity ${terms.quantity} must be above the quantity already filled, ${o.filled}.`);
    const now = this.opts.clock();
    this.record(o, 'MODIFY VALIDATION PENDING', now);
    this.record(o, 'MODIFY PENDING', now);
    this.later(() => this.applyModify(o, terms));
    return o.id;
  }

  /** `DELETE /orders/:variety/:order_id`. Throws KiteApiError for a bad request. */
  cancel(apiKey: string, variety: string, orderId: string): string {
    const o = this.owned(apiKey, orderId, variety);
    if (FINAL.has(o.status)) throw new KiteApiError('OrderException', `Order cannot be cancelled as it is ${o.status}.`);
    if (o.cancelPending) throw new KiteApiError('OrderException', 'Order is already being cancelled.');
    o.cancelPending = true;
    this.record(o, 'CANCEL PENDING', this.opts.clock());
    this.later(() => this.cancelRest(o, null));
    return o.id;
  }

  /** `GET /orders`: the key's orders, latest state, in placing order. */
  orders(apiKey: string): KiteOrderRow[] {
    return (this.accounts.get(apiKey)?.orders ?? []).map((o) => o.history[o.history.length - 1]);
  }

  /** `GET /orders/:order_id`: one row per status. */
  history(apiKey: string, orderId: string): KiteOrderRow[] {
    return this.owned(apiKey, orderId).history.slice();
  }

  /** `GET /trades`. */
  trades(apiKey: string): KiteTradeRow[] {
    return (this.accounts.get(apiKey)?.trades ?? []).slice();
  }

  /** `GET /orders/:order_id/trades`. */
  orderTrades(apiKey: string, orderId: string): KiteTradeRow[] {
    return this.owned(apiKey, orderId).trades.slice();
  }

  /** `GET /portfolio/positions`: a run is one day, so `net` and `day` are the same list. */
  positions(apiKey: string): { net: KitePositionRow[]; day: KitePositionRow[] } {
    const prices = this.prices();
    const rows = [...(this.accounts.get(apiKey)?.positions.values() ?? [])].map((p) => positionRow(p, prices));
    return { net: rows, day: rows.map((r) => ({ ...r })) };
  }

  /** The key's funds, paise (for `/user/margins`). */
  funds(apiKey: string): Funds {
    const acc = this.accounts.get(apiKey);
    let blocked = 0;
    let realised = 0;
    let unrealised = 0;
    if (acc !== undefined) {
      for (const o of acc.orders) blocked += this.blockedBy(o);
      for (const p of acc.positions.values()) {
        const last = this.lastPaise(p.row);
        const net = p.buyQty - p.sellQty;
        blocked += marginOf(Math.abs(net) * last, p.product);
        const { pnl, realised: r } = positionPnl(p, last);
        realised += r;
        unrealised += pnl - r;
      }
    }
    return { capitalPaise: this.opts.capitalPaise, blockedPaise: blocked, realisedPaise: realised, unrealisedPaise: unrealised, turnoverPaise: acc?.turnoverPaise ?? 0 };
  }

  /** Every key's orders, latest state (for tests: `Simulator.orders()`). */
  all(apiKey?: string): KiteOrderRow[] {
    if (apiKey !== undefined) return this.orders(apiKey);
    return [...this.byId.values()].map((o) => o.history[o.history.length - 1]);
  }

  /** History of any key's order, or null when unknown (for tests). */
  historyOf(orderId: string): KiteOrderRow[] | null {
    return this.byId.get(orderId)?.history.slice() ?? null;
  }

  // --- the market --------------------------------------------------------------------------------

  /**
   * After each market round: the rows it updated (`updated[0..k)`). Rows without working orders
   * cost one array read.
   */
  onRound(updated: Int32Array, k: number): void {
    const rows = this.rows;
    for (let j = 0; j < k; j++) {
      const r = updated[j];
      if (rows[r] !== undefined) this.matchRow(r);
    }
  }

  close(): void {
    this.closed = true;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
  }

  // --- internals ---------------------------------------------------------------------------------

  private account(apiKey: string): Account {
    let a = this.accounts.get(apiKey);
    if (a === undefined) {
      a = { orders: [], trades: [], positions: new Map(), turnoverPaise: 0 };
      this.accounts.set(apiKey, a);
    }
    return a;
  }

  /** The key's order `orderId`; Kite's answer for another key's order is the same as for none. */
  private owned(apiKey: string, orderId: string, variety?: string): SimOrder {
    const o = this.byId.get(orderId);
    if (o === undefined || o.apiKey !== apiKey) throw input("Couldn't find that `order_id`.");
    if (variety !== undefined && variety !== o.variety) {
      checkVariety(variety);
      throw input(`Order ${orderId} is a ${o.variety} order: send variety ${o.variety}.`);
    }
    return o;
  }

  /** Checks order type, validity, quantity, prices and protection; returns them settled. */
  private checkTerms(inst: Instrument, row: number, side: string, t: Terms, waitsForTrigger: boolean): Terms {
    if (!ORDER_TYPES.includes(t.orderType)) throw input(`Invalid \`order_type\`: send one of ${ORDER_TYPES.join(', ')}.`);
    if (!VALIDITIES.includes(t.validity)) throw input(`Invalid \`validity\`: send one of ${VALIDITIES.join(', ')}.`);
    if (t.validity === 'TTL' && !(t.validityTtl >= 1 && t.validityTtl <= TTL_MAX_MINUTES)) {
      throw input(`\`validity_ttl\` is required for TTL orders: the minutes the order lives, 1 to ${TTL_MAX_MINUTES}.`);
    }
    const lot = inst.lotSize > 0 ? inst.lotSize : 1;
    if (!(t.quantity > 0)) throw input('Invalid `quantity`: send a whole number above 0.');
    if (t.quantity % lot !== 0) throw input(`Quantity should be a multiple of the lot size ${lot} for ${inst.tradingsymbol}: send ${lot}, ${2 * lot}, ...`);
    if (t.disclosed < 0 || t.disclosed > t.quantity) throw input('Invalid `disclosed_quantity`: it cannot exceed the quantity.');
    const type = t.orderType;
    const limit = type === 'LIMIT' || type === 'SL';
    const pricePaise = limit ? t.pricePaise : 0;
    const triggerPaise = isStop(type) ? t.triggerPaise : 0;
    if (limit && !(pricePaise > 0)) throw input(`Price is required for ${type} orders: send \`price\` above 0.`);
    if (isStop(type) && !(triggerPaise > 0)) throw input(`Trigger price is required for ${type} orders: send \`trigger_price\` above 0.`);
    const tick = tickPaise(inst);
    if (pricePaise % tick !== 0 || triggerPaise % tick !== 0) {
      throw input(`Price ${rs(pricePaise % tick !== 0 ? pricePaise : triggerPaise)} is not a multiple of the tick size ${rs(tick)} for ${inst.tradingsymbol}.`);
    }
    let protection = 0;
    if (type === 'MARKET' || type === 'SL-M') {
      // 0 is "no protection", which Kite refuses on its API: only -1 (automatic) or 1-100 pass.
      if (t.protection === 0) throw input(NO_PROTECTION_MESSAGE);
      if (!(t.protection === -1 || (t.protection >= 1 && t.protection <= 100))) {
        throw input('Invalid `market_protection`: send -1 (automatic) or 1 to 100 (percent of the last price).');
      }
      protection = t.protection;
    }
    if (type === 'SL') {
      if (side === 'BUY' && pricePaise < triggerPaise) throw input('Trigger price for a stoploss BUY order should be at or below the price.');
      if (side === 'SELL' && pricePaise > triggerPaise) throw input('Trigger price for a stoploss SELL order should be at or above the price.');
    }
    if (waitsForTrigger && isStop(type)) {
      const last = this.lastPaise(row);
      if (side === 'BUY' && triggerPaise <= last) throw input(`Trigger price for a stoploss BUY order should be above the last traded price ${rs(last)}.`);
      if (side === 'SELL' && triggerPaise >= last) throw input(`Trigger price for a stoploss SELL order should be below the last traded price ${rs(last)}.`);
    }
    return { ...t, pricePaise, triggerPaise, protection, validityTtl: t.validity === 'TTL' ? t.validityTtl : 0 };
  }

  /** After `acceptLatencyMs`: the order reaches the exchange. */
  private arrive(o: SimOrder): void {
    if (FINAL.has(o.status)) return;
    const now = this.opts.clock();
    const rejection = this.opts.faults.takeReject();
    if (rejection !== null) {
      o.statusMessage = rejection;
      this.record(o, 'REJECTED', now);
      return;
    }
    o.exchangeId = String(this.nextExchangeId++);
    o.exchangeMs = now;
    if (o.validity === 'TTL') this.later(() => this.cancelRest(o, 'Order cancelled: its TTL validity lapsed.'), o.validityTtl * 60_000);
    this.work(o, now);
  }

  /** The order works at the exchange: it waits for its trigger, or walks the depth and rests. */
  private work(o: SimOrder, now: number): void {
    if (isStop(o.orderType) && !o.triggered) {
      this.record(o, 'TRIGGER PENDING', now);
      this.enter(o, WAITING);
      return;
    }
    this.record(o, 'OPEN', now);
    this.take(o, now);
  }

  /** A marketable order takes the depth up to its limit; the rest rests (IOC: is cancelled). */
  private take(o: SimOrder, now: number): void {
    const t = this.market.tickOf(o.row, ModeCode.FULL);
    const type = o.orderType;
    o.limitPaise = type === 'LIMIT' || type === 'SL' ? o.pricePaise : protectionPrice(o.side, t.lastPrice, o.protection, tickPaise(o.inst));
    const d = t.depth;
    const base = o.side === 'BUY' ? 5 : 0;
    let took = 0;
    for (let k = 0; k < 5; k++) {
      const left = this.pending(o);
      if (left <= 0) break;
      const level = d[base + k];
      if (!(level.price > 0) || !(level.quantity > 0)) break;
      if (o.side === 'BUY' ? level.price > o.limitPaise : level.price < o.limitPaise) break;
      const q = Math.min(left, level.quantity);
      this.fill(o, q, level.price, now);
      took += q;
    }
    if (this.pending(o) <= 0) {
      this.leave(o);
      this.record(o, 'COMPLETE', now);
      return;
    }
    if (o.validity === 'IOC') {
      this.leave(o);
      o.cancelled = this.pending(o);
      this.record(o, 'CANCELLED', now);
      return;
    }
    if (took > 0) this.record(o, 'OPEN', now, 'UPDATE');
    this.enter(o, RESTING);
  }

  /** A round updated row `r`, which has working orders: stops that trigger, limits the prints reach. */
  private matchRow(r: number): void {
    const list = this.rows[r]!;
    const t = this.market.tickOf(r, ModeCode.FULL);
    const last = t.lastPrice;
    const volume = t.volume;
    const now = this.opts.clock();
    // Each side has the volume traded since the row was last examined, shared in time order.
    const traded = volume > this.seen[r] ? volume - this.seen[r] : 0;
    this.seen[r] = volume;
    let buyLeft = traded;
    let sellLeft = traded;
    for (let i = 0; i < list.length; ) {
      const o = list[i];
      if (o.where === WAITING) {
        if (o.side === 'BUY' ? last >= o.triggerPaise : last <= o.triggerPaise) {
          o.triggered = true;
          this.leave(o);
          this.work(o, now); // may rest again, at the end of this list: examined later, with no volume
          if (this.rows[r] !== list) return;
          continue;
        }
      } else if (o.side === 'BUY' ? last <= o.limitPaise : last >= o.limitPaise) {
        const fresh = volume > o.mark ? volume - o.mark : 0;
        o.mark = volume;
        const budget = o.side === 'BUY' ? buyLeft : sellLeft;
        const q = Math.min(this.pending(o), budget, fresh);
        if (q > 0) {
          if (o.side === 'BUY') buyLeft -= q;
          else sellLeft -= q;
          this.fill(o, q, o.limitPaise, now);
          if (this.pending(o) <= 0) {
            this.leave(o);
            this.record(o, 'COMPLETE', now);
            if (this.rows[r] !== list) return;
            continue;
          }
          this.record(o, 'OPEN', now, 'UPDATE');
        }
      } else {
        o.mark = volume;
      }
      i++;
    }
  }

  private applyModify(o: SimOrder, terms: Terms): void {
    if (FINAL.has(o.status)) return;
    const now = this.opts.clock();
    const wasAtExchange = o.exchangeMs !== null;
    this.leave(o);
    Object.assign(o, terms);
    o.modifications++;
    this.record(o, 'MODIFIED', now, 'UPDATE');
    if (!wasAtExchange) {
      // Modified before it reached the exchange: it arrives with the new terms.
      this.record(o, 'OPEN PENDING', now);
      return;
    }
    this.work(o, now);
  }

  /** Cancels what is left (a cancel request, a lapsed TTL). */
  private cancelRest(o: SimOrder, message: string | null): void {
    o.cancelPending = false;
    if (FINAL.has(o.status)) return;
    this.leave(o);
    o.cancelled = this.pending(o);
    o.statusMessage = message;
    this.record(o, 'CANCELLED', this.opts.clock());
  }

  private pending(o: SimOrder): number {
    return o.quantity - o.filled - o.cancelled;
  }

  /** Into the row's working list (RESTING or WAITING); the row is followed while the list lives. */
  private enter(o: SimOrder, where: number): void {
    let list = this.rows[o.row];
    const volume = this.market.tickOf(o.row, ModeCode.FULL).volume;
    if (list === undefined) {
      list = this.rows[o.row] = [];
      this.seen[o.row] = volume;
      this.opts.followers.follow(o.row);
    }
    o.where = where;
    o.mark = volume;
    list.push(o);
  }

  private leave(o: SimOrder): void {
    if (o.where === OUT) return;
    o.where = OUT;
    const list = this.rows[o.row]!;
    list.splice(list.indexOf(o), 1);
    if (list.length === 0) {
      this.rows[o.row] = undefined;
      this.opts.followers.unfollow(o.row);
    }
  }

  private fill(o: SimOrder, qty: number, pricePaise: number, now: number): void {
    o.filled += qty;
    o.filledValuePaise += qty * pricePaise;
    const acc = this.account(o.apiKey);
    const trade: KiteTradeRow = {
      trade_id: String(this.nextTrade++),
      order_id: o.id,
      exchange_order_id: o.exchangeId ?? '',
      exchange: o.inst.exchange,
      tradingsymbol: o.inst.tradingsymbol,
      instrument_token: o.inst.instrumentToken,
      product: o.product,
      average_price: paiseToRupees(pricePaise),
      quantity: qty,
      fill_timestamp: kiteTime(now)!,
      order_timestamp: kiteTime(o.exchangeMs ?? now)!,
      exchange_timestamp: kiteTime(now)!,
      transaction_type: o.side,
    };
    o.trades.push(trade);
    acc.trades.push(trade);
    acc.turnoverPaise += qty * pricePaise;
    const key = `${o.inst.exchange}:${o.inst.tradingsymbol}:${o.product}`;
    let p = acc.positions.get(key);
    if (p === undefined) {
      p = { exchange: o.inst.exchange, tradingsymbol: o.inst.tradingsymbol, token: o.inst.instrumentToken, row: o.row, product: o.product, buyQty: 0, buyValuePaise: 0, sellQty: 0, sellValuePaise: 0 };
      acc.positions.set(key, p);
    }
    if (o.side === 'BUY') {
      p.buyQty += qty;
      p.buyValuePaise += qty * pricePaise;
    } else {
      p.sellQty += qty;
      p.sellValuePaise += qty * pricePaise;
    }
  }

  /**
   * A history row for `status`, sent to the key's ticker connections (as `sendAs`, when given: a
   * partial fill is an UPDATE there). Kite posts back final statuses and UPDATEs.
   */
  private record(o: SimOrder, status: string, now: number, sendAs?: 'UPDATE'): void {
    o.status = status;
    const row = this.row(o, now);
    o.history.push(row);
    const update: OrderUpdate = { ...row, user_id: this.opts.userId, app_id: this.opts.appId, unfilled_quantity: row.pending_quantity };
    if (sendAs !== undefined) update.status = sendAs;
    this.opts.onUpdate(o.apiKey, update, sendAs !== undefined || FINAL.has(status));
  }

  private row(o: SimOrder, now: number): KiteOrderRow {
    const final = FINAL.has(o.status);
    const atExchange = o.exchangeMs !== null;
    return {
      account_id: this.opts.userId,
      placed_by: this.opts.userId,
      order_id: o.id,
      exchange_order_id: o.exchangeId,
      parent_order_id: null,
      status: o.status,
      status_message: o.statusMessage,
      status_message_raw: o.statusMessage,
      order_timestamp: kiteTime(now)!,
      exchange_update_timestamp: atExchange ? kiteTime(now) : null,
      exchange_timestamp: kiteTime(o.exchangeMs),
      variety: o.variety,
      modified: o.modifications > 0,
      exchange: o.inst.exchange,
      tradingsymbol: o.inst.tradingsymbol,
      instrument_token: o.inst.instrumentToken,
      order_type: o.orderType,
      transaction_type: o.side,
      validity: o.validity,
      validity_ttl: o.validityTtl,
      product: o.product,
      quantity: o.quantity,
      disclosed_quantity: o.disclosed,
      price: paiseToRupees(o.pricePaise),
      trigger_price: paiseToRupees(o.triggerPaise),
      average_price: averageRupees(o.filledValuePaise, o.filled),
      filled_quantity: o.filled,
      pending_quantity: final ? 0 : this.pending(o),
      cancelled_quantity: o.cancelled,
      market_protection: o.protection,
      meta: { ...o.meta },
      tag: o.tag,
      tags: o.tag === null ? [] : [o.tag],
      guid: o.guid,
    };
  }

  /** Margin the order's unfilled quantity blocks while it is not final, paise. */
  private blockedBy(o: SimOrder): number {
    if (FINAL.has(o.status) || o.status === '') return 0;
    return this.marginNeeded(o);
  }

  private marginNeeded(o: SimOrder): number {
    const left = o.quantity - o.filled - o.cancelled;
    const price = o.pricePaise > 0 ? o.pricePaise : o.triggerPaise > 0 ? o.triggerPaise : this.lastPaise(o.row);
    return marginOf(left * price, o.product);
  }

  private availablePaise(apiKey: string): number {
    const f = this.funds(apiKey);
    return f.capitalPaise - f.blockedPaise + f.realisedPaise + f.unrealisedPaise;
  }

  private lastPaise(row: number): number {
    return this.market.tickOf(row, ModeCode.FULL).lastPrice;
  }

  private prices() {
    return {
      lastPaise: (row: number) => this.lastPaise(row),
      closePaise: (row: number) => this.market.tickOf(row, ModeCode.FULL).close,
    };
  }

  private later(fn: () => void, ms = this.opts.acceptLatencyMs): void {
    if (this.closed) return;
    const t = setTimeout(() => {
      this.timers.delete(t);
      if (!this.closed) fn();
    }, ms);
    t.unref?.();
    this.timers.add(t);
  }
}

// --- helpers -------------------------------------------------------------------------------------

function isStop(type: string): boolean {
  return type === 'SL' || type === 'SL-M';
}

function checkVariety(variety: string): void {
  if (VARIETIES.includes(variety)) return;
  if (NOT_TAKEN.includes(variety)) throw input(`The simulator does not take ${variety} orders: send variety ${VARIETIES.join(', ')}.`);
  throw input(`Invalid variety "${variety}": send ${VARIETIES.join(', ')}.`);
}

/** Tick in paise (the master's tick is rupees; the index row says 0). */
function tickPaise(inst: Instrument): number {
  const t = Math.round(inst.tickSize * 100);
  return t > 0 ? t : 5;
}

/** A whole-number field; undefined when absent or empty. */
function intField(form: Form, name: string): number | undefined {
  const v = form[name];
  if (v === undefined || v === '') return undefined;
  if (!/^-?\d{1,15}$/.test(v.trim())) throw input(`Invalid \`${name}\`: "${v}" is not a whole number.`);
  return Number(v);
}

/** A rupee field as paise; 0 when absent or empty. Read from the text, never through a float. */
function priceField(form: Form, name: string): number {
  const v = form[name];
  if (v === undefined || v === '') return 0;
  const p = rupeesToPaise(v);
  if (Number.isNaN(p) || p < 0) throw input(`Invalid \`${name}\`: "${v}" is not an amount in rupees with at most 2 decimals.`);
  return p;
}

function icebergMeta(form: Form, quantity: number, inst: Instrument): Record<string, number> {
  const legs = intField(form, 'iceberg_legs');
  const legQty = intField(form, 'iceberg_quantity');
  if (legs === undefined || legs < ICEBERG_LEGS_MIN || legs > ICEBERG_LEGS_MAX) {
    throw input(`\`iceberg_legs\` is required for iceberg orders: ${ICEBERG_LEGS_MIN} to ${ICEBERG_LEGS_MAX}.`);
  }
  const lot = inst.lotSize > 0 ? inst.lotSize : 1;
  if (legQty === undefined || legQty <= 0 || legQty % lot !== 0 || legQty * legs < quantity) {
    throw input(`\`iceberg_quantity\` is required for iceberg orders: a multiple of the lot size ${lot}, with legs × iceberg_quantity covering the quantity.`);
  }
  return { leg: 1, legs, leg_quantity: legQty, total_quantity: quantity, remaining_quantity: quantity };
}

/** Protection percent for `-1` (automatic), by last price in paise. */
function autoProtectionPct(lastPaise: number): number {
  if (lastPaise < 100_00) return 5;
  if (lastPaise < 500_00) return 3;
  return 2;
}

/** The price a MARKET order may walk to: last ± protection percent, rounded to the tick towards last. */
export function protectionPrice(side: 'BUY' | 'SELL', lastPaise: number, protection: number, tick: number): number {
  const pct = protection < 0 ? autoProtectionPct(lastPaise) : protection;
  if (side === 'BUY') return Math.floor(Math.floor((lastPaise * (100 + pct)) / 100) / tick) * tick;
  return Math.max(tick, Math.ceil(Math.ceil((lastPaise * (100 - pct)) / 100) / tick) * tick);
}

/** Paise as rupees with two decimals, in integers. */
function rs(p: number): string {
  const a = Math.abs(p);
  return `${p < 0 ? '-' : ''}${Math.floor(a / 100)}.${String(a % 100).padStart(2, '0')}`;
}
