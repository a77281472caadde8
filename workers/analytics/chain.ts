/**
 * Option-chain analytics and market breadth from one snapshot (src/core/chain-snapshot.ts): the
 * pool thread's work at each refresh. Pure: the layout and a snapshot in, plain objects out.
 *
 * Model. NIFTY options are European and cash-settled on the index, so each expiry is priced by
 * Black-76 on that expiry's forward F with discount factor D = e^(-rT):
 * - F: the future of the same expiry when one is followed (`future`); else implied by put-call
 *   parity, F = K + (C - P) / D, averaged over the (up to) three strikes nearest the spot where
 *   both legs have a usable price (`parity`); else the spot carried at the rate, S·e^(rT)
 *   (`spot_carry`, the last resort: it ignores dividends); else none, and no IV.
 * - T: calendar time to 15:30 IST on the expiry day, in years of 365 days (ACT/365 fixed, by the
 *   millisecond): the close is when the options stop trading and the settlement price is fixed.
 * - r: RISK_FREE_RATE, continuously compounded.
 * Implied volatility is solved on the undiscounted price (market price / D) by Jäckel's
 * "Let's Be Rational" (lets-be-rational.ts): from the mid of the best bid and ask, and from the
 * last traded price. Greeks use the mid's IV, else the last price's.
 *
 * Units in the output: volatilities are annualised fractions (0.125 is 12.5 %); delta and gamma are
 * with respect to the forward (futures) price, as Black-76 gives them and as a futures hedge needs
 * them; vega and rho are per 1 percentage point of volatility and of rate; theta is per calendar
 * day; prices rupees. A value that cannot be had is null with a reason beside it (REASONS), never
 * NaN and never an exception.
 */
import { SNAP, SNAP_HEADER, SUMMARY, SUMMARY_FIELDS, rowBase, type ChainGroup, type ChainLayout } from '../../src/core/chain-snapshot.ts';
import { black76Greeks, GREEK, GREEKS } from './black.ts';
import { impliedBlackVolatility } from './lets-be-rational.ts';
import { normCdf } from './normal.ts';

const YEAR_MS = 365 * 86_400_000;

/** Why a value is absent. */
export const REASONS = {
  no_tick: 'no tick has arrived for this instrument',
  stale: 'the quote is older than ANALYTICS_STALE_MS behind the chain\'s newest',
  no_bid: 'no bid (missing side)',
  no_ask: 'no ask (missing side)',
  crossed: 'the bid is above the ask',
  no_trade: 'no trade yet (last price 0)',
  expired: 'the expiry\'s close has passed',
  no_forward: 'no forward: neither a future of this expiry, nor both legs at a strike near the money, nor the spot',
  below_intrinsic: 'the price is below the discounted intrinsic value',
  no_time_value: 'the price equals the intrinsic value: no time value to solve for',
  above_bound: 'the price is at or above the no-arbitrage bound (the discounted forward for a call, strike for a put)',
  no_iv: 'no implied volatility from either the mid or the last price',
  not_reached: 'the followed strikes do not reach 25 delta on this side',
} as const;
export type Reason = keyof typeof REASONS;

export interface OptionAnalytics {
  token: number;
  symbol: string;
  strike: number;
  type: 'CE' | 'PE';
  price: number | null;
  bid: number | null;
  ask: number | null;
  mid: number | null;
  ivMid: number | null;
  ivMidReason: Reason | null;
  ivLast: number | null;
  ivLastReason: Reason | null;
  /** The IV the greeks use: 'mid', 'last', or null (no greeks). */
  greeksFrom: 'mid' | 'last' | null;
  delta: number | null;
  gamma: number | null;
  vega: number | null;
  theta: number | null;
  rho: number | null;
  oi: number | null;
  oiChangeDay: number | null;
  oiChangeInterval: number | null;
  volume: number | null;
}

export interface SmilePoint {
  strike: number;
  /** The out-of-the-money leg's IV (the call at and above the forward, the put below), else the other leg's. */
  iv: number;
  from: 'call' | 'put';
}

export interface ChainAnalytics {
  key: string;
  name: string;
  expiry: string;
  /** 0: the underlying's nearest followed expiry, 1: the next (the IV history's constant-rank series). */
  rank: number;
  /** Snapshot time, epoch ms, and refresh number. */
  asOf: number;
  seq: number;
  spot: number | null;
  forward: number | null;
  forwardSource: 'future' | 'parity' | 'spot_carry' | null;
  rate: number;
  /** Years to the expiry's close, ACT/365 calendar time. */
  timeToExpiry: number;
  atmStrike: number | null;
  atmIv: number | null;
  /** IV(25-delta call) - IV(25-delta put). */
  riskReversal25: number | null;
  /** (IV(25-delta call) + IV(25-delta put)) / 2 - ATM IV. */
  butterfly25: number | null;
  skewReason: Reason | null;
  /** One standard deviation to expiry: F · ATM IV · √T, rupees. */
  expectedMove: number | null;
  /** The ATM call's and put's mids (else last prices) added: the market's price of the move. */
  straddle: number | null;
  maxPain: number | null;
  pcrOi: number | null;
  pcrVolume: number | null;
  callOi: number;
  putOi: number;
  callVolume: number;
  putVolume: number;
  oiChangeDay: { call: number | null; put: number | null };
  oiChangeInterval: { call: number | null; put: number | null; intervalMs: number };
  /** The three strikes with the largest OI on each side, largest first. */
  topOi: { call: { strike: number; oi: number }[]; put: { strike: number; oi: number }[] };
  smile: SmilePoint[];
  options: OptionAnalytics[];
}

export interface Breadth {
  asOf: number;
  seq: number;
  total: number;
  /** Price above the previous close. */
  advances: number;
  declines: number;
  unchanged: number;
  /** Trading at the day's high (price ≥ high): making new day highs now. */
  atDayHigh: number;
  atDayLow: number;
  /** Stocks with no tick, or no previous close, yet. */
  noData: number;
  /** advances / declines; null with no declines. */
  advanceDeclineRatio: number | null;
}

export interface Analytics {
  groups: ChainAnalytics[];
  breadth: Breadth;
  /** SUMMARY_FIELDS per group (src/core/chain-snapshot.ts SUMMARY). */
  summary: Float64Array;
}

const scratch = new Float64Array(GREEKS);

function finite(x: number): number | null {
  return Number.isFinite(x) ? x : null;
}

/** IV of an undiscounted price, or the reason there is none. */
export function solveIv(undiscounted: number, F: number, K: number, T: number, call: boolean): number | Reason {
  const intrinsic = call ? F - K : K - F;
  if (undiscounted < intrinsic) return 'below_intrinsic';
  if (undiscounted === intrinsic || (intrinsic > 0 && undiscounted - intrinsic <= intrinsic * 1e-15)) return 'no_time_value';
  if (undiscounted >= (call ? F : K)) return 'above_bound';
  const v = impliedBlackVolatility(undiscounted, F, K, T, call);
  // Past the checks above the solver always converges; its sentinels (±max double) and any
  // non-finite value are still mapped rather than trusted.
  if (!(v > 0) || !Number.isFinite(v) || v > 1e6) return v <= 0 ? 'below_intrinsic' : 'above_bound';
  return v;
}

interface Leg {
  q: number;
  mid: number;
  midReason: Reason | null;
  last: number;
  lastReason: Reason | null;
}

/** Usable prices of the row at `b`: mid and last, each with its reason when unusable. */
function legOf(s: Float64Array, b: number, newest: number, staleMs: number): Leg {
  if (s[b + SNAP.HAS] !== 1) return { q: b, mid: NaN, midReason: 'no_tick', last: NaN, lastReason: 'no_tick' };
  if (newest - s[b + SNAP.EXCH_MS] > staleMs) return { q: b, mid: NaN, midReason: 'stale', last: NaN, lastReason: 'stale' };
  const bid = s[b + SNAP.BID];
  const ask = s[b + SNAP.ASK];
  let mid = NaN;
  let midReason: Reason | null = null;
  if (!(bid > 0) || !(s[b + SNAP.BID_QTY] > 0)) midReason = 'no_bid';
  else if (!(ask > 0) || !(s[b + SNAP.ASK_QTY] > 0)) midReason = 'no_ask';
  else if (bid > ask) midReason = 'crossed';
  else mid = (bid + ask) / 2;
  const last = s[b + SNAP.PRICE];
  return { q: b, mid, midReason, last: last > 0 ? last : NaN, lastReason: last > 0 ? null : 'no_trade' };
}

function forwardOf(g: ChainGroup, s: Float64Array, legs: Leg[], D: number, T: number, r: number, spot: number, newest: number, staleMs: number): { F: number; source: ChainAnalytics['forwardSource'] } {
  if (g.futureRow >= 0) {
    const b = rowBase(g.futureRow);
    if (s[b + SNAP.HAS] === 1 && s[b + SNAP.PRICE] > 0 && newest - s[b + SNAP.EXCH_MS] <= staleMs) return { F: s[b + SNAP.PRICE], source: 'future' };
  }
  // Parity at the strikes nearest the spot (or, with no spot, the middle of the chain).
  const pairs: { K: number; F: number; dist: number }[] = [];
  const opts = g.options;
  const centre = spot > 0 ? spot : opts.length > 0 ? opts[opts.length >> 1].strike : 0;
  for (let i = 0; i + 1 < opts.length; i++) {
    const c = opts[i];
    const p = opts[i + 1];
    if (!c.call || p.call || c.strike !== p.strike) continue;
    const lc = legs[i];
    const lp = legs[i + 1];
    const cp = lc.mid === lc.mid ? lc.mid : lc.last;
    const pp = lp.mid === lp.mid ? lp.mid : lp.last;
    if (!(cp > 0) || !(pp > 0)) continue;
    pairs.push({ K: c.strike, F: c.strike + (cp - pp) / D, dist: Math.abs(c.strike - centre) });
  }
  if (pairs.length > 0) {
    pairs.sort((a, b) => a.dist - b.dist);
    const n = Math.min(3, pairs.length);
    let sum = 0;
    for (let i = 0; i < n; i++) sum += pairs[i].F;
    const F = sum / n;
    if (F > 0) return { F, source: 'parity' };
  }
  if (spot > 0) return { F: spot * Math.exp(r * T), source: 'spot_carry' };
  return { F: NaN, source: null };
}

/** Linear interpolation of y over x (sorted ascending) at x0; the end value outside the range. */
function interp(xs: number[], ys: number[], x0: number): number {
  const n = xs.length;
  if (n === 0) return NaN;
  if (x0 <= xs[0]) return ys[0];
  if (x0 >= xs[n - 1]) return ys[n - 1];
  for (let i = 1; i < n; i++) {
    if (x0 <= xs[i]) {
      const w = (x0 - xs[i - 1]) / (xs[i] - xs[i - 1]);
      return ys[i - 1] + w * (ys[i] - ys[i - 1]);
    }
  }
  return ys[n - 1];
}

/** The smile's IV where the undiscounted call delta N(d1) (or put delta N(d1) - 1) equals `target`. */
function ivAtDelta(smile: SmilePoint[], F: number, T: number, call: boolean, target: number): number {
  // Deltas of the smile's points on one side of the forward, with each strike's own IV.
  const ds: number[] = [];
  const vs: number[] = [];
  for (const p of smile) {
    if (call ? p.strike < F : p.strike > F) continue;
    const sd = p.iv * Math.sqrt(T);
    const d1 = (Math.log(F / p.strike) + 0.5 * sd * sd) / sd;
    ds.push(call ? normCdf(d1) : normCdf(d1) - 1);
    vs.push(p.iv);
  }
  // Call deltas fall as the strike rises; put deltas (negative) fall toward -0.5 as it rises.
  for (let i = 1; i < ds.length; i++) {
    const a = ds[i - 1];
    const b = ds[i];
    if ((a - target) * (b - target) <= 0 && a !== b) return vs[i - 1] + ((target - a) / (b - a)) * (vs[i] - vs[i - 1]);
  }
  return NaN;
}

export function computeGroup(g: ChainGroup, layout: ChainLayout, s: Float64Array, summary: Float64Array, at: number): ChainAnalytics {
  const now = s[SNAP_HEADER.NOW_MS];
  const newest = s[SNAP_HEADER.NEWEST_MS];
  const r = layout.rate;
  const T = Math.max(0, (g.expiryCloseMs - now) / YEAR_MS);
  const D = Math.exp(-r * T);
  let spot = NaN;
  if (g.spotRow >= 0) {
    const b = rowBase(g.spotRow);
    if (s[b + SNAP.HAS] === 1 && s[b + SNAP.PRICE] > 0) spot = s[b + SNAP.PRICE];
  }
  const opts = g.options;
  const legs = opts.map((o) => legOf(s, rowBase(o.row), newest, layout.staleMs));
  const { F, source } = T > 0 ? forwardOf(g, s, legs, D, T, r, spot, newest, layout.staleMs) : { F: NaN, source: null };

  const out: OptionAnalytics[] = [];
  let callOi = 0, putOi = 0, callVol = 0, putVol = 0;
  let callDay = 0, putDay = 0, callInt = 0, putInt = 0;
  let hasDay = false, hasInt = false;
  const callIv = new Map<number, number>();
  const putIv = new Map<number, number>();
  const priceAt = new Map<string, number>();
  for (let i = 0; i < opts.length; i++) {
    const o = opts[i];
    const leg = legs[i];
    const b = leg.q;
    const has = s[b + SNAP.HAS] === 1;
    const oi = has ? s[b + SNAP.OI] : NaN;
    const vol = has ? s[b + SNAP.VOLUME] : NaN;
    const oiOpen = s[b + SNAP.OI_OPEN];
    const oiAgo = s[b + SNAP.OI_AGO];
    const dDay = has && oiOpen === oiOpen ? oi - oiOpen : NaN;
    const dInt = has && oiAgo === oiAgo ? oi - oiAgo : NaN;
    if (has) {
      if (o.call) { callOi += oi; callVol += vol; } else { putOi += oi; putVol += vol; }
      if (dDay === dDay) { hasDay = true; if (o.call) callDay += dDay; else putDay += dDay; }
      if (dInt === dInt) { hasInt = true; if (o.call) callInt += dInt; else putInt += dInt; }
    }
    let ivMid: number | Reason;
    let ivLast: number | Reason;
    if (T <= 0) ivMid = ivLast = 'expired';
    else if (!(F > 0)) ivMid = ivLast = 'no_forward';
    else {
      ivMid = leg.midReason ?? solveIv(leg.mid / D, F, o.strike, T, o.call);
      ivLast = leg.lastReason ?? solveIv(leg.last / D, F, o.strike, T, o.call);
    }
    const sigma = typeof ivMid === 'number' ? ivMid : typeof ivLast === 'number' ? ivLast : NaN;
    const from = typeof ivMid === 'number' ? 'mid' : typeof ivLast === 'number' ? 'last' : null;
    let delta = null, gamma = null, vega = null, theta = null, rho = null;
    if (from !== null) {
      black76Greeks(F, o.strike, T, r, sigma, o.call, scratch, 0);
      delta = finite(scratch[GREEK.DELTA]);
      gamma = finite(scratch[GREEK.GAMMA]);
      vega = finite(scratch[GREEK.VEGA] / 100);
      theta = finite(scratch[GREEK.THETA] / 365);
      rho = finite(scratch[GREEK.RHO] / 100);
      (o.call ? callIv : putIv).set(o.strike, sigma);
    }
    const usable = leg.mid === leg.mid ? leg.mid : leg.last;
    if (usable > 0) priceAt.set(`${o.strike}${o.call ? 'C' : 'P'}`, usable);
    out.push({
      token: o.token, symbol: o.symbol, strike: o.strike, type: o.call ? 'CE' : 'PE',
      price: has && s[b + SNAP.PRICE] > 0 ? s[b + SNAP.PRICE] : null,
      bid: has && s[b + SNAP.BID] > 0 ? s[b + SNAP.BID] : null,
      ask: has && s[b + SNAP.ASK] > 0 ? s[b + SNAP.ASK] : null,
      mid: finite(leg.mid),
      ivMid: typeof ivMid === 'number' ? ivMid : null,
      ivMidReason: typeof ivMid === 'number' ? null : ivMid,
      ivLast: typeof ivLast === 'number' ? ivLast : null,
      ivLastReason: typeof ivLast === 'number' ? null : ivLast,
      greeksFrom: from, delta, gamma, vega, theta, rho,
      oi: finite(oi), oiChangeDay: finite(dDay), oiChangeInterval: finite(dInt), volume: finite(vol),
    });
  }

  // The smile: the out-of-the-money leg at each strike (the liquid one), else the other.
  const strikes = [...new Set(opts.map((o) => o.strike))].sort((a, b) => a - b);
  const smile: SmilePoint[] = [];
  for (const k of strikes) {
    const c = callIv.get(k);
    const p = putIv.get(k);
    const otmCall = F > 0 && k >= F;
    const prefer = otmCall ? c : p;
    const other = otmCall ? p : c;
    if (prefer !== undefined) smile.push({ strike: k, iv: prefer, from: otmCall ? 'call' : 'put' });
    else if (other !== undefined) smile.push({ strike: k, iv: other, from: otmCall ? 'put' : 'call' });
  }
  const atmIv = F > 0 && smile.length > 0 ? interp(smile.map((p) => p.strike), smile.map((p) => p.iv), F) : NaN;
  let atmStrike = NaN;
  const centre = F > 0 ? F : spot;
  for (const k of strikes) if (!(Math.abs(k - centre) >= Math.abs(atmStrike - centre))) atmStrike = k;
  const c25 = F > 0 && T > 0 ? ivAtDelta(smile, F, T, true, 0.25) : NaN;
  const p25 = F > 0 && T > 0 ? ivAtDelta(smile, F, T, false, -0.25) : NaN;
  const skewOk = c25 === c25 && p25 === p25 && atmIv === atmIv;
  const ce = priceAt.get(`${atmStrike}C`);
  const pe = priceAt.get(`${atmStrike}P`);

  // Max pain: the settlement price (among the strikes) at which option holders would be paid least.
  let maxPain = NaN;
  if (callOi + putOi > 0) {
    let best = Infinity;
    for (const S of strikes) {
      let pain = 0;
      for (let i = 0; i < opts.length; i++) {
        const oi = out[i].oi ?? 0;
        if (oi === 0) continue;
        const K = opts[i].strike;
        pain += oi * (opts[i].call ? (S > K ? S - K : 0) : (K > S ? K - S : 0));
      }
      if (pain < best) {
        best = pain;
        maxPain = S;
      }
    }
  }

  const top = (call: boolean) => out.filter((o) => (o.type === 'CE') === call && (o.oi ?? 0) > 0)
    .sort((a, b) => (b.oi! - a.oi!) || a.strike - b.strike).slice(0, 3).map((o) => ({ strike: o.strike, oi: o.oi! }));

  const pcrOi = callOi > 0 ? putOi / callOi : NaN;
  const pcrVol = callVol > 0 ? putVol / callVol : NaN;
  summary[at + SUMMARY.ATM_IV] = atmIv;
  summary[at + SUMMARY.PCR_OI] = pcrOi;
  summary[at + SUMMARY.PCR_VOL] = pcrVol;
  summary[at + SUMMARY.FORWARD] = F;
  return {
    key: g.key, name: g.name, expiry: g.expiry, rank: g.rank, asOf: now, seq: s[SNAP_HEADER.SEQ],
    spot: finite(spot), forward: finite(F), forwardSource: F > 0 ? source : null, rate: r, timeToExpiry: T,
    atmStrike: finite(atmStrike), atmIv: finite(atmIv),
    riskReversal25: skewOk ? c25 - p25 : null,
    butterfly25: skewOk ? (c25 + p25) / 2 - atmIv : null,
    skewReason: skewOk ? null : atmIv === atmIv ? 'not_reached' : 'no_iv',
    expectedMove: F > 0 && atmIv === atmIv ? F * atmIv * Math.sqrt(T) : null,
    straddle: ce !== undefined && pe !== undefined ? ce + pe : null,
    maxPain: finite(maxPain),
    pcrOi: finite(pcrOi), pcrVolume: finite(pcrVol),
    callOi, putOi, callVolume: callVol, putVolume: putVol,
    oiChangeDay: { call: hasDay ? callDay : null, put: hasDay ? putDay : null },
    oiChangeInterval: { call: hasInt ? callInt : null, put: hasInt ? putInt : null, intervalMs: layout.oiIntervalMs },
    topOi: { call: top(true), put: top(false) },
    smile,
    options: out,
  };
}

export function computeBreadth(layout: ChainLayout, s: Float64Array): Breadth {
  let adv = 0, dec = 0, unch = 0, hi = 0, lo = 0, none = 0;
  for (const st of layout.stocks) {
    const b = rowBase(st.row);
    const price = s[b + SNAP.PRICE];
    const close = s[b + SNAP.CLOSE];
    if (s[b + SNAP.HAS] !== 1 || !(price > 0) || !(close > 0)) {
      none++;
      continue;
    }
    if (price > close) adv++;
    else if (price < close) dec++;
    else unch++;
    if (s[b + SNAP.HIGH] > 0 && price >= s[b + SNAP.HIGH]) hi++;
    if (s[b + SNAP.LOW] > 0 && price <= s[b + SNAP.LOW]) lo++;
  }
  return {
    asOf: s[SNAP_HEADER.NOW_MS], seq: s[SNAP_HEADER.SEQ], total: layout.stocks.length,
    advances: adv, declines: dec, unchanged: unch, atDayHigh: hi, atDayLow: lo, noData: none,
    advanceDeclineRatio: dec > 0 ? adv / dec : null,
  };
}

export function computeAnalytics(layout: ChainLayout, s: Float64Array): Analytics {
  const summary = new Float64Array(layout.groups.length * SUMMARY_FIELDS);
  const groups = layout.groups.map((g, i) => computeGroup(g, layout, s, summary, i * SUMMARY_FIELDS));
  return { groups, breadth: computeBreadth(layout, s), summary };
}
