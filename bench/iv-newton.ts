/**
 * The implied-volatility baseline for the analytics bench: what common npm IV packages do.
 * Newton-Raphson on vega from a fixed starting guess, with a bisection fallback inside a bracket
 * [1e−6, 5] whenever a Newton step would leave the bracket or vega vanishes; it stops when the
 * model price is within 1e−8 of the target (absolute, in price units) or after 100 iterations.
 *
 * To keep the comparison about the algorithm, it prices with the same accurate Φ as the analytics
 * (workers/analytics/normal.ts) rather than the 7-digit Abramowitz-Stegun 26.2.17 polynomial such
 * packages often carry, and on the same undiscounted Black price as impliedBlackVolatility.
 * No solution (a price outside (intrinsic, bound), bad inputs) gives NaN, as those packages do.
 */
import { normCdf, normPdf } from '../workers/analytics/normal.ts';

/** Bracket and stopping rule of the baseline. */
export const NEWTON = Object.freeze({
  LOW: 1e-6,
  HIGH: 5,
  START: 0.5,
  PRICE_TOLERANCE: 1e-8,
  MAX_ITERATIONS: 100,
});

let iterationsOfLastSolve = 0;

/** Iterations (model price evaluations) the last newtonImpliedVol took. */
export function newtonLastIterations(): number {
  return iterationsOfLastSolve;
}

/** Black volatility of an undiscounted price by Newton-Raphson with a bisection fallback; NaN if none. */
export function newtonImpliedVol(price: number, F: number, K: number, T: number, isCall: boolean): number {
  iterationsOfLastSolve = 0;
  if (!(T > 0 && F > 0 && K > 0) || !Number.isFinite(price)) return NaN;
  const intrinsic = Math.max(isCall ? F - K : K - F, 0);
  if (price < intrinsic || price >= (isCall ? F : K)) return NaN;
  const sqrtT = Math.sqrt(T);
  const lnFK = Math.log(F / K);
  let lo: number = NEWTON.LOW;
  let hi: number = NEWTON.HIGH;
  let sigma: number = NEWTON.START;
  while (iterationsOfLastSolve < NEWTON.MAX_ITERATIONS) {
    iterationsOfLastSolve++;
    const s = sigma * sqrtT;
    const d1 = lnFK / s + 0.5 * s;
    const d2 = d1 - s;
    const model = isCall ? F * normCdf(d1) - K * normCdf(d2) : K * normCdf(-d2) - F * normCdf(-d1);
    const diff = model - price;
    if (Math.abs(diff) < NEWTON.PRICE_TOLERANCE) return sigma;
    if (diff > 0) hi = sigma;
    else lo = sigma;
    const vega = F * normPdf(d1) * sqrtT;
    let next = sigma - diff / vega;
    if (!(vega > 0) || !(next > lo && next < hi)) next = 0.5 * (lo + hi);
    sigma = next;
  }
  return sigma;
}
