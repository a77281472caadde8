/**
 * The paper broker's matching index: resting LIMIT orders and waiting stops (SL, SL-M), per row of
 * the followed universe and by price, so that a tick costs a comparison with its row's best price
 * and best trigger when nothing crosses, never a scan of every order. And `walkDepth`, how a
 * marketable order takes the opposite side of a tick's 5-level depth.
 *
 * Each row has four queues, each an array sorted best first by a key, with time priority among
 * equal keys (a new entry goes after the entries of its key):
 *
 * | queue      | key        | best first                   | crosses when            |
 * |------------|------------|------------------------------|-------------------------|
 * | BUY limit  | −price     | highest price                | last ≤ price            |
 * | SELL limit | +price     | lowest price                 | last ≥ price            |
 * | BUY stop   | +trigger   | lowest trigger               | last ≥ trigger          |
 * | SELL stop  | −trigger   | highest trigger              | last ≤ trigger          |
 *
 * With the sign folded into the key, "crosses" is `key ≤ sign × last` for all four, and `best`
 * (one Float64Array, four slots a row, +Infinity when empty) holds each queue's front key: a tick
 * that crosses nothing reads four doubles and returns.
 *
 * Volume: a resting order fills only on volume that trades after it rested. A tick's VOLUME_DELTA
 * (volume since the row's previous tick) is what that tick offers each side, shared by the side's
 * crossing orders in price-time priority, each taking min(its pending, what is left) at its own
 * price (no price improvement: conservative). Each side has its own budget: every unit traded had
 * a buyer and a seller, and a paper BUY stands in for a buyer of that volume, a paper SELL for a
 * seller, so neither side counts a unit twice. Each entry also keeps a volume mark, the day volume
 * up to which it has had its chance (VOLUME at its last examination, or `volumeNow` when added):
 * an entry takes at most VOLUME − mark on a tick (or VOLUME when the day counter has started
 * again), so an order added during a tick, or examined twice in one, takes none of that tick's
 * volume twice.
 *
 * Callbacks: the sink's fill() updates the order (the broker does that); the book then re-reads
 * pending and drops the order at 0. Triggered stops are taken out of the index first, collected in
 * a scratch array, and handed to sink.trigger() after the scan, because the broker works them at
 * once and may rest them as limits on the same row. Callbacks may remove or add other orders: the
 * fill loop sees a changed queue and starts over (what it already examined has no volume left on
 * this tick), and the stop scratch is a stack, so a nested onTick cannot overwrite it.
 *
 * Nothing is allocated per tick: queues and scratch grow (by half, at least 8) only when an order
 * is added or more stops trigger at once than ever before.
 */
import { AppError } from '../../core/errors.ts';
import { N } from '../../core/tick.ts';
import type { Order, Side } from '../model.ts';

/** What the book tells the broker. */
export interface BookSink {
  /** `qty` of `order` filled at `pricePaise` on a tick of `row`: the sink updates the order. */
  fill(order: Order, row: number, qty: number, pricePaise: number): void;
  /** A stop's trigger was crossed at `ltpPaise`; the order has left the book. */
  trigger(order: Order, row: number, ltpPaise: number): void;
}

/** Queue of a row: row × 4 + one of these. */
const BUY_LIMIT = 0;
const SELL_LIMIT = 1;
const BUY_STOP = 2;
const SELL_STOP = 3;
/** key = SIGN[q] × price (or trigger), so every queue is ascending and crosses at key ≤ SIGN[q] × last. */
const SIGN = [-1, 1, 1, -1] as const;

const MIN_CAPACITY = 8;

/** One queue: entries best first. The arrays are longer than `n`; slots past `n` hold null. */
class Queue {
  n = 0;
  orders: (Order | null)[] = new Array<Order | null>(MIN_CAPACITY).fill(null);
  key = new Float64Array(MIN_CAPACITY);
  /** Day volume up to which the entry has had its chance (limits only). */
  mark = new Float64Array(MIN_CAPACITY);

  grow(): void {
    const cap = Math.max(MIN_CAPACITY, this.key.length + (this.key.length >> 1));
    const orders = new Array<Order | null>(cap).fill(null);
    for (let i = 0; i < this.n; i++) orders[i] = this.orders[i];
    const key = new Float64Array(cap);
    key.set(this.key);
    const mark = new Float64Array(cap);
    mark.set(this.mark);
    this.orders = orders;
    this.key = key;
    this.mark = mark;
  }

  /** Index of `order`, -1 when absent (a row holds tens of orders: a scan is the fast way). */
  indexOf(order: Order): number {
    for (let i = 0; i < this.n; i++) if (this.orders[i] === order) return i;
    return -1;
  }
}

export class RestingBook {
  /** Front key of every queue (row × 4 + queue), +Infinity when empty. */
  private readonly best: Float64Array;
  private readonly queues: (Queue | null)[];
  /** Entries (limits and stops) per row. */
  private readonly counts: Int32Array;
  /** Where each order rests: row × 4 + queue. */
  private readonly where = new Map<Order, number>();
  /** Triggered stops of the ticks being handled, a stack (see onTick). */
  private scratch: (Order | null)[] = new Array<Order | null>(64).fill(null);
  private nScratch = 0;
  /** The row whose tick is being handled (-1 outside onTick) and its day volume. */
  private tickRow = -1;
  private tickVolume = 0;

  constructor(readonly rows: number, private readonly sink: BookSink) {
    if (!Number.isInteger(rows) || rows < 0) throw new RangeError(`RestingBook: rows must be a whole number >= 0, got ${rows}`);
    this.best = new Float64Array(rows * 4).fill(Infinity);
    this.queues = new Array<Queue | null>(rows * 4).fill(null);
    this.counts = new Int32Array(rows);
  }

  /** Orders resting (limits and stops). */
  get size(): number {
    return this.where.size;
  }

  /** Orders resting on `row`. */
  sizeOf(row: number): number {
    return this.counts[row] ?? 0;
  }

  has(order: Order): boolean {
    return this.where.has(order);
  }

  /**
   * Rest a LIMIT order at `order.pricePaise` on `row`, behind the orders already at its price.
   * `volumeNow`, the row's day volume when the order rested, keeps it off volume traded before;
   * by default the tick being handled when called from a callback of this row, else none. An
   * order already in the book moves (to the back of its price); one with nothing pending is not
   * added.
   */
  addLimit(order: Order, row: number, volumeNow?: number): void {
    this.checkRow(order, row);
    const p = order.pricePaise;
    if (!Number.isInteger(p) || p <= 0) {
      throw new AppError('PAPER_BOOK_BAD_PRICE', `Order ${order.id} cannot rest as a limit at ${p} paise: give it a whole, positive price in paise.`, { orderId: order.id, pricePaise: p });
    }
    if (this.where.has(order)) this.remove(order);
    if (order.quantity - order.filledQuantity - order.cancelledQuantity <= 0) return;
    const q = order.side === 'BUY' ? BUY_LIMIT : SELL_LIMIT;
    const mark = volumeNow ?? (row === this.tickRow ? this.tickVolume : 0);
    this.insert(row * 4 + q, SIGN[q] * p, mark, order);
  }

  /** Rest an SL / SL-M order on `row` until the last price crosses `order.triggerPaise`. */
  addStop(order: Order, row: number): void {
    this.checkRow(order, row);
    const t = order.triggerPaise;
    if (!Number.isInteger(t) || t <= 0) {
      throw new AppError('PAPER_BOOK_BAD_TRIGGER', `Order ${order.id} cannot wait for a trigger of ${t} paise: give it a whole, positive trigger price in paise.`, { orderId: order.id, triggerPaise: t });
    }
    if (this.where.has(order)) this.remove(order);
    const q = order.side === 'BUY' ? BUY_STOP : SELL_STOP;
    this.insert(row * 4 + q, SIGN[q] * t, 0, order);
  }

  /** Take `order` out of the book; false when it was not in it. */
  remove(order: Order): boolean {
    const qi = this.where.get(order);
    if (qi === undefined) return false;
    const q = this.queues[qi]!;
    const i = q.indexOf(order);
    if (i < 0) {
      this.where.delete(order);
      return false;
    }
    this.removeAt(q, qi, i);
    return true;
  }

  /**
   * The hub's tick of `row` (fields at f[o + N.X]): fill the row's crossing limits on the tick's
   * volume, then trigger its crossed stops. O(1) when nothing crosses; allocates nothing.
   */
  onTick(f: Float64Array, o: number, row: number): void {
    const price = f[o + N.PRICE];
    if (!(price > 0) || !(row >= 0 && row < this.rows)) return;
    const ltp = Math.round(price * 100);
    const b = row * 4;
    const best = this.best;
    if (best[b] > -ltp && best[b + 1] > ltp && best[b + 2] > ltp && best[b + 3] > -ltp) return;

    const prevRow = this.tickRow;
    const prevVolume = this.tickVolume;
    const volume = f[o + N.VOLUME];
    this.tickRow = row;
    this.tickVolume = volume;
    const delta = f[o + N.VOLUME_DELTA];
    if (best[b] <= -ltp) this.fillSide(row, b, -ltp, volume, delta);
    if (best[b + 1] <= ltp) this.fillSide(row, b + 1, ltp, volume, delta);

    // Stops: out of the index first, onto the scratch stack; called back after the scan.
    const base = this.nScratch;
    if (best[b + 2] <= ltp) this.collect(row, b + 2, ltp);
    if (best[b + 3] <= -ltp) this.collect(row, b + 3, -ltp);
    const end = this.nScratch;
    for (let i = base; i < end; i++) {
      const order = this.scratch[i]!;
      this.scratch[i] = null;
      this.sink.trigger(order, row, ltp);
    }
    this.nScratch = base;
    this.tickRow = prevRow;
    this.tickVolume = prevVolume;
  }

  // --- internals ---------------------------------------------------------------------------------

  private checkRow(order: Order, row: number): void {
    if (!Number.isInteger(row) || row < 0 || row >= this.rows) {
      throw new AppError('PAPER_BOOK_BAD_ROW', `Order ${order.id} cannot rest on row ${row}: the book has rows 0-${this.rows - 1}; resolve the instrument's row in the followed universe first.`, { orderId: order.id, row });
    }
  }

  private insert(qi: number, key: number, mark: number, order: Order): void {
    let q = this.queues[qi];
    if (q === null) q = this.queues[qi] = new Queue();
    if (q.n === q.key.length) q.grow();
    // First index whose key is greater: behind every entry of the same key (time priority).
    let lo = 0;
    let hi = q.n;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (q.key[mid] <= key) lo = mid + 1;
      else hi = mid;
    }
    for (let j = q.n; j > lo; j--) {
      q.orders[j] = q.orders[j - 1];
      q.key[j] = q.key[j - 1];
      q.mark[j] = q.mark[j - 1];
    }
    q.orders[lo] = order;
    q.key[lo] = key;
    q.mark[lo] = mark;
    q.n++;
    this.where.set(order, qi);
    this.counts[qi >> 2]++;
    if (lo === 0) this.best[qi] = key;
  }

  private removeAt(q: Queue, qi: number, i: number): void {
    this.where.delete(q.orders[i]!);
    const n = q.n - 1;
    for (let j = i; j < n; j++) {
      q.orders[j] = q.orders[j + 1];
      q.key[j] = q.key[j + 1];
      q.mark[j] = q.mark[j + 1];
    }
    q.orders[n] = null;
    q.n = n;
    this.counts[qi >> 2]--;
    if (i === 0) this.best[qi] = n === 0 ? Infinity : q.key[0];
  }

  /**
   * Fill the crossing entries of limit queue `qi` (key ≤ lim) in priority order on `delta`.
   * The queue is re-read after every callback: the sink may have changed it.
   */
  private fillSide(row: number, qi: number, lim: number, volume: number, delta: number): void {
    const q = this.queues[qi]!;
    const sign = SIGN[qi & 3];
    let left = delta;
    let i = 0;
    while (left > 0 && i < q.n && q.key[i] <= lim) {
      const order = q.orders[i]!;
      const pending = order.quantity - order.filledQuantity - order.cancelledQuantity;
      if (pending <= 0) {
        this.removeAt(q, qi, i);
        continue;
      }
      const mark = q.mark[i];
      const cap = mark <= volume ? volume - mark : volume;
      q.mark[i] = volume;
      let take = pending < left ? pending : left;
      if (cap < take) take = cap;
      if (take <= 0) {
        i++;
        continue;
      }
      left -= take;
      this.sink.fill(order, row, take, sign * q.key[i]);
      const done = order.quantity - order.filledQuantity - order.cancelledQuantity <= 0;
      if (q.orders[i] === order) {
        if (done) this.removeAt(q, qi, i);
        else i++;
      } else {
        // The callback changed this queue: find our place again from the front. Entries already
        // examined carry this tick's volume as their mark, so none takes from it twice.
        if (done) this.remove(order);
        i = 0;
      }
    }
  }

  /** Move the crossed entries of stop queue `qi` (key ≤ lim, all at the front) onto the scratch stack. */
  private collect(row: number, qi: number, lim: number): void {
    const q = this.queues[qi]!;
    let k = 0;
    while (k < q.n && q.key[k] <= lim) k++;
    if (k === 0) return;
    if (this.nScratch + k > this.scratch.length) {
      const s = new Array<Order | null>(Math.max(this.scratch.length * 2, this.nScratch + k)).fill(null);
      for (let i = 0; i < this.nScratch; i++) s[i] = this.scratch[i];
      this.scratch = s;
    }
    for (let j = 0; j < k; j++) {
      const order = q.orders[j]!;
      this.where.delete(order);
      this.scratch[this.nScratch++] = order;
    }
    const n = q.n - k;
    for (let j = 0; j < n; j++) {
      q.orders[j] = q.orders[j + k];
      q.key[j] = q.key[j + k];
    }
    for (let j = n; j < q.n; j++) q.orders[j] = null;
    q.n = n;
    this.counts[row] -= k;
    this.best[qi] = n === 0 ? Infinity : q.key[0];
  }
}

// --- the depth -----------------------------------------------------------------------------------

/** Levels a side of the depth has (src/core/tick.ts N.DEPTH). */
export const DEPTH_SIDE = 5;

/** What walkDepth took: one entry per level touched, best first. Made once, reused. */
export class DepthFills {
  n = 0;
  readonly qty = new Float64Array(DEPTH_SIDE);
  readonly pricePaise = new Float64Array(DEPTH_SIDE);

  reset(): void {
    this.n = 0;
  }
}

/**
 * A marketable order of `qty` taking the opposite side of the tick's depth at f[o + N.DEPTH...]
 * (BUY the asks, SELL the bids), level by level at each level's price, never past `limitPaise`
 * (BUY: price ≤ limit, Infinity for none; SELL: price ≥ limit, 0 for none). Stops at a level with
 * no quantity or no price, and when the tick has no depth. Resets `out`, writes one entry per
 * level touched, and returns the quantity filled.
 */
export function walkDepth(f: Float64Array, o: number, side: Side, qty: number, limitPaise: number, out: DepthFills): number {
  out.n = 0;
  const levels = Math.min(DEPTH_SIDE, f[o + N.DEPTH_LEVELS]);
  if (!(qty > 0) || !(levels > 0)) return 0;
  const buy = side === 'BUY';
  let d = o + N.DEPTH + (buy ? 3 * DEPTH_SIDE : 0);
  let left = qty;
  for (let i = 0; i < levels && left > 0; i++, d += 3) {
    const lq = f[d];
    const lp = f[d + 1];
    if (!(lq > 0) || !(lp > 0)) break;
    const p = Math.round(lp * 100);
    if (buy ? p > limitPaise : p < limitPaise) break;
    const take = lq < left ? lq : left;
    out.qty[out.n] = take;
    out.pricePaise[out.n] = p;
    out.n++;
    left -= take;
  }
  return qty - left;
}
