/**
 * The paper book: resting limits fill when the market trades at or through them, on the volume
 * traded since, in price-time priority; stops trigger on the right side; a marketable order walks
 * the depth. Ticks are canonical ticks built by hand (src/core/tick.ts). The allocation scenarios
 * at the end run in a worker thread (test/support/alloc.ts).
 */
import { isMainThread } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { AppError } from '../../core/errors.ts';
import { N, N_FIELDS, NType } from '../../core/tick.ts';
import { Status, type Order, type Side } from '../model.ts';
import { DepthFills, RestingBook, walkDepth, type BookSink } from './book.ts';
import { Rng } from '../../../test/support/gen.ts';
import { BOXED_DOUBLE_BYTES, boxOne, describeAllocation, measureInWorker, NOTHING_PER_TICK, type ScenarioFactory } from '../../../test/support/alloc.ts';

let nextId = 1;

function order(side: Side, quantity: number, pricePaise: number, over: Partial<Order> = {}): Order {
  const id = String(nextId++);
  return {
    id, key: 'k1', mode: 'paper', parentId: null, variety: 'regular', exchange: 'NSE', symbol: 'INFY', token: 408065,
    side, product: 'MIS', orderType: 'LIMIT', validity: 'DAY', validityTtl: 0, quantity, disclosedQuantity: 0,
    pricePaise, triggerPaise: 0, marketProtection: null, tag: null, guid: null, status: Status.OPEN, statusMessage: null,
    filledQuantity: 0, filledValuePaise: 0, cancelledQuantity: 0, modifications: 0, createdMs: 0, updatedMs: 0,
    exchangeMs: 0, meta: null, ...over,
  };
}

function stop(side: Side, quantity: number, triggerPaise: number, pricePaise = 0): Order {
  return order(side, quantity, pricePaise, { orderType: pricePaise === 0 ? 'SL-M' : 'SL', triggerPaise, status: Status.TRIGGER_PENDING });
}

/** A canonical tick at last price `price` (rupees), day volume `volume`, `delta` traded since the previous. */
function tick(price: number, volume: number, delta: number): Float64Array {
  const f = new Float64Array(N_FIELDS);
  f[N.TYPE] = NType.TICK;
  f[N.PRICE] = price;
  f[N.VOLUME] = volume;
  f[N.VOLUME_DELTA] = delta;
  return f;
}

/** Depth of a tick: bids and asks as [qty, rupees] best first (up to 5 each). */
function withDepth(f: Float64Array, bids: [number, number][], asks: [number, number][]): Float64Array {
  f[N.DEPTH_LEVELS] = 5;
  bids.forEach(([q, p], i) => {
    f[N.DEPTH + 3 * i] = q;
    f[N.DEPTH + 3 * i + 1] = p;
    f[N.DEPTH + 3 * i + 2] = 1;
  });
  asks.forEach(([q, p], i) => {
    f[N.DEPTH + 3 * (5 + i)] = q;
    f[N.DEPTH + 3 * (5 + i) + 1] = p;
    f[N.DEPTH + 3 * (5 + i) + 2] = 1;
  });
  return f;
}

interface Fill { id: string; row: number; qty: number; price: number }

/** A sink that applies fills to the order, as the broker does, and records every call. */
class Recorder implements BookSink {
  fills: Fill[] = [];
  triggers: { id: string; row: number; ltp: number }[] = [];
  onFill: (o: Order) => void = () => {};
  onTrigger: (o: Order, row: number) => void = () => {};

  fill(o: Order, row: number, qty: number, pricePaise: number): void {
    o.filledQuantity += qty;
    o.filledValuePaise += qty * pricePaise;
    this.fills.push({ id: o.id, row, qty, price: pricePaise });
    this.onFill(o);
  }

  trigger(o: Order, row: number, ltp: number): void {
    this.triggers.push({ id: o.id, row, ltp });
    this.onTrigger(o, row);
  }

  take(): Fill[] {
    const f = this.fills;
    this.fills = [];
    return f;
  }
}

function setup(rows = 4): { book: RestingBook; sink: Recorder; on: (row: number, f: Float64Array) => void } {
  const sink = new Recorder();
  const book = new RestingBook(rows, sink);
  return { book, sink, on: (row, f) => book.onTick(f, 0, row) };
}

if (isMainThread) {
  describe('resting limits', () => {
    it('fills a buy only once the last price is at or below its limit, at its own price', () => {
      const { book, sink, on } = setup();
      const b = order('BUY', 100, 100_00);
      book.addLimit(b, 1);
      on(1, tick(100.05, 1000, 500));
      on(0, tick(99, 1000, 500)); // another row
      expect(sink.take()).toEqual([]);
      on(1, tick(100, 1040, 40));
      expect(sink.take()).toEqual([{ id: b.id, row: 1, qty: 40, price: 100_00 }]);
      on(1, tick(99.5, 1070, 30));
      expect(sink.take()).toEqual([{ id: b.id, row: 1, qty: 30, price: 100_00 }]); // no price improvement
    });

    it('fills a sell only once the last price is at or above its limit', () => {
      const { book, sink, on } = setup();
      const s = order('SELL', 100, 250_50);
      book.addLimit(s, 2);
      on(2, tick(250.45, 1000, 500));
      expect(sink.take()).toEqual([]);
      on(2, tick(250.5, 1010, 10));
      on(2, tick(251, 1030, 20));
      expect(sink.take()).toEqual([
        { id: s.id, row: 2, qty: 10, price: 250_50 },
        { id: s.id, row: 2, qty: 20, price: 250_50 },
      ]);
    });

    it('shares a tick\'s volume among crossing orders best price first, never counting it twice', () => {
      const { book, sink, on } = setup();
      const low = order('BUY', 100, 100_00);
      const high = order('BUY', 100, 101_00);
      book.addLimit(low, 0);
      book.addLimit(high, 0);
      on(0, tick(99, 1060, 60)); // less than either wants
      expect(sink.take()).toEqual([{ id: high.id, row: 0, qty: 60, price: 101_00 }]);
      on(0, tick(99, 1210, 150)); // high takes its last 40, low the rest
      expect(sink.take()).toEqual([
        { id: high.id, row: 0, qty: 40, price: 101_00 },
        { id: low.id, row: 0, qty: 100, price: 100_00 },
      ]);
    });

    it('gives the volume to the order that came first at the same price', () => {
      const { book, sink, on } = setup();
      const first = order('SELL', 80, 50_00);
      const second = order('SELL', 80, 50_00);
      book.addLimit(first, 3);
      book.addLimit(second, 3);
      on(3, tick(50.1, 1050, 50));
      expect(sink.take()).toEqual([{ id: first.id, row: 3, qty: 50, price: 50_00 }]);
      on(3, tick(50, 1100, 50));
      expect(sink.take()).toEqual([
        { id: first.id, row: 3, qty: 30, price: 50_00 },
        { id: second.id, row: 3, qty: 20, price: 50_00 },
      ]);
    });

    it('fills an order across ticks and drops it once nothing is pending', () => {
      const { book, sink, on } = setup();
      const b = order('BUY', 100, 100_00);
      book.addLimit(b, 0);
      on(0, tick(100, 1030, 30));
      on(0, tick(100, 1060, 30));
      expect(book.has(b)).toBe(true);
      expect(book.sizeOf(0)).toBe(1);
      on(0, tick(99.9, 1110, 50));
      expect(sink.take().map((x) => x.qty)).toEqual([30, 30, 40]);
      expect(b.filledQuantity).toBe(100);
      expect(book.has(b)).toBe(false);
      expect(book.size).toBe(0);
      expect(book.sizeOf(0)).toBe(0);
      on(0, tick(99, 1200, 90));
      expect(sink.take()).toEqual([]);
    });

    it('counts only what is pending: a partly cancelled order takes the rest and leaves', () => {
      const { book, sink, on } = setup();
      const b = order('BUY', 100, 100_00, { filledQuantity: 20, cancelledQuantity: 50 });
      book.addLimit(b, 0);
      on(0, tick(100, 1500, 500));
      expect(sink.take()).toEqual([{ id: b.id, row: 0, qty: 30, price: 100_00 }]);
      expect(book.has(b)).toBe(false);
    });

    it('fills buys and sells of a row each on the tick\'s volume', () => {
      const { book, sink, on } = setup();
      const b = order('BUY', 100, 101_00);
      const s = order('SELL', 100, 99_00);
      book.addLimit(b, 0);
      book.addLimit(s, 0);
      on(0, tick(100, 1040, 40));
      expect(sink.take()).toEqual([
        { id: b.id, row: 0, qty: 40, price: 101_00 },
        { id: s.id, row: 0, qty: 40, price: 99_00 },
      ]);
    });

    it('keeps an order off volume traded before it rested (volumeNow)', () => {
      const { book, sink, on } = setup();
      const b = order('BUY', 100, 100_00);
      book.addLimit(b, 0, 1030);
      on(0, tick(100, 1040, 40)); // 30 of the 40 traded before it rested
      expect(sink.take().map((x) => x.qty)).toEqual([10]);
      on(0, tick(100, 1080, 40));
      expect(sink.take().map((x) => x.qty)).toEqual([40]);
    });

    it('does not fill on a tick without volume or without a price', () => {
      const { book, sink, on } = setup();
      book.addLimit(order('BUY', 100, 100_00), 0);
      on(0, tick(99, 1000, 0));
      on(0, tick(0, 1100, 100));
      expect(sink.take()).toEqual([]);
    });

    it('removes an order: it no longer fills and the next best takes its place', () => {
      const { book, sink, on } = setup();
      const best = order('BUY', 100, 101_00);
      const next = order('BUY', 100, 100_00);
      book.addLimit(best, 0);
      book.addLimit(next, 0);
      expect(book.size).toBe(2);
      expect(book.remove(best)).toBe(true);
      expect(book.remove(best)).toBe(false);
      expect(book.has(best)).toBe(false);
      expect(book.sizeOf(0)).toBe(1);
      on(0, tick(100.5, 1100, 100)); // would have filled `best`
      expect(sink.take()).toEqual([]);
      on(0, tick(100, 1150, 50));
      expect(sink.take()).toEqual([{ id: next.id, row: 0, qty: 50, price: 100_00 }]);
    });

    it('moves an order added twice to the back of its new price', () => {
      const { book, sink, on } = setup();
      const a = order('SELL', 100, 50_00);
      const b = order('SELL', 100, 50_00);
      book.addLimit(a, 0);
      book.addLimit(b, 0);
      book.addLimit(a, 0);
      expect(book.size).toBe(2);
      on(0, tick(50, 1010, 10));
      expect(sink.take().map((x) => x.id)).toEqual([b.id]);
    });

    it('lets a fill callback remove and add other orders of the row without double counting', () => {
      const { book, sink, on } = setup();
      const a = order('BUY', 10, 103_00);
      const b = order('BUY', 10, 102_00);
      const c = order('BUY', 10, 101_00);
      const late = order('BUY', 10, 104_00);
      for (const o of [a, b, c]) book.addLimit(o, 0);
      sink.onFill = (o) => {
        if (o === a) {
          book.remove(b);
          book.addLimit(late, 0); // arrives during the tick: none of its volume
        }
      };
      on(0, tick(100, 1100, 100));
      expect(sink.take()).toEqual([
        { id: a.id, row: 0, qty: 10, price: 103_00 },
        { id: c.id, row: 0, qty: 10, price: 101_00 },
      ]);
      on(0, tick(100, 1105, 5));
      expect(sink.take()).toEqual([{ id: late.id, row: 0, qty: 5, price: 104_00 }]);
    });

    it('offers an order a tick\'s volume once even when a callback makes the book start the row over', () => {
      const { book, sink, on } = setup();
      const early = order('BUY', 100, 104_00);
      const capped = order('BUY', 100, 103_00);
      const other = order('BUY', 100, 102_00);
      book.addLimit(early, 0, 1100); // rested after all of the next tick's volume traded
      book.addLimit(capped, 0, 1090); // only 10 of it is its own
      book.addLimit(other, 0);
      sink.onFill = (o) => {
        if (o === capped) book.remove(early); // the queue shifts under the loop
      };
      on(0, tick(100, 1100, 50));
      expect(sink.take()).toEqual([
        { id: capped.id, row: 0, qty: 10, price: 103_00 },
        { id: other.id, row: 0, qty: 40, price: 102_00 },
      ]);
    });

    it('refuses a row outside the book and a price that is not whole paise, saying what to do', () => {
      const { book } = setup(4);
      expect(() => book.addLimit(order('BUY', 1, 100_00), 4)).toThrow(AppError);
      expect(() => book.addLimit(order('BUY', 1, 100_00), 4)).toThrow(/rows 0-3/);
      try {
        book.addLimit(order('BUY', 1, 100.5), 0);
        expect.unreachable();
      } catch (e) {
        expect((e as AppError).code).toBe('PAPER_BOOK_BAD_PRICE');
      }
      expect(() => book.addStop(stop('SELL', 1, 0), 0)).toThrow(/trigger/);
      expect(book.size).toBe(0);
    });
  });

  describe('stops', () => {
    it('triggers a BUY stop when the last price reaches its trigger from below, and not before', () => {
      const { book, sink, on } = setup();
      const s = stop('BUY', 10, 105_00);
      book.addStop(s, 1);
      on(1, tick(104.95, 1000, 10));
      on(1, tick(90, 1010, 10)); // far the other way
      expect(sink.triggers).toEqual([]);
      on(1, tick(105.2, 1020, 10));
      expect(sink.triggers).toEqual([{ id: s.id, row: 1, ltp: 105_20 }]);
      expect(book.has(s)).toBe(false);
      on(1, tick(106, 1030, 10));
      expect(sink.triggers).toHaveLength(1);
    });

    it('triggers a SELL stop when the last price falls to its trigger, every crossed stop at once', () => {
      const { book, sink, on } = setup();
      const hi = stop('SELL', 10, 95_00);
      const lo = stop('SELL', 10, 94_00);
      const far = stop('SELL', 10, 90_00);
      const buy = stop('BUY', 10, 96_00);
      for (const s of [lo, far, hi, buy]) book.addStop(s, 0);
      on(0, tick(95.05, 1000, 10));
      expect(sink.triggers).toEqual([]);
      on(0, tick(93.5, 1010, 10));
      expect(sink.triggers.map((t) => t.id)).toEqual([hi.id, lo.id]);
      expect(book.size).toBe(2);
    });

    it('lets the trigger callback rest the order as a limit on the same row, filling on later volume', () => {
      const { book, sink, on } = setup();
      const s = stop('BUY', 50, 105_00, 106_00);
      const other = stop('BUY', 50, 105_00, 106_00);
      book.addStop(s, 0);
      book.addStop(other, 0);
      sink.onTrigger = (o, row) => {
        expect(book.has(o)).toBe(false);
        o.orderType = 'LIMIT';
        book.addLimit(o, row);
      };
      on(0, tick(105, 1100, 100));
      expect(sink.triggers.map((t) => t.id)).toEqual([s.id, other.id]);
      expect(book.has(s) && book.has(other)).toBe(true);
      expect(sink.take()).toEqual([]); // the triggering tick's volume traded before they rested
      on(0, tick(105.5, 1130, 30));
      expect(sink.take()).toEqual([{ id: s.id, row: 0, qty: 30, price: 106_00 }]);
    });

    it('removes a stop before it triggers', () => {
      const { book, sink, on } = setup();
      const s = stop('SELL', 10, 95_00);
      book.addStop(s, 0);
      expect(book.sizeOf(0)).toBe(1);
      expect(book.remove(s)).toBe(true);
      on(0, tick(90, 1000, 10));
      expect(sink.triggers).toEqual([]);
      expect(book.size).toBe(0);
    });
  });

  describe('walkDepth', () => {
    const f = withDepth(tick(100, 1000, 0),
      [[100, 99.95], [200, 99.9], [300, 99.85], [0, 99.8], [500, 99.75]],
      [[100, 100.05], [200, 100.1], [300, 100.15], [400, 100.2], [500, 100.25]]);
    const out = new DepthFills();

    it('takes the asks level by level for a BUY, partly at the last level touched', () => {
      expect(walkDepth(f, 0, 'BUY', 450, Infinity, out)).toBe(450);
      expect(out.n).toBe(3);
      expect([...out.qty.subarray(0, out.n)]).toEqual([100, 200, 150]);
      expect([...out.pricePaise.subarray(0, out.n)]).toEqual([100_05, 100_10, 100_15]);
    });

    it('stops at the limit price and returns what it filled', () => {
      expect(walkDepth(f, 0, 'BUY', 1000, 100_10, out)).toBe(300);
      expect(out.n).toBe(2);
      expect(walkDepth(f, 0, 'BUY', 10, 100_00, out)).toBe(0);
      expect(out.n).toBe(0);
    });

    it('takes the bids for a SELL, down to its limit, and stops at an empty level', () => {
      expect(walkDepth(f, 0, 'SELL', 250, 99_90, out)).toBe(250);
      expect([...out.pricePaise.subarray(0, out.n)]).toEqual([99_95, 99_90]);
      expect(walkDepth(f, 0, 'SELL', 10_000, 0, out)).toBe(600); // level 4 has no quantity
      expect(out.n).toBe(3);
    });

    it('fills nothing from a tick without depth', () => {
      expect(walkDepth(tick(100, 1000, 0), 0, 'BUY', 10, Infinity, out)).toBe(0);
      expect(out.n).toBe(0);
    });
  });

  describe('against a scan of every order', () => {
    it('fills and triggers exactly as a straightforward scan does, over random orders, removals and ticks', () => {
      const r = new Rng(0xb00c);
      const ROWS = 6;
      const sink = new Recorder();
      const book = new RestingBook(ROWS, sink);
      const ref = new ScanBook();
      const price = Array.from({ length: ROWS }, () => 100_00);
      const volume = new Array<number>(ROWS).fill(1_000);
      const live: Order[] = [];
      for (let step = 0; step < 20_000; step++) {
        const roll = r.int(0, 99);
        if (roll < 8) {
          const row = r.int(0, ROWS - 1);
          const side: Side = r.chance(0.5) ? 'BUY' : 'SELL';
          const o = order(side, r.int(1, 300), price[row] + r.int(-30, 30) * 5);
          const mark = r.chance(0.2) ? volume[row] - r.int(0, 100) : undefined;
          book.addLimit(o, row, mark);
          ref.add(o, row, false, mark ?? 0);
          live.push(o);
        } else if (roll < 11) {
          const row = r.int(0, ROWS - 1);
          const side: Side = r.chance(0.5) ? 'BUY' : 'SELL';
          const o = stop(side, r.int(1, 300), price[row] + (side === 'BUY' ? 1 : -1) * r.int(1, 30) * 5);
          book.addStop(o, row);
          ref.add(o, row, true, 0);
          live.push(o);
        } else if (roll < 14 && live.length > 0) {
          const o = live.splice(r.int(0, live.length - 1), 1)[0];
          expect(book.remove(o)).toBe(ref.remove(o));
        } else {
          const row = r.int(0, ROWS - 1);
          price[row] = Math.max(5, price[row] + r.int(-4, 4) * 5);
          const delta = r.chance(0.1) ? 0 : r.int(1, 400);
          volume[row] += delta;
          const f = tick(price[row] / 100, volume[row], delta);
          const before = sink.fills.length;
          book.onTick(f, 0, row);
          const got = sink.fills.slice(before);
          // Undo the book's fills so that the reference sees the same orders, then replay its own.
          for (const x of got) live.find((o) => o.id === x.id)!.filledQuantity -= x.qty;
          const want = ref.tick(row, price[row], volume[row], delta);
          expect(got).toEqual(want);
          expect(sink.triggers.map((t) => t.id)).toEqual(ref.triggered);
          sink.triggers = [];
          ref.triggered = [];
        }
        expect(book.size).toBe(ref.entries.length);
      }
      expect(ref.fills).toBeGreaterThan(500);
    });
  });

  describe('allocation', () => {
    it('handles 2M ticks that cross nothing without allocating per tick', async () => {
      const [clean, boxed] = await measureInWorker(import.meta.url, 'quiet', [{ ticks: 2_000_000 }, { ticks: 500_000, box: true }]);
      expect(clean.facts.fills).toBe(0);
      expect(clean.bytesPerTick, describeAllocation('book, nothing crosses', clean)).toBeLessThan(NOTHING_PER_TICK);
      expect(boxed.bytesPerTick, describeAllocation('book + one boxed double a tick', boxed)).toBeGreaterThanOrEqual(BOXED_DOUBLE_BYTES);
    });

    it('fills on 2M crossing ticks without allocating per tick', async () => {
      const [clean, boxed] = await measureInWorker(import.meta.url, 'filling', [{ ticks: 2_000_000 }, { ticks: 500_000, box: true }]);
      expect(clean.facts.fills / clean.facts.ticks).toBeGreaterThan(0.5);
      expect(clean.bytesPerTick, describeAllocation('book, filling', clean)).toBeLessThan(NOTHING_PER_TICK);
      expect(boxed.bytesPerTick, describeAllocation('book filling + one boxed double a tick', boxed)).toBeGreaterThanOrEqual(BOXED_DOUBLE_BYTES);
    });
  });
}

/**
 * The reference: every resting order in one list in arrival order, every tick scans all of them,
 * sorts the crossing ones by price then arrival, and shares the volume as the book promises.
 */
class ScanBook {
  entries: { o: Order; row: number; stop: boolean; seq: number }[] = [];
  marks = new Map<Order, number>();
  triggered: string[] = [];
  fills = 0;
  private seq = 0;

  add(o: Order, row: number, isStop: boolean, mark: number): void {
    this.entries.push({ o, row, stop: isStop, seq: this.seq++ });
    this.marks.set(o, mark);
  }

  remove(o: Order): boolean {
    const i = this.entries.findIndex((e) => e.o === o);
    if (i < 0) return false;
    this.entries.splice(i, 1);
    return true;
  }

  tick(row: number, ltp: number, volume: number, delta: number): Fill[] {
    const out: Fill[] = [];
    for (const side of ['BUY', 'SELL'] as const) {
      const crossing = this.entries
        .filter((e) => !e.stop && e.row === row && e.o.side === side && (side === 'BUY' ? e.o.pricePaise >= ltp : e.o.pricePaise <= ltp))
        .sort((a, b) => (side === 'BUY' ? b.o.pricePaise - a.o.pricePaise : a.o.pricePaise - b.o.pricePaise) || a.seq - b.seq);
      let left = delta;
      for (const e of crossing) {
        if (left <= 0) break;
        const pending = e.o.quantity - e.o.filledQuantity - e.o.cancelledQuantity;
        const mark = this.marks.get(e.o)!;
        const cap = mark <= volume ? volume - mark : volume;
        this.marks.set(e.o, volume);
        const take = Math.min(pending, left, cap);
        if (take <= 0) continue;
        left -= take;
        e.o.filledQuantity += take;
        out.push({ id: e.o.id, row, qty: take, price: e.o.pricePaise });
        this.fills++;
        if (e.o.filledQuantity >= e.o.quantity) this.remove(e.o);
      }
    }
    const stops = this.entries
      .filter((e) => e.stop && e.row === row && (e.o.side === 'BUY' ? e.o.triggerPaise <= ltp : e.o.triggerPaise >= ltp))
      .sort((a, b) => (a.o.side === b.o.side ? 0 : a.o.side === 'BUY' ? -1 : 1) ||
        (a.o.side === 'BUY' ? a.o.triggerPaise - b.o.triggerPaise : b.o.triggerPaise - a.o.triggerPaise) || a.seq - b.seq);
    for (const e of stops) {
      this.remove(e.o);
      this.triggered.push(e.o.id);
    }
    return out;
  }
}

// --- allocation scenarios (run in a worker thread by test/support/alloc.ts) -----------------------

const A_ROWS = 100;
const A_TICKS = 4096;

/**
 * 10 orders a row (5 buys, 5 sells, quantities no tick stream exhausts) and a stream of ticks
 * wandering around 100.00. `cross`: the orders sit inside the range the price wanders in, so most
 * ticks fill one or more; otherwise they sit 5 % away and none does.
 */
function bookScenario(cross: boolean, box: boolean): ReturnType<ScenarioFactory> {
  const r = new Rng(cross ? 0xf111 : 0x9e1e7);
  let fills = 0;
  let ticksIn = 0;
  const sink: BookSink = {
    fill(o, _row, qty, p) {
      o.filledQuantity += qty;
      o.filledValuePaise += qty * p;
      fills++;
    },
    trigger() {},
  };
  const book = new RestingBook(A_ROWS, sink);
  for (let row = 0; row < A_ROWS; row++) {
    for (let k = 0; k < 5; k++) {
      const off = cross ? k * 5 : 500 + k * 5;
      book.addLimit(order('BUY', 1e12, 100_00 + (cross ? 20 : 0) - off), row);
      book.addLimit(order('SELL', 1e12, 100_00 - (cross ? 20 : 0) + off), row);
    }
  }
  const f = new Float64Array(A_TICKS * N_FIELDS);
  const rowOf = new Int32Array(A_TICKS);
  const volume = new Array<number>(A_ROWS).fill(1_000_000);
  for (let i = 0; i < A_TICKS; i++) {
    const row = r.int(0, A_ROWS - 1);
    const delta = r.int(1, 500);
    volume[row] += delta;
    rowOf[i] = row;
    const o = i * N_FIELDS;
    f[o + N.TYPE] = NType.TICK;
    f[o + N.PRICE] = (100_00 + r.int(-40, 40) * 5) / 100; // 98.00-102.00 in 0.05 steps
    f[o + N.VOLUME] = volume[row];
    f[o + N.VOLUME_DELTA] = delta;
  }
  let t = 0;
  return {
    run(ticks) {
      ticksIn += ticks;
      for (let i = 0; i < ticks; i++) {
        book.onTick(f, t * N_FIELDS, rowOf[t]);
        if (box) boxOne(i);
        t = t + 1 === A_TICKS ? 0 : t + 1;
      }
    },
    facts: () => ({ ticks: ticksIn, fills, size: book.size }),
  };
}

export const scenarios: Record<string, ScenarioFactory> = {
  quiet: (box) => bookScenario(false, box),
  filling: (box) => bookScenario(true, box),
};
