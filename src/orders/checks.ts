/**
 * Pre-trade checks: what an order request must satisfy before the order service records it.
 * Pure functions over the request and a `CheckContext` the service fills in (the instrument, the
 * last price and previous close, the clock, the key's open quantity, orders today and funds); no
 * I/O, so every rule is tested with hand-built instruments. The first rule broken throws an
 * `OrderRejection` naming the field and the rule; nothing is thrown for a passing order.
 *
 * The rules, in the order they are applied (the first broken one is the one reported):
 *
 * | rule            | field                | kind   | what                                                       |
 * |-----------------|----------------------|--------|------------------------------------------------------------|
 * | instrument      | tradingsymbol        | input  | known to the master; not an index (segment INDICES)       |
 * | product         | product              | input  | F&O: NRML or MIS; cash: CNC, MIS or MTF                    |
 * | lot_multiple    | quantity             | input  | a positive whole multiple of the lot (cash: 1)             |
 * | disclosed       | disclosed_quantity   | input  | at most the quantity                                       |
 * | validity        | validity, validity_ttl | input | TTL needs validity_ttl 1..1440; DAY and IOC take none      |
 * | tag             | tag                  | input  | at most 20 characters                                      |
 * | order type      | price, trigger_price | input  | LIMIT: price, no trigger; SL: both; SL-M: trigger, no price; MARKET: neither |
 * | protection      | market_protection    | input  | MARKET and SL-M carry one (Kite's rule for API orders since April 2026) |
 * | tick            | price, trigger_price | input  | multiples of the tick size                                 |
 * | stop side       | trigger_price, price | input  | BUY stop triggers above the last price, SELL below; SL BUY price ≥ trigger, SELL ≤ |
 * | band            | price, trigger_price | input  | EQ/FUT: reference ± priceBandPct %; options: one tick up to reference × (1 + optionBandPct %) |
 * | iceberg         | iceberg_*            | input  | 2..50 legs of equal lot-multiple quantity, each ≤ freeze; LIMIT or SL |
 * | freeze          | quantity             | input  | ≤ NSE's freeze quantity of the underlying, unless autoslice (≤ 10 slices) |
 * | market hours    | variety              | input  | regular, iceberg in NSE's session; amo outside it          |
 * | orders per day  | order                | order  | orders today + this order's slices ≤ maxOrdersPerDay       |
 * | order value     | quantity             | order  | quantity × price ≤ maxOrderValuePaise                      |
 * | open quantity   | quantity             | order  | open quantity in the instrument + this ≤ maxOpenQty        |
 * | funds           | quantity             | margin | required margin ≤ available funds                          |
 *
 * The band's reference is the previous close when the feed has one, else the last price; with
 * neither, no band is checked (the feed carries no circuit limits, so the band is ours, not NSE's).
 * A price or trigger of 0 means "none": the official clients send `price=0` with MARKET orders.
 *
 * Market hours know NSE's normal session only (09:15-15:30 IST, Monday to Friday): exchange
 * holidays and special sessions (Muhurat trading) are not known here, so on a holiday a regular
 * order passes these checks and an AMO is refused.
 *
 * Margin (`requiredMarginPaise`) is an approximation: SPAN and exposure margins are not available
 * here. CNC and MTF pay the full value; buying an option pays the full premium; everything else
 * (MIS, NRML, and selling options) pays value × the configured fraction. For sold options this
 * charges a fraction of the premium, far below what SPAN would block: paper accounts can write
 * more options than a real one could.
 */
import type { OrdersConfig } from '../config.ts';
import type { Instrument } from '../core/instrument.ts';
import { DAY_MS, IST_OFFSET_MS, MINUTE_MS, SESSION_CLOSE_MIN, SESSION_OPEN_MIN } from '../core/ist.ts';
import { OrderRejection } from './errors.ts';
import {
  PLACEABLE_VARIETIES, VALIDITIES, pendingQuantity, rupeesToPaise,
  type Order, type OrderType, type Product, type Side, type Validity, type Variety,
} from './model.ts';
import { MAX_QUANTITY, TAG_MAX, TTL_MAX_MINUTES, type ModifyRequest, type PlaceRequest } from './request.ts';

/** Kite slices an autoslice order into at most this many orders. */
export const MAX_AUTOSLICES = 10;
export const ICEBERG_LEGS_MIN = 2;
export const ICEBERG_LEGS_MAX = 50;

export interface CheckContext {
  config: OrdersConfig;
  /** The instrument the request names, null when the master does not know it. */
  instrument: Instrument | null;
  lastPricePaise: number | null;
  closePaise: number | null;
  nowMs: number;
  /** The key's open quantity in this instrument: |net position| + pending quantity of its open orders. */
  openQty: number;
  /** Orders the key placed today (IST day). */
  ordersToday: number;
  /** Funds the key has free, paise (may be negative after losses). */
  availablePaise: number;
}

export interface CheckedOrder {
  req: PlaceRequest;
  instrument: Instrument;
  /** 0 for MARKET and SL-M. */
  pricePaise: number;
  /** 0 for LIMIT and MARKET. */
  triggerPaise: number;
  /** MARKET and SL-M: 1-100 or -1; null for LIMIT and SL. */
  marketProtection: number | null;
  /** The quantity of each order to place: one entry unless autoslice or iceberg. */
  slices: number[];
  iceberg: boolean;
  valuePaise: number;
  marginPaise: number;
}

export interface CheckedModify {
  quantity: number;
  pricePaise: number;
  triggerPaise: number;
  orderType: OrderType;
  validity: Validity;
  disclosedQuantity: number;
  marketProtection: number | null;
  /** Value of the whole order at its new price. */
  valuePaise: number;
  /** Margin of its unfilled quantity at the new price (what the service blocks for it from now on). */
  marginPaise: number;
}

// --- messages ------------------------------------------------------------------------------------

/** Paise as rupees with two decimals, in integers (no float formatting of money). */
function rs(p: number): string {
  const a = Math.abs(p);
  return `${p < 0 ? '-' : ''}${Math.floor(a / 100)}.${String(a % 100).padStart(2, '0')}`;
}

function input(field: string, rule: string, message: string): OrderRejection {
  return new OrderRejection('input', field, rule, `${field}: ${message}`);
}

// --- instruments ---------------------------------------------------------------------------------

const isOption = (i: Instrument): boolean => i.instrumentType === 'CE' || i.instrumentType === 'PE';
const isDerivative = (i: Instrument): boolean => isOption(i) || i.instrumentType === 'FUT';
/** Units per lot; cash instruments trade in ones (the master carries 1, a missing 0 means the same). */
const lotOf = (i: Instrument): number => (i.lotSize > 0 ? i.lotSize : 1);
/** Tick in paise (the master's tick is rupees: 0.05 → 5). */
const tickOf = (i: Instrument): number => Math.max(1, Math.round(i.tickSize * 100));

/** NSE's freeze quantity of a derivative's underlying (config, keyed by the master's `name`); null when none applies. */
export function freezeQuantity(config: Pick<OrdersConfig, 'freezeQty'>, i: Instrument): number | null {
  if (!isDerivative(i)) return null;
  return config.freezeQty[i.name] ?? null;
}

function tradable(req: { exchange: string; tradingsymbol: string }, i: Instrument | null): Instrument {
  if (i === null) {
    throw input('tradingsymbol', 'unknown_instrument', `${req.exchange}:${req.tradingsymbol} is not in the instrument master; check the exchange and symbol against /kite/instruments or /api/instruments`);
  }
  if (i.segment === 'INDICES') {
    throw input('tradingsymbol', 'not_tradable', `${i.tradingsymbol} is an index, which cannot be traded; trade its futures or options (segment NFO-FUT, NFO-OPT)`);
  }
  return i;
}

const DERIVATIVE_PRODUCTS: readonly Product[] = ['NRML', 'MIS'];
const CASH_PRODUCTS: readonly Product[] = ['CNC', 'MIS', 'MTF'];

function productRule(i: Instrument, product: Product): void {
  const allowed = isDerivative(i) ? DERIVATIVE_PRODUCTS : CASH_PRODUCTS;
  if (!allowed.includes(product)) {
    throw input('product', 'product', `${product} is not a product for ${i.tradingsymbol} (${isDerivative(i) ? 'F&O' : 'cash'}); send ${allowed.join(' or ')}`);
  }
}

function lotRule(field: string, qty: number, i: Instrument): void {
  if (!Number.isSafeInteger(qty) || qty <= 0 || qty > MAX_QUANTITY) {
    throw input(field, 'quantity', `${qty} is not a whole number of units from 1 to ${MAX_QUANTITY}`);
  }
  const lot = lotOf(i);
  if (qty % lot !== 0) {
    throw input(field, 'lot_multiple', `${qty} is not a multiple of the lot size ${lot} for ${i.tradingsymbol}; send ${lot}, ${2 * lot}, ...`);
  }
}

function disclosedRule(disclosed: number, qty: number): void {
  if (!Number.isSafeInteger(disclosed) || disclosed < 0 || disclosed > qty) {
    throw input('disclosed_quantity', 'disclosed', `${disclosed} is not from 0 to the quantity ${qty}`);
  }
}

function validityRule(validity: Validity, ttl: number | undefined): void {
  if (!VALIDITIES.includes(validity)) throw input('validity', 'enum', `${String(validity)} is not one of ${VALIDITIES.join(', ')}`);
  if (validity === 'TTL') {
    if (ttl === undefined) throw input('validity_ttl', 'required', `validity TTL needs validity_ttl, the minutes the order lives (1 to ${TTL_MAX_MINUTES})`);
    if (!Number.isInteger(ttl) || ttl < 1 || ttl > TTL_MAX_MINUTES) throw input('validity_ttl', 'range', `${ttl} is outside 1..${TTL_MAX_MINUTES} minutes`);
  } else if (ttl !== undefined) {
    throw input('validity_ttl', 'ttl_only', `is for validity TTL only; leave it out with validity ${validity}`);
  }
}

// --- prices --------------------------------------------------------------------------------------

/** Rupees as sent to paise; absent is 0 (none). */
function paise(field: string, rupees: number | undefined): number {
  if (rupees === undefined) return 0;
  const p = rupeesToPaise(rupees);
  if (Number.isNaN(p)) throw input(field, 'decimals', `${rupees} is not a whole number of paise; send at most 2 decimals`);
  if (p < 0) throw input(field, 'range', `${rupees} is negative`);
  return p;
}

const takesPrice = (t: OrderType): boolean => t === 'LIMIT' || t === 'SL';
const takesTrigger = (t: OrderType): boolean => t === 'SL' || t === 'SL-M';
const takesProtection = (t: OrderType): boolean => t === 'MARKET' || t === 'SL-M';

/** Kite's message for a market order without protection, as its API answers since April 2026. */
export const NO_PROTECTION_MESSAGE = 'Market orders without market protection are not allowed via API';

interface Priced {
  pricePaise: number;
  triggerPaise: number;
  marketProtection: number | null;
}

/** Order type, price, trigger and protection together: coherence, tick, stop side, band. */
function priceRules(side: Side, type: OrderType, pricePaise: number, triggerPaise: number, protection: number | null | undefined,
  i: Instrument, ctx: CheckContext): Priced {
  if (takesPrice(type) && pricePaise <= 0) {
    throw input('price', 'price_required', `${type} orders need a price above 0`);
  }
  if (!takesPrice(type) && pricePaise !== 0) {
    throw input('price', 'price_not_allowed', `${type} orders take no price (got ${rs(pricePaise)}); send LIMIT${type === 'SL-M' ? ' or SL' : ''} to set one, or leave price out`);
  }
  if (takesTrigger(type) && triggerPaise <= 0) {
    throw input('trigger_price', 'trigger_required', `${type} orders need a trigger price above 0`);
  }
  if (!takesTrigger(type) && triggerPaise !== 0) {
    throw input('trigger_price', 'trigger_not_allowed', `${type} orders take no trigger price (got ${rs(triggerPaise)}); send SL or SL-M for a stop-loss order, or leave it out`);
  }
  let marketProtection: number | null = null;
  if (takesProtection(type)) {
    // 0 is "no protection", which is what Kite refuses: only 1-100 or -1 (automatic) pass.
    if (protection === undefined || protection === null || protection === 0) {
      throw new OrderRejection('input', 'market_protection', 'market_protection',
        `${NO_PROTECTION_MESSAGE}. Send market_protection -1 (automatic) or 1-100 (percent of the last price the order may move).`);
    }
    if (!Number.isInteger(protection) || protection < -1 || protection > 100) {
      throw input('market_protection', 'range', `${protection} is not -1 (automatic) or 1-100 percent`);
    }
    marketProtection = protection;
  }

  const tick = tickOf(i);
  for (const [field, p] of [['price', pricePaise], ['trigger_price', triggerPaise]] as const) {
    if (p % tick !== 0) {
      const below = p - (p % tick);
      throw input(field, 'tick', `${rs(p)} is not a multiple of the tick size ${rs(tick)} for ${i.tradingsymbol}; send ${rs(below)} or ${rs(below + tick)}`);
    }
  }

  const last = ctx.lastPricePaise !== null && ctx.lastPricePaise > 0 ? ctx.lastPricePaise : null;
  if (takesTrigger(type) && last !== null) {
    if (side === 'BUY' && triggerPaise <= last) {
      throw input('trigger_price', 'trigger_side', `${rs(triggerPaise)} is not above the last price ${rs(last)}: a BUY stop-loss triggers when the price rises to it; send a trigger above ${rs(last)}, or a LIMIT order`);
    }
    if (side === 'SELL' && triggerPaise >= last) {
      throw input('trigger_price', 'trigger_side', `${rs(triggerPaise)} is not below the last price ${rs(last)}: a SELL stop-loss triggers when the price falls to it; send a trigger below ${rs(last)}, or a LIMIT order`);
    }
  }
  if (type === 'SL') {
    if (side === 'BUY' && pricePaise < triggerPaise) {
      throw input('price', 'sl_price', `${rs(pricePaise)} is below the trigger price ${rs(triggerPaise)}: a BUY stop-loss limit needs price >= trigger price`);
    }
    if (side === 'SELL' && pricePaise > triggerPaise) {
      throw input('price', 'sl_price', `${rs(pricePaise)} is above the trigger price ${rs(triggerPaise)}: a SELL stop-loss limit needs price <= trigger price`);
    }
  }

  const close = ctx.closePaise !== null && ctx.closePaise > 0 ? ctx.closePaise : null;
  const ref = close ?? last;
  if (ref !== null) {
    const what = `${close !== null ? 'previous close' : 'last price'} ${rs(ref)}`;
    bandRule('price', pricePaise, ref, what, i, ctx.config, tick);
    bandRule('trigger_price', triggerPaise, ref, what, i, ctx.config, tick);
  }
  return { pricePaise, triggerPaise, marketProtection };
}

/**
 * The day's band around `ref`. Compared in integers: p ≤ ref × (100 + pct) / 100 is
 * p × 100 ≤ ref × (100 + pct), exact well past any price (ref ≤ 1e10 paise, pct ≤ 1e5).
 */
function bandRule(field: string, p: number, ref: number, what: string, i: Instrument, config: OrdersConfig, tick: number): void {
  if (p === 0) return;
  const option = isOption(i);
  const up = option ? config.optionBandPct : config.priceBandPct;
  const down = option ? 100 : Math.min(100, config.priceBandPct);
  const high = p * 100 > ref * (100 + up);
  const low = !option && p * 100 < ref * (100 - down);
  if (!high && !low) return;
  // Shown bounds: the band rounded inward to the tick, at least one tick.
  const hi = Math.floor((ref * (100 + up)) / 100 / tick) * tick;
  const lo = option ? tick : Math.max(tick, Math.ceil((ref * (100 - down)) / 100 / tick) * tick);
  const rule = option ? `${what} + ${up}%` : `${what} ± ${up}%`;
  throw input(field, 'price_band', `${rs(p)} is ${high ? 'above' : 'below'} today's band for ${i.tradingsymbol}, ${rs(lo)} to ${rs(hi)} (${rule}); send a price inside it`);
}

// --- market hours --------------------------------------------------------------------------------

/** NSE's normal session: 09:15 to 15:30 IST, Monday to Friday. Holidays are not known here. */
function inNseSession(nowMs: number): boolean {
  const local = nowMs + IST_OFFSET_MS;
  const day = Math.floor(local / DAY_MS);
  const weekday = (day + 4) % 7; // 1970-01-01 was a Thursday; 0 = Sunday
  if (weekday === 0 || weekday === 6) return false;
  const minute = Math.floor((local - day * DAY_MS) / MINUTE_MS);
  return minute >= SESSION_OPEN_MIN && minute < SESSION_CLOSE_MIN;
}

/**
 * Whether `variety` may be placed at `nowMs`. `always`: any time (the simulator). `exchange`:
 * regular and iceberg inside NSE's normal session, amo outside it. Exchange holidays and special
 * sessions are not known here: a holiday looks like a trading day.
 */
export function marketSession(variety: Variety, nowMs: number, marketHours: OrdersConfig['marketHours']): { open: boolean; reason?: string } {
  if (marketHours === 'always') return { open: true };
  const session = inNseSession(nowMs);
  if (variety === 'amo') {
    return session
      ? { open: false, reason: 'after-market orders (amo) are taken outside the normal session (09:15-15:30 IST, Monday to Friday); during it, place a regular order' }
      : { open: true };
  }
  return session
    ? { open: true }
    : { open: false, reason: `markets are closed right now (NSE's normal session is 09:15-15:30 IST, Monday to Friday); place an after-market order (variety amo) instead` };
}

function sessionRule(variety: Variety, ctx: CheckContext): void {
  const s = marketSession(variety, ctx.nowMs, ctx.config.marketHours);
  if (!s.open) throw input('variety', 'market_hours', s.reason ?? 'not open');
}

// --- margin --------------------------------------------------------------------------------------

/** ⌈value × fraction⌉ in integers: the fraction is taken to a millionth, the product in BigInt. */
function fractionCeil(valuePaise: number, fraction: number): number {
  const ppm = BigInt(Math.round(fraction * 1_000_000));
  return Number((BigInt(valuePaise) * ppm + 999_999n) / 1_000_000n);
}

/**
 * The margin an order of `valuePaise` blocks, paise, rounded up. An approximation (see the module
 * header): CNC and MTF the full value, an option bought the full premium, anything else
 * value × marginMis (MIS) or marginNrml (NRML). A null instrument is priced as a non-option.
 */
export function requiredMarginPaise(config: Pick<OrdersConfig, 'marginMis' | 'marginNrml'>, instrument: Instrument | null,
  product: Product, side: Side, valuePaise: number): number {
  const value = Math.max(0, Math.ceil(valuePaise));
  if (product === 'CNC' || product === 'MTF') return value;
  if (instrument !== null && isOption(instrument) && side === 'BUY') return value;
  return fractionCeil(value, product === 'MIS' ? config.marginMis : config.marginNrml);
}

// --- risk ----------------------------------------------------------------------------------------

/** The price an order is valued at: its price, an SL-M's trigger, a MARKET's last price. */
function unitPaise(type: OrderType, pricePaise: number, triggerPaise: number, ctx: CheckContext, i: Instrument): number {
  if (pricePaise > 0) return pricePaise;
  if (type === 'SL-M') return triggerPaise;
  if (ctx.lastPricePaise === null || ctx.lastPricePaise <= 0) {
    throw new OrderRejection('order', 'price', 'no_last_price',
      `price: there is no last price for ${i.tradingsymbol} yet, so a MARKET order cannot be valued against the limits; send a LIMIT order, or wait for its first tick`);
  }
  return ctx.lastPricePaise;
}

function valueRule(qty: number, unit: number, ctx: CheckContext, i: Instrument): number {
  // Number: exact below 2^53 paise; a larger product is far above any configurable limit, so
  // an inexact value is still refused.
  const value = qty * unit;
  const max = ctx.config.maxOrderValuePaise;
  if (value > max) {
    const most = Math.floor(max / unit / lotOf(i)) * lotOf(i);
    throw new OrderRejection('order', 'quantity', 'max_order_value',
      `quantity: the order's value ${rs(value)} (${qty} × ${rs(unit)}) is above this key's limit of ${rs(max)} per order; send at most ${most} units, or split the order`);
  }
  return value;
}

/** Kite's MarginException phrasing, then what to do. */
function fundsRule(margin: number, available: number): void {
  if (margin > available) {
    throw new OrderRejection('margin', 'quantity', 'margin',
      `Insufficient funds. Required margin is ${rs(margin)} but available margin is ${rs(available)}. Reduce the quantity, or close positions and cancel open orders to free funds.`);
  }
}

// --- place ---------------------------------------------------------------------------------------

/** Every rule for a new order; the CheckedOrder carries paise, the slices and the margin. */
export function checkPlace(req: PlaceRequest, ctx: CheckContext): CheckedOrder {
  const { config } = ctx;
  if (!PLACEABLE_VARIETIES.includes(req.variety)) {
    throw input('variety', 'variety_unsupported', `${req.variety} orders are not placed by this service; use ${PLACEABLE_VARIETIES.join(', ')}`);
  }
  const i = tradable(req, ctx.instrument);
  productRule(i, req.product);
  const qty = req.quantity;
  lotRule('quantity', qty, i);
  if (req.disclosed_quantity !== undefined) disclosedRule(req.disclosed_quantity, qty);
  validityRule(req.validity, req.validity_ttl);
  if (req.tag !== undefined && req.tag.length > TAG_MAX) {
    throw input('tag', 'length', `is ${req.tag.length} characters long; at most ${TAG_MAX} are allowed`);
  }

  const type = req.order_type;
  const priced = priceRules(req.transaction_type, type, paise('price', req.price), paise('trigger_price', req.trigger_price),
    req.market_protection, i, ctx);

  const iceberg = req.variety === 'iceberg';
  const slices = iceberg ? icebergLegs(req, i, config) : autoslices(req, i, config);
  sessionRule(req.variety, ctx);

  if (ctx.ordersToday + slices.length > config.maxOrdersPerDay) {
    throw new OrderRejection('order', 'order', 'max_orders_per_day',
      `order: this key has placed ${ctx.ordersToday} orders today${slices.length > 1 ? ` and this one places ${slices.length}` : ''}; the limit is ${config.maxOrdersPerDay} per IST day, counted afresh after midnight IST`);
  }
  const valuePaise = valueRule(qty, unitPaise(type, priced.pricePaise, priced.triggerPaise, ctx, i), ctx, i);
  if (ctx.openQty + qty > config.maxOpenQty) {
    throw new OrderRejection('order', 'quantity', 'max_open_qty',
      `quantity: ${ctx.openQty} units of ${i.tradingsymbol} are already open for this key (positions and open orders); with ${qty} more that passes the limit of ${config.maxOpenQty}; send at most ${Math.max(0, config.maxOpenQty - ctx.openQty)}`);
  }
  const marginPaise = requiredMarginPaise(config, i, req.product, req.transaction_type, valuePaise);
  fundsRule(marginPaise, ctx.availablePaise);
  return { req, instrument: i, ...priced, slices, iceberg, valuePaise, marginPaise };
}

/** Iceberg: legs × iceberg_quantity = quantity, each leg a lot multiple within the freeze, LIMIT or SL. */
function icebergLegs(req: PlaceRequest, i: Instrument, config: OrdersConfig): number[] {
  if (req.autoslice) throw input('autoslice', 'iceberg_autoslice', 'an iceberg order is already split into legs; leave autoslice out, or place a regular order');
  if (req.order_type !== 'LIMIT' && req.order_type !== 'SL') {
    throw input('order_type', 'iceberg_order_type', `iceberg orders are LIMIT or SL (Kite takes no ${req.order_type} icebergs); send a price`);
  }
  const legs = req.iceberg_legs;
  if (legs === undefined) throw input('iceberg_legs', 'required', `iceberg orders need iceberg_legs, ${ICEBERG_LEGS_MIN} to ${ICEBERG_LEGS_MAX}`);
  if (!Number.isInteger(legs) || legs < ICEBERG_LEGS_MIN || legs > ICEBERG_LEGS_MAX) {
    throw input('iceberg_legs', 'range', `${legs} is outside ${ICEBERG_LEGS_MIN}..${ICEBERG_LEGS_MAX}`);
  }
  const q = req.quantity;
  const even = q % legs === 0 ? q / legs : null;
  const hint = even !== null ? `send ${even}` : `the quantity ${q} does not split into ${legs} equal legs; change one of them`;
  const legQty = req.iceberg_quantity;
  if (legQty === undefined) throw input('iceberg_quantity', 'required', `iceberg orders need iceberg_quantity, the quantity of each leg (quantity / iceberg_legs); ${hint}`);
  if (legQty * legs !== q) throw input('iceberg_quantity', 'iceberg_split', `${legQty} × ${legs} legs is ${legQty * legs}, not the quantity ${q}; ${hint}`);
  lotRule('iceberg_quantity', legQty, i);
  const freeze = freezeQuantity(config, i);
  if (freeze !== null && legQty > freeze) {
    throw input('iceberg_quantity', 'freeze', `${legQty} per leg is above the freeze quantity ${freeze} of ${i.name}; send more legs`);
  }
  return new Array<number>(legs).fill(legQty);
}

/**
 * Regular and amo: one order, or with autoslice and a quantity above the freeze, full slices of
 * the largest lot multiple within the freeze and the rest last (NIFTY, lot 65, freeze 1,800:
 * slices of 1,755). Kite's slicing is the same in kind; its exact split is not published.
 */
function autoslices(req: PlaceRequest, i: Instrument, config: OrdersConfig): number[] {
  if (req.iceberg_legs !== undefined) throw input('iceberg_legs', 'iceberg_only', 'is for variety iceberg only; leave it out');
  if (req.iceberg_quantity !== undefined) throw input('iceberg_quantity', 'iceberg_only', 'is for variety iceberg only; leave it out');
  const q = req.quantity;
  const freeze = freezeQuantity(config, i);
  if (freeze === null || q <= freeze) return [q];
  const lot = lotOf(i);
  const per = Math.floor(freeze / lot) * lot;
  if (per === 0) throw input('quantity', 'freeze', `the freeze quantity ${freeze} of ${i.name} is below one lot (${lot}): ${i.tradingsymbol} cannot be ordered`);
  const n = Math.ceil(q / per);
  if (!req.autoslice) {
    throw input('quantity', 'freeze', `${q} is above the freeze quantity ${freeze} of ${i.name}; send at most ${per}, or autoslice true to place it as ${n} orders`);
  }
  if (n > MAX_AUTOSLICES) {
    throw input('quantity', 'autoslice_limit', `${q} needs ${n} slices of at most ${per}, and autoslice places at most ${MAX_AUTOSLICES}; send at most ${per * MAX_AUTOSLICES}`);
  }
  const out = new Array<number>(n).fill(per);
  out[n - 1] = q - per * (n - 1);
  return out;
}

// --- modify --------------------------------------------------------------------------------------

/**
 * A modification of a working order: fields not sent keep the order's. A changed order type drops
 * what the new type does not take (SL → LIMIT drops the trigger) unless the request sends it, which
 * is then refused as for a new order. The order's status and modification count are the order
 * service's to check; `ctx.openQty` includes this order's pending quantity and
 * `ctx.availablePaise` excludes the margin it already blocks.
 */
export function checkModify(order: Order, req: ModifyRequest, ctx: CheckContext): CheckedModify {
  const i = tradable({ exchange: order.exchange, tradingsymbol: order.symbol }, ctx.instrument);
  const type = req.order_type ?? order.orderType;
  if (order.variety === 'iceberg' && !takesPrice(type)) {
    throw input('order_type', 'iceberg_order_type', `an iceberg leg is LIMIT or SL; ${type} is not allowed`);
  }
  const quantity = req.quantity ?? order.quantity;
  lotRule('quantity', quantity, i);
  if (quantity <= order.filledQuantity) {
    throw input('quantity', 'below_filled', `${quantity} is not above the ${order.filledQuantity} already filled; to stop the rest, cancel the order`);
  }
  const freeze = freezeQuantity(ctx.config, i);
  if (freeze !== null && quantity > freeze) {
    throw input('quantity', 'freeze', `${quantity} is above the freeze quantity ${freeze} of ${i.name}; a modification cannot be sliced, so send at most ${Math.floor(freeze / lotOf(i)) * lotOf(i)}`);
  }
  const disclosedQuantity = req.disclosed_quantity ?? order.disclosedQuantity;
  disclosedRule(disclosedQuantity, quantity);
  const validity = req.validity ?? order.validity;
  if (!VALIDITIES.includes(validity)) throw input('validity', 'enum', `${String(validity)} is not one of ${VALIDITIES.join(', ')}`);
  if (validity === 'TTL' && order.validityTtl <= 0) {
    throw input('validity', 'ttl_required', 'TTL needs validity_ttl, which a modification cannot carry; cancel and place the order again with validity_ttl');
  }

  const pricePaise = req.price !== undefined ? paise('price', req.price) : takesPrice(type) ? order.pricePaise : 0;
  const triggerPaise = req.trigger_price !== undefined ? paise('trigger_price', req.trigger_price) : takesTrigger(type) ? order.triggerPaise : 0;
  const priced = priceRules(order.side, type, pricePaise, triggerPaise, req.market_protection ?? order.marketProtection, i, ctx);
  // AMOs are modified before the open and, once sent, during the session: any time.
  if (order.variety !== 'amo') sessionRule(order.variety, ctx);

  const unit = unitPaise(type, priced.pricePaise, priced.triggerPaise, ctx, i);
  const valuePaise = valueRule(quantity, unit, ctx, i);
  if (quantity > order.quantity && ctx.openQty + (quantity - order.quantity) > ctx.config.maxOpenQty) {
    throw new OrderRejection('order', 'quantity', 'max_open_qty',
      `quantity: ${ctx.openQty} units of ${i.tradingsymbol} are already open for this key; ${quantity - order.quantity} more passes the limit of ${ctx.config.maxOpenQty}`);
  }
  const marginPaise = requiredMarginPaise(ctx.config, i, order.product, order.side, (quantity - order.filledQuantity) * unit);
  // What the order blocks now (its price, else the current unit price), which the modified order
  // frees: the new margin must fit in the funds available plus that.
  const oldUnit = order.pricePaise > 0 ? order.pricePaise : order.triggerPaise > 0 ? order.triggerPaise : unit;
  const blocked = requiredMarginPaise(ctx.config, i, order.product, order.side, pendingQuantity(order) * oldUnit);
  fundsRule(marginPaise, ctx.availablePaise + blocked);
  return { quantity, ...priced, orderType: type, validity, disclosedQuantity, valuePaise, marginPaise };
}
