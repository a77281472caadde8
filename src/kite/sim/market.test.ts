import { describe, expect, it } from 'vitest';
import { CollectingSink, decodeFrame, DecodeStats, decodeToTicks, encodeFrame, type WireTick } from '../codec.ts';
import type { Instrument } from '../../core/instrument.ts';
import { buildNifty50Universe } from './universe.ts';
import { NIFTY_INDEX_TOKEN } from '../nifty50.ts';
import { Kind } from '../../core/packet-slot.ts';
import { black76, Market, ModeCode, modeCode, type Mode } from './market.ts';
import { Rng } from './rng.ts';
import { InstrumentTable } from '../../../workers/stages/instrument-table.ts';
import { Validator } from '../../../workers/stages/validate.ts';
import { QUARANTINE_REASON_NAMES } from '../../core/tick.ts';

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
    const prevLast = new Float64Array(n);
    const prevQty = new Float64Array(n);
    const prevTradeTime = new Float64Array(n);
    const close = new Float64Array(n);
    const open = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      const t = m.tickOf(i, ModeCode.FULL);
      prevVolume[i] = t.volume;
      prevOi[i] = t.oi;
      prevLast[i] = t.lastPrice;
      prevQty[i] = t.lastQty;
      prevTradeTime[i] = t.lastTradeTime;
      close[i] = t.close;
      open[i] = t.open;
    }
    // Checked by hand and collected: an expect() per field would take minutes over 100k trades.
    const failures: string[] = [];
    const check = (ok: boolean, what: string, i: number, t: WireTick) => {
      if (!ok && failures.length < 20) failures.push(`${what}: ${UNIVERSE[i].tradingsymbol} ${JSON.stringify({ ...t, depth: undefined })}`);
    };
    let checked = 0;
    let bookChanges = 0;
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
        if (t.volume === prevVolume[i]) {
          // A book change: no trade, so the trade's fields stay as they were.
          bookChanges++;
          check(t.lastPrice === prevLast[i] && t.lastQty === prevQty[i] && t.lastTradeTime === prevTradeTime[i], 'a book change keeps the last trade', i, t);
        } else {
          check(t.volume >= prevVolume[i] + t.lastQty && t.volume <= 0xffffffff, 'volume grows by the traded quantity', i, t);
          check(t.lastTradeTime === nowSec, 'trade time from the clock', i, t);
        }
        check(t.avgPrice >= t.low && t.avgPrice <= t.high, 'average within the day range', i, t);
        if (ins.exchange === 'NFO') {
          check(t.oi >= prevOi[i] && t.oiHigh === t.oi && t.oiLow <= t.oi && t.oi % ins.lotSize === 0, 'OI grows in lots', i, t);
        } else {
          check(t.oi === 0, 'no OI for cash', i, t);
        }
        prevVolume[i] = t.volume;
        prevOi[i] = t.oi;
        prevLast[i] = t.lastPrice;
        prevQty[i] = t.lastQty;
        prevTradeTime[i] = t.lastTradeTime;
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
    expect(bookChanges).toBe(m.bookChanges);
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

describe('Market: what real feeds carry', () => {
  // The index, ten stocks, the near future and the ten strikes nearest the money of the near expiry.
  const near = UNIVERSE.filter((t) => t.instrumentType === 'CE').map((t) => t.expiry).sort()[0];
  const options = UNIVERSE.filter((t) => t.expiry === near && (t.instrumentType === 'CE' || t.instrumentType === 'PE') && Math.abs(t.strike - 26000) <= 100);
  const SAMPLE = [
    UNIVERSE.find((t) => t.instrumentToken === NIFTY_INDEX_TOKEN)!,
    ...UNIVERSE.filter((t) => t.segment === 'NSE').slice(0, 10),
    UNIVERSE.filter((t) => t.instrumentType === 'FUT').sort((a, b) => (a.expiry < b.expiry ? -1 : 1))[0],
    ...options,
  ];
  const TOKENS = SAMPLE.map((t) => t.instrumentToken);

  /** `n` rounds of `perRound` updates over `tokens`, 50 ms apart: each round's packets, copied. */
  function rounds(seed: number, tokens: readonly number[], n: number, perRound: number, mode: Mode): WireTick[][] {
    let now = T0;
    const m = new Market({ instruments: UNIVERSE, seed, clock: () => now });
    const active = Int32Array.from(tokens, (t) => m.indexOf(t));
    const updated = new Int32Array(active.length);
    const code = modeCode(mode);
    const out: WireTick[][] = [];
    for (let r = 0; r < n; r++) {
      now += 50;
      const k = m.advance(perRound, active, active.length, updated);
      out.push(Array.from(updated.subarray(0, k), (i) => structuredClone(m.tickOf(i, code))));
    }
    return out;
  }

  function byToken(rs: WireTick[][]): Map<number, WireTick[]> {
    const m = new Map<number, WireTick[]>();
    for (const r of rs) for (const t of r) (m.get(t.token) ?? m.set(t.token, []).get(t.token)!).push(t);
    return m;
  }

  /** Prints equal to the one before the previous and not to the previous: A → B → A. */
  function returns(ticks: readonly WireTick[]): number {
    let n = 0;
    for (let i = 2; i < ticks.length; i++) if (ticks[i].lastPrice === ticks[i - 2].lastPrice && ticks[i].lastPrice !== ticks[i - 1].lastPrice) n++;
    return n;
  }

  it('returns prices to the value before the previous one (A → B → A), for the index, stocks, futures and options', () => {
    const ticks = byToken(rounds(21, TOKENS, 2000, TOKENS.length, 'ltp'));
    const share = (filter: (t: Instrument) => boolean) => {
      let ret = 0;
      let all = 0;
      for (const ins of SAMPLE.filter(filter)) {
        const t = ticks.get(ins.instrumentToken)!;
        ret += returns(t);
        all += t.length;
      }
      return ret / all;
    };
    // The bug this guards against dropped every one of these as a duplicate: they must be common.
    // The bug this guards against dropped every one of these as a duplicate: they must be common
    // (one tick in 12 to 30 here; with a third of updates repeating the price in ltp mode, one in 8
    // is the most a two-price bounce gives).
    expect(share((t) => t.segment === 'INDICES')).toBeGreaterThan(0.05);
    expect(share((t) => t.segment === 'NSE')).toBeGreaterThan(0.05);
    expect(share((t) => t.instrumentType === 'FUT')).toBeGreaterThan(0.02);
    expect(share((t) => t.instrumentType === 'CE' || t.instrumentType === 'PE')).toBeGreaterThan(0.04);
  });

  it('changes the book without a trade: price and volume stay, depth and totals change', () => {
    const full = byToken(rounds(22, TOKENS, 1000, TOKENS.length, 'full'));
    let updates = 0;
    let bookOnly = 0;
    for (const ins of SAMPLE) {
      if (ins.segment === 'INDICES') continue;
      const t = full.get(ins.instrumentToken)!;
      for (let i = 1; i < t.length; i++) {
        updates++;
        if (t[i].volume !== t[i - 1].volume) continue;
        bookOnly++;
        expect(t[i].lastPrice).toBe(t[i - 1].lastPrice);
        expect(t[i].lastTradeTime).toBe(t[i - 1].lastTradeTime);
        expect(t[i].depth.map((d) => d.price)).toEqual(t[i - 1].depth.map((d) => d.price));
        expect(t[i].depth.map((d) => d.quantity)).not.toEqual(t[i - 1].depth.map((d) => d.quantity));
      }
    }
    expect(bookOnly / updates).toBeGreaterThan(0.2);
    expect(bookOnly / updates).toBeLessThan(0.4);
    // In ltp mode those, and trades at an unchanged price, repeat the previous packet exactly.
    let repeats = 0;
    for (const t of byToken(rounds(22, TOKENS, 1000, TOKENS.length, 'ltp')).values()) {
      for (let i = 1; i < t.length; i++) if (t[i].lastPrice === t[i - 1].lastPrice) repeats++;
    }
    expect(repeats).toBeGreaterThan(bookOnly);
  });

  it('moves the NIFTY 50 index by one tick (5 paise) up and down, and sometimes not at all', () => {
    const index = byToken(rounds(23, [NIFTY_INDEX_TOKEN], 4000, 1, 'quote')).get(NIFTY_INDEX_TOKEN)!;
    const moves = new Map<number, number>();
    for (let i = 1; i < index.length; i++) {
      const d = index[i].lastPrice - index[i - 1].lastPrice;
      moves.set(d, (moves.get(d) ?? 0) + 1);
      expect(index[i].lastPrice % 5).toBe(0);
      expect(index[i].changeRaw).toBe(index[i].lastPrice - index[i].close);
    }
    const n = index.length - 1;
    expect(moves.get(5)! / n).toBeGreaterThan(0.1);
    expect(moves.get(-5)! / n).toBeGreaterThan(0.1);
    expect(moves.get(0)! / n).toBeGreaterThan(0.1);
    expect(returns(index) / n).toBeGreaterThan(0.05);
    // Mostly small steps: a level of 26000 moves by rupees, not by percent.
    const level = index[0].lastPrice;
    for (const t of index) expect(Math.abs(t.lastPrice - level)).toBeLessThan(level * 0.01);
  });

  it('bursts: an instrument trades in many rounds in a row, ahead of the random pick', () => {
    // 5 updates a round over 100 instruments: without bursts an instrument is in 8 rounds in a
    // row about once in 10^10 tries.
    const tokens = ALL.slice(0, 100);
    const rs = rounds(24, tokens, 3000, 5, 'full');
    const run = new Map<number, number>();
    let longest = 0;
    let bursts = 0;
    for (const r of rs) {
      const now = new Set(r.map((t) => t.token));
      for (const tk of tokens) {
        const len = now.has(tk) ? (run.get(tk) ?? 0) + 1 : 0;
        if (len === 8) bursts++;
        longest = Math.max(longest, len);
        run.set(tk, len);
      }
    }
    expect(bursts).toBeGreaterThan(3);
    expect(longest).toBeGreaterThanOrEqual(8);
    // Bursts or not, a round never carries one instrument twice.
    for (const r of rs) expect(new Set(r.map((t) => t.token)).size).toBe(r.length);
  });

  it('sends nothing the shard\'s validation quarantines, in any mode', () => {
    const table = new InstrumentTable(UNIVERSE);
    for (const mode of ['ltp', 'quote', 'full'] as const) {
      const validator = new Validator(table);
      const sink = new CollectingSink(256);
      const stats = new DecodeStats();
      let now = T0;
      const m = new Market({ instruments: UNIVERSE, seed: 25, clock: () => now });
      let checked = 0;
      for (let f = 0; f < 100; f++) {
        now += 137;
        sink.clear();
        decodeFrame(encodeFrame(m.nextTicks(400, ALL, mode)), { recvTimeUs: now * 1000, seq: f, conn: 0 }, sink, stats);
        for (let i = 0; i < sink.count; i++, checked++) {
          const t = sink.tick(i);
          const reason = validator.check(sink.views, i * 52, table.row(t.token));
          if (reason !== 0) expect.fail(`${mode}: ${UNIVERSE[table.row(t.token)].tradingsymbol} quarantined as ${QUARANTINE_REASON_NAMES[reason]}`);
        }
      }
      expect(checked).toBe(40_000);
      expect(stats.totalErrors()).toBe(0);
    }
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
