import { describe, expect, it } from 'vitest';
import { black76, black76Greeks, blackScholes, blackScholesGreeks, GREEK, GREEKS } from './black.ts';

const out = new Float64Array(GREEKS);

function b76(F: number, K: number, T: number, r: number, sigma: number, isCall: boolean): Float64Array {
  black76Greeks(F, K, T, r, sigma, isCall, out, 0);
  return out;
}

function bsm(S: number, K: number, T: number, r: number, q: number, sigma: number, isCall: boolean): Float64Array {
  blackScholesGreeks(S, K, T, r, q, sigma, isCall, out, 0);
  return out;
}

/** Rounds to the number of decimals a book prints, to compare "to the published digits". */
function rounded(x: number, decimals: number): number {
  return Number(x.toFixed(decimals));
}

describe('published values', () => {
  it('matches Hull\'s greeks example: S=49, K=50, r=5%, σ=20%, T=20 weeks', () => {
    // Hull, "Options, Futures, and Other Derivatives", chapter "The Greek Letters": the bank that
    // sold 100,000 European calls on a non-dividend-paying stock. Vega per 1.00 of volatility,
    // theta per year, rho per 1.00 of rate.
    const g = bsm(49, 50, 20 / 52, 0.05, 0, 0.2, true);
    expect(rounded(g[GREEK.PRICE], 2)).toBe(2.40);
    expect(rounded(g[GREEK.DELTA], 3)).toBe(0.522);
    expect(rounded(g[GREEK.GAMMA], 3)).toBe(0.066);
    expect(rounded(g[GREEK.VEGA], 1)).toBe(12.1);
    expect(rounded(g[GREEK.THETA], 2)).toBe(-4.31);
    expect(rounded(g[GREEK.RHO], 2)).toBe(8.91);
    expect(blackScholes(49, 50, 20 / 52, 0.05, 0, 0.2, true)).toBe(g[GREEK.PRICE]);
  });

  it('matches Hull\'s Black-Scholes-Merton and Black\'s-model examples', () => {
    // Hull, chapter "The Black-Scholes-Merton Model": S=42, K=40, r=10%, σ=20%, T=0.5: c = 4.76, p = 0.81.
    expect(rounded(blackScholes(42, 40, 0.5, 0.1, 0, 0.2, true), 2)).toBe(4.76);
    expect(rounded(blackScholes(42, 40, 0.5, 0.1, 0, 0.2, false), 2)).toBe(0.81);
    // Hull, chapter "Futures Options": a 4-month European put on crude oil futures, F=K=20, r=9%, σ=25%: 1.12.
    expect(rounded(black76(20, 20, 4 / 12, 0.09, 0.25, false), 2)).toBe(1.12);
  });

  it('matches Haug\'s chapter 1 examples: Black-76 call = put = 1.7011, Black-Scholes 2.1334, Merton put 2.4648', () => {
    // Haug, "The Complete Guide to Option Pricing Formulas" (2nd ed.), chapter 1.
    expect(rounded(black76(19, 19, 0.75, 0.1, 0.28, true), 4)).toBe(1.7011);
    expect(rounded(black76(19, 19, 0.75, 0.1, 0.28, false), 4)).toBe(1.7011);
    expect(rounded(blackScholes(60, 65, 0.25, 0.08, 0, 0.3, true), 4)).toBe(2.1334);
    expect(rounded(blackScholes(100, 95, 0.5, 0.1, 0.05, 0.2, false), 4)).toBe(2.4648);
  });

  it('matches Haug\'s chapter 2 greeks examples (delta, gamma, theta, rho)', () => {
    // Futures option delta: F=105, K=100, T=0.5, r=10%, σ=36%: call 0.5946, put −0.3566.
    expect(rounded(b76(105, 100, 0.5, 0.1, 0.36, true)[GREEK.DELTA], 4)).toBe(0.5946);
    expect(rounded(b76(105, 100, 0.5, 0.1, 0.36, false)[GREEK.DELTA], 4)).toBe(-0.3566);
    // Gamma: S=55, K=60, T=0.75, r=b=10%, σ=30%: 0.0278.
    expect(rounded(bsm(55, 60, 0.75, 0.1, 0, 0.3, true)[GREEK.GAMMA], 4)).toBe(0.0278);
    // Theta of a put on an index: S=430, K=405, T=0.0833, r=7%, b=2% (q=5%), σ=20%: −31.1924 per year.
    expect(rounded(bsm(430, 405, 0.0833, 0.07, 0.05, 0.2, false)[GREEK.THETA], 4)).toBe(-31.1924);
    // Rho: S=72, K=75, T=1, r=b=9%, σ=19%: call 38.7325.
    expect(rounded(bsm(72, 75, 1, 0.09, 0, 0.19, true)[GREEK.RHO], 4)).toBe(38.7325);
  });
});

const FORWARDS = [100, 26_000];
const MONEYNESS = [0.5, 0.8, 0.95, 1, 1.05, 1.25, 2];
const EXPIRIES = [1 / (365 * 24), 1 / 365, 7 / 365, 0.25, 1, 3];
const VOLS = [0.01, 0.05, 0.2, 0.8, 3];
const RATES = [-0.01, 0, 0.065];

describe('Black-76', () => {
  it('keeps put-call parity C − P = D·(F − K) to 1e−10 of the forward across the grid', () => {
    let worst = 0;
    for (const F of FORWARDS) for (const m of MONEYNESS) for (const T of EXPIRIES) for (const sigma of VOLS) for (const r of RATES) {
      const K = F * m;
      const gap = black76(F, K, T, r, sigma, true) - black76(F, K, T, r, sigma, false) - Math.exp(-r * T) * (F - K);
      worst = Math.max(worst, Math.abs(gap) / F);
    }
    expect(worst).toBeLessThan(1e-10 / 100); // i.e. better than 1e−10 absolute on a forward of 100
  });

  it('keeps delta parity Δc − Δp = D and equal gamma, vega across calls and puts', () => {
    for (const m of MONEYNESS) for (const T of EXPIRIES) for (const sigma of VOLS) {
      const F = 26_000;
      const K = F * m;
      const c = Float64Array.from(b76(F, K, T, 0.065, sigma, true));
      const p = b76(F, K, T, 0.065, sigma, false);
      expect(c[GREEK.DELTA] - p[GREEK.DELTA]).toBeCloseTo(Math.exp(-0.065 * T), 14);
      expect(c[GREEK.GAMMA]).toBe(p[GREEK.GAMMA]);
      expect(c[GREEK.VEGA]).toBe(p[GREEK.VEGA]);
    }
  });

  it('gives greeks equal to central finite differences of the price', () => {
    for (const F of [100, 26_000]) for (const m of [0.8, 0.97, 1, 1.03, 1.25]) for (const T of [2 / 365, 0.25, 1]) for (const sigma of [0.1, 0.3, 0.8]) for (const isCall of [true, false]) {
      const K = F * m;
      // Past about six standard deviations the price changes by orders of magnitude across any
      // usable step, so a difference quotient says nothing there; the closed forms are checked
      // out to the far wings by the theta/rho identity test and the parity tests.
      if (Math.abs(Math.log(F / K)) / (sigma * Math.sqrt(T)) > 6) continue;
      const r = 0.065;
      const g = Float64Array.from(b76(F, K, T, r, sigma, isCall));
      const V = (f: number, t: number, s: number, rr: number) => black76(f, K, t, rr, s, isCall);
      // Steps scale with the width of the price's kink, F·σ√T, and with σ and T themselves.
      const width = F * sigma * Math.sqrt(T);
      const hF = width * 1e-4;
      const hG = width * 1e-3;
      const hS = sigma * 1e-5;
      const hT = T * 1e-5;
      const hR = 1e-5;
      const fd = {
        delta: (V(F + hF, T, sigma, r) - V(F - hF, T, sigma, r)) / (2 * hF),
        gamma: (V(F + hG, T, sigma, r) - 2 * V(F, T, sigma, r) + V(F - hG, T, sigma, r)) / (hG * hG),
        vega: (V(F, T, sigma + hS, r) - V(F, T, sigma - hS, r)) / (2 * hS),
        theta: -(V(F, T + hT, sigma, r) - V(F, T - hT, sigma, r)) / (2 * hT),
        rho: (V(F, T, sigma, r + hR) - V(F, T, sigma, r - hR)) / (2 * hR),
      };
      const at = `F=${F} K=${K} T=${T} σ=${sigma} ${isCall ? 'call' : 'put'}`;
      // Tolerance: 1e−6 of the greek's size (truncation, O(h²)) plus the rounding a difference
      // quotient carries, 8·V·ε/hᵏ, which dominates where the greek itself is ~0.
      const noise = 8 * Math.max(V(F, T, sigma, r), 1e-300) * Number.EPSILON;
      const close = (got: number, want: number, scale: number, rounding: number, what: string) =>
        expect(Math.abs(got - want), `${what} ${at}`).toBeLessThan(1e-6 * scale + rounding);
      close(g[GREEK.DELTA], fd.delta, 1, noise / hF, 'delta');
      close(g[GREEK.GAMMA], fd.gamma, 10 * Math.abs(g[GREEK.GAMMA]), noise / (hG * hG), 'gamma');
      close(g[GREEK.VEGA], fd.vega, Math.abs(g[GREEK.VEGA]), noise / hS, 'vega');
      close(g[GREEK.THETA], fd.theta, Math.abs(g[GREEK.THETA]), noise / hT, 'theta');
      close(g[GREEK.RHO], fd.rho, Math.abs(g[GREEK.RHO]), noise / hR, 'rho');
      expect(g[GREEK.PRICE]).toBe(black76(F, K, T, r, sigma, isCall));
    }
  });

  it('gives theta = r·V − D·F·φ(d₁)·σ/(2√T) for calls and puts alike, and rho = −T·V', () => {
    const F = 26_000;
    const T = 30 / 365;
    const r = 0.065;
    for (const isCall of [true, false]) {
      const g = b76(F, 25_500, T, r, 0.15, isCall);
      const s = 0.15 * Math.sqrt(T);
      const d1 = Math.log(F / 25_500) / s + s / 2;
      const phi = Math.exp(-0.5 * d1 * d1) / Math.sqrt(2 * Math.PI);
      expect(g[GREEK.THETA]).toBeCloseTo(r * g[GREEK.PRICE] - (Math.exp(-r * T) * F * phi * 0.15) / (2 * Math.sqrt(T)), 9);
      expect(g[GREEK.RHO]).toBeCloseTo(-T * g[GREEK.PRICE], 12);
    }
  });

  it('writes one record at the given offset and leaves the rest of the buffer alone', () => {
    const buf = new Float64Array(3 * GREEKS).fill(-7);
    black76Greeks(26_000, 26_100, 0.1, 0.065, 0.14, true, buf, GREEKS);
    expect(Array.from(buf.subarray(0, GREEKS))).toEqual(new Array(GREEKS).fill(-7));
    expect(Array.from(buf.subarray(2 * GREEKS))).toEqual(new Array(GREEKS).fill(-7));
    expect(buf[GREEKS + GREEK.PRICE]).toBe(black76(26_000, 26_100, 0.1, 0.065, 0.14, true));
  });

  it('gives the discounted intrinsic value and limit greeks, never NaN, for an expired option or zero volatility', () => {
    const r = 0.065;
    const D = Math.exp(-r * 0.5);
    // Zero volatility, half a year to go: an ITM call is worth D·(F−K) with delta D; OTM is worth nothing.
    const v = D * 1000;
    let g = b76(26_000, 25_000, 0.5, r, 0, true);
    expect(Array.from(g)).toEqual([v, D, 0, 0, r * v, -0.5 * v]);
    g = b76(26_000, 25_000, 0.5, r, 0, false);
    expect(Array.from(g)).toEqual([0, -0, 0, 0, 0, -0]);
    g = b76(26_000, 27_000, 0.5, r, -0.2, false);
    expect(Array.from(g)).toEqual([v, -D, 0, 0, r * v, -0.5 * v]);
    // At the money the limit of Φ(d₁) is ½.
    expect(b76(26_000, 26_000, 0.5, r, 0, true)[GREEK.DELTA]).toBe(D / 2);
    expect(b76(26_000, 26_000, 0.5, r, 0, false)[GREEK.DELTA]).toBe(-D / 2);
    // Expired (T = 0) or past expiry (T < 0): undiscounted intrinsic, no time left for rho.
    for (const T of [0, -0.01]) {
      g = b76(26_000, 25_000, T, r, 0.2, true);
      expect(Array.from(g)).toEqual([1000, 1, 0, 0, r * 1000, -0]);
      expect(black76(26_000, 25_000, T, r, 0.2, true)).toBe(1000);
      expect(black76(26_000, 25_000, T, r, 0.2, false)).toBe(0);
    }
    // The limit values are the limits: a tiny volatility lands on them.
    const tiny = Float64Array.from(b76(26_000, 25_000, 0.5, r, 1e-6, true));
    const zero = b76(26_000, 25_000, 0.5, r, 0, true);
    for (let i = 0; i < GREEKS; i++) expect(tiny[i]).toBeCloseTo(zero[i], 9);
  });
});

describe('Black-Scholes-Merton', () => {
  it('keeps put-call parity C − P = S·e^{−qT} − K·e^{−rT} across the grid', () => {
    for (const S of FORWARDS) for (const m of MONEYNESS) for (const T of EXPIRIES) for (const sigma of VOLS) for (const q of [0, 0.013]) {
      const K = S * m;
      const r = 0.065;
      const gap = blackScholes(S, K, T, r, q, sigma, true) - blackScholes(S, K, T, r, q, sigma, false) -
        (S * Math.exp(-q * T) - K * Math.exp(-r * T));
      expect(Math.abs(gap) / S).toBeLessThan(1e-12);
    }
  });

  it('gives spot greeks equal to central finite differences of the price', () => {
    for (const m of [0.8, 1, 1.25]) for (const T of [7 / 365, 0.5, 2]) for (const sigma of [0.1, 0.4]) for (const isCall of [true, false]) {
      const S = 100;
      const K = S * m;
      const r = 0.05;
      const q = 0.02;
      const g = Float64Array.from(bsm(S, K, T, r, q, sigma, isCall));
      const V = (s: number, t: number, v: number, rr: number) => blackScholes(s, K, t, rr, q, v, isCall);
      const at = `K=${K} T=${T} σ=${sigma} ${isCall ? 'call' : 'put'}`;
      const hS = 1e-4 * S * sigma * Math.sqrt(T);
      const hG = 1e-2 * S * sigma * Math.sqrt(T);
      expect(g[GREEK.DELTA], at).toBeCloseTo((V(S + hS, T, sigma, r) - V(S - hS, T, sigma, r)) / (2 * hS), 7);
      expect(g[GREEK.GAMMA], at).toBeCloseTo((V(S + hG, T, sigma, r) - 2 * V(S, T, sigma, r) + V(S - hG, T, sigma, r)) / (hG * hG), 5);
      expect(g[GREEK.VEGA], at).toBeCloseTo((V(S, T, sigma + 1e-6, r) - V(S, T, sigma - 1e-6, r)) / 2e-6, 4);
      expect(g[GREEK.THETA], at).toBeCloseTo(-(V(S, T + 1e-6, sigma, r) - V(S, T - 1e-6, sigma, r)) / 2e-6, 4);
      expect(g[GREEK.RHO], at).toBeCloseTo((V(S, T, sigma, r + 1e-6) - V(S, T, sigma, r - 1e-6)) / 2e-6, 4);
    }
  });

  it('gives the discounted intrinsic value and limit greeks, never NaN, for an expired option or zero volatility', () => {
    const r = 0.05;
    const q = 0.02;
    const T = 0.5;
    const Dr = Math.exp(-r * T);
    const Dq = Math.exp(-q * T);
    const g = bsm(100, 90, T, r, q, 0, true);
    expect(g[GREEK.PRICE]).toBeCloseTo(100 * Dq - 90 * Dr, 12);
    expect(g[GREEK.DELTA]).toBe(Dq);
    expect(g[GREEK.GAMMA]).toBe(0);
    expect(g[GREEK.VEGA]).toBe(0);
    expect(g[GREEK.THETA]).toBeCloseTo(q * 100 * Dq - r * 90 * Dr, 12);
    expect(g[GREEK.RHO]).toBeCloseTo(90 * T * Dr, 12);
    for (const [S, K, t, s] of [[100, 90, 0, 0.2], [100, 110, -1, 0.2], [100, 110, 1, 0], [100, 100, 1, -1]]) {
      for (const isCall of [true, false]) {
        expect(Array.from(bsm(S, K, t, r, q, s, isCall)).some(Number.isNaN)).toBe(false);
        expect(Number.isNaN(blackScholes(S, K, t, r, q, s, isCall))).toBe(false);
      }
    }
    expect(blackScholes(100, 90, 0, r, q, 0.2, true)).toBe(10);
  });
});
