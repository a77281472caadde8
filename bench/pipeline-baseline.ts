/**
 * The pipeline bench's baseline: the tick pipeline written the straightforward way, in the main
 * thread. The official `KiteTicker.parseBinary` turns each frame into plain objects, and the same
 * four stages then run on those objects with Maps, arrays and object literals:
 *
 * - dedupe: a JSON key per packet, the token's last four kept in an array (ours: two 32-bit hashes);
 * - validate: the same checks as workers/stages/validate.ts, in the same order, state in a Map;
 * - normalize: one object per tick with the instrument joined, depth copied into new objects;
 * - filter: the store filter takes every valid tick (as ours does with no other filter installed);
 * - aggregate: a Map of bar objects per "token:timeframe" on the same session grid (ist.ts),
 *   updates coalesced per frame (ours: per batch), the clock closing due bars every 100 ms.
 *
 * It is not a straw man: no work ours skips is added, and the rules are ours, so the two emit the
 * same ticks and bars (the bench checks the counts). What differs is the representation: objects,
 * strings and Dates per tick, where ours writes numbers into preallocated rings.
 */
import type { Instrument } from '../src/core/instrument.ts';
import type { OfficialTick, OfficialTicker } from '../test/support/kite-official.ts';
import { bucketEnd, bucketStart, DAY_MS, IST_OFFSET_MS } from '../src/core/ist.ts';

export interface PlainTick {
  type: 'tick' | 'quarantine';
  reason: string | null;
  token: number;
  symbol: string;
  instrumentType: string;
  strike: number;
  expiry: string;
  mode: string;
  recvTimeUs: number;
  exchangeTime: Date;
  lastTradeTime: Date | null;
  price: number;
  lastQty: number;
  avgPrice: number;
  volume: number;
  volumeDelta: number;
  buyQty: number;
  sellQty: number;
  open: number;
  high: number;
  low: number;
  close: number;
  changePct: number;
  oi: number;
  oiDayHigh: number;
  oiDayLow: number;
  depth: { buy: { quantity: number; price: number; orders: number }[]; sell: { quantity: number; price: number; orders: number }[] };
  seq: number;
  conn: number;
  consumers: string[];
  procTimeUs: number;
}

export interface PlainBar {
  token: number;
  timeframeMs: number;
  start: number;
  end: number;
  open: number;
  high: number;
  low: number;
  close: number;
  volume: number;
  sumPv: number;
  vwap: number | null;
  trades: number;
  oi: number;
  ticks: number;
  closed: boolean;
  late: boolean;
}

export interface FrameOutput {
  ticks: PlainTick[];
  bars: PlainBar[];
}

interface TokenState {
  lastPrice: number;
  lastVolume: number;
  oiHigh: number;
  oiLow: number;
  day: number;
}

const GRACE_MS = 500;

export class StraightforwardPipeline {
  duplicates = 0;
  quarantined = 0;
  late = 0;
  /** Time spent in parseBinary, ms (to split the baseline's cost). */
  parseMs = 0;
  private readonly instruments = new Map<number, Instrument>();
  private readonly recent = new Map<number, string[]>();
  private readonly state = new Map<number, TokenState>();
  private readonly bars = new Map<string, PlainBar>();
  private lastAdvance = 0;

  constructor(
    private readonly ticker: OfficialTicker,
    instruments: readonly Instrument[],
    private readonly timeframesMs: readonly number[],
  ) {
    for (const i of instruments) this.instruments.set(i.instrumentToken, i);
  }

  /** One binary message: parse, dedupe, validate, normalize, filter, aggregate. */
  onFrame(buf: ArrayBuffer, recvTimeUs: number, seq: number, conn: number, nowMs: number): FrameOutput {
    const out: FrameOutput = { ticks: [], bars: [] };
    const updated = new Set<PlainBar>();
    if (nowMs - this.lastAdvance >= 100) {
      this.advance(nowMs, out);
      this.lastAdvance = nowMs;
    }
    const p0 = performance.now();
    const parsed = this.ticker.parseBinary(buf);
    this.parseMs += performance.now() - p0;
    for (const t of parsed) {
      if (this.isDuplicate(t)) continue;
      const reason = this.validate(t, recvTimeUs);
      const tick = this.normalize(t, reason, recvTimeUs, seq, conn);
      out.ticks.push(tick);
      if (reason !== null) {
        this.quarantined++;
        continue;
      }
      for (const tf of this.timeframesMs) updated.add(this.aggregate(tick, tf, out));
    }
    for (const bar of updated) if (!bar.closed) out.bars.push({ ...bar });
    return out;
  }

  private isDuplicate(t: OfficialTick): boolean {
    const key = JSON.stringify(t);
    let seen = this.recent.get(t.instrument_token);
    if (seen === undefined) {
      seen = [];
      this.recent.set(t.instrument_token, seen);
    }
    if (seen.includes(key)) {
      this.duplicates++;
      return true;
    }
    seen.push(key);
    if (seen.length > 4) seen.shift();
    return false;
  }

  private validate(t: OfficialTick, recvTimeUs: number): string | null {
    const inst = this.instruments.get(t.instrument_token);
    if (inst === undefined) return 'unknown_token';
    if (t.mode !== 'full') return 'kind_mismatch';
    const price = t.last_price;
    if (!(price > 0)) return 'bad_price';
    const option = inst.instrumentType === 'CE' || inst.instrumentType === 'PE';
    const st = this.state.get(t.instrument_token) ?? { lastPrice: 0, lastVolume: 0, oiHigh: 0, oiLow: 0, day: -1 };
    if (st.lastPrice > 0) {
      if (option) {
        if (price > st.lastPrice * 5 || price * 5 < st.lastPrice) return 'price_jump';
      } else if (Math.abs(price - st.lastPrice) > st.lastPrice * 0.2) {
        return 'price_jump';
      }
    }
    const close = t.ohlc?.close ?? 0;
    if (!option && close > 0 && Math.abs(price - close) > close * 0.35) return 'out_of_day_band';
    const recvMs = recvTimeUs / 1000;
    const exchMs = t.exchange_timestamp ? t.exchange_timestamp.getTime() : recvMs;
    if (exchMs - recvMs > 10_000) return 'time_future';
    if (recvMs - exchMs > 300_000) return 'time_past';
    const day = Math.floor((exchMs + IST_OFFSET_MS) / DAY_MS);
    const sameDay = st.day === day;
    let volumeDelta = 0;
    if (t.tradable && t.volume_traded !== undefined && sameDay) {
      if (t.volume_traded < st.lastVolume) return 'volume_decreased';
      volumeDelta = t.volume_traded - st.lastVolume;
    }
    if (t.tradable && t.oi_day_high !== undefined && sameDay) {
      if (t.oi_day_high < st.oiHigh) return 'oi_range';
      if (st.oiLow > 0 && t.oi_day_low! > st.oiLow && t.oi_day_low !== 0) return 'oi_range';
    }
    this.state.set(t.instrument_token, {
      lastPrice: price,
      lastVolume: t.volume_traded ?? 0,
      oiHigh: t.oi_day_high ?? 0,
      oiLow: t.oi_day_low ?? 0,
      day,
    });
    (t as OfficialTick & { volumeDelta?: number }).volumeDelta = volumeDelta;
    return null;
  }

  private normalize(t: OfficialTick, reason: string | null, recvTimeUs: number, seq: number, conn: number): PlainTick {
    const inst = this.instruments.get(t.instrument_token);
    const close = t.ohlc?.close ?? 0;
    return {
      type: reason === null ? 'tick' : 'quarantine',
      reason,
      token: t.instrument_token,
      symbol: inst?.tradingsymbol ?? '',
      instrumentType: inst?.instrumentType ?? '',
      strike: inst?.strike ?? 0,
      expiry: inst?.expiry ?? '',
      mode: t.mode,
      recvTimeUs,
      exchangeTime: t.exchange_timestamp ?? new Date(recvTimeUs / 1000),
      lastTradeTime: t.last_trade_time ?? null,
      price: t.last_price,
      lastQty: t.last_traded_quantity ?? 0,
      avgPrice: t.average_traded_price ?? 0,
      volume: t.volume_traded ?? 0,
      volumeDelta: (t as OfficialTick & { volumeDelta?: number }).volumeDelta ?? 0,
      buyQty: t.total_buy_quantity ?? 0,
      sellQty: t.total_sell_quantity ?? 0,
      open: t.ohlc?.open ?? 0,
      high: t.ohlc?.high ?? 0,
      low: t.ohlc?.low ?? 0,
      close,
      changePct: close !== 0 ? ((t.last_price - close) * 100) / close : 0,
      oi: t.oi ?? 0,
      oiDayHigh: t.oi_day_high ?? 0,
      oiDayLow: t.oi_day_low ?? 0,
      depth: {
        buy: (t.depth?.buy ?? []).map((d) => ({ ...d })),
        sell: (t.depth?.sell ?? []).map((d) => ({ ...d })),
      },
      seq,
      conn,
      consumers: reason === null ? ['store'] : [],
      procTimeUs: 0,
    };
  }

  private aggregate(t: PlainTick, tf: number, out: FrameOutput): PlainBar {
    const key = `${t.token}:${tf}`;
    const at = t.exchangeTime.getTime();
    const start = bucketStart(at, tf);
    let bar = this.bars.get(key);
    if (bar !== undefined && !bar.closed && at >= bar.start && at < bar.end) {
      bar.high = Math.max(bar.high, t.price);
      bar.low = Math.min(bar.low, t.price);
      bar.close = t.price;
      bar.oi = t.oi;
      this.absorb(bar, t);
      return bar;
    }
    if (bar !== undefined && (at < bar.start || (bar.closed && at < bar.end))) {
      // Late: the volume joins the open bar (or a carried one), prices stay.
      this.late++;
      if (bar.closed) {
        bar = { ...bar, start: bar.end, end: bucketEnd(bar.end, tf), open: bar.close, high: bar.close, low: bar.close, volume: 0, sumPv: 0, vwap: null, trades: 0, ticks: 0, closed: false, late: true };
        this.bars.set(key, bar);
      }
      bar.late = true;
      this.absorb(bar, t);
      return bar;
    }
    if (bar !== undefined && !bar.closed) {
      bar.closed = true;
      out.bars.push({ ...bar });
    }
    bar = {
      token: t.token, timeframeMs: tf, start, end: bucketEnd(start, tf),
      open: t.price, high: t.price, low: t.price, close: t.price,
      volume: 0, sumPv: 0, vwap: null, trades: 0, oi: t.oi, ticks: 0, closed: false, late: false,
    };
    this.bars.set(key, bar);
    this.absorb(bar, t);
    return bar;
  }

  private absorb(bar: PlainBar, t: PlainTick): void {
    bar.volume += t.volumeDelta;
    bar.sumPv += t.price * t.volumeDelta;
    bar.vwap = bar.volume !== 0 ? bar.sumPv / bar.volume : null;
    if (t.volumeDelta > 0) bar.trades++;
    bar.ticks++;
  }

  /** The clock: close every open bar whose end + grace has passed. */
  private advance(nowMs: number, out: FrameOutput): void {
    for (const bar of this.bars.values()) {
      if (!bar.closed && bar.end + GRACE_MS <= nowMs) {
        bar.closed = true;
        out.bars.push({ ...bar });
      }
    }
  }
}
