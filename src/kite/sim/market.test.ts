import { describe, expect, it } from 'vitest';
import { decodeToTicks, encodeFrame, type WireTick } from '../codec.ts';
import type { Instrument } from '../../core/instrument.ts';
import { buildNifty50Universe } from './universe.ts';
import { NIFTY_INDEX_TOKEN } from '../nifty50.ts';
import { Kind } from '../../core/packet-slot.ts';
import { black76, Market, ModeCode } from './market.ts';
import { Rng } from './rng.ts';

const T0 = Date.parse('2025-12-01T05:00:00Z'); // Monday 10:30 IST
const UNIVERSE = buildNifty50Universe({ today: new Date(T0), indexLevel: 26000 });
const ALL = UNIVERSE.map((t) => t.instrumentToken);

function market(seed: number, clockMs = T0): Market {
  return new Market({ instruments: UNIVERSE, seed, clock: () => clockMs });
}

function find(symbol: string): Instrument {
  return UNIVERSE.find((t) => t.tradingsymbol === symbol)!;
}

describe('Rng', () => {
  it('replays the same sequence for a seed and differs across seeds', () => {
    const a = new Rng(42);
    const b = new Rng(42);
    const c = new Rng(43);
    const xs = Array.from({ length: 100 }, () => a.next());
    expect(Array.from({ length: 100 }, () => b.next())).toEqual(xs);
    expect(Array.from({ length: 100 }, () => c.next())).not.toEqual(xs);
    expect(xs.every((x) => x >= 0 && x < 1)).toBe(true);
  });

  it('draws normals with mean near 0 and variance near 1', () => {
    const r = new Rng(7);
    let s = 0;
    let s2 = 0;
    const n = 20000;
    for (let i = 0; i < n; i++) {
      const x = r.normal();
      s += x;
      s2 += x * x;
    }
    expect(Math.abs(s / n)).toBeLessThan(0.03);
    expect(Math.abs(s2 / n - 1)).toBeLessThan(0.05);
  });
});

describe('Market', () => {
  it('is reproducible for a seed', () => {
    const a = market(5).nextTicks(3000, ALL);
    const b = market(5).nextTicks(3000, ALL);
    const c = market(6).nextTicks(3000, ALL);
    expect(b).toEqual(a);
    expect(c).not.toEqual(a);
  });

  it('keeps every invariant over many trades', () => {
    let now = T0;
    const m = new Market({ instruments: UNIVERSE, seed: 11, clock: () => now });
    const n = m.size;
    const active = Int32Array.from({ length: n }, (_, i) => i);
    const updated = new Int32Array(n);
    const prevVolume = new Float64Array(n);
    const prevOi = new Float64Array(n);
    const close = new Float64Array(n);
    const open = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      const t = m.tickOf(i, ModeCode.FULL);
      prevVolume[i] = t.volume;
      prevOi[i] = t.oi;
      close[i] = t.close;
      open[i] = t.open;
    }
    // Checked by hand and collected: an expect() per field would take minutes over 100k trades.
    const failures: string[] = [];
    const check = (ok: boolean, what: string, i: number, t: WireTick) => {
      if (!ok && failures.length < 20) failures.push(`${what}: ${UNIVERSE[i].tradingsymbol} ${JSON.stringify({ ...t, depth: undefined })}`);
    };
    let checked = 0;
    for (let round = 0; round < 150; round++) {
      now += 137;
      // Alternate full rounds and partial ones (a random subset, as at low rates).
      const want = round % 2 === 0 ? n : 97;
      const k = m.advance(want, active, n, updated);
      expect(k).toBe(want);
      expect(new Set(updated.subarray(0, k)).size).toBe(k); // distinct within a round
      const nowSec = Math.floor(now / 1000);
      for (let j = 0; j < k; j++) {
        const i = updated[j];
        const ins = UNIVERSE[i];
        const t = m.tickOf(i, ModeCode.FULL);
        check(t.close === close[i] && t.open === open[i], 'open and close fixed', i, t);
        check(t.low <= t.lastPrice && t.lastPrice <= t.high && t.low <= t.open && t.open <= t.high, 'low <= last, open <= high', i, t);
        check(t.exchangeTime === nowSec, 'exchange time from the clock', i, t);
        if (ins.segment === 'INDICES') {
          check(t.kind === Kind.INDEX_FULL && m.tickOf(i, ModeCode.QUOTE).kind === Kind.INDEX_QUOTE, 'index kinds', i, t);
          check(t.lastPrice % 5 === 0, 'index on a 5 paise grid', i, t);
          check(t.changeRaw === t.lastPrice - t.close, 'index change', i, t);
          continue;
        }
        const tick = Math.round(ins.tickSize * 100);
        check(t.kind === Kind.FULL, 'tradable kind', i, t);
        check(t.lastPrice % tick === 0 && t.lastPrice >= tick, 'last on the tick grid, at least one tick', i, t);
        check(t.lastQty > 0 && t.lastQty % ins.lotSize === 0, 'quantity in lots', i, t);
        check(t.volume >= prevVolume[i] + t.lastQty && t.volume <= 0xffffffff, 'volume grows by the traded quantity', i, t);
        check(t.avgPrice >= t.low && t.avgPrice <= t.high, 'average within the day range', i, t);
        check(t.lastTradeTime === nowSec, 'trade time from the clock', i, t);
        if (ins.exchange === 'NFO') {
          check(t.oi >= prevOi[i] && t.oiHigh === t.oi && t.oiLow <= t.oi && t.oi % ins.lotSize === 0, 'OI grows in lots', i, t);
        } else {
          check(t.oi === 0, 'no OI for cash', i, t);
        }
        prevVolume[i] = t.volume;
        prevOi[i] = t.oi;
        const depthProblem = depthError(t, tick);
        check(depthProblem === '', `depth: ${depthProblem}`, i, t);
        // The quote and ltp packets carry the same state.
        const q = m.tickOf(i, ModeCode.QUOTE);
        check(
          q.kind === Kind.QUOTE && q.lastPrice === t.lastPrice && q.volume === t.volume && q.avgPrice === t.avgPrice &&
            q.high === t.high && q.low === t.low && q.buyQty === t.buyQty && m.tickOf(i, ModeCode.LTP).lastPrice === t.lastPrice,
          'modes in sync',
          i,
          t,
        );
        checked++;
      }
    }
    expect(failures).toEqual([]);
    expect(checked).toBeGreaterThan(80_000);
    // Pulled back towards its start, the index stays near 26000.
    expect(m.indexLevel()).toBeGreaterThan(26000 * 0.95);
    expect(m.indexLevel()).toBeLessThan(26000 * 1.05);
  });

  it('prices futures and options off the index: carry, call-put parity, monotone in strike', () => {
    const m = market(3);
    m.nextTicks(2 * m.size, ALL);
    const index = m.tickOf(m.indexOf(NIFTY_INDEX_TOKEN), ModeCode.FULL).lastPrice / 100;
    const fut = m.tickOf(m.indexOf(find('NIFTY25DECFUT').instrumentToken), ModeCode.FULL).lastPrice / 100;
    expect(fut - index).toBeGreaterThan(0);
    expect(fut - index).toBeLessThan(index * 0.01);

    const price = (sym: string) => m.tickOf(m.indexOf(find(sym).instrumentToken), ModeCode.FULL).lastPrice / 100;
    const strikes = UNIVERSE.filter((t) => t.expiry === '2025-12-30' && t.instrumentType === 'CE').map((t) => t.strike);
    let prevCall = Infinity;
    let prevPut = 0;
    for (const k of strikes) {
      const c = price(`NIFTY25DEC${k}CE`);
      const p = price(`NIFTY25DEC${k}PE`);
      // A print may sit one tick either side of fair: allow two ticks of disorder.
      expect(c).toBeLessThanOrEqual(prevCall + 0.1);
      expect(p).toBeGreaterThanOrEqual(prevPut - 0.1);
      prevCall = c;
      prevPut = p;
      if (Math.abs(k - index) < 1000) {
        // C - P = (F - K) e^{-rT}, within the prints' jitter.
        expect(Math.abs(c - p - (fut - k) * Math.exp(-0.065 * (29 / 365)))).toBeLessThan(2);
      }
    }
    const atm = Math.round(index / 50) * 50;
    const atmCall = price(`NIFTY25DEC${atm}CE`);
    // ATM call ~ 0.4 * F * sigma * sqrt(T): 26000, 12-15 %, 29 days -> roughly 350-450.
    expect(atmCall).toBeGreaterThan(250);
    expect(atmCall).toBeLessThan(550);
  });

  it('never prices an option below one tick', () => {
    expect(black76(26000, 60000, 0.01, 0.13, true)).toBeGreaterThanOrEqual(0);
    const m = market(9);
    const far = UNIVERSE.filter((t) => t.instrumentType === 'CE' && t.strike === 28000).map((t) => t.instrumentToken);
    for (const t of m.nextTicks(far.length * 20, far)) expect(t.lastPrice).toBeGreaterThanOrEqual(5);
  });

  it('produces packets the codec round-trips field for field', () => {
    const m = market(4);
    for (const mode of ['ltp', 'quote', 'full'] as const) {
      const ticks = m.nextTicks(500, ALL, mode);
      const back = decodeToTicks(encodeFrame(ticks));
      expect(back).toHaveLength(ticks.length);
      for (let i = 0; i < ticks.length; i++) expect(stripUnsent(back[i])).toEqual(stripUnsent(ticks[i]));
    }
  });

  it('ignores unknown tokens', () => {
    expect(market(1).nextTicks(10, [1, 2, 3])).toEqual([]);
    expect(market(1).indexOf(12345)).toBe(-1);
  });
});

/** '' when bids fall strictly, asks rise strictly, all on the tick grid and best bid < best ask. */
function depthError(t: WireTick, tick: number): string {
  const d = t.depth;
  const bestAsk = d[5].price;
  if (!(d[0].price > 0 && d[0].price < bestAsk)) return 'best bid not in (0, best ask)';
  if (!(d[0].price <= t.lastPrice && bestAsk >= t.lastPrice)) return 'last outside the touch';
  let bidSum = 0;
  let askSum = 0;
  for (let k = 0; k < 5; k++) {
    const b = d[k];
    if (b.price === 0) {
      if (b.quantity !== 0 || b.orders !== 0) return `empty bid ${k} not all zero`;
    } else {
      if (b.price % tick !== 0) return `bid ${k} off the grid`;
      if (b.price >= bestAsk) return `bid ${k} not below the best ask`;
      if (k > 0 && b.price >= d[k - 1].price) return `bid ${k} not below bid ${k - 1}`;
      if (!(b.quantity > 0 && b.orders > 0 && b.orders <= Math.min(65535, b.quantity))) return `bid ${k} quantity or orders`;
    }
    const a = d[5 + k];
    if (a.price % tick !== 0) return `ask ${k} off the grid`;
    if (k > 0 && a.price <= d[4 + k].price) return `ask ${k} not above ask ${k - 1}`;
    if (!(a.quantity > 0 && a.orders > 0 && a.orders <= Math.min(65535, a.quantity))) return `ask ${k} quantity or orders`;
    bidSum += b.quantity;
    askSum += a.quantity;
  }
  if (t.buyQty < bidSum || t.sellQty < askSum) return 'totals below the shown depth';
  return '';
}

/** Fields a packet kind does not carry decode as 0: compare only what the wire holds. */
function stripUnsent(t: WireTick): Partial<WireTick> {
  if (t.kind === Kind.LTP) return { kind: t.kind, token: t.token, lastPrice: t.lastPrice };
  if (t.kind === Kind.INDEX_QUOTE || t.kind === Kind.INDEX_FULL) {
    return {
      kind: t.kind, token: t.token, lastPrice: t.lastPrice, high: t.high, low: t.low, open: t.open, close: t.close,
      changeRaw: t.changeRaw, exchangeTime: t.kind === Kind.INDEX_FULL ? t.exchangeTime : 0,
    };
  }
  const base = {
    kind: t.kind, token: t.token, lastPrice: t.lastPrice, lastQty: t.lastQty, avgPrice: t.avgPrice, volume: t.volume,
    buyQty: t.buyQty, sellQty: t.sellQty, open: t.open, high: t.high, low: t.low, close: t.close,
  };
  if (t.kind === Kind.QUOTE) return base;
  return { ...base, lastTradeTime: t.lastTradeTime, oi: t.oi, oiHigh: t.oiHigh, oiLow: t.oiLow, exchangeTime: t.exchangeTime, depth: t.depth };
}
