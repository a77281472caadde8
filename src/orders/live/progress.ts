/**
 * How far a live order has been reported to the order service: the ledger that lets Kite's updates
 * arrive late, twice or out of order (the ticker, a postback and a poll all carry the same change)
 * and still move the order only forward, each event once.
 *
 * | what                    | moves when                                                          |
 * |-------------------------|---------------------------------------------------------------------|
 * | atExchange              | first row that shows the order at the exchange: `opened`, once     |
 * | triggered               | first row of a stop at Kite past its trigger: `triggered`, once    |
 * | maxFilled               | a row's filled_quantity above it (an older row is below: ignored)  |
 * | reported / reportedValue| each fill reported: never above maxFilled                          |
 * | tradeIds                | each of Kite's trades reported once, by trade_id                   |
 * | skip                    | quantity reported without its trade ids (filled before a restart,  |
 * |                         | or derived): the first unseen trades of the order's list cover it  |
 *
 * Fills come from Kite's trades of the order (exact prices). When those cannot be read, the fill is
 * derived from the row's cumulative filled_quantity and average_price: value = average × filled,
 * computed as an exact fraction (BigInt) from the digits Kite sent, minus what was reported, over
 * the quantity not yet reported, rounded half-even to the paisa. If Kite rounds average_price, the
 * derived price carries that rounding; quantities are always exact. Trades read later first cover
 * the derived quantity (`skip`; Kite lists an order's trades in time order) and never pass what
 * the rows showed filled (the cap), so a derived fill is never reported again.
 */
import { divRoundHalfEven, type Order } from '../model.ts';
import { exactRupees, paiseOf } from './kite.ts';

export interface Fill {
  qty: number;
  pricePaise: number;
}

export class Progress {
  atExchange: boolean;
  triggered = false;
  /** The largest filled_quantity Kite has shown. */
  maxFilled: number;
  reported: number;
  reportedValuePaise: number;
  private skip: number;
  private readonly tradeIds = new Set<string>();

  /** Seeds from the order as the service holds it (a restored order has fills and a status already). */
  constructor(order: Pick<Order, 'status' | 'filledQuantity' | 'filledValuePaise'>) {
    this.atExchange = !PRE_EXCHANGE.has(order.status);
    this.maxFilled = order.filledQuantity;
    this.reported = order.filledQuantity;
    this.reportedValuePaise = order.filledValuePaise;
    this.skip = order.filledQuantity;
  }

  /** Takes a row's filled_quantity; true when it is news (more than any row before showed). */
  seeFilled(filled: number): boolean {
    if (filled <= this.maxFilled) return false;
    this.maxFilled = filled;
    return true;
  }

  /** Quantity Kite has shown filled that is not yet reported. */
  get owed(): number {
    return this.maxFilled - this.reported;
  }

  /**
   * The fills among Kite's trades of the order not reported yet (by trade_id), within what Kite's
   * rows have shown filled; they count as reported on return.
   */
  takeTrades(trades: readonly Record<string, unknown>[]): Fill[] {
    const out: Fill[] = [];
    for (const t of trades) {
      const id = t.trade_id === undefined || t.trade_id === null ? '' : String(t.trade_id);
      if (id === '' || this.tradeIds.has(id)) continue;
      const total = typeof t.quantity === 'number' ? t.quantity : Number(t.quantity);
      if (!(Number.isSafeInteger(total) && total > 0)) continue;
      this.tradeIds.add(id);
      let qty = total;
      if (this.skip > 0) {
        const s = Math.min(this.skip, qty);
        this.skip -= s;
        qty -= s;
      }
      qty = Math.min(qty, this.owed);
      if (qty <= 0) continue;
      const pricePaise = paiseOf(t.average_price);
      this.reported += qty;
      this.reportedValuePaise += qty * pricePaise;
      out.push({ qty, pricePaise });
    }
    return out;
  }

  /**
   * The fill the row's cumulative filled_quantity and average_price imply beyond what was reported,
   * or null (nothing owed, the row is not the latest, or its average is unreadable). Counts as
   * reported on return.
   */
  derive(filled: number, averagePrice: number | string): Fill | null {
    if (filled !== this.maxFilled || this.owed <= 0) return null;
    const avg = exactRupees(averagePrice);
    if (avg === null || avg.num <= 0n) return null;
    const qty = this.owed;
    // value in paise × 10^scale = avg.num × filled × 100; minus what was reported, over qty.
    const num = avg.num * BigInt(filled) * 100n - BigInt(this.reportedValuePaise) * avg.scale;
    const pricePaise = Number(divRoundHalfEven(num, BigInt(qty) * avg.scale));
    if (!(pricePaise > 0)) return null;
    this.reported += qty;
    this.reportedValuePaise += qty * pricePaise;
    // The trades behind this quantity, when they are read later, are skipped like a restart's.
    this.skip += qty;
    return { qty, pricePaise };
  }
}

/** The service's statuses of an order not yet at the exchange. */
export const PRE_EXCHANGE: ReadonlySet<string> = new Set(['PUT ORDER REQ RECEIVED', 'VALIDATION PENDING', 'OPEN PENDING', 'AMO REQ RECEIVED']);
