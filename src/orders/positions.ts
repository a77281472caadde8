/**
 * Positions and P&L from fills: one running sum per (API key, instrument token, product), shown as
 * Kite's `GET /portfolio/positions` and `GET /portfolio/holdings` show them. The paper account's
 * positions, its margins page (`totals`) and the open-quantity risk check (`netQuantity`) read it.
 *
 * A position is four sums and their day parts, all integers: quantity bought and sold, and their
 * values in paise (Σ fill quantity × fill price). Every figure Kite shows derives from them, so
 * adding a thousand fills loses nothing and nothing is stored that could drift from the fills:
 *
 * | figure             | from the sums (B, S bought and sold; BV, SV their values; L last; C close)      |
 * |--------------------|----------------------------------------------------------------------------------|
 * | quantity           | B − S                                                                           |
 * | overnight_quantity | quantity − (day B − day S): what was carried into today                         |
 * | value              | SV − BV (negative when bought)                                                  |
 * | pnl                | SV − BV + quantity × L                                                          |
 * | realised           | min(B, S) × (SV / S − BV / B): the closed quantity at sell avg − buy avg         |
 * | unrealised         | pnl − realised                                                                  |
 * | buy_m2m, sell_m2m  | day BV (SV) + carried long (short) quantity × C                                 |
 * | m2m                | sell_m2m − buy_m2m + quantity × L: carried quantity against the previous close, |
 * |                    | today's trades against their own prices                                         |
 *
 * `realised` is a fraction of a paisa in general (the averages are): it is kept as an exact BigInt
 * ratio and rounded half-even to the paisa only when shown, and `unrealised` is shown as the shown
 * pnl less the shown realised, so the parts always add up to the whole. Averages are the weighted
 * average of all buys (sells), as Kite's are, not first-in-first-out; pnl does not depend on it.
 *
 * Days. A position's day fields belong to the IST day of its `updatedMs`. `rollDay` (or the next
 * fill of a later day) zeroes them, which moves today's quantity into `overnight_quantity`. A flat
 * position is zeroed whole at the roll and leaves the book, as Kite drops yesterday's closed
 * positions. A carried position keeps its sums since it opened, hence its earlier realised P&L:
 * the cost of the part still open is a fraction of a paisa in general, and starting over from it
 * would no longer be exact.
 *
 * Holdings are the CNC quantity carried long from earlier days, at the average of the buys made
 * before today; positions still show that CNC row too (with its `overnight_quantity`).
 *
 * Without a price for an instrument (`mark` answers null), last and close show as 0 and the open
 * quantity counts at its own cost: unrealised 0, pnl = realised, m2m = what today's trades realised.
 */
import { AppError } from '../core/errors.ts';
import { istDayStart } from '../core/ist.ts';
import type { BrokerMode, Product, Trade } from './model.ts';
import type { PositionRecord } from './store.ts';
import { averageRupees, divRoundHalfEven, kiteTime, paiseToRupees, PRODUCTS } from './model.ts';

/** A position as the store persists it (store.ts): the sums, nothing derived. */
export type { PositionRecord };

/** A position in the book. Read only outside it: change it through `apply`, `restore`, `rollDay`. */
export type PositionState = Readonly<PositionRecord>;

/** Last and previous close of an instrument, paise; null when no price is known. */
export type Mark = (token: number) => { lastPaise: number; closePaise: number } | null;

export interface PnlTotals {
  realisedPaise: number;
  unrealisedPaise: number;
  m2mPaise: number;
}

type MutablePosition = { -readonly [K in keyof PositionRecord]: PositionRecord[K] };

/** Open quantity: positive long, negative short. */
export function positionQuantity(s: PositionState): number {
  return s.buyQty - s.sellQty;
}

/** Quantity carried into the position's day from earlier days. */
export function overnightQuantity(s: PositionState): number {
  return s.buyQty - s.sellQty - (s.dayBuyQty - s.daySellQty);
}

export class PositionBook {
  /** API key → instrument token → its positions, one per product (at most four). */
  private readonly byKey = new Map<string, Map<number, MutablePosition[]>>();

  /**
   * Add a fill. It counts in the day fields when `t.timeMs >= dayStartMs` (00:00 IST of the
   * current day); a position last touched on an earlier day is rolled first. The caller applies
   * each trade once: the book keeps sums, not trade ids.
   */
  apply(t: Trade, dayStartMs: number): PositionState {
    checkFill(t);
    let s = this.find(t.key, t.token, t.product);
    if (s === undefined) {
      s = blank(t.key, t.mode, t.token, t.product, t.exchange, t.symbol, t.timeMs);
      this.insert(s);
    } else if (s.updatedMs < dayStartMs) {
      rollPosition(s, dayStartMs);
    }
    const value = t.quantity * t.pricePaise;
    const today = t.timeMs >= dayStartMs;
    if (t.side === 'BUY') {
      s.buyQty += t.quantity;
      s.buyValuePaise += value;
      if (today) {
        s.dayBuyQty += t.quantity;
        s.dayBuyValuePaise += value;
      }
    } else {
      s.sellQty += t.quantity;
      s.sellValuePaise += value;
      if (today) {
        s.daySellQty += t.quantity;
        s.daySellValuePaise += value;
      }
    }
    if (t.timeMs > s.updatedMs) s.updatedMs = t.timeMs;
    return s;
  }

  /**
   * Take a persisted position, replacing any the book holds for the same key, token and product.
   * After loading, call `rollDay` with the current day's start: records written on an earlier day
   * still hold that day's fields.
   */
  restore(rec: PositionRecord): PositionState {
    checkRecord(rec);
    let s = this.find(rec.key, rec.token, rec.product);
    if (s === undefined) {
      s = { ...rec };
      this.insert(s);
    } else {
      Object.assign(s, rec);
    }
    return s;
  }

  /** A copy for the store: the book goes on changing its own. */
  record(state: PositionState): PositionRecord {
    return { ...state };
  }

  /**
   * A new IST day began at `dayStartMs`: every position last touched before it has its day fields
   * zeroed (today's quantity becomes overnight); flat ones are zeroed whole and leave the book.
   * Returns the positions it changed, for the caller to persist. Rolling twice changes nothing.
   */
  rollDay(dayStartMs: number): PositionState[] {
    const changed: PositionState[] = [];
    for (const [key, byToken] of this.byKey) {
      for (const [token, list] of byToken) {
        for (let i = list.length - 1; i >= 0; i--) {
          const s = list[i];
          if (s.updatedMs >= dayStartMs) continue;
          if (rollPosition(s, dayStartMs)) list.splice(i, 1);
          changed.push(s);
        }
        if (list.length === 0) byToken.delete(token);
      }
      if (byToken.size === 0) this.byKey.delete(key);
    }
    return changed;
  }

  forKey(key: string): PositionState[] {
    const out: PositionState[] = [];
    const byToken = this.byKey.get(key);
    if (byToken !== undefined) for (const list of byToken.values()) out.push(...list);
    return out;
  }

  get(key: string, token: number, product: Product): PositionState | undefined {
    return this.find(key, token, product);
  }

  /** Open quantity of an instrument summed over products, for the open-quantity risk check. */
  netQuantity(key: string, token: number): number {
    const list = this.byKey.get(key)?.get(token);
    if (list === undefined) return 0;
    let q = 0;
    for (const s of list) q += s.buyQty - s.sellQty;
    return q;
  }

  /** Kite's `GET /portfolio/positions` data: `net` (carried and today's) and `day` (today's only). */
  kitePositions(key: string, mark: Mark): { net: Record<string, unknown>[]; day: Record<string, unknown>[] } {
    const net: Record<string, unknown>[] = [];
    const day: Record<string, unknown>[] = [];
    for (const s of this.forKey(key)) {
      if (s.buyQty === 0 && s.sellQty === 0) continue;
      const m = mark(s.token);
      net.push(kiteRow(s, m, netSums(s), netFigures(s, m)));
      if (s.dayBuyQty !== 0 || s.daySellQty !== 0) day.push(kiteRow(s, m, daySums(s), dayFigures(s, m)));
    }
    return { net, day };
  }

  /** Kite's `GET /portfolio/holdings` data: CNC quantity carried long from earlier days. */
  kiteHoldings(key: string, mark: Mark): Record<string, unknown>[] {
    const out: Record<string, unknown>[] = [];
    for (const s of this.forKey(key)) {
      if (s.product !== 'CNC') continue;
      const qty = overnightQuantity(s);
      if (qty <= 0) continue;
      const m = mark(s.token);
      const last = m === null ? 0 : m.lastPaise;
      const close = m === null ? 0 : m.closePaise;
      const boughtQty = s.buyQty - s.dayBuyQty;
      const boughtValue = s.buyValuePaise - s.dayBuyValuePaise;
      // qty × (last − boughtValue / boughtQty), exact until rounded here.
      const pnl =
        m === null || boughtQty === 0
          ? 0
          : roundRatio(BigInt(qty) * (BigInt(last) * BigInt(boughtQty) - BigInt(boughtValue)), BigInt(boughtQty));
      const change = m === null || close <= 0 ? 0 : last - close;
      out.push({
        tradingsymbol: s.symbol,
        exchange: s.exchange,
        instrument_token: s.token,
        isin: '',
        product: 'CNC',
        price: 0,
        quantity: qty,
        used_quantity: Math.min(s.daySellQty, qty),
        t1_quantity: 0,
        realised_quantity: qty,
        authorised_quantity: 0,
        authorised_date: kiteTime(istDayStart(s.updatedMs)),
        opening_quantity: qty,
        collateral_quantity: 0,
        collateral_type: '',
        discrepancy: false,
        average_price: averageRupees(boughtValue, boughtQty),
        last_price: paiseToRupees(last),
        close_price: paiseToRupees(close),
        pnl: paiseToRupees(pnl),
        day_change: paiseToRupees(change),
        // change / close × 100, to 4 decimals: change × 100 / close paise, scaled by 10^4.
        day_change_percentage: change === 0 ? 0 : roundRatio(BigInt(change) * 1_000_000n, BigInt(close)) / 10_000,
      });
    }
    return out;
  }

  /**
   * Realised, unrealised and m2m over a key's net positions, each summed exactly and rounded once;
   * realised + unrealised is the rounded total pnl.
   */
  totals(key: string, mark: Mark): PnlTotals {
    let realised = ZERO;
    let pnl = ZERO;
    let m2m = ZERO;
    for (const s of this.forKey(key)) {
      const f = netFigures(s, mark(s.token));
      realised = addRatio(realised, f.realised);
      pnl = addRatio(pnl, f.pnl);
      m2m = addRatio(m2m, f.m2m);
    }
    const realisedPaise = roundRatio(realised.n, realised.d);
    return {
      realisedPaise,
      unrealisedPaise: roundRatio(pnl.n, pnl.d) - realisedPaise,
      m2mPaise: roundRatio(m2m.n, m2m.d),
    };
  }

  private find(key: string, token: number, product: Product): MutablePosition | undefined {
    const list = this.byKey.get(key)?.get(token);
    if (list === undefined) return undefined;
    for (const s of list) if (s.product === product) return s;
    return undefined;
  }

  private insert(s: MutablePosition): void {
    let byToken = this.byKey.get(s.key);
    if (byToken === undefined) {
      byToken = new Map();
      this.byKey.set(s.key, byToken);
    }
    const list = byToken.get(s.token);
    if (list === undefined) byToken.set(s.token, [s]);
    else list.push(s);
  }
}

// --- one position ----------------------------------------------------------------------------------

function blank(key: string, mode: BrokerMode, token: number, product: Product, exchange: string, symbol: string, ms: number): MutablePosition {
  return {
    key, mode, token, product, exchange, symbol,
    buyQty: 0, buyValuePaise: 0, sellQty: 0, sellValuePaise: 0,
    dayBuyQty: 0, dayBuyValuePaise: 0, daySellQty: 0, daySellValuePaise: 0,
    updatedMs: ms,
  };
}

/** Zero the day fields (all fields when flat) and date the position `dayStartMs`. True when flat. */
function rollPosition(s: MutablePosition, dayStartMs: number): boolean {
  const flat = s.buyQty === s.sellQty;
  if (flat) {
    s.buyQty = 0;
    s.buyValuePaise = 0;
    s.sellQty = 0;
    s.sellValuePaise = 0;
  }
  s.dayBuyQty = 0;
  s.dayBuyValuePaise = 0;
  s.daySellQty = 0;
  s.daySellValuePaise = 0;
  s.updatedMs = dayStartMs;
  return flat;
}

function checkFill(t: Trade): void {
  if (!Number.isSafeInteger(t.quantity) || t.quantity <= 0 || !Number.isSafeInteger(t.pricePaise) || t.pricePaise < 0) {
    throw new AppError(
      'POSITION_FILL_INVALID',
      `Trade ${t.tradeId}: quantity ${t.quantity} and price ${t.pricePaise} paise must be a positive whole quantity and ` +
        'whole paise; the fill was not applied. Check the broker that reported it.',
      { tradeId: t.tradeId, quantity: t.quantity, pricePaise: t.pricePaise },
    );
  }
  if (t.side !== 'BUY' && t.side !== 'SELL') {
    throw new AppError('POSITION_FILL_INVALID', `Trade ${t.tradeId}: side ${String(t.side)} is neither BUY nor SELL; the fill was not applied.`, {
      tradeId: t.tradeId,
      side: t.side,
    });
  }
}

const COUNTS = ['buyQty', 'buyValuePaise', 'sellQty', 'sellValuePaise', 'dayBuyQty', 'dayBuyValuePaise', 'daySellQty', 'daySellValuePaise'] as const;

function checkRecord(rec: PositionRecord): void {
  let problem: string | null = null;
  for (const f of COUNTS) {
    if (problem === null && (!Number.isSafeInteger(rec[f]) || rec[f] < 0)) problem = `${f} is ${rec[f]}, not a whole number ≥ 0`;
  }
  if (problem === null && (rec.dayBuyQty > rec.buyQty || rec.daySellQty > rec.sellQty)) problem = 'a day quantity exceeds its total';
  if (problem === null && !PRODUCTS.includes(rec.product)) problem = `product ${rec.product} is not one of ${PRODUCTS.join(', ')}`;
  if (problem === null && !Number.isSafeInteger(rec.token)) problem = `token ${rec.token} is not a whole number`;
  if (problem !== null) {
    throw new AppError(
      'POSITION_RECORD_INVALID',
      `Stored position of ${rec.key} in ${rec.symbol} (${rec.token}, ${rec.product}): ${problem}. ` +
        'The row was not loaded; rebuild it from the trades of that key.',
      { key: rec.key, token: rec.token, product: rec.product },
    );
  }
}

// --- figures ---------------------------------------------------------------------------------------

/** n / d, d > 0: a figure that may be a fraction of a paisa until shown. */
interface Ratio {
  n: bigint;
  d: bigint;
}

const ZERO: Ratio = { n: 0n, d: 1n };

function int(v: number): Ratio {
  return { n: BigInt(v), d: 1n };
}

function gcd(a: bigint, b: bigint): bigint {
  if (a < 0n) a = -a;
  while (b !== 0n) [a, b] = [b, a % b];
  return a;
}

function addRatio(a: Ratio, b: Ratio): Ratio {
  if (a.d === b.d) return { n: a.n + b.n, d: a.d };
  const n = a.n * b.d + b.n * a.d;
  const d = a.d * b.d;
  const g = gcd(n, d);
  return g > 1n ? { n: n / g, d: d / g } : { n, d };
}

function roundRatio(n: bigint, d: bigint): number {
  return Number(divRoundHalfEven(n, d));
}

/** min(B, S) × (SV / S − BV / B), exactly. */
function realisedOf(buyQty: number, buyValue: number, sellQty: number, sellValue: number): Ratio {
  const closed = Math.min(buyQty, sellQty);
  if (closed === 0) return ZERO;
  const b = BigInt(buyQty);
  const s = BigInt(sellQty);
  return { n: BigInt(closed) * (BigInt(sellValue) * b - BigInt(buyValue) * s), d: s * b };
}

/** The sums a row shows as buy_* and sell_*. */
interface Sums {
  quantity: number;
  overnight: number;
  buyQty: number;
  buyValue: number;
  sellQty: number;
  sellValue: number;
}

interface Figures {
  realised: Ratio;
  pnl: Ratio;
  m2m: Ratio;
  buyM2m: number;
  sellM2m: number;
}

function netSums(s: PositionState): Sums {
  return {
    quantity: s.buyQty - s.sellQty,
    overnight: overnightQuantity(s),
    buyQty: s.buyQty,
    buyValue: s.buyValuePaise,
    sellQty: s.sellQty,
    sellValue: s.sellValuePaise,
  };
}

function daySums(s: PositionState): Sums {
  return {
    quantity: s.dayBuyQty - s.daySellQty,
    overnight: 0,
    buyQty: s.dayBuyQty,
    buyValue: s.dayBuyValuePaise,
    sellQty: s.daySellQty,
    sellValue: s.daySellValuePaise,
  };
}

function netFigures(s: PositionState, m: ReturnType<Mark>): Figures {
  const realised = realisedOf(s.buyQty, s.buyValuePaise, s.sellQty, s.sellValuePaise);
  if (m === null) {
    return { realised, pnl: realised, m2m: dayRealised(s), buyM2m: s.dayBuyValuePaise, sellM2m: s.daySellValuePaise };
  }
  const qty = s.buyQty - s.sellQty;
  const overnight = overnightQuantity(s);
  // No previous close (a new listing): the carried quantity has no change to mark yet.
  const close = m.closePaise > 0 ? m.closePaise : m.lastPaise;
  const buyM2m = s.dayBuyValuePaise + (overnight > 0 ? overnight * close : 0);
  const sellM2m = s.daySellValuePaise + (overnight < 0 ? -overnight * close : 0);
  return {
    realised,
    pnl: int(s.sellValuePaise - s.buyValuePaise + qty * m.lastPaise),
    m2m: int(sellM2m - buyM2m + qty * m.lastPaise),
    buyM2m,
    sellM2m,
  };
}

function dayRealised(s: PositionState): Ratio {
  return realisedOf(s.dayBuyQty, s.dayBuyValuePaise, s.daySellQty, s.daySellValuePaise);
}

function dayFigures(s: PositionState, m: ReturnType<Mark>): Figures {
  const realised = dayRealised(s);
  const pnl = m === null ? realised : int(s.daySellValuePaise - s.dayBuyValuePaise + (s.dayBuyQty - s.daySellQty) * m.lastPaise);
  return { realised, pnl, m2m: pnl, buyM2m: s.dayBuyValuePaise, sellM2m: s.daySellValuePaise };
}

/** One row of Kite's positions, rupees at the edge, every figure rounded once from exact paise. */
function kiteRow(s: PositionState, m: ReturnType<Mark>, x: Sums, f: Figures): Record<string, unknown> {
  const realised = roundRatio(f.realised.n, f.realised.d);
  const pnl = roundRatio(f.pnl.n, f.pnl.d);
  return {
    tradingsymbol: s.symbol,
    exchange: s.exchange,
    instrument_token: s.token,
    product: s.product,
    quantity: x.quantity,
    overnight_quantity: x.overnight,
    multiplier: 1,
    average_price: x.quantity > 0 ? averageRupees(x.buyValue, x.buyQty) : x.quantity < 0 ? averageRupees(x.sellValue, x.sellQty) : 0,
    close_price: paiseToRupees(m === null ? 0 : m.closePaise),
    last_price: paiseToRupees(m === null ? 0 : m.lastPaise),
    value: paiseToRupees(x.sellValue - x.buyValue),
    pnl: paiseToRupees(pnl),
    m2m: paiseToRupees(roundRatio(f.m2m.n, f.m2m.d)),
    unrealised: paiseToRupees(pnl - realised),
    realised: paiseToRupees(realised),
    buy_quantity: x.buyQty,
    buy_price: averageRupees(x.buyValue, x.buyQty),
    buy_value: paiseToRupees(x.buyValue),
    buy_m2m: paiseToRupees(f.buyM2m),
    sell_quantity: x.sellQty,
    sell_price: averageRupees(x.sellValue, x.sellQty),
    sell_value: paiseToRupees(x.sellValue),
    sell_m2m: paiseToRupees(f.sellM2m),
    day_buy_quantity: s.dayBuyQty,
    day_buy_price: averageRupees(s.dayBuyValuePaise, s.dayBuyQty),
    day_buy_value: paiseToRupees(s.dayBuyValuePaise),
    day_sell_quantity: s.daySellQty,
    day_sell_price: averageRupees(s.daySellValuePaise, s.daySellQty),
    day_sell_value: paiseToRupees(s.daySellValuePaise),
  };
}
