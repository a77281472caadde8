/**
 * Running session statistics per token: day VWAP, day volume, change % against the previous
 * close, and put-call ratio by open interest per option group (one underlying × expiry).
 *
 * Like the aggregator, everything lives in typed arrays sized at construction; a tick updates a
 * few words. Per token (stride T_FIELDS):
 *
 * | off | field      | meaning                                                                   |
 * |-----|------------|---------------------------------------------------------------------------|
 * | 0   | DAY_START  | epoch ms of 00:00 IST of the day the fields below belong to; -Inf = none  |
 * | 1   | DAY_VOLUME | Σ volumeDelta of the day                                                  |
 * | 2   | DAY_PV     | Σ price × volumeDelta of the day                                          |
 * | 3   | AVG_PRICE  | Kite's average traded price when the tick carried one, else NaN          |
 * | 4   | LAST_PRICE | rupees                                                                    |
 * | 5   | PREV_CLOSE | rupees: previous session's close, as Kite sends it                        |
 * | 6   | OI         | last OI seen; NaN before the first                                        |
 * | 7   | GROUP      | index of the option group in the group arrays, -1 for non-options         |
 * | 8   | SIDE       | OptionSide.CE or OptionSide.PE, 0 for non-options                         |
 *
 * The day is the IST day of the exchange time, so a simulator running at night still rolls over
 * at IST midnight. A tick from an earlier day than the one held (a straggler across midnight) is
 * counted in `staleTicks` and changes nothing. Open interest is not a day quantity (positions carry
 * over), so the PCR sums are never reset.
 *
 * Entry points: onTickAt(rec, o, carries) reads the tick from a Float64Array record at f64 offset
 * `o`, its fields where `fields` put them at construction, and writes the token's day VWAP back
 * into the record (fields.dayVwap); `carries` says whether the packet had OI and an average price.
 * onTick(...) and dayVwap(token) are the plain forms, for tests and callers off the hot path:
 * onTick writes its arguments into a scratch record and runs onTickAt, so there is one
 * implementation. Per tick (a change of day aside) no double is passed to or returned from any
 * call: a call V8 does not inline boxes each one in a fresh HeapNumber.
 */

import { stageFields, stageWords } from './stage-fields.ts';
import { DAY_MS, istDayStart } from '../../src/core/ist.ts';

const DAY_START = 0;
const DAY_VOLUME = 1;
const DAY_PV = 2;
const AVG_PRICE = 3;
const LAST_PRICE = 4;
const PREV_CLOSE = 5;
const OI = 6;
const GROUP = 7;
const SIDE = 8;
const T_FIELDS = 9;

export const OptionSide = { CE: 1, PE: 2 } as const;

/** Bits of onTickAt's `carries`: which optional fields the packet had (the others are ignored). */
export const Carries = { OI: 1, AVG_PRICE: 2 } as const;

/** f64 offsets, from a record's start, of the fields onTickAt reads, and of the one it writes. */
export interface DayStatsFields {
  token: number;
  exchTimeMs: number;
  /** rupees */
  price: number;
  /** previous session's close, rupees; 0 or NaN when unknown */
  prevClose: number;
  volumeDelta: number;
  /** read when `carries` has Carries.OI */
  oi: number;
  /** Kite's average traded price, read when `carries` has Carries.AVG_PRICE; 0 or NaN when none */
  avgPrice: number;
  /** written: the token's day VWAP after the tick (dayVwap()) */
  dayVwap: number;
}

/** The record layout onTick's scratch uses when no `fields` are given. */
export const DEFAULT_SESSION_FIELDS: Readonly<DayStatsFields> = Object.freeze({
  token: 0, exchTimeMs: 1, price: 2, prevClose: 3, volumeDelta: 4, oi: 5, avgPrice: 6, dayVwap: 7,
});

export class DayStats {
  /** Ticks from an IST day before the one held for their token: ignored. */
  staleTicks = 0;
  /** Ticks for tokens not given to the constructor: ignored. */
  unknownTokens = 0;

  private readonly t: Float64Array;
  private readonly index = new Map<number, number>();
  private readonly groupIndex = new Map<number, number>();
  /** Σ OI of the calls, of the puts, per group; sized by maxGroups, doubled only at registration. */
  private callOiSum: Float64Array;
  private putOiSum: Float64Array;
  private readonly fToken: number;
  private readonly fTime: number;
  private readonly fPrice: number;
  private readonly fPrevClose: number;
  private readonly fVolume: number;
  private readonly fOi: number;
  private readonly fAvgPrice: number;
  private readonly fDayVwap: number;
  /** onTick's arguments, as a record in the `fields` layout; dayVwap() answers through it too. */
  private readonly scratch: Float64Array;

  constructor(opts: { tokens: readonly number[]; maxGroups?: number; fields?: DayStatsFields }) {
    const { tokens, maxGroups = 16 } = opts ?? ({} as { tokens: readonly number[] });
    const fields = stageFields('DayStats', opts?.fields, DEFAULT_SESSION_FIELDS);
    if (!Array.isArray(tokens) || tokens.length === 0) {
      throw new RangeError('DayStats: tokens must be a non-empty array of instrument tokens');
    }
    if (!Number.isInteger(maxGroups) || maxGroups < 1) {
      throw new RangeError(`DayStats: maxGroups must be a positive integer, got ${String(maxGroups)}`);
    }
    tokens.forEach((tok, i) => {
      if (!Number.isInteger(tok) || tok < 0 || tok > 0xffff_ffff) {
        throw new RangeError(`DayStats: tokens[${i}] = ${String(tok)} is not a u32 instrument token`);
      }
      if (this.index.has(tok)) throw new RangeError(`DayStats: token ${tok} is listed twice`);
      this.index.set(tok, i);
    });
    this.t = new Float64Array(tokens.length * T_FIELDS);
    for (let i = 0; i < tokens.length; i++) {
      const b = i * T_FIELDS;
      this.t[b + DAY_START] = -Infinity;
      this.t[b + AVG_PRICE] = NaN;
      this.t[b + LAST_PRICE] = NaN;
      this.t[b + PREV_CLOSE] = NaN;
      this.t[b + OI] = NaN;
      this.t[b + GROUP] = -1;
    }
    this.callOiSum = new Float64Array(maxGroups);
    this.putOiSum = new Float64Array(maxGroups);
    this.fToken = fields.token;
    this.fTime = fields.exchTimeMs;
    this.fPrice = fields.price;
    this.fPrevClose = fields.prevClose;
    this.fVolume = fields.volumeDelta;
    this.fOi = fields.oi;
    this.fAvgPrice = fields.avgPrice;
    this.fDayVwap = fields.dayVwap;
    this.scratch = new Float64Array(stageWords(fields));
  }

  /**
   * Setup, not the hot path: declare `token` an option of `group` (e.g. the expiry index of one
   * underlying's chain) on `side`. Call before its first tick, once per option token.
   */
  registerOption(token: number, group: number, side: 'CE' | 'PE'): void {
    const i = this.index.get(token);
    if (i === undefined) throw new RangeError(`DayStats.registerOption: token ${token} was not given to the constructor`);
    if (side !== 'CE' && side !== 'PE') throw new RangeError(`DayStats.registerOption: side must be 'CE' or 'PE', got ${String(side)}`);
    const b = i * T_FIELDS;
    if (this.t[b + GROUP] >= 0) throw new RangeError(`DayStats.registerOption: token ${token} is already registered`);
    let g = this.groupIndex.get(group);
    if (g === undefined) {
      g = this.groupIndex.size;
      if (g >= this.callOiSum.length) {
        const calls = new Float64Array(this.callOiSum.length * 2);
        const puts = new Float64Array(this.putOiSum.length * 2);
        calls.set(this.callOiSum);
        puts.set(this.putOiSum);
        this.callOiSum = calls;
        this.putOiSum = puts;
      }
      this.groupIndex.set(group, g);
    }
    this.t[b + GROUP] = g;
    this.t[b + SIDE] = side === 'CE' ? OptionSide.CE : OptionSide.PE;
    // OI seen before registration joins the sums now.
    const oi = this.t[b + OI];
    if (oi === oi) this.oiSums(this.t[b + SIDE])[g] += oi;
  }

  /**
   * One tick. `prevClose` is the previous session's close Kite sends (0 or NaN when unknown);
   * `oi` NaN when the packet mode does not carry OI (the last known value is kept, so PCR sums
   * are not poisoned); `avgTradedPrice` Kite's day average when the packet carries it: it then
   * becomes the day VWAP, being the exchange's own figure over every trade, not just the ticks seen.
   */
  onTick(
    token: number, exchTimeMs: number, price: number, prevClose: number, volumeDelta: number, oi: number,
    avgTradedPrice = NaN,
  ): void {
    const r = this.scratch;
    r[this.fToken] = token;
    r[this.fTime] = exchTimeMs;
    r[this.fPrice] = price;
    r[this.fPrevClose] = prevClose;
    r[this.fVolume] = volumeDelta;
    r[this.fOi] = oi;
    r[this.fAvgPrice] = avgTradedPrice;
    this.onTickAt(r, 0, Carries.OI | Carries.AVG_PRICE);
  }

  /**
   * One tick, read from `rec` at f64 offset `o` through `fields`; OI and the average price only
   * when `carries` has their Carries bit. Writes the token's day VWAP after the tick (NaN for a
   * token not given to the constructor) to rec[o + fields.dayVwap].
   */
  onTickAt(rec: Float64Array, o: number, carries: number): void {
    // An integral token reads as a Smi key: the lookup boxes nothing.
    const i = this.index.get(rec[o + this.fToken]);
    if (i === undefined) {
      this.unknownTokens++;
      rec[o + this.fDayVwap] = NaN;
      return;
    }
    const t = this.t;
    const b = i * T_FIELDS;
    const exchTimeMs = rec[o + this.fTime];
    const held = t[b + DAY_START];
    // istDayStart (doubles in and out) only when the tick may be on another day than the one held.
    // The held day's last ms goes that way too, so that this shortcut never has to agree with
    // istDayStart's rounding of a fractional time just before midnight.
    if (!(exchTimeMs >= held && exchTimeMs < held + (DAY_MS - 1))) {
      const day = istDayStart(exchTimeMs);
      if (day < held) {
        this.staleTicks++;
        this.dayVwapInto(b, rec, o + this.fDayVwap);
        return;
      }
      if (day > held) {
        t[b + DAY_START] = day;
        t[b + DAY_VOLUME] = 0;
        t[b + DAY_PV] = 0;
        t[b + AVG_PRICE] = NaN;
      }
    }
    const price = rec[o + this.fPrice];
    const volumeDelta = rec[o + this.fVolume];
    t[b + DAY_VOLUME] += volumeDelta;
    t[b + DAY_PV] += price * volumeDelta;
    if ((carries & Carries.AVG_PRICE) !== 0) {
      const avg = rec[o + this.fAvgPrice];
      if (avg > 0) t[b + AVG_PRICE] = avg;
    }
    t[b + LAST_PRICE] = price;
    const prevClose = rec[o + this.fPrevClose];
    if (prevClose > 0) t[b + PREV_CLOSE] = prevClose;
    if ((carries & Carries.OI) !== 0) {
      const oi = rec[o + this.fOi];
      if (oi === oi) {
        const g = t[b + GROUP];
        if (g >= 0) {
          // Subtract the token's previous contribution, add the new one: O(1) per tick, and exact
          // because OI is an integer far below 2^53.
          const old = t[b + OI];
          if (old === old) this.oiSums(t[b + SIDE])[g] += oi - old;
          else this.oiSums(t[b + SIDE])[g] += oi;
        }
        t[b + OI] = oi;
      }
    }
    this.dayVwapInto(b, rec, o + this.fDayVwap);
  }

  /** Day VWAP in rupees: Kite's average traded price if the day has one, else Σpv/Σv; NaN if neither. */
  dayVwap(token: number): number {
    const b = this.base(token);
    if (b < 0) return NaN;
    this.dayVwapInto(b, this.scratch, this.fDayVwap);
    return this.scratch[this.fDayVwap];
  }

  /** Σ volume deltas of the token's current IST day. */
  dayVolume(token: number): number {
    const b = this.base(token);
    return b < 0 ? NaN : this.t[b + DAY_VOLUME];
  }

  /** (last − previous close) / previous close × 100; NaN until both are known. */
  changePct(token: number): number {
    const b = this.base(token);
    if (b < 0) return NaN;
    const prev = this.t[b + PREV_CLOSE];
    return prev > 0 ? ((this.t[b + LAST_PRICE] - prev) / prev) * 100 : NaN;
  }

  /** Put-call ratio by OI of `group`: Σ put OI / Σ call OI; NaN when the calls have no OI. */
  pcr(group: number): number {
    const g = this.groupIndex.get(group);
    if (g === undefined) return NaN;
    const calls = this.callOiSum[g];
    return calls > 0 ? this.putOiSum[g] / calls : NaN;
  }

  callOi(group: number): number {
    const g = this.groupIndex.get(group);
    return g === undefined ? NaN : this.callOiSum[g];
  }

  putOi(group: number): number {
    const g = this.groupIndex.get(group);
    return g === undefined ? NaN : this.putOiSum[g];
  }

  /** dayVwap() of the token at `b`, written to out[at]: a typed-array write, not a returned double. */
  private dayVwapInto(b: number, out: Float64Array, at: number): void {
    const t = this.t;
    const avg = t[b + AVG_PRICE];
    if (avg === avg) {
      out[at] = avg;
      return;
    }
    const v = t[b + DAY_VOLUME];
    // if/else, not a ternary with NaN: see aggregate.ts absorb().
    if (v !== 0) out[at] = t[b + DAY_PV] / v;
    else out[at] = NaN;
  }

  /** The per-group OI sums of one side. */
  private oiSums(side: number): Float64Array {
    return side === OptionSide.CE ? this.callOiSum : this.putOiSum;
  }

  private base(token: number): number {
    const i = this.index.get(token);
    return i === undefined ? -1 : i * T_FIELDS;
  }
}
