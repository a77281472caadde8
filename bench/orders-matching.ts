/**
 * The matching half of the orders bench: what the paper book (src/orders/paper/book.ts) costs per
 * tick with 1,000 resting LIMIT orders over 100 instruments, against the straightforward way in
 * the same run: scan every resting order on every tick, checking its row and price.
 *
 * Setup: 10 orders an instrument, 5 buys below the market and 5 sells above it, 0.4-2.0 % away.
 * Prices wander (a walk pulled back towards the instrument's reference, now and then a jump), so
 * most ticks cross nothing and a few cross one or more orders; the share is printed. A tick's
 * volume since the previous one is a few lots. The sink applies each fill to the order as the
 * broker would, and renews an order as it completes (filled quantity back to 0), so both sides face
 * 1,000 resting orders throughout and every round sees the same book.
 *
 * Both do the same fill work: the scan keeps its orders best price first per side (time order
 * within a price), so crossing orders of the tick's row are met in price-time priority and share
 * the tick's volume as the book shares it. Before timing, one pass of the stream through each,
 * from the same state, must produce the same fills.
 *
 * Clock: this process's CPU time (bench/support.ts), as the other benches use. Both are warmed up,
 * then timed in alternating rounds; each figure is the best round. Not a *.bench.ts file:
 * bench/orders.bench.ts calls `matchingBench` as part of the orders bench.
 */
import { N, N_FIELDS, NType } from '../src/core/tick.ts';
import { Status, type Order, type Side } from '../src/orders/model.ts';
import { RestingBook, type BookSink } from '../src/orders/paper/book.ts';
import { Rng } from '../test/support/gen.ts';
import { QUICK } from './report.ts';
import { cpuMs, forceGc, loadLine } from './support.ts';

const ROWS = 100;
const PER_ROW = 10;
/** Ticks in the generated stream, replayed in passes (16 MiB of canonical ticks). */
const TICKS = 1 << 15;
const BOOK_PASSES = QUICK ? 8 : 64;
const SCAN_PASSES = 2;
const WARMUP_ROUNDS = QUICK ? 1 : 2;
const ROUNDS = QUICK ? 2 : 7;
const TARGET_NS = 1000;
const TARGET_RATIO = 50;

export interface MatchingResult {
  bookNsPerTick: number;
  scanNsPerTick: number;
  ratio: number;
}

/** Counts fills; applies each to its order, renewing an order once it completes. */
class CountingSink implements BookSink {
  fills = 0;
  qty = 0;
  valuePaise = 0;

  fill(o: Order, _row: number, qty: number, pricePaise: number): void {
    o.filledQuantity += qty;
    o.filledValuePaise += qty * pricePaise;
    if (o.filledQuantity >= o.quantity) {
      o.filledQuantity = 0;
      o.filledValuePaise = 0;
    }
    this.fills++;
    this.qty += qty;
    this.valuePaise += qty * pricePaise;
  }

  trigger(): void {}
}

/**
 * The baseline: every resting order in one array (buys best price first, then sells best price
 * first, arrival order within a price), each tick scans all of them for its row and price.
 */
class ScanAll {
  private readonly orders: Order[] = [];
  private rows = new Int32Array(0);

  constructor(private readonly sink: BookSink) {}

  add(entries: readonly { order: Order; row: number }[]): void {
    const byPriority = [...entries].sort((a, b) => {
      if (a.order.side !== b.order.side) return a.order.side === 'BUY' ? -1 : 1;
      return a.order.side === 'BUY' ? b.order.pricePaise - a.order.pricePaise : a.order.pricePaise - b.order.pricePaise;
    });
    for (const e of byPriority) this.orders.push(e.order);
    this.rows = Int32Array.from(byPriority, (e) => e.row);
  }

  onTick(f: Float64Array, o: number, row: number): void {
    const price = f[o + N.PRICE];
    if (!(price > 0)) return;
    const ltp = Math.round(price * 100);
    const delta = f[o + N.VOLUME_DELTA];
    let leftBuy = delta;
    let leftSell = delta;
    const orders = this.orders;
    const rows = this.rows;
    for (let i = 0; i < orders.length; i++) {
      if (rows[i] !== row) continue;
      const ord = orders[i];
      const buy = ord.side === 'BUY';
      if (buy ? ord.pricePaise < ltp || leftBuy <= 0 : ord.pricePaise > ltp || leftSell <= 0) continue;
      const pending = ord.quantity - ord.filledQuantity - ord.cancelledQuantity;
      if (pending <= 0) continue;
      const left = buy ? leftBuy : leftSell;
      const take = pending < left ? pending : left;
      if (buy) leftBuy -= take;
      else leftSell -= take;
      this.sink.fill(ord, row, take, ord.pricePaise);
    }
  }
}

function makeOrder(id: number, side: Side, quantity: number, pricePaise: number): Order {
  return {
    id: String(id), key: 'bench', mode: 'paper', parentId: null, variety: 'regular', exchange: 'NSE', symbol: `SYM${id}`,
    token: 100_000 + id, side, product: 'MIS', orderType: 'LIMIT', validity: 'DAY', validityTtl: 0, quantity,
    disclosedQuantity: 0, pricePaise, triggerPaise: 0, marketProtection: null, tag: null, guid: null, status: Status.OPEN,
    statusMessage: null, filledQuantity: 0, filledValuePaise: 0, cancelledQuantity: 0, modifications: 0, createdMs: 0,
    updatedMs: 0, exchangeMs: 0, meta: null,
  };
}

interface Market {
  /** Per order: side, quantity, price, row (made twice, once for each contender). */
  spec: { side: Side; quantity: number; pricePaise: number; row: number }[];
  f: Float64Array;
  rowOf: Int32Array;
  /** Share of ticks whose last price crosses at least one order of their row. */
  crossing: number;
}

const round5 = (p: number): number => Math.max(5, Math.round(p / 5) * 5);

function makeMarket(seed: number): Market {
  const r = new Rng(seed);
  const ref = Array.from({ length: ROWS }, () => round5(r.int(50_00, 3_000_00)));
  const spec: Market['spec'] = [];
  const lowestSell = new Array<number>(ROWS).fill(Infinity);
  const highestBuy = new Array<number>(ROWS).fill(0);
  for (let row = 0; row < ROWS; row++) {
    for (let k = 0; k < PER_ROW; k++) {
      const side: Side = k % 2 === 0 ? 'BUY' : 'SELL';
      const away = (0.4 + r.int(0, 16) / 10) / 100; // 0.4-2.0 %
      const pricePaise = round5(ref[row] * (side === 'BUY' ? 1 - away : 1 + away));
      spec.push({ side, quantity: r.int(1, 20) * 25, pricePaise, row });
      if (side === 'BUY') highestBuy[row] = Math.max(highestBuy[row], pricePaise);
      else lowestSell[row] = Math.min(lowestSell[row], pricePaise);
    }
  }

  const f = new Float64Array(TICKS * N_FIELDS);
  const rowOf = new Int32Array(TICKS);
  const last = ref.slice();
  const volume = Array.from({ length: ROWS }, () => r.int(100_000, 5_000_000));
  let crossing = 0;
  for (let i = 0; i < TICKS; i++) {
    // Some instruments tick far more often than others.
    const u = r.u32() / 0x1_0000_0000;
    const row = Math.floor(ROWS * u * u);
    const p0 = ref[row];
    // A step of a few ticks, pulled back towards the reference; now and then a jump.
    let p = last[row] + r.int(-3, 3) * 5 - Math.round((last[row] - p0) * 0.02);
    if (r.chance(0.002)) p += Math.round(p0 * (r.chance(0.5) ? 1 : -1) * r.int(5, 15) / 1000);
    p = round5(p);
    last[row] = p;
    const delta = r.int(1, 10) * 25;
    volume[row] += delta;
    rowOf[i] = row;
    const o = i * N_FIELDS;
    f[o + N.TYPE] = NType.TICK;
    f[o + N.TOKEN] = 100_000 + row;
    f[o + N.INSTR] = row;
    f[o + N.PRICE] = p / 100;
    f[o + N.LAST_QTY] = delta;
    f[o + N.VOLUME] = volume[row];
    f[o + N.VOLUME_DELTA] = delta;
    if (p <= highestBuy[row] || p >= lowestSell[row]) crossing++;
  }
  return { spec, f, rowOf, crossing: crossing / TICKS };
}

interface Contender {
  name: string;
  sink: CountingSink;
  /** `passes` passes over the stream, each its own loop calling its own onTick (one call site each). */
  run: (passes: number) => void;
}

function contenders(m: Market): { book: Contender; scan: Contender } {
  const bookSink = new CountingSink();
  const book = new RestingBook(ROWS, bookSink);
  const scanSink = new CountingSink();
  const scan = new ScanAll(scanSink);
  const entries: { order: Order; row: number }[] = [];
  m.spec.forEach((s, id) => {
    book.addLimit(makeOrder(id, s.side, s.quantity, s.pricePaise), s.row);
    entries.push({ order: makeOrder(id, s.side, s.quantity, s.pricePaise), row: s.row });
  });
  scan.add(entries);
  const { f, rowOf } = m;
  return {
    book: {
      name: 'RestingBook.onTick',
      sink: bookSink,
      run(passes) {
        for (let p = 0; p < passes; p++) {
          for (let i = 0; i < TICKS; i++) book.onTick(f, i * N_FIELDS, rowOf[i]);
        }
      },
    },
    scan: {
      name: `baseline: scan all ${ROWS * PER_ROW} orders`,
      sink: scanSink,
      run(passes) {
        for (let p = 0; p < passes; p++) {
          for (let i = 0; i < TICKS; i++) scan.onTick(f, i * N_FIELDS, rowOf[i]);
        }
      },
    },
  };
}

/** CPU ns per tick over `passes` passes of the stream. */
function timeRound(c: Contender, passes: number): number {
  const t0 = cpuMs();
  c.run(passes);
  return ((cpuMs() - t0) * 1e6) / (passes * TICKS);
}

export async function matchingBench(): Promise<MatchingResult> {
  const m = makeMarket(0x0bde);
  const { book, scan } = contenders(m);

  // Same fills from the same state, or the comparison means nothing.
  timeRound(book, 1);
  timeRound(scan, 1);
  const b = book.sink;
  const s = scan.sink;
  if (b.fills !== s.fills || b.qty !== s.qty || b.valuePaise !== s.valuePaise || b.fills === 0) {
    throw new Error(`the book and the scan disagree over one pass: book ${b.fills} fills, ${b.qty} qty, ${b.valuePaise} paise; ` +
      `scan ${s.fills} fills, ${s.qty} qty, ${s.valuePaise} paise`);
  }
  const fillsPerKTick = (b.fills * 1000) / TICKS;

  for (let i = 0; i < WARMUP_ROUNDS; i++) {
    timeRound(book, BOOK_PASSES);
    timeRound(scan, SCAN_PASSES);
  }
  let bookNs = Infinity;
  let scanNs = Infinity;
  for (let i = 0; i < ROUNDS; i++) {
    forceGc();
    bookNs = Math.min(bookNs, timeRound(book, BOOK_PASSES));
    forceGc();
    scanNs = Math.min(scanNs, timeRound(scan, SCAN_PASSES));
  }
  const ratio = scanNs / bookNs;

  console.log(`orders matching: ${ROWS * PER_ROW} resting LIMIT orders over ${ROWS} instruments, ${TICKS} ticks replayed ` +
    `(${(m.crossing * 100).toFixed(1)} % cross an order, ${fillsPerKTick.toFixed(1)} fills per 1,000 ticks); ` +
    `clock: process CPU time, best of ${ROUNDS} rounds; ${loadLine()}`);
  console.table([
    { task: book.name, 'ns/tick': bookNs.toFixed(1), 'ticks/s (M)': (1e3 / bookNs).toFixed(2), 'ticks/round': BOOK_PASSES * TICKS },
    { task: scan.name, 'ns/tick': scanNs.toFixed(1), 'ticks/s (M)': (1e3 / scanNs).toFixed(2), 'ticks/round': SCAN_PASSES * TICKS },
  ]);
  console.log(`ratio book / scan: ${ratio.toFixed(1)}x`);
  console.log(`target < ${TARGET_NS / 1000} µs per tick: ${bookNs.toFixed(1)} ns → ${bookNs < TARGET_NS ? 'MET' : 'NOT MET'}; ` +
    `target ≥ ${TARGET_RATIO}x the scan: ${ratio.toFixed(1)}x → ${ratio >= TARGET_RATIO ? 'MET' : 'NOT MET'}`);
  return { bookNsPerTick: bookNs, scanNsPerTick: scanNs, ratio };
}
