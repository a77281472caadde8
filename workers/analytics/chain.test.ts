import { describe, expect, it } from 'vitest';
import { HEADER_FIELDS, ROW_FIELDS, SNAP, SNAP_HEADER, SUMMARY, rowBase, snapshotLength, type ChainGroup, type ChainLayout, type ChainOption } from '../../src/core/chain-snapshot.ts';
import { black76 } from './black.ts';
import { erf } from './normal.ts';
import { computeAnalytics, type ChainAnalytics, type OptionAnalytics } from './chain.ts';

const NOW = Date.UTC(2026, 11, 4, 6, 0, 0); // 11:30 IST
const DAYS = 86_400_000;
const YEAR = 365 * DAYS;
const RATE = 0.06;

/** A chain of `strikes` (CE then PE each) with spot row 0, future row 1, options from row 2, stocks after. */
function layoutOf(strikes: number[], opts: { future?: boolean; stocks?: number; expiryInMs?: number } = {}): ChainLayout {
  const options: ChainOption[] = [];
  let row = 2;
  for (const k of strikes) {
    options.push({ row: row++, token: 1000 + row, symbol: `NIFTY${k}CE`, strike: k, call: true });
    options.push({ row: row++, token: 1000 + row, symbol: `NIFTY${k}PE`, strike: k, call: false });
  }
  const group: ChainGroup = {
    key: 'NIFTY:2026-12-29', name: 'NIFTY', expiry: '2026-12-29', expiryCloseMs: NOW + (opts.expiryInMs ?? 30 * DAYS), rank: 0,
    spotRow: 0, futureRow: opts.future === false ? -1 : 1, options,
  };
  const stocks = Array.from({ length: opts.stocks ?? 0 }, (_, i) => ({ row: row + i, symbol: `S${i}` }));
  return { rows: row + stocks.length, groups: [group], stocks, rate: RATE, staleMs: 30_000, oiIntervalMs: 300_000 };
}

/** Write one row: a tick with these fields (the rest sensible), at exchange time NOW unless given. */
function put(s: Float64Array, row: number, f: Partial<Record<keyof typeof SNAP, number>>): void {
  const b = rowBase(row);
  s[b + SNAP.HAS] = 1;
  s[b + SNAP.EXCH_MS] = NOW;
  s[b + SNAP.BID_QTY] = 50;
  s[b + SNAP.ASK_QTY] = 50;
  s[b + SNAP.OI_OPEN] = NaN;
  s[b + SNAP.OI_AGO] = NaN;
  for (const [k, v] of Object.entries(f)) s[b + SNAP[k as keyof typeof SNAP]] = v;
}

function snapshot(layout: ChainLayout): Float64Array {
  const s = new Float64Array(snapshotLength(layout.rows));
  for (let r = 0; r < layout.rows; r++) {
    s[rowBase(r) + SNAP.OI_OPEN] = NaN;
    s[rowBase(r) + SNAP.OI_AGO] = NaN;
  }
  s[SNAP_HEADER.NOW_MS] = NOW;
  s[SNAP_HEADER.SEQ] = 7;
  s[SNAP_HEADER.NEWEST_MS] = NOW;
  return s;
}

/** Every number in `v`, deeply, is finite: the output never carries NaN or Infinity (JSON would make them null silently). */
function allFinite(v: unknown, path = '$'): string[] {
  if (typeof v === 'number') return Number.isFinite(v) ? [] : [path];
  if (Array.isArray(v)) return v.flatMap((x, i) => allFinite(x, `${path}[${i}]`));
  if (v !== null && typeof v === 'object') return Object.entries(v).flatMap(([k, x]) => allFinite(x, `${path}.${k}`));
  return [];
}

const leg = (a: ChainAnalytics, strike: number, type: 'CE' | 'PE'): OptionAnalytics => a.options.find((o) => o.strike === strike && o.type === type)!;

describe('chain analytics from a snapshot', () => {
  const strikes = [25_600, 25_800, 26_000, 26_200, 26_400];
  const F = 26_050;
  const T = 30 * DAYS / YEAR;
  // A smile: 14 % at the forward, higher in the wings.
  const vol = (k: number) => 0.14 + 0.5 * ((k - F) / F) ** 2;

  function pricedChain(layout: ChainLayout, spread = 1): Float64Array {
    const s = snapshot(layout);
    put(s, 0, { PRICE: 25_900 });
    put(s, 1, { PRICE: F });
    for (const o of layout.groups[0].options) {
      const p = black76(F, o.strike, T, RATE, vol(o.strike), o.call);
      put(s, o.row, { PRICE: p, BID: p - spread / 2, ASK: p + spread / 2, OI: 1000, VOLUME: 100 });
    }
    return s;
  }

  it('recovers each option\'s volatility from its mid and its last price, with the future as the forward', () => {
    const layout = layoutOf(strikes);
    const a = computeAnalytics(layout, pricedChain(layout)).groups[0];
    expect(a.forwardSource).toBe('future');
    expect(a.forward).toBe(F);
    expect(a.timeToExpiry).toBeCloseTo(T, 15);
    for (const o of a.options) {
      expect(o.ivMid, o.symbol).toBeCloseTo(vol(o.strike), 10);
      expect(o.ivLast, o.symbol).toBeCloseTo(vol(o.strike), 10);
      expect(o.greeksFrom).toBe('mid');
      expect(o.ivMidReason).toBeNull();
    }
    expect(allFinite(a)).toEqual([]);
  });

  it('implies the forward by put-call parity when no future of the expiry is followed', () => {
    const layout = layoutOf(strikes, { future: false });
    const a = computeAnalytics(layout, pricedChain(layout)).groups[0];
    expect(a.forwardSource).toBe('parity');
    expect(a.forward!).toBeCloseTo(F, 8);
    expect(leg(a, 26_000, 'CE').ivMid!).toBeCloseTo(vol(26_000), 9);
  });

  it('gives greeks that are Black-76\'s, per vol point and per calendar day', () => {
    const layout = layoutOf(strikes);
    const a = computeAnalytics(layout, pricedChain(layout)).groups[0];
    const c = leg(a, 26_000, 'CE');
    const sigma = vol(26_000);
    const h = 1e-4;
    const p = (f: number, t: number, sg: number, r: number) => black76(f, 26_000, t, r, sg, true);
    expect(c.delta!).toBeCloseTo((p(F + 1, T, sigma, RATE) - p(F - 1, T, sigma, RATE)) / 2, 6);
    expect(c.vega!).toBeCloseTo((p(F, T, sigma + h, RATE) - p(F, T, sigma - h, RATE)) / (2 * h) / 100, 6);
    const theta = -(p(F, T + h, sigma, RATE) - p(F, T - h, sigma, RATE)) / (2 * h) / 365;
    expect(Math.abs(c.theta! - theta) / Math.abs(theta)).toBeLessThan(1e-6);
    expect(c.rho!).toBeCloseTo((p(F, T, sigma, RATE + h) - p(F, T, sigma, RATE - h)) / (2 * h) / 100, 6);
    expect(c.gamma!).toBeCloseTo((p(F + 1, T, sigma, RATE) - 2 * p(F, T, sigma, RATE) + p(F - 1, T, sigma, RATE)), 6);
  });

  it('reads the smile from the out-of-the-money legs and interpolates ATM IV at the forward', () => {
    const layout = layoutOf(strikes);
    const a = computeAnalytics(layout, pricedChain(layout)).groups[0];
    expect(a.smile.map((p) => [p.strike, p.from])).toEqual([[25_600, 'put'], [25_800, 'put'], [26_000, 'put'], [26_200, 'call'], [26_400, 'call']]);
    // F = 26,050 lies a quarter of the way from 26,000 to 26,200.
    const expected = vol(26_000) + 0.25 * (vol(26_200) - vol(26_000));
    expect(a.atmIv!).toBeCloseTo(expected, 10);
    expect(a.atmStrike).toBe(26_000);
    expect(a.expectedMove!).toBeCloseTo(F * expected * Math.sqrt(T), 6);
    const ce = black76(F, 26_000, T, RATE, vol(26_000), true);
    const pe = black76(F, 26_000, T, RATE, vol(26_000), false);
    expect(a.straddle!).toBeCloseTo(ce + pe, 9);
  });

  it('finds the 25-delta risk reversal and butterfly when the strikes reach 25 delta, and says why not when they do not', () => {
    const wide = Array.from({ length: 81 }, (_, i) => 24_000 + 50 * i);
    const layout = layoutOf(wide);
    // Index skew: puts richer than calls, and a smile on top.
    const skew = (k: number) => 0.14 - 0.4 * ((k - F) / F) + 2 * ((k - F) / F) ** 2;
    const s = snapshot(layout);
    put(s, 0, { PRICE: 25_900 });
    put(s, 1, { PRICE: F });
    for (const o of layout.groups[0].options) {
      const p = black76(F, o.strike, T, RATE, skew(o.strike), o.call);
      put(s, o.row, { PRICE: p, BID: p - 0.05, ASK: p + 0.05, OI: 1000, VOLUME: 100 });
    }
    const a = computeAnalytics(layout, s).groups[0];
    expect(a.skewReason).toBeNull();
    // The strike where the (undiscounted, forward) call delta is 0.25 or the put delta -0.25, each
    // with the smile's own vol there, found by bisection on the smile itself.
    const cdf = (x: number) => 0.5 * (1 + erf(x / Math.SQRT2));
    const deltaAt = (k: number, call: boolean) => {
      const sd = skew(k) * Math.sqrt(T);
      const d1 = (Math.log(F / k) + sd * sd / 2) / sd;
      return call ? cdf(d1) : cdf(d1) - 1;
    };
    const strikeAt = (call: boolean, target: number) => {
      let lo = call ? F : 20_000;
      let hi = call ? 32_000 : F;
      for (let i = 0; i < 200; i++) {
        const mid = (lo + hi) / 2;
        if (deltaAt(mid, call) > target) lo = mid;
        else hi = mid;
      }
      return (lo + hi) / 2;
    };
    const c25 = skew(strikeAt(true, 0.25));
    const p25 = skew(strikeAt(false, -0.25));
    expect(a.riskReversal25!).toBeLessThan(0);
    expect(a.riskReversal25!).toBeCloseTo(c25 - p25, 4);
    expect(a.butterfly25!).toBeCloseTo((c25 + p25) / 2 - a.atmIv!, 4);
    const narrow = layoutOf([26_000, 26_200]);
    const b = computeAnalytics(narrow, pricedChain(narrow)).groups[0];
    expect(b.riskReversal25).toBeNull();
    expect(b.skewReason).toBe('not_reached');
  });

  it('computes max pain, the put-call ratios and the largest OI strikes of a hand-worked chain', () => {
    const layout = layoutOf([25_900, 26_000, 26_100]);
    const s = snapshot(layout);
    put(s, 0, { PRICE: 26_000 });
    put(s, 1, { PRICE: 26_000 });
    const oi: Record<string, [number, number]> = { '25900CE': [100, 1000], '26000CE': [300, 2000], '26100CE': [500, 3000], '25900PE': [400, 500], '26000PE': [200, 500], '26100PE': [50, 2000] };
    for (const o of layout.groups[0].options) {
      const [k, v] = oi[`${o.strike}${o.call ? 'CE' : 'PE'}`];
      put(s, o.row, { PRICE: 100, BID: 99, ASK: 101, OI: k, VOLUME: v, OI_OPEN: k - 10, OI_AGO: k - 1 });
    }
    const a = computeAnalytics(layout, s).groups[0];
    // Pain at 25,900: puts 26,000×200×100 + 26,100×50×200 = 30,000; at 26,000: calls 25,900×100×100 +
    // puts 26,100×50×100 = 15,000; at 26,100: calls 100×200 + 300×100 = 50,000. Least: 26,000.
    expect(a.maxPain).toBe(26_000);
    expect(a.pcrOi).toBeCloseTo(650 / 900, 15);
    expect(a.pcrVolume).toBe(0.5);
    expect([a.callOi, a.putOi, a.callVolume, a.putVolume]).toEqual([900, 650, 6000, 3000]);
    expect(a.topOi.call).toEqual([{ strike: 26_100, oi: 500 }, { strike: 26_000, oi: 300 }, { strike: 25_900, oi: 100 }]);
    expect(a.topOi.put).toEqual([{ strike: 25_900, oi: 400 }, { strike: 26_000, oi: 200 }, { strike: 26_100, oi: 50 }]);
    expect(a.oiChangeDay).toEqual({ call: 30, put: 30 });
    expect(a.oiChangeInterval).toEqual({ call: 3, put: 3, intervalMs: 300_000 });
    expect(leg(a, 26_000, 'CE').oiChangeDay).toBe(10);
  });

  it('names why a bad quote has no IV and never outputs NaN', () => {
    const layout = layoutOf([25_000, 25_500, 26_000, 26_500, 27_000, 27_500, 28_000]);
    const s = pricedChain(layout);
    const g = layout.groups[0];
    const row = (k: number, call: boolean) => g.options.find((o) => o.strike === k && o.call === call)!.row;
    s[rowBase(row(25_000, true)) + SNAP.HAS] = 0; // never ticked
    s[rowBase(row(25_000, false)) + SNAP.BID] = 0; // missing bid
    s[rowBase(row(25_500, false)) + SNAP.ASK_QTY] = 0; // missing ask quantity
    const crossed = rowBase(row(26_000, true));
    s[crossed + SNAP.BID] = s[crossed + SNAP.ASK] + 5;
    s[rowBase(row(26_000, false)) + SNAP.EXCH_MS] = NOW - 60_000; // stale
    s[rowBase(row(26_500, true)) + SNAP.PRICE] = 0; // no trade yet
    const itm = rowBase(row(25_500, true)); // deep ITM call priced under intrinsic
    s[itm + SNAP.PRICE] = 100;
    s[itm + SNAP.BID] = 99;
    s[itm + SNAP.ASK] = 101;
    const over = rowBase(row(28_000, false)); // a put priced above its strike
    s[over + SNAP.PRICE] = 30_000;
    s[over + SNAP.BID] = 29_999;
    s[over + SNAP.ASK] = 30_001;
    const a = computeAnalytics(layout, s).groups[0];
    expect(leg(a, 25_000, 'CE')).toMatchObject({ ivMid: null, ivMidReason: 'no_tick', ivLastReason: 'no_tick', delta: null, greeksFrom: null });
    expect(leg(a, 25_000, 'PE')).toMatchObject({ ivMid: null, ivMidReason: 'no_bid', ivLastReason: null, greeksFrom: 'last' });
    expect(leg(a, 25_500, 'PE').ivMidReason).toBe('no_ask');
    expect(leg(a, 26_000, 'CE').ivMidReason).toBe('crossed');
    expect(leg(a, 26_000, 'PE')).toMatchObject({ ivMidReason: 'stale', ivLastReason: 'stale' });
    expect(leg(a, 26_500, 'CE')).toMatchObject({ ivLast: null, ivLastReason: 'no_trade', greeksFrom: 'mid' });
    expect(leg(a, 25_500, 'CE')).toMatchObject({ ivMidReason: 'below_intrinsic', ivLastReason: 'below_intrinsic' });
    expect(leg(a, 28_000, 'PE')).toMatchObject({ ivMidReason: 'above_bound', ivLastReason: 'above_bound' });
    expect(allFinite(a)).toEqual([]);
  });

  it('gives no IV once the expiry\'s close has passed, and none without a forward', () => {
    const expired = layoutOf([26_000], { expiryInMs: -1 });
    const a = computeAnalytics(expired, pricedChain(expired)).groups[0];
    expect(leg(a, 26_000, 'CE').ivMidReason).toBe('expired');
    expect(a.atmIv).toBeNull();
    const bare = layoutOf([26_000], { future: false });
    const s = snapshot(bare); // nothing has ticked: no future, no legs, no spot
    const b = computeAnalytics(bare, s);
    expect(b.groups[0].forward).toBeNull();
    expect(leg(b.groups[0], 26_000, 'PE').ivMidReason).toBe('no_forward');
    expect(Number.isNaN(b.summary[SUMMARY.ATM_IV])).toBe(true);
    expect(allFinite(b.groups[0])).toEqual([]);
  });

  it('counts market breadth: advances, declines, unchanged, at the day\'s high and low', () => {
    const layout = layoutOf([26_000], { stocks: 5 });
    const s = snapshot(layout);
    const st = layout.stocks;
    put(s, st[0].row, { PRICE: 110, CLOSE: 100, HIGH: 110, LOW: 95 });
    put(s, st[1].row, { PRICE: 90, CLOSE: 100, HIGH: 101, LOW: 90 });
    put(s, st[2].row, { PRICE: 95, CLOSE: 100, HIGH: 101, LOW: 94 });
    put(s, st[3].row, { PRICE: 100, CLOSE: 100, HIGH: 101, LOW: 99 });
    const b = computeAnalytics(layout, s).breadth;
    expect(b).toMatchObject({ total: 5, advances: 1, declines: 2, unchanged: 1, atDayHigh: 1, atDayLow: 1, noData: 1, advanceDeclineRatio: 0.5, seq: 7 });
  });

  it('fills the summary the history is built from', () => {
    const layout = layoutOf(strikes);
    const r = computeAnalytics(layout, pricedChain(layout));
    expect(r.summary[SUMMARY.ATM_IV]).toBe(r.groups[0].atmIv);
    expect(r.summary[SUMMARY.FORWARD]).toBe(F);
    expect(r.summary[SUMMARY.PCR_OI]).toBe(1);
    expect(HEADER_FIELDS + layout.rows * ROW_FIELDS).toBe(snapshotLength(layout.rows));
  });
});
