/**
 * The simulated market: one preallocated WireTick per instrument and mode, moved in place.
 *
 * Prices are integers in paise on the instrument's tick grid (5 paise for the index, whose master
 * row says tick 0). Each instrument keeps a "fair" value with a pull back to where it started, so
 * a day-long run stays near realistic levels:
 *
 * - NIFTY 50 moves once per round (`advance`), whether or not anyone follows it: derivatives price
 *   off it. It moves in whole ticks as the real index prints: a quarter of rounds not at all, half
 *   the moves by one tick (5 paise) up or down, most others by 2-5 ticks, a few by rupees. So the
 *   index often returns to a level it just left (A → B → A), and in ltp and quote mode repeats its
 *   previous packet exactly when it did not move.
 * - Stocks move on their own updates: beta times the index move since their last update plus
 *   their own noise.
 * - Futures are the underlying carried at 6.5 % a year to expiry; options are Black-76 on that
 *   forward with a 12-15 % volatility and a mild smile, never below one tick.
 *
 * Each update of a tradable instrument is one of:
 * - a trade (70 %): the touch is set around fair (best bid at or below it, best ask one or two ticks
 *   over), and the trade prints at the bid or the ask, now and then inside a two-tick spread. While
 *   fair stays between the same grid lines, prints bounce between bid and ask, the A → B → A real
 *   feeds are full of. Volume grows by the traded quantity, average price is turnover / volume,
 *   high and low follow, open interest only grows, and the depth is rebuilt on the touch (5 bids
 *   strictly below the best ask, ladders in whole ticks, empty levels as zeros at the price floor).
 * - a book change (30 %): the same prices, new quantities and order counts on every level and new
 *   totals; no trade, so price, volume, average and trade time stay. In ltp mode its packet repeats
 *   the previous one word for word, as does a trade at an unchanged price. The simulator sends
 *   them all the same, so ltp mode exercises the shard's duplicate drop, not only its keeps.
 * Open and close (previous day) stay fixed; exchange times are the clock's epoch seconds.
 *
 * Bursts: now and then a trade starts a burst, and the instrument then trades in each of the next
 * 8-32 rounds it is followed in, ahead of the random pick (many ticks for one instrument in a short
 * span, as around a large order).
 *
 * Reproducible: the same seed, instruments and call sequence give the same ticks (the clock only
 * stamps times and ages options).
 *
 * Hot path (`advance`): numbers in typed arrays, no allocation.
 */
import { emptyWireTick, type WireTick } from '../codec.ts';
import type { Instrument } from '../../core/instrument.ts';
import { NIFTY50, NIFTY_DERIVATIVE_NAME, NIFTY_INDEX_LEVEL, NIFTY_INDEX_SYMBOL, NIFTY_INDEX_TOKEN } from '../nifty50.ts';
import { Kind, type KindCode } from '../../core/packet-slot.ts';
import { Rng } from './rng.ts';
import { DAY_MS } from '../../core/ist.ts';

export type Mode = 'ltp' | 'quote' | 'full';
/** Mode codes as the server keeps them per connection and token; 0 = not subscribed. */
export const ModeCode = { NONE: 0, LTP: 1, QUOTE: 2, FULL: 3 } as const;
export type ModeCodeValue = (typeof ModeCode)[keyof typeof ModeCode];

export function modeCode(mode: string): ModeCodeValue | 0 {
  if (mode === 'ltp') return ModeCode.LTP;
  if (mode === 'quote') return ModeCode.QUOTE;
  if (mode === 'full') return ModeCode.FULL;
  return 0;
}

const INDEX_KINDS: readonly KindCode[] = [0 as KindCode, Kind.LTP, Kind.INDEX_QUOTE, Kind.INDEX_FULL];
const TRADABLE_KINDS: readonly KindCode[] = [0 as KindCode, Kind.LTP, Kind.QUOTE, Kind.FULL];

const Class = { INDEX: 0, CASH: 1, FUT: 2, CE: 3, PE: 4 } as const;

const U32_MAX = 0xffffffff;
const YEAR_MS = 365 * DAY_MS;
const MIN_T_YEARS = 1 / (365 * 24 * 60);
/** 15:30 IST is 10:00 UTC: contracts expire at the close. */
const EXPIRY_UTC_TIME = 'T10:00:00Z';
const CARRY_RATE = 0.065;

/** Rounds in which the index does not move. */
const INDEX_STILL = 0.25;
/** Of the index's moves: one tick, else 2-5 ticks, else a jump of 5 ticks and more (mean 20). */
const INDEX_ONE_TICK = 0.5;
const INDEX_FEW_TICKS = 0.85;
const INDEX_JUMP_MEAN = 15;
/**
 * Pull of the index back to its start: the chance of a move being down rises by INDEX_PULL times
 * the log distance above (0.25 at most). Simulated over 2M rounds: about ±0.25 % one standard
 * deviation, under 1 % at the extreme.
 */
const INDEX_PULL = 1;
/** Per-update stock move (log), and its pull: one standard deviation about 1 % around the start. */
const STOCK_SIGMA = 2e-5;
const STOCK_PULL = 2e-6;
/** Updates of a tradable instrument that change its book without a trade. */
const BOOK_ONLY = 0.3;
/** Chance that a trade starts a burst, and the burst's length in trades. */
const BURST_START = 0.004;
const BURST_MIN = 8;
const BURST_SPAN = 25;

export interface MarketOptions {
  instruments: readonly Instrument[];
  seed?: number;
  /** Epoch milliseconds; stamps exchange and trade times and ages options. Default Date.now. */
  clock?: () => number;
  /** Each trade (and each index move) after it is made: the simulator's history (history.ts). */
  onTrade?: (row: number, t: WireTick, nowSec: number) => void;
}

export class Market {
  readonly size: number;
  readonly instruments: readonly Instrument[];
  private readonly rng: Rng;
  private readonly clock: () => number;
  private readonly onTrade: ((row: number, t: WireTick, nowSec: number) => void) | null;
  private readonly indexOfToken = new Map<number, number>();
  /** ticks[mode][i]: the packet for instrument i in that mode; ltp/quote are synced from full. */
  private readonly ticks: WireTick[][] = [[], [], [], []];

  private readonly cls: Uint8Array;
  private readonly tick: Int32Array;
  private readonly lot: Int32Array;
  private readonly fair: Float64Array;
  private readonly ref: Float64Array;
  private readonly beta: Float64Array;
  private readonly seenIndexLog: Float64Array;
  /** Instrument whose fair value a derivative prices off; -1 = the NIFTY index. */
  private readonly under: Int32Array;
  /** For derivatives with no listed underlying: scale of the index to stand in for it. */
  private readonly underScale: Float64Array;
  private readonly strike: Float64Array;
  private readonly expiryMs: Float64Array;
  private readonly vol: Float64Array;
  private readonly turnover: Float64Array;
  /** The touch of each tradable instrument: prints are made on it and book changes keep it. */
  private readonly bid: Int32Array;
  private readonly ask: Int32Array;
  /** 1 while the instrument's spread is two ticks wide, else one. */
  private readonly wide: Uint8Array;
  /** Trades left in the instrument's burst; 0 = not bursting. */
  private readonly burst: Int32Array;

  /** Row of NIFTY 50 in `instruments`, -1 when not listed (derivatives still price off it). */
  private readonly niftyRow: number;
  private indexFair: number;
  private readonly indexRef: number;
  /** log(indexFair / indexRef), tracked so stocks can follow the index. */
  private indexLog = 0;
  private scratch: Int32Array;

  /** Updates since construction, one per instrument and round: trades, index prints, book changes. */
  trades = 0;
  /** Of `trades`, the book changes: tradable instruments updated without a trade. */
  bookChanges = 0;
  rounds = 0;

  constructor(opts: MarketOptions) {
    const list = opts.instruments;
    const n = list.length;
    this.size = n;
    this.instruments = list;
    this.rng = new Rng(opts.seed ?? 1);
    this.clock = opts.clock ?? Date.now;
    this.onTrade = opts.onTrade ?? null;
    this.cls = new Uint8Array(n);
    this.tick = new Int32Array(n);
    this.lot = new Int32Array(n);
    this.fair = new Float64Array(n);
    this.ref = new Float64Array(n);
    this.beta = new Float64Array(n);
    this.seenIndexLog = new Float64Array(n);
    this.under = new Int32Array(n).fill(-1);
    this.underScale = new Float64Array(n).fill(1);
    this.strike = new Float64Array(n);
    this.expiryMs = new Float64Array(n);
    this.vol = new Float64Array(n);
    this.turnover = new Float64Array(n);
    this.bid = new Int32Array(n);
    this.ask = new Int32Array(n);
    this.wide = new Uint8Array(n);
    this.burst = new Int32Array(n);
    this.scratch = new Int32Array(n);

    const levels = new Map<string, number>();
    for (const c of NIFTY50) levels.set(c.symbol, c.level);
    const cashBySymbol = new Map<string, number>();
    let indexRow = -1;
    for (let i = 0; i < n; i++) {
      const t = list[i];
      this.indexOfToken.set(t.instrumentToken, i);
      if (t.segment === 'INDICES') {
        this.cls[i] = Class.INDEX;
        if (t.instrumentToken === NIFTY_INDEX_TOKEN || (indexRow < 0 && t.tradingsymbol === NIFTY_INDEX_SYMBOL)) indexRow = i;
      } else if (t.instrumentType === 'FUT') this.cls[i] = Class.FUT;
      else if (t.instrumentType === 'CE') this.cls[i] = Class.CE;
      else if (t.instrumentType === 'PE') this.cls[i] = Class.PE;
      else {
        this.cls[i] = Class.CASH;
        if (t.exchange === 'NSE') cashBySymbol.set(t.tradingsymbol, i);
      }
      // The index row says tick 0; NIFTY is quoted to 5 paise.
      const tickPaise = Math.round(t.tickSize * 100);
      this.tick[i] = tickPaise > 0 ? tickPaise : 5;
      this.lot[i] = Math.max(1, t.lotSize);
    }

    this.niftyRow = indexRow;
    const indexLevel = indexRow >= 0 && list[indexRow].lastPrice > 0 ? list[indexRow].lastPrice : NIFTY_INDEX_LEVEL;
    // On the 5 paise grid: the index moves in whole ticks from here.
    this.indexRef = onGrid(indexLevel * 100, 5);
    this.indexFair = this.indexRef;
    const rng = this.rng;
    const now = this.clock();

    // Fair values: cash and index first, derivatives price off them.
    for (let i = 0; i < n; i++) {
      const t = list[i];
      const c = this.cls[i];
      if (c === Class.INDEX) {
        const level = i === indexRow ? indexLevel : t.lastPrice > 0 ? t.lastPrice : 10_000 + (t.instrumentToken % 40_000);
        this.fair[i] = this.ref[i] = level * 100;
      } else if (c === Class.CASH) {
        const level = levels.get(t.tradingsymbol) ?? (t.lastPrice > 0 ? t.lastPrice : 100 + (Math.imul(t.instrumentToken, 2654435761) >>> 0) % 2900);
        this.fair[i] = this.ref[i] = level * 100;
        this.beta[i] = 0.6 + rng.next() * 0.8;
      }
    }
    for (let i = 0; i < n; i++) {
      const c = this.cls[i];
      if (c === Class.INDEX || c === Class.CASH) continue;
      const t = list[i];
      if (t.name !== NIFTY_DERIVATIVE_NAME) {
        const u = cashBySymbol.get(t.name);
        if (u !== undefined) this.under[i] = u;
        else if (t.strike > 0) this.underScale[i] = (t.strike * 100) / this.indexRef;
      }
      this.strike[i] = t.strike * 100;
      this.expiryMs[i] = t.expiry === '' ? now + 30 * DAY_MS : Date.parse(t.expiry + EXPIRY_UTC_TIME);
      // One volatility per expiry, not per contract: a vol that jumped between neighbouring strikes
      // would let a higher-strike put print below a lower-strike one.
      const expiryDay = Math.floor(this.expiryMs[i] / DAY_MS);
      this.vol[i] = 0.12 + 0.03 * ((Math.imul(expiryDay, 2654435761) >>> 0) / 4294967296);
    }

    const nowSec = Math.floor(now / 1000);
    for (let i = 0; i < n; i++) {
      const token = list[i].instrumentToken;
      const kinds = this.cls[i] === Class.INDEX ? INDEX_KINDS : TRADABLE_KINDS;
      const full = emptyWireTick(kinds[3], token);
      const quote = emptyWireTick(kinds[2], token);
      quote.depth = full.depth; // quote packets carry no depth; share rather than keep a second copy
      this.ticks[1].push(emptyWireTick(kinds[1], token));
      this.ticks[2].push(quote);
      this.ticks[3].push(full);
      this.initTick(i, now, nowSec);
    }
  }

  /** Index of a token in `instruments`, -1 when unknown. */
  indexOf(token: number): number {
    const i = this.indexOfToken.get(token);
    return i === undefined ? -1 : i;
  }

  isIndex(i: number): boolean {
    return this.cls[i] === Class.INDEX;
  }

  /** The live packet of instrument `i` in a mode (1 ltp, 2 quote, 3 full). Mutated by `advance`. */
  tickOf(i: number, mode: number): WireTick {
    return this.ticks[mode][i];
  }

  /** Current NIFTY level, rupees (on the 5 paise grid: the index moves in whole ticks). */
  indexLevel(): number {
    return this.indexFair / 100;
  }

  /**
   * One round: the index takes a step, then min(n, count) distinct instruments drawn from
   * `active[0..count)` update once (bursting ones first). Their indices go to `updated`
   * (capacity >= count); returns how many. Distinct, so a frame built from one round never
   * carries one token twice.
   */
  advance(n: number, active: Int32Array, count: number, updated: Int32Array): number {
    this.rounds++;
    this.stepIndex();
    const now = this.clock();
    const nowSec = Math.floor(now / 1000);
    let k: number;
    if (n >= count) {
      k = count;
      for (let j = 0; j < count; j++) updated[j] = active[j];
    } else {
      // Partial Fisher-Yates over a copy (the caller's list keeps its order), with the bursting
      // instruments moved to the front so they are drawn first.
      k = Math.max(0, Math.floor(n));
      const s = this.scratch;
      const burst = this.burst;
      let hot = 0;
      for (let j = 0; j < count; j++) {
        const i = active[j];
        if (burst[i] > 0) {
          s[j] = s[hot];
          s[hot++] = i;
        } else {
          s[j] = i;
        }
      }
      for (let j = 0; j < k; j++) {
        const r = j < hot ? j + this.rng.int(hot - j) : j + this.rng.int(count - j);
        const tmp = s[r];
        s[r] = s[j];
        s[j] = tmp;
        updated[j] = tmp;
      }
    }
    for (let j = 0; j < k; j++) this.trade(updated[j], now, nowSec);
    this.trades += k;
    return k;
  }

  /**
   * Convenience for tests and tools (allocates): `n` more trades spread over `tokens`, returned as
   * copies of the packets in `mode`. Unknown tokens are ignored.
   */
  nextTicks(n: number, tokens: readonly number[], mode: Mode = 'full'): WireTick[] {
    const active = new Int32Array(tokens.length);
    let count = 0;
    for (const tk of tokens) {
      const i = this.indexOf(tk);
      if (i >= 0) active[count++] = i;
    }
    const out: WireTick[] = [];
    if (count === 0) return out;
    const updated = new Int32Array(count);
    const m = modeCode(mode) || ModeCode.FULL;
    let left = n;
    while (left > 0) {
      const k = this.advance(left, active, count, updated);
      for (let j = 0; j < k; j++) out.push(structuredClone(this.ticks[m][updated[j]]));
      left -= k;
    }
    return out;
  }

  private stepIndex(): void {
    const rng = this.rng;
    if (rng.next() < INDEX_STILL) return;
    const u = rng.next();
    const size = u < INDEX_ONE_TICK ? 1 : u < INDEX_FEW_TICKS ? 2 + rng.int(4) : 5 + Math.floor(rng.exp(INDEX_JUMP_MEAN));
    const x = this.indexLog;
    const bias = Math.max(-0.25, Math.min(0.25, INDEX_PULL * x));
    const up = rng.next() < 0.5 - bias;
    const level = this.indexFair + (up ? 5 : -5) * size;
    if (level < 5) return;
    this.indexFair = level;
    this.indexLog = Math.log(level / this.indexRef);
  }

  /** Fair value of instrument `i` right now, paise (continuous). */
  private fairOf(i: number, now: number): number {
    const c = this.cls[i];
    // Other indices, if listed, follow NIFTY on their own scale.
    if (c === Class.INDEX) return i === this.niftyRow ? this.indexFair : this.ref[i] * Math.exp(this.indexLog);
    if (c === Class.CASH) return this.fair[i];
    const u = this.under[i];
    const spot = u >= 0 ? this.fair[u] : this.indexFair * this.underScale[i];
    const T = Math.max(MIN_T_YEARS, (this.expiryMs[i] - now) / YEAR_MS);
    const fwd = spot * Math.exp(CARRY_RATE * T);
    if (c === Class.FUT) return fwd;
    const K = this.strike[i];
    const m = Math.log(K / fwd);
    const sigma = this.vol[i] + 0.25 * m * m; // a mild smile: wings richer than the money
    return black76(fwd, K, T, sigma, c === Class.CE) * Math.exp(-CARRY_RATE * T);
  }

  private initTick(i: number, now: number, nowSec: number): void {
    const rng = this.rng;
    const t = this.ticks[3][i];
    const tick = this.cls[i] === Class.INDEX ? 5 : this.tick[i];
    const fair = this.fairOf(i, now);
    const last = onGrid(fair, tick);
    t.close = onGrid(fair * Math.exp(0.008 * rng.normal()), tick);
    t.open = onGrid(fair * Math.exp(0.003 * rng.normal()), tick);
    t.lastPrice = last;
    t.high = Math.max(t.open, last);
    t.low = Math.min(t.open, last);
    t.exchangeTime = nowSec;
    if (this.cls[i] === Class.INDEX) {
      t.changeRaw = last - t.close;
      this.syncModes(i);
      return;
    }
    const lot = this.lot[i];
    this.wide[i] = rng.next() < 0.7 ? 0 : 1;
    this.setTouch(i, fair, tick);
    const avg = Math.round((t.open + last) / 2);
    t.volume = this.cls[i] === Class.CASH ? 1000 + rng.int(2_000_000) : lot * (100 + rng.int(20_000));
    this.turnover[i] = avg * t.volume;
    t.avgPrice = avg;
    t.lastQty = lot;
    t.lastTradeTime = nowSec;
    if (this.cls[i] !== Class.CASH) {
      t.oi = lot * (1000 + rng.int(100_000));
      t.oiHigh = t.oi;
      t.oiLow = t.oi;
    }
    this.buildDepth(i, t, tick);
    this.syncModes(i);
  }

  /**
   * Best bid and ask around `fair`: a one-tick spread holds fair (bid at or below it, ask above),
   * a two-tick one is centred on the tick nearest fair. The bid never goes below one tick. The
   * spread's width lasts: one trade in ten draws it again (one tick wide 70 % of the time).
   */
  private setTouch(i: number, fair: number, tick: number): void {
    const rng = this.rng;
    if (rng.next() < 0.1) this.wide[i] = rng.next() < 0.7 ? 0 : 1;
    const wide = this.wide[i] === 1;
    let bid = wide ? Math.round(fair / tick) * tick - tick : Math.floor(fair / tick) * tick;
    if (bid < tick) bid = tick;
    this.bid[i] = bid;
    this.ask[i] = bid + (wide ? 2 * tick : tick);
  }

  /** One update of instrument `i`: an index print, a trade or a book change. */
  private trade(i: number, now: number, nowSec: number): void {
    const rng = this.rng;
    const t = this.ticks[3][i];
    const c = this.cls[i];
    if (c === Class.INDEX) {
      const last = onGrid(this.fairOf(i, now), 5);
      t.lastPrice = last;
      if (last > t.high) t.high = last;
      if (last < t.low) t.low = last;
      t.changeRaw = last - t.close;
      t.exchangeTime = nowSec;
      this.syncModes(i);
      this.onTrade?.(i, t, nowSec);
      return;
    }
    if (c === Class.CASH) {
      const x = Math.log(this.fair[i] / this.ref[i]);
      const d = this.beta[i] * (this.indexLog - this.seenIndexLog[i]) - STOCK_PULL * x + STOCK_SIGMA * rng.normal();
      this.seenIndexLog[i] = this.indexLog;
      this.fair[i] *= Math.exp(d);
    }
    const tick = this.tick[i];
    const burst = this.burst[i];
    // A bursting instrument trades on every update: the burst is the trades.
    if (burst === 0 && rng.next() < BOOK_ONLY) {
      this.bookChanges++;
      this.refreshBook(i, t);
      t.exchangeTime = nowSec;
      this.syncModes(i);
      return;
    }
    if (burst > 0) this.burst[i] = burst - 1;
    else if (rng.next() < BURST_START) this.burst[i] = BURST_MIN + rng.int(BURST_SPAN);
    this.setTouch(i, this.fairOf(i, now), tick);
    const bid = this.bid[i];
    const ask = this.ask[i];
    const last = ask - bid > tick && rng.next() < 0.2 ? bid + tick : rng.next() < 0.5 ? bid : ask;
    const lot = this.lot[i];
    const qty = c === Class.CASH ? 1 + Math.floor(rng.exp(60)) : lot * (1 + Math.floor(rng.exp(4)));
    t.lastPrice = last;
    t.lastQty = qty;
    // Counts only grow: a day's volume past 2^32 would wrap on the wire, so it stops there (and
    // turnover with it, keeping the average a true average).
    if (t.volume + qty <= U32_MAX) {
      t.volume += qty;
      this.turnover[i] += last * qty;
    }
    t.avgPrice = Math.round(this.turnover[i] / t.volume);
    if (last > t.high) t.high = last;
    if (last < t.low) t.low = last;
    t.lastTradeTime = nowSec;
    t.exchangeTime = nowSec;
    if (c !== Class.CASH && rng.next() < 0.3) {
      t.oi = Math.min(U32_MAX, t.oi + lot * (1 + rng.int(20)));
      if (t.oi > t.oiHigh) t.oiHigh = t.oi;
    }
    this.buildDepth(i, t, tick);
    this.syncModes(i);
    this.onTrade?.(i, t, nowSec);
  }

  /**
   * Five bids and five asks from the touch (`bid` / `ask`, which hold the last price), levels one
   * or two ticks apart. Bids that would fall to zero or below are sent empty (all zeros), as Kite
   * does.
   */
  private buildDepth(i: number, t: WireTick, tick: number): void {
    const rng = this.rng;
    const d = t.depth;
    let bid = this.bid[i];
    let ask = this.ask[i];
    for (let k = 0; k < 5; k++) {
      d[k].price = bid > 0 ? bid : 0;
      bid -= rng.next() < 0.8 ? tick : 2 * tick;
      d[5 + k].price = ask;
      ask += rng.next() < 0.8 ? tick : 2 * tick;
    }
    this.refreshBook(i, t);
  }

  /** New quantities and order counts on the book's levels, prices kept; new totals. */
  private refreshBook(i: number, t: WireTick): void {
    const rng = this.rng;
    const d = t.depth;
    const lot = this.lot[i];
    const cash = this.cls[i] === Class.CASH;
    let bidSum = 0;
    let askSum = 0;
    for (let k = 0; k < 10; k++) {
      const l = d[k];
      if (l.price === 0) {
        l.quantity = 0;
        l.orders = 0;
        continue;
      }
      l.quantity = cash ? 1 + Math.floor(rng.exp(400)) : lot * (1 + Math.floor(rng.exp(20)));
      l.orders = Math.min(65535, 1 + rng.int(Math.min(50, Math.ceil(l.quantity / lot))));
      if (k < 5) bidSum += l.quantity;
      else askSum += l.quantity;
    }
    // Totals cover the whole book, not just the five levels shown.
    t.buyQty = Math.min(U32_MAX, bidSum * (3 + rng.int(6)));
    t.sellQty = Math.min(U32_MAX, askSum * (3 + rng.int(6)));
  }

  /** Copy the full packet's fields into the ltp and quote packets of the same instrument. */
  private syncModes(i: number): void {
    const f = this.ticks[3][i];
    const q = this.ticks[2][i];
    this.ticks[1][i].lastPrice = f.lastPrice;
    q.lastPrice = f.lastPrice;
    q.lastQty = f.lastQty;
    q.avgPrice = f.avgPrice;
    q.volume = f.volume;
    q.buyQty = f.buyQty;
    q.sellQty = f.sellQty;
    q.open = f.open;
    q.high = f.high;
    q.low = f.low;
    q.close = f.close;
    q.changeRaw = f.changeRaw;
  }
}

/** Nearest multiple of `tick`, at least one tick: a traded price is never zero. */
function onGrid(paise: number, tick: number): number {
  const p = Math.round(paise / tick) * tick;
  return p < tick ? tick : p;
}

/** Black-76 on a forward, undiscounted. */
export function black76(F: number, K: number, T: number, sigma: number, call: boolean): number {
  const sd = sigma * Math.sqrt(T);
  const d1 = (Math.log(F / K) + 0.5 * sd * sd) / sd;
  const d2 = d1 - sd;
  return call ? F * normCdf(d1) - K * normCdf(d2) : K * normCdf(-d2) - F * normCdf(-d1);
}

/** Standard normal CDF (Abramowitz-Stegun 7.1.26, error < 1.5e-7: far below one tick). */
export function normCdf(x: number): number {
  const z = Math.abs(x) / Math.SQRT2;
  const t = 1 / (1 + 0.3275911 * z);
  const y = 1 - ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * Math.exp(-z * z);
  return x >= 0 ? 0.5 * (1 + y) : 0.5 * (1 - y);
}
