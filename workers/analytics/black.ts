/**
 * European option prices and greeks: Black-76 on the forward (what NIFTY options are valued on:
 * cash-settled, the future's price or the put-call-parity forward as F) and Black-Scholes-Merton
 * on spot with a dividend yield (for textbook checks).
 *
 * Prices go through Jäckel's normalised Black function (lets-be-rational.ts), so a deep
 * out-of-the-money price keeps its relative precision instead of being the difference of two
 * nearly equal terms, and the price an IV solve inverts is the price quoted here.
 *
 * The greeks functions write into a caller's Float64Array at an offset: they run for every
 * option every second, so they allocate nothing. Field table (one record = GREEKS doubles):
 *
 * | index | GREEK.  | Black-76 (F fixed, D = e^{−rT})               | Black-Scholes-Merton (S fixed)              |
 * |-------|---------|-----------------------------------------------|---------------------------------------------|
 * | 0     | PRICE   | V = D·[θF·Φ(θd₁) − θK·Φ(θd₂)]                 | V with F = S·e^{(r−q)T}                       |
 * | 1     | DELTA   | ∂V/∂F = D·Φ(d₁) call, D·(Φ(d₁) − 1) put       | ∂V/∂S = e^{−qT}·Φ(d₁), e^{−qT}·(Φ(d₁) − 1)  |
 * | 2     | GAMMA   | ∂²V/∂F² = D·φ(d₁)/(F·σ√T)                     | ∂²V/∂S² = e^{−qT}·φ(d₁)/(S·σ√T)             |
 * | 3     | VEGA    | ∂V/∂σ = D·F·φ(d₁)·√T, per 1.00 of volatility  | S·e^{−qT}·φ(d₁)·√T                          |
 * | 4     | THETA   | −∂V/∂T per year = r·V − D·F·φ(d₁)·σ/(2√T)      | −∂V/∂T per year (Hull's, with q)            |
 * | 5     | RHO     | ∂V/∂r = −T·V (the forward held fixed)          | ∂V/∂r = ±K·T·e^{−rT}·Φ(±d₂) (spot fixed)     |
 *
 * d₁ = ln(F/K)/(σ√T) + σ√T/2, d₂ = d₁ − σ√T, θ = +1 call, −1 put. Units are the caller's: per 1.00
 * of volatility, per year, per 1.00 of rate (divide by 100 for a vol or rate point, by 365 for a
 * calendar day).
 *
 * Degenerate inputs never give NaN. T ≤ 0 (expired: D = 1) or σ ≤ 0: the price is the
 * discounted intrinsic value and each greek is its limit as σ√T → 0: gamma and vega 0, delta
 * ±D (Black-76) or ±e^{−qT} (BSM) in the money and 0 out of it, half that exactly at the money
 * (the limit of Φ(d₁) there is ½); theta and rho are those of the discounted intrinsic value
 * (Black-76: r·V and −T·V; so an in-the-money option with r ≠ 0 keeps a carry theta), 0 out
 * of the money. NaN inputs give NaN.
 */
import { black } from './lets-be-rational.ts';
import { normCdf, normPdf } from './normal.ts';

/** Offsets of each greek in a record written by black76Greeks / blackScholesGreeks (table above). */
export const GREEK = Object.freeze({ PRICE: 0, DELTA: 1, GAMMA: 2, VEGA: 3, THETA: 4, RHO: 5 } as const);
/** Doubles per greeks record. */
export const GREEKS = 6;

/** Weight of the money side as σ√T → 0: 1 in the money, 0 out of it, ½ at the money. */
function moneyWeight(underlying: number, K: number, isCall: boolean): number {
  if (underlying === K) return 0.5;
  return (isCall ? underlying > K : underlying < K) ? 1 : 0;
}

/**
 * Black-76 price of a European option on a forward F: D·Black(F, K, σ, T) with D = e^{−rT}.
 * T in years, r continuously compounded, σ per √year.
 */
export function black76(F: number, K: number, T: number, r: number, sigma: number, isCall: boolean): number {
  if (T <= 0) return Math.max(isCall ? F - K : K - F, 0);
  return Math.exp(-r * T) * black(F, K, sigma, T, isCall);
}

/** Black-76 price and greeks (GREEK table) written to out[at … at+5]. Allocates nothing. */
export function black76Greeks(F: number, K: number, T: number, r: number, sigma: number, isCall: boolean,
  out: Float64Array, at: number): void {
  if (T <= 0 || sigma <= 0) {
    const tau = T > 0 ? T : 0;
    const D = Math.exp(-r * tau);
    const w = moneyWeight(F, K, isCall);
    const v = D * Math.max(isCall ? F - K : K - F, 0);
    out[at + GREEK.PRICE] = v;
    out[at + GREEK.DELTA] = (isCall ? w : -w) * D;
    out[at + GREEK.GAMMA] = 0;
    out[at + GREEK.VEGA] = 0;
    out[at + GREEK.THETA] = r * v;
    out[at + GREEK.RHO] = -tau * v;
    return;
  }
  const D = Math.exp(-r * T);
  const sqrtT = Math.sqrt(T);
  const s = sigma * sqrtT;
  const d1 = Math.log(F / K) / s + 0.5 * s;
  const v = D * black(F, K, sigma, T, isCall);
  const n1 = normPdf(d1);
  out[at + GREEK.PRICE] = v;
  // Φ(d₁) − 1 = −Φ(−d₁), taken directly so a deep in-the-money put's delta keeps its digits.
  out[at + GREEK.DELTA] = isCall ? D * normCdf(d1) : -D * normCdf(-d1);
  out[at + GREEK.GAMMA] = (D * n1) / (F * s);
  out[at + GREEK.VEGA] = D * F * n1 * sqrtT;
  out[at + GREEK.THETA] = r * v - (D * F * n1 * sigma) / (2 * sqrtT);
  out[at + GREEK.RHO] = -T * v;
}

/**
 * Black-Scholes-Merton price of a European option on spot S paying a continuous yield q:
 * e^{−rT}·Black(S·e^{(r−q)T}, K, σ, T).
 */
export function blackScholes(S: number, K: number, T: number, r: number, q: number, sigma: number,
  isCall: boolean): number {
  if (T <= 0) return Math.max(isCall ? S - K : K - S, 0);
  return Math.exp(-r * T) * black(S * Math.exp((r - q) * T), K, sigma, T, isCall);
}

/** Black-Scholes-Merton price and greeks with respect to spot (GREEK table) written to out[at … at+5]. */
export function blackScholesGreeks(S: number, K: number, T: number, r: number, q: number, sigma: number,
  isCall: boolean, out: Float64Array, at: number): void {
  if (T <= 0 || sigma <= 0) {
    const tau = T > 0 ? T : 0;
    const Dr = Math.exp(-r * tau);
    const Dq = Math.exp(-q * tau);
    const F = S * Math.exp((r - q) * tau);
    const w = moneyWeight(F, K, isCall);
    const sign = isCall ? 1 : -1;
    // The discounted intrinsic value ±(S·e^{−qT} − K·e^{−rT}) and its sensitivities, weighted.
    out[at + GREEK.PRICE] = Math.max(sign * (S * Dq - K * Dr), 0);
    out[at + GREEK.DELTA] = sign * w * Dq;
    out[at + GREEK.GAMMA] = 0;
    out[at + GREEK.VEGA] = 0;
    out[at + GREEK.THETA] = sign * w * (q * S * Dq - r * K * Dr);
    out[at + GREEK.RHO] = sign * w * K * tau * Dr;
    return;
  }
  const Dr = Math.exp(-r * T);
  const Dq = Math.exp(-q * T);
  const sqrtT = Math.sqrt(T);
  const s = sigma * sqrtT;
  const F = S * Math.exp((r - q) * T);
  const d1 = Math.log(F / K) / s + 0.5 * s;
  const d2 = d1 - s;
  const n1 = normPdf(d1);
  const decay = -(S * Dq * n1 * sigma) / (2 * sqrtT);
  out[at + GREEK.PRICE] = Dr * black(F, K, sigma, T, isCall);
  out[at + GREEK.GAMMA] = (Dq * n1) / (S * s);
  out[at + GREEK.VEGA] = S * Dq * n1 * sqrtT;
  if (isCall) {
    const N1 = normCdf(d1);
    const N2 = normCdf(d2);
    out[at + GREEK.DELTA] = Dq * N1;
    out[at + GREEK.THETA] = decay - r * K * Dr * N2 + q * S * Dq * N1;
    out[at + GREEK.RHO] = K * T * Dr * N2;
  } else {
    const N1 = normCdf(-d1);
    const N2 = normCdf(-d2);
    out[at + GREEK.DELTA] = -Dq * N1;
    out[at + GREEK.THETA] = decay + r * K * Dr * N2 - q * S * Dq * N1;
    out[at + GREEK.RHO] = -K * T * Dr * N2;
  }
}
