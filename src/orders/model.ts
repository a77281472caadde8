/**
 * The order path's vocabulary: Kite's words for varieties, types, statuses and products, the order
 * and trade as the service holds them, and money.
 *
 * Money is integer paise everywhere in the order path (JS numbers hold integers exactly up to 2^53
 * paise, about 90 trillion rupees): prices, trigger prices, fill values, P&L. Rupees appear only at
 * the edges, as Kite's JSON numbers (`paiseToRupees`) and as `numeric` in the database. An average
 * is never stored: it is a fill value over a quantity, divided when it is shown.
 *
 * | Order field          | meaning                                                                  |
 * |----------------------|--------------------------------------------------------------------------|
 * | id                   | Kite-style numeric string, unique across restarts (OrderIds)             |
 * | key                  | the API key name that placed it: only that key sees or touches it        |
 * | mode                 | 'paper' or 'live': which broker holds it                                 |
 * | pricePaise           | LIMIT / SL price; 0 for MARKET and SL-M (until protection makes it a limit) |
 * | triggerPaise         | SL / SL-M trigger; 0 otherwise                                           |
 * | filledValuePaise     | Σ fill quantity × fill price: average_price = this / filledQuantity      |
 * | modifications        | modifications accepted so far (Kite allows 25 per order)                 |
 */

import { istString } from '../core/ist.ts';

export const VARIETIES = ['regular', 'amo', 'co', 'iceberg', 'auction'] as const;
export type Variety = (typeof VARIETIES)[number];
/** Varieties this service places: `co` and `auction` are refused with a message saying so. */
export const PLACEABLE_VARIETIES: readonly Variety[] = ['regular', 'amo', 'iceberg'];
export const ORDER_TYPES = ['MARKET', 'LIMIT', 'SL', 'SL-M'] as const;
export type OrderType = (typeof ORDER_TYPES)[number];
export const SIDES = ['BUY', 'SELL'] as const;
export type Side = (typeof SIDES)[number];
export const PRODUCTS = ['CNC', 'NRML', 'MIS', 'MTF'] as const;
export type Product = (typeof PRODUCTS)[number];
export const VALIDITIES = ['DAY', 'IOC', 'TTL'] as const;
export type Validity = (typeof VALIDITIES)[number];
export type BrokerMode = 'paper' | 'live';

/** Kite's status words, as its order history spells them. */
export const Status = {
  PUT_ORDER_REQ_RECEIVED: 'PUT ORDER REQ RECEIVED',
  AMO_REQ_RECEIVED: 'AMO REQ RECEIVED',
  VALIDATION_PENDING: 'VALIDATION PENDING',
  OPEN_PENDING: 'OPEN PENDING',
  OPEN: 'OPEN',
  TRIGGER_PENDING: 'TRIGGER PENDING',
  MODIFY_VALIDATION_PENDING: 'MODIFY VALIDATION PENDING',
  MODIFY_PENDING: 'MODIFY PENDING',
  MODIFIED: 'MODIFIED',
  CANCEL_PENDING: 'CANCEL PENDING',
  COMPLETE: 'COMPLETE',
  CANCELLED: 'CANCELLED',
  REJECTED: 'REJECTED',
} as const;
export type OrderStatus = (typeof Status)[keyof typeof Status];

/** Statuses an order never leaves. */
export const FINAL_STATUSES: ReadonlySet<string> = new Set([Status.COMPLETE, Status.CANCELLED, Status.REJECTED]);
/** Statuses of an order that still works in the market (may fill, may be modified or cancelled). */
export const WORKING_STATUSES: ReadonlySet<string> = new Set([Status.OPEN, Status.TRIGGER_PENDING, Status.AMO_REQ_RECEIVED]);

export interface Order {
  readonly id: string;
  readonly key: string;
  readonly mode: BrokerMode;
  /** Iceberg legs and autoslice children: the first leg's id; null otherwise. */
  readonly parentId: string | null;
  readonly variety: Variety;
  readonly exchange: string;
  readonly symbol: string;
  readonly token: number;
  readonly side: Side;
  readonly product: Product;
  orderType: OrderType;
  validity: Validity;
  /** Minutes, for TTL; 0 otherwise. */
  validityTtl: number;
  quantity: number;
  disclosedQuantity: number;
  pricePaise: number;
  triggerPaise: number;
  /** 0 none, 1-100 percent, -1 automatic; null when not sent (LIMIT and SL). */
  marketProtection: number | null;
  readonly tag: string | null;
  readonly guid: string | null;
  status: OrderStatus;
  statusMessage: string | null;
  filledQuantity: number;
  filledValuePaise: number;
  cancelledQuantity: number;
  modifications: number;
  readonly createdMs: number;
  updatedMs: number;
  /** When the (paper) exchange accepted it; null before. */
  exchangeMs: number | null;
  /** Kite's `meta` (iceberg leg details); null when empty. */
  meta: Record<string, unknown> | null;
  /** Kite's order_id of a live order, once Kite has acknowledged it; absent or null otherwise. */
  brokerOrderId?: string | null;
}

export interface Trade {
  readonly tradeId: string;
  readonly orderId: string;
  readonly key: string;
  readonly mode: BrokerMode;
  readonly exchange: string;
  readonly symbol: string;
  readonly token: number;
  readonly product: Product;
  readonly side: Side;
  readonly quantity: number;
  readonly pricePaise: number;
  readonly timeMs: number;
}

export function pendingQuantity(o: Order): number {
  return FINAL_STATUSES.has(o.status) ? 0 : o.quantity - o.filledQuantity - o.cancelledQuantity;
}

// --- money ---------------------------------------------------------------------------------------

/**
 * Rupees (a JSON number or a decimal string) to integer paise, or NaN when the value is not a
 * whole number of paise. Strings are read digit by digit, never through a float: "0.1" is 10.
 */
export function rupeesToPaise(v: number | string): number {
  if (typeof v === 'string') {
    const m = /^(-?)(\d{1,13})(?:\.(\d{1,2})0*)?$/.exec(v.trim());
    if (m === null) return NaN;
    const p = Number(m[2]) * 100 + Number((m[3] ?? '').padEnd(2, '0'));
    return m[1] === '-' ? -p : p;
  }
  if (!Number.isFinite(v) || Math.abs(v) > 1e13) return NaN;
  const p = Math.round(v * 100);
  // 0.1 * 100 = 10.000000000000002: accept float noise, refuse a third decimal.
  return Math.abs(v * 100 - p) < 1e-6 ? p : NaN;
}

/** Paise to rupees as Kite's JSON numbers carry them (at most 2 decimals when exact). */
export function paiseToRupees(p: number): number {
  return p / 100;
}

/** A feed price (rupees as a double, from Kite's integer paise) to paise. */
export function feedPaise(price: number): number {
  return Math.round(price * 100);
}

/**
 * value / quantity in rupees, rounded half-even to `decimals` places, computed in integers
 * (BigInt), for averages shown to callers: never a float division of two floats.
 */
export function averageRupees(valuePaise: number, quantity: number, decimals = 4): number {
  if (quantity === 0) return 0;
  const scale = 10n ** BigInt(decimals);
  const num = BigInt(valuePaise) * scale;
  const den = BigInt(quantity) * 100n;
  return Number(divRoundHalfEven(num, den)) / Number(scale);
}

/** num / den rounded half to even, for BigInts (den > 0). */
export function divRoundHalfEven(num: bigint, den: bigint): bigint {
  const neg = num < 0n;
  const n = neg ? -num : num;
  let q = n / den;
  const r = n - q * den;
  if (r * 2n > den || (r * 2n === den && q % 2n === 1n)) q += 1n;
  return neg ? -q : q;
}

// --- ids -----------------------------------------------------------------------------------------

/**
 * Kite-style numeric ids (order ids, trade ids): strictly increasing, unique across restarts. The
 * next id is max(last + 1, now in µs), and `seed` takes the largest id already stored, so a clock
 * set back or a restart within the same microsecond cannot repeat one.
 *
 * Several processes making ids for one database (gateways) each hold a different `slot` of
 * `slots` (id-slot.ts leases them in Redis): an id is then base × slots + slot, the base counted as
 * above, so two processes can never make the same id, however close their clocks. Without a slot
 * (one process) ids are the base itself, as they always were.
 */
export class IdSource {
  /** The last base given (or observed). */
  private last: bigint;

  constructor(
    seed: string | null = null,
    private readonly nowMs: () => number = Date.now,
    /** Read at each id: a lease may move to another slot (never one another process holds). */
    private readonly slot: { readonly slot: number; readonly slots: number } | null = null,
  ) {
    this.last = 0n;
    if (seed !== null) this.observe(seed);
  }

  /** Take a stored id into account (after loading from the database). */
  observe(id: string): void {
    if (/^\d+$/.test(id)) {
      const slots = BigInt(this.slot?.slots ?? 1);
      const v = BigInt(id) / slots;
      if (v > this.last) this.last = v;
    }
  }

  next(): string {
    const t = BigInt(Math.floor(this.nowMs() * 1000));
    this.last = t > this.last ? t : this.last + 1n;
    if (this.slot === null || this.slot.slots <= 1) return this.last.toString();
    return (this.last * BigInt(this.slot.slots) + BigInt(this.slot.slot)).toString();
  }
}

// --- Kite's order row ----------------------------------------------------------------------------

/** 'YYYY-MM-DD HH:MM:SS' in India time, as Kite's order rows carry times. */
export function kiteTime(ms: number | null): string | null {
  return ms === null ? null : istString(ms);
}

/** The order as Kite's order book and history show it (every field the official clients read). */
export function kiteOrderRow(o: Order, status: string = o.status, atMs: number = o.updatedMs): Record<string, unknown> {
  const pending = FINAL_STATUSES.has(status) ? 0 : o.quantity - o.filledQuantity - o.cancelledQuantity;
  return {
    placed_by: o.key,
    order_id: o.id,
    exchange_order_id: o.exchangeMs === null ? null : `X${o.id}`,
    parent_order_id: o.parentId,
    status,
    status_message: o.statusMessage,
    status_message_raw: o.statusMessage,
    order_timestamp: kiteTime(atMs),
    exchange_update_timestamp: kiteTime(o.exchangeMs === null ? null : atMs),
    exchange_timestamp: kiteTime(o.exchangeMs),
    variety: o.variety,
    modified: o.modifications > 0,
    exchange: o.exchange,
    tradingsymbol: o.symbol,
    instrument_token: o.token,
    order_type: o.orderType,
    transaction_type: o.side,
    validity: o.validity,
    validity_ttl: o.validityTtl,
    product: o.product,
    quantity: o.quantity,
    disclosed_quantity: o.disclosedQuantity,
    price: paiseToRupees(o.pricePaise),
    trigger_price: paiseToRupees(o.triggerPaise),
    average_price: averageRupees(o.filledValuePaise, o.filledQuantity),
    filled_quantity: o.filledQuantity,
    pending_quantity: pending,
    cancelled_quantity: o.cancelledQuantity,
    market_protection: o.marketProtection ?? 0,
    meta: o.meta ?? {},
    tag: o.tag,
    tags: o.tag === null ? [] : [o.tag],
    guid: o.guid,
    paper: o.mode === 'paper',
  };
}

/** A trade as Kite's trade book shows it. */
export function kiteTradeRow(t: Trade, order: Pick<Order, 'id' | 'createdMs'>): Record<string, unknown> {
  return {
    trade_id: t.tradeId,
    order_id: t.orderId,
    exchange_order_id: `X${order.id}`,
    exchange: t.exchange,
    tradingsymbol: t.symbol,
    instrument_token: t.token,
    product: t.product,
    average_price: paiseToRupees(t.pricePaise),
    quantity: t.quantity,
    fill_timestamp: kiteTime(t.timeMs),
    order_timestamp: kiteTime(order.createdMs),
    exchange_timestamp: kiteTime(t.timeMs),
    transaction_type: t.side,
  };
}
