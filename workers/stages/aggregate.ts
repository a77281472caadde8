/**
 * Aggregate stage: ticks in, OHLCV bars out, for every token of a shard × every timeframe.
 *
 * All state lives in one Float64Array allocated at construction: one slot per (token, timeframe),
 * each a bar record (bar.ts layout, BAR_FIELDS words) followed by the private words below. A tick
 * does arithmetic on that array and nothing else: no objects, no closures, no strings.
 *
 * | off            | field   | meaning                                                         |
 * |----------------|---------|-----------------------------------------------------------------|
 * | 0..BAR_FIELDS-1| bar     | the open bar, or the last closed one (its END/CLOSE/OI are used) |
 * | BAR_FIELDS     | SUM_PV  | Σ price × volumeDelta of the bar, for VWAP                      |
 * | BAR_FIELDS + 1 | STATE   | 0 never had a bar, 1 bar open, 2 last bar closed                |
 *
 * Rules (test/support/aggregate-reference.ts restates them in the plainest code; the property test holds this
 * module to it):
 *
 * 1. Buckets come from the tick's exchange time (ist.ts), never from the local clock.
 * 2. No open bar and no closed one at or after the tick's bucket: open a bar, O=H=L=C=price.
 * 3. Tick in the open bar's bucket: H/L/C move, VOLUME += delta, TRADES += (delta > 0), TICKS += 1,
 *    OI = the tick's OI, VWAP = Σ(p·v)/VOLUME.
 * 4. Tick in a later bucket: the open bar closes (emitted closed) and a bar opens for the tick's
 *    bucket. Silent buckets in between get no bar; the chart query fills gaps, which keeps the
 *    writer from storing hours of empty rows for illiquid options.
 * 5. Late tick, i.e. its bucket is earlier than the open bar's, or no later than the last closed
 *    bar's: counted in stats.late, and its volume still goes into a bar so that, per token and
 *    timeframe, Σ VOLUME of closed bars == Σ volume deltas. Closed bars are never reopened or
 *    re-emitted (the writer appends; a second row for one bucket would be a duplicate key).
 *    - a bar is open: the late volume (and p·v, TICKS, TRADES) joins it; its O/H/L/C/OI do not
 *      move, since the late price is older than the ones the bar has seen. Flag LATE.
 *    - no bar is open: a bar opens for the bucket right after the last closed bar (its END), with
 *      O=H=L=C and OI carried from that bar's close, and holds the late volume. Flags LATE|CARRIED.
 *      It is a real bucket adjacent to the one the volume belonged to, and the first tick of its
 *      own bucket replaces the carried prices.
 * 6. The clock: advance(now) closes every open bar whose END + graceMs <= now. onTick applies its
 *    nowMs (onTickAt the one last given to setNow) the same way before placing the tick, so results
 *    do not depend on how often the caller calls advance(). The clock is the largest now seen; it
 *    never runs backwards.
 * 7. flush() closes every open bar; one whose END is after the clock is flagged PARTIAL. Flushed
 *    bars count as closed for rule 5.
 *
 * Entry points: onTickAt(rec, o) reads the tick from a Float64Array record at f64 offset `o`, its
 * fields where `fields` put them at construction, with the local clock set once per batch by
 * setNow(); onTick(...) takes the same values as arguments, writes them into a scratch record and
 * runs onTickAt, so both follow one implementation of the rules. Per tick no double is passed to
 * any call (the helpers take slot bases and timeframe indices and read the tick from `cur`; a bar
 * opens through ist.ts's bucketInto, which reads the time from `cur` and writes the bucket into the
 * slot; only a late tick's carried bar calls bucketEnd): a double argument to a call V8 does not
 * inline is boxed in a fresh HeapNumber, which in the shard cost 4–12 scavenges per 1M ticks.
 *
 * Emission: onBar(view, base, closed) is called for the bar of every timeframe a tick touched
 * (closed=false: an in-progress update; the caller throttles) and for every bar that closes
 * (closed=true, FLAGS has CLOSED). `view` is the aggregator's state array: read
 * view[base + B.FIELD] for the BAR_FIELDS fields during the call and copy what you keep; the
 * words change on the next tick. onBar must not call back into the aggregator. Per token and
 * timeframe, closed bars are emitted in increasing START_MS and never twice for one bucket.
 */

import { B, BAR_FIELDS, BarFlag } from '../../src/core/bar.ts';
import { stageFields, stageWords } from './stage-fields.ts';
import { bucketEnd, bucketInto, checkTimeframeMs } from '../../src/core/ist.ts';

const SUM_PV = BAR_FIELDS;
const STATE = BAR_FIELDS + 1;
const STRIDE = BAR_FIELDS + 2;

const NONE = 0;
const OPEN = 1;
const CLOSED = 2;

/**
 * Words of `cur`: the clock and the tick being placed, so that helpers read them instead of taking
 * them as (boxed) arguments.
 */
const C_NOW = 0; // local clock for onTickAt, from setNow()
const C_ARG = 1; // advance()'s argument
const C_CLOCK = 2; // largest now seen
const C_NEXT_DUE = 3; // a lower bound of END + graceMs over open bars: advance() is O(1) until the clock reaches it
const C_TIME = 4; // the tick: exchange time,
const C_PRICE = 5; // price,
const C_VOLUME = 6; // volume delta,
const C_OI = 7; // open interest,
const C_PV = 8; // price × volume delta,
const C_TRADE = 9; // 1 when volume delta > 0, else 0
const C_WORDS = 10;

export const DEFAULT_GRACE_MS = 500;

export type OnBar = (bars: Float64Array, base: number, closed: boolean) => void;

export interface AggregatorOptions {
  /** The instrument tokens this shard owns; state is preallocated for each. */
  tokens: readonly number[];
  /** Bar lengths in ms (ist.ts parseTimeframe); each below one day, or exactly one day. */
  timeframesMs: readonly number[];
  /** How long past its END a bar waits for stragglers before the clock closes it. Default 500. */
  graceMs?: number;
  onBar: OnBar;
  /** Offsets of the tick's fields in the records given to onTickAt. Default DEFAULT_TICK_FIELDS. */
  fields?: AggregatorFields;
}

/** f64 offsets, from a record's start, of the fields onTickAt reads. */
export interface AggregatorFields {
  token: number;
  exchTimeMs: number;
  price: number;
  volumeDelta: number;
  oi: number;
}

/** The record layout onTick's scratch uses when no `fields` are given. */
export const DEFAULT_TICK_FIELDS: Readonly<AggregatorFields> = Object.freeze({
  token: 0, exchTimeMs: 1, price: 2, volumeDelta: 3, oi: 4,
});

export interface AggregatorStats {
  /** onTick and onTickAt calls, including unknown tokens. */
  ticks: number;
  /** (tick, timeframe) pairs placed by the late rule; per timeframe in lateByTimeframe. */
  late: number;
  /** Bars emitted closed, flushed ones included. */
  barsClosed: number;
  /** Ticks for a token this shard does not own: dropped. */
  unknownTokens: number;
}

export class Aggregator {
  readonly stats: AggregatorStats = { ticks: 0, late: 0, barsClosed: 0, unknownTokens: 0 };
  /** stats.late split by timeframe, in timeframesMs order. */
  readonly lateByTimeframe: Float64Array;
  readonly timeframesMs: readonly number[];
  readonly graceMs: number;

  private readonly state: Float64Array;
  private readonly tf: Float64Array;
  private readonly nTf: number;
  private readonly slots: number;
  private readonly index = new Map<number, number>();
  private readonly onBar: OnBar;
  /** The clock and the tick being placed: C_* words. */
  private readonly cur = new Float64Array(C_WORDS);
  private readonly fToken: number;
  private readonly fTime: number;
  private readonly fPrice: number;
  private readonly fVolume: number;
  private readonly fOi: number;
  /** onTick's arguments, as a record in the `fields` layout. */
  private readonly scratch: Float64Array;

  constructor(opts: AggregatorOptions) {
    if (opts === null || typeof opts !== 'object') throw new TypeError('Aggregator: options object is required');
    const { tokens, timeframesMs, graceMs = DEFAULT_GRACE_MS, onBar } = opts;
    const fields = stageFields('Aggregator', opts.fields, DEFAULT_TICK_FIELDS);
    if (!Array.isArray(tokens) || tokens.length === 0) {
      throw new RangeError('Aggregator: tokens must be a non-empty array of instrument tokens');
    }
    tokens.forEach((t, i) => {
      if (!Number.isInteger(t) || t < 0 || t > 0xffff_ffff) {
        throw new RangeError(`Aggregator: tokens[${i}] = ${String(t)} is not a u32 instrument token`);
      }
      if (this.index.has(t)) throw new RangeError(`Aggregator: token ${t} is listed twice`);
      this.index.set(t, i);
    });
    if (!Array.isArray(timeframesMs) || timeframesMs.length === 0) {
      throw new RangeError('Aggregator: timeframesMs must be a non-empty array, e.g. [1000, 60000, 86400000]');
    }
    timeframesMs.forEach((ms, i) => {
      checkTimeframeMs(ms, ms);
      if (timeframesMs.indexOf(ms) !== i) throw new RangeError(`Aggregator: timeframe ${ms} ms is listed twice`);
    });
    if (typeof graceMs !== 'number' || !Number.isFinite(graceMs) || graceMs < 0) {
      throw new RangeError(`Aggregator: graceMs must be a finite number >= 0, got ${String(graceMs)}`);
    }
    if (typeof onBar !== 'function') throw new TypeError('Aggregator: onBar must be a function');

    this.fToken = fields.token;
    this.fTime = fields.exchTimeMs;
    this.fPrice = fields.price;
    this.fVolume = fields.volumeDelta;
    this.fOi = fields.oi;
    this.scratch = new Float64Array(stageWords(fields));
    this.cur[C_NOW] = -Infinity;
    this.cur[C_CLOCK] = -Infinity;
    this.cur[C_NEXT_DUE] = Infinity;
    this.timeframesMs = Object.freeze([...timeframesMs]);
    this.graceMs = graceMs;
    this.onBar = onBar;
    this.nTf = timeframesMs.length;
    this.tf = Float64Array.from(timeframesMs);
    this.lateByTimeframe = new Float64Array(this.nTf);
    this.slots = tokens.length * this.nTf;
    this.state = new Float64Array(this.slots * STRIDE);
    for (let s = 0; s < this.slots; s++) {
      const base = s * STRIDE;
      this.state[base + B.TOKEN] = tokens[Math.floor(s / this.nTf)];
      this.state[base + B.TF_MS] = this.tf[s % this.nTf];
    }
  }

  /**
   * One tick. `price` in rupees, `volumeDelta` the traded quantity since the token's previous tick
   * (0 for indices), `oi` the open interest it carries, `nowMs` the local clock (rule 6).
   * The plain form of setNow(nowMs) + onTickAt(record): for tests and callers off the hot path.
   */
  onTick(token: number, exchTimeMs: number, price: number, volumeDelta: number, oi: number, nowMs: number): void {
    const r = this.scratch;
    r[this.fToken] = token;
    r[this.fTime] = exchTimeMs;
    r[this.fPrice] = price;
    r[this.fVolume] = volumeDelta;
    r[this.fOi] = oi;
    this.cur[C_NOW] = nowMs;
    this.onTickAt(r, 0);
  }

  /** The local clock (rule 6) that onTickAt applies before placing each tick: once per batch. onTick sets it too. */
  setNow(nowMs: number): void {
    this.cur[C_NOW] = nowMs;
  }

  /** One tick, read from `rec` at f64 offset `o` through `fields`; the clock is the last setNow(). */
  onTickAt(rec: Float64Array, o: number): void {
    this.stats.ticks++;
    const c = this.cur;
    const now = c[C_NOW];
    if (now >= c[C_NEXT_DUE]) this.advanceTo(C_NOW);
    else if (now > c[C_CLOCK]) c[C_CLOCK] = now;
    // An integral token reads as a Smi key: the lookup boxes nothing.
    const ti = this.index.get(rec[o + this.fToken]);
    if (ti === undefined) {
      this.stats.unknownTokens++;
      return;
    }
    const t = rec[o + this.fTime];
    const price = rec[o + this.fPrice];
    const volumeDelta = rec[o + this.fVolume];
    const oi = rec[o + this.fOi];
    c[C_TIME] = t;
    c[C_PRICE] = price;
    c[C_VOLUME] = volumeDelta;
    c[C_OI] = oi;
    c[C_PV] = price * volumeDelta;
    c[C_TRADE] = volumeDelta > 0 ? 1 : 0;
    const a = this.state;
    for (let k = 0; k < this.nTf; k++) {
      const base = (ti * this.nTf + k) * STRIDE;
      const st = a[base + STATE];
      if (st === OPEN) {
        if (t >= a[base + B.START_MS]) {
          if (t < a[base + B.END_MS]) {
            // Rule 3: same bucket.
            if ((a[base + B.FLAGS] & BarFlag.CARRIED) !== 0) {
              a[base + B.OPEN] = a[base + B.HIGH] = a[base + B.LOW] = price;
              a[base + B.FLAGS] -= BarFlag.CARRIED;
            } else {
              if (price > a[base + B.HIGH]) a[base + B.HIGH] = price;
              if (price < a[base + B.LOW]) a[base + B.LOW] = price;
            }
            a[base + B.CLOSE] = price;
            a[base + B.OI] = oi;
            this.absorb(base);
          } else {
            // Rule 4: a later bucket.
            this.close(base, BarFlag.CLOSED);
            this.open(base, k);
          }
        } else {
          this.late(base, k);
        }
      } else if (st === CLOSED && t < a[base + B.END_MS]) {
        // Rule 5, nothing open: carry the last close into the bucket after the closed bar.
        this.late(base, k);
      } else {
        this.open(base, k);
      }
      this.onBar(a, base, false);
    }
  }

  /** Rule 6: close every open bar whose END + graceMs <= nowMs. O(1) while nothing is due. */
  advance(nowMs: number): void {
    this.cur[C_ARG] = nowMs;
    this.advanceTo(C_ARG);
  }

  /** Rule 7, at shutdown: emit every open bar closed, PARTIAL if its bucket is not over yet. */
  flush(): void {
    const a = this.state;
    for (let base = 0; base < a.length; base += STRIDE) {
      if (a[base + STATE] !== OPEN) continue;
      this.close(base, a[base + B.END_MS] > this.cur[C_CLOCK] ? BarFlag.CLOSED | BarFlag.PARTIAL : BarFlag.CLOSED);
    }
    this.cur[C_NEXT_DUE] = Infinity;
  }

  /** Offset in `view()` of the (token, timeframe) slot, or -1. For tests and diagnostics. */
  slotOf(token: number, tfMs: number): number {
    const ti = this.index.get(token);
    const k = this.timeframesMs.indexOf(tfMs);
    return ti === undefined || k < 0 ? -1 : (ti * this.nTf + k) * STRIDE;
  }

  /** Whether the slot at `base` holds an open bar. */
  isOpen(base: number): boolean {
    return this.state[base + STATE] === OPEN;
  }

  /** The state array that onBar receives; read-only for callers. */
  view(): Float64Array {
    return this.state;
  }

  /** advance() with the clock reading in cur[slot] (C_NOW or C_ARG). */
  private advanceTo(slot: number): void {
    const c = this.cur;
    const nowMs = c[slot];
    if (nowMs > c[C_CLOCK]) c[C_CLOCK] = nowMs;
    if (nowMs < c[C_NEXT_DUE]) return;
    const a = this.state;
    const grace = this.graceMs;
    let next = Infinity;
    for (let base = 0; base < a.length; base += STRIDE) {
      if (a[base + STATE] !== OPEN) continue;
      const due = a[base + B.END_MS] + grace;
      if (due <= nowMs) this.close(base, BarFlag.CLOSED);
      else if (due < next) next = due;
    }
    c[C_NEXT_DUE] = next;
  }

  /** Rules 2 and 4: open the bar of timeframe k for the tick in `cur`. */
  private open(base: number, k: number): void {
    const a = this.state;
    const c = this.cur;
    const tfMs = this.tf[k];
    const price = c[C_PRICE];
    const volumeDelta = c[C_VOLUME];
    const pv = c[C_PV];
    // END_MS follows START_MS (bar.ts): the bucket is written in place, no double crossing a call.
    bucketInto(c, C_TIME, tfMs, a, base + B.START_MS);
    const end = a[base + B.END_MS];
    a[base + B.OPEN] = a[base + B.HIGH] = a[base + B.LOW] = a[base + B.CLOSE] = price;
    a[base + B.VOLUME] = volumeDelta;
    a[base + SUM_PV] = pv;
    if (volumeDelta !== 0) a[base + B.VWAP] = pv / volumeDelta;
    else a[base + B.VWAP] = NaN;
    a[base + B.TRADES] = c[C_TRADE];
    a[base + B.OI] = c[C_OI];
    a[base + B.TICKS] = 1;
    a[base + B.FLAGS] = 0;
    a[base + STATE] = OPEN;
    const due = end + this.graceMs;
    if (due < c[C_NEXT_DUE]) c[C_NEXT_DUE] = due;
  }

  /** Rule 5 for the tick in `cur`. Either joins the open bar or opens the carried bar after the last closed one. */
  private late(base: number, k: number): void {
    const a = this.state;
    this.stats.late++;
    this.lateByTimeframe[k]++;
    if (a[base + STATE] === OPEN) {
      a[base + B.FLAGS] = a[base + B.FLAGS] | BarFlag.LATE;
      this.absorb(base);
      return;
    }
    // The closed bar's END is the next bucket's start; CLOSE and OI stay as they were.
    const start = a[base + B.END_MS];
    const end = bucketEnd(start, a[base + B.TF_MS]);
    a[base + B.START_MS] = start;
    a[base + B.END_MS] = end;
    a[base + B.OPEN] = a[base + B.HIGH] = a[base + B.LOW] = a[base + B.CLOSE];
    a[base + B.VOLUME] = 0;
    a[base + SUM_PV] = 0;
    a[base + B.TRADES] = 0;
    a[base + B.TICKS] = 0;
    a[base + B.FLAGS] = BarFlag.LATE | BarFlag.CARRIED;
    a[base + STATE] = OPEN;
    this.absorb(base);
    const due = end + this.graceMs;
    if (due < this.cur[C_NEXT_DUE]) this.cur[C_NEXT_DUE] = due;
  }

  /** The volume of the tick in `cur` joins the bar at `base`. */
  private absorb(base: number): void {
    const a = this.state;
    const c = this.cur;
    const vol = a[base + B.VOLUME] + c[C_VOLUME];
    const sum = a[base + SUM_PV] + c[C_PV];
    a[base + B.VOLUME] = vol;
    a[base + SUM_PV] = sum;
    // if/else, not `vol !== 0 ? sum / vol : NaN`: on Node 20 the ternary boxed the quotient in a
    // fresh HeapNumber every tick (83 scavenges per 2M ticks against 11, 170 ns against 130 ns).
    if (vol !== 0) a[base + B.VWAP] = sum / vol;
    else a[base + B.VWAP] = NaN;
    a[base + B.TRADES] += c[C_TRADE];
    a[base + B.TICKS] += 1;
  }

  private close(base: number, flags: number): void {
    const a = this.state;
    a[base + B.FLAGS] = a[base + B.FLAGS] | flags;
    a[base + STATE] = CLOSED;
    this.stats.barsClosed++;
    this.onBar(a, base, true);
  }
}
