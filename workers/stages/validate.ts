/**
 * Validate: decide whether a decoded tick may pass. Failures are counted by reason and
 * quarantined by the shard, never passed on.
 *
 * Checks, in order (the first failure is the reason):
 * - UNKNOWN_TOKEN: the instrument master does not list the token.
 * - KIND_MISMATCH: the packet kind is not one the instrument's class can send: an index sends ltp,
 *   index quote or index full packets, a tradable instrument ltp, quote or full ones. Not the mode
 *   the ingest set: Kite answers a subscribe in quote mode and switches to the mode asked for only
 *   once the mode message takes effect, so after every (re)connect real quote ticks arrive for
 *   tokens followed in full mode (a soak stored none of 346 such ticks when this checked the mode).
 * - BAD_PRICE: last price is not > 0.
 * - PRICE_JUMP: last price moved beyond the band from the token's previous accepted price
 *   (default ±20 % for index, equity and futures, ×/÷ 5 for options, whose premium legitimately
 *   doubles in minutes).
 * - OUT_OF_DAY_BAND: last price beyond ±35 % of the previous close (index, equity, futures; NSE's
 *   widest band is 20 %, so a price past 35 % is a broken packet). Options have no such check.
 * - TIME_FUTURE / TIME_PAST: exchange time more than `maxFutureMs` ahead of, or `maxPastMs`
 *   behind, the receive time. Market hours are deliberately not checked: pre-open, Muhurat
 *   trading and the simulator at night are real; sessions only decide bar and day boundaries.
 * - VOLUME_DECREASED: cumulative volume fell within the same IST day.
 * - OI_RANGE: OI day high fell, or OI day low rose, within the day. OI itself may fall (positions
 *   close), so the monotonic quantities Kite sends, the day's OI high and low, are what is checked.
 *
 * State (previous price, volume, OI high/low, day) advances only on ticks that pass.
 * No allocation: state lives in typed arrays indexed by instrument-table row.
 */
import { QUARANTINE_REASON_NAMES, QuarantineReason } from '../../src/core/tick.ts';
import { F, Kind, priceDivisor, type SlotViews } from '../../src/core/packet-slot.ts';
import { InstrumentKind, type InstrumentTable } from './instrument-table.ts';
import { DAY_MS, IST_OFFSET_MS } from '../../src/core/ist.ts';

export interface ValidateOptions {
  /** Largest move from the previous price for non-options, as a fraction. Default 0.2. */
  maxJump?: number;
  /** Largest factor from the previous price for options. Default 5. */
  maxOptionFactor?: number;
  /** Largest distance from the previous close for non-options, as a fraction. Default 0.35. */
  maxFromClose?: number;
  /** Default 10 s: clocks drift, but not by more. */
  maxFutureMs?: number;
  /** Default 5 min: a Kite packet is never older than that on arrival. */
  maxPastMs?: number;
}

export class Validator {
  readonly rejected: Float64Array = new Float64Array(QUARANTINE_REASON_NAMES.length);
  passed = 0;
  private readonly maxJump: number;
  private readonly maxOptionFactor: number;
  private readonly maxFromClose: number;
  private readonly maxFutureMs: number;
  private readonly maxPastMs: number;
  private readonly lastPrice: Int32Array;
  private readonly lastVolume: Float64Array;
  private readonly lastOiHigh: Float64Array;
  private readonly lastOiLow: Float64Array;
  /** IST day number of the last accepted tick; -1 before the first. */
  private readonly day: Int32Array;
  /** Volume delta of the tick that last passed `check` (read by normalize). */
  volumeDelta = 0;
  /** Exchange time (ms) of the tick that last passed `check`: its own, or the receive time. */
  exchTimeMs = 0;

  constructor(private readonly table: InstrumentTable, opts: ValidateOptions = {}) {
    this.maxJump = opts.maxJump ?? 0.2;
    this.maxOptionFactor = opts.maxOptionFactor ?? 5;
    this.maxFromClose = opts.maxFromClose ?? 0.35;
    this.maxFutureMs = opts.maxFutureMs ?? 10_000;
    this.maxPastMs = opts.maxPastMs ?? 300_000;
    const n = table.size;
    this.lastPrice = new Int32Array(n);
    this.lastVolume = new Float64Array(n);
    this.lastOiHigh = new Float64Array(n);
    this.lastOiLow = new Float64Array(n);
    this.day = new Int32Array(n).fill(-1);
  }

  /** 0 when the record at `b` passes (state advanced), else its QuarantineReason (counted). */
  check(v: SlotViews, b: number, row: number): number {
    const reason = this.reason(v, b, row);
    if (reason !== 0) this.rejected[reason]++;
    else this.passed++;
    return reason;
  }

  private reason(v: SlotViews, b: number, row: number): number {
    if (row < 0) return QuarantineReason.UNKNOWN_TOKEN;
    const u32 = v.u32;
    const i32 = v.i32;
    const ikind = this.table.kind[row];
    const kind = u32[b + F.KIND];
    if (kind !== Kind.LTP) {
      const indexKind = kind === Kind.INDEX_QUOTE || kind === Kind.INDEX_FULL;
      const tradableKind = kind === Kind.QUOTE || kind === Kind.FULL;
      if (ikind === InstrumentKind.INDEX ? !indexKind : !tradableKind) return QuarantineReason.KIND_MISMATCH;
    }

    const price = i32[b + F.LAST_PRICE];
    if (price <= 0) return QuarantineReason.BAD_PRICE;
    const option = ikind === InstrumentKind.CE || ikind === InstrumentKind.PE;
    const prev = this.lastPrice[row];
    if (prev > 0) {
      if (option) {
        if (price > prev * this.maxOptionFactor || price * this.maxOptionFactor < prev) return QuarantineReason.PRICE_JUMP;
      } else if (Math.abs(price - prev) > prev * this.maxJump) {
        return QuarantineReason.PRICE_JUMP;
      }
    }
    const close = i32[b + F.CLOSE];
    if (!option && close > 0 && Math.abs(price - close) > close * this.maxFromClose) return QuarantineReason.OUT_OF_DAY_BAND;

    const recvMs = v.f64[(b >> 1) + F.RECV_TIME_US_F64] / 1000;
    const exchS = u32[b + F.EXCHANGE_TIME];
    const exchMs = exchS === 0 ? recvMs : exchS * 1000;
    if (exchMs - recvMs > this.maxFutureMs) return QuarantineReason.TIME_FUTURE;
    if (recvMs - exchMs > this.maxPastMs) return QuarantineReason.TIME_PAST;

    const day = Math.floor((exchMs + IST_OFFSET_MS) / DAY_MS);
    const sameDay = this.day[row] === day;
    let volumeDelta = 0;
    const carriesVolume = kind === Kind.QUOTE || kind === Kind.FULL;
    if (carriesVolume) {
      const volume = u32[b + F.VOLUME];
      if (sameDay) {
        if (volume < this.lastVolume[row]) return QuarantineReason.VOLUME_DECREASED;
        volumeDelta = volume - this.lastVolume[row];
      }
      // First tick of a day (or since start-up): the volume before it cannot be placed in a bar.
    }
    if (kind === Kind.FULL && sameDay) {
      if (u32[b + F.OI_HIGH] < this.lastOiHigh[row]) return QuarantineReason.OI_RANGE;
      if (this.lastOiLow[row] > 0 && u32[b + F.OI_LOW] > this.lastOiLow[row] && u32[b + F.OI_LOW] !== 0) return QuarantineReason.OI_RANGE;
    }

    this.lastPrice[row] = price;
    if (carriesVolume) this.lastVolume[row] = u32[b + F.VOLUME];
    if (kind === Kind.FULL) {
      this.lastOiHigh[row] = u32[b + F.OI_HIGH];
      this.lastOiLow[row] = u32[b + F.OI_LOW];
    }
    this.day[row] = day;
    this.volumeDelta = volumeDelta;
    this.exchTimeMs = exchMs;
    return 0;
  }
}

/** Rupees of a raw price for a token. */
export function rupees(raw: number, token: number): number {
  return raw / priceDivisor(token);
}
