/**
 * Implied Black volatility by Peter Jäckel's "Let's Be Rational" (Wilmott, January 2015, pp. 40–53),
 * ported from his reference implementation (lets_be_rational.cpp and rationalcubic.cpp, the
 * 2013–2023 revision, which adds the complementary-price objective in the upper branch and
 * Householder(4) steps for extreme moneyness), cross-checked against the MIT-licensed Python port
 * py_lets_be_rational (vollib). The normal distribution and Cody's error functions are in
 * ./normal.ts.
 *
 * Jäckel's notice, which his licence asks to be preserved:
 *
 * ======================================================================================
 * Copyright © 2013-2023 Peter Jäckel.
 *
 * Permission to use, copy, modify, and distribute this software is freely granted,
 * provided that this notice is preserved.
 *
 * WARRANTY DISCLAIMER
 * The Software is provided "as is" without warranty of any kind, either express or implied,
 * including without limitation any implied warranties of condition, uninterrupted use,
 * merchantability, fitness for a particular purpose, or non-infringement.
 * ======================================================================================
 *
 * How it works, in Jäckel's normalised coordinates x = ln(F/K), s = σ√T, β = price/√(FK):
 * in-the-money prices lose their intrinsic value and become out-of-the-money ones (put-call
 * symmetry), puts become calls (x → −x), so every solve is an OTM call with x ≤ 0 and
 * 0 < β < b_max = e^{x/2}. Two points, s_l < s_c = √(2|x|) < s_u, cut (0, b_max) into four
 * segments; on each a rational cubic in a transformed variable gives a close initial guess, and
 * Householder(3) steps (Householder(4) for x below −190 or −580, depending on the segment) on an
 * objective chosen per segment (1/ln b in the lowest, ln(b_max − b) in the highest, b itself in
 * the middle two) reach the attainable machine accuracy. No bracketing loop, no tolerance to
 * tune: at most two steps (MAX_ITERATIONS, Jäckel's default TWO_ITERATIONS build), fewer when a
 * step is already below ε·s.
 *
 * Sentinels (returned instead of throwing or NaN; ivFailure() names them):
 *
 * | constant          | value             | when                                                        |
 * |-------------------|-------------------|-------------------------------------------------------------|
 * | BELOW_INTRINSIC   | −Number.MAX_VALUE | price < intrinsic max(θ(F−K), 0) (Jäckel's −DBL_MAX)         |
 * | ABOVE_MAXIMUM     | +Number.MAX_VALUE | price ≥ F for a call, ≥ K for a put (Jäckel's +DBL_MAX)      |
 * | INVALID_INPUT     | −Infinity         | T, F or K not > 0, or any of price, F, K, T not finite       |
 *
 * A price equal to intrinsic gives 0, as does a time value too small to be a normal double
 * relative to √(FK) (it cannot carry a volatility). Any real volatility is ≥ 0 and finite.
 *
 * Hot path: no object, array or closure is created per solve. The few functions that return two
 * or three numbers in the C++ (f and its derivatives, b/vega and ln vega) leave the extra results
 * in a module scratch Float64Array read straight after the call (a module-level `let` holding a
 * double would box a new heap number on every write); the module is single-threaded per worker.
 * What remains is V8's own boxing of doubles passed to or returned from the calls it does not
 * inline (the rational-cubic set-up, the expansions, Φ⁻¹): measured at about 0.2–0.8 KB of
 * short-lived heap numbers per solve, collected by scavenges of ~0.2 ms that cost about 3% of
 * solve time (bench/analytics-iv.ts counts them beside the Newton baseline's).
 */
import { erfc, erfcx, inverseNormCdf, normCdf, normPdf } from './normal.ts';

/** Returned for a price below intrinsic value (Jäckel's VOLATILITY_VALUE_TO_SIGNAL_PRICE_IS_BELOW_INTRINSIC). */
export const BELOW_INTRINSIC = -Number.MAX_VALUE;
/** Returned for a price at or above the upper bound F (call) or K (put) (Jäckel's …_IS_ABOVE_MAXIMUM). */
export const ABOVE_MAXIMUM = Number.MAX_VALUE;
/** Returned when T, F or K is not positive, or price, F, K or T is not finite (NaN included). */
export const INVALID_INPUT = -Infinity;

/** Jäckel's default iteration budget (his TWO_ITERATIONS setting). */
export const MAX_ITERATIONS = 2;

export type IvFailure = 'BELOW_INTRINSIC' | 'ABOVE_MAXIMUM' | 'INVALID_INPUT';

/** What each sentinel means and what the caller should do about it. */
export const IV_FAILURE_ADVICE: Readonly<Record<IvFailure, string>> = Object.freeze({
  BELOW_INTRINSIC:
    'the undiscounted price is below intrinsic value max(±(F−K), 0): no volatility fits; check the forward, the discounting and that the quote is not stale',
  ABOVE_MAXIMUM:
    'the undiscounted price is at or above F (call) or K (put), the price at infinite volatility: no volatility fits; check the forward and the discounting',
  INVALID_INPUT:
    'T, F and K must be positive and price, F, K, T finite: check the expiry (T in years, > 0) and the forward',
});

/** Why impliedBlackVolatility gave no volatility, or null when `vol` is a real volatility (≥ 0, finite). */
export function ivFailure(vol: number): IvFailure | null {
  if (vol === BELOW_INTRINSIC) return 'BELOW_INTRINSIC';
  if (vol === ABOVE_MAXIMUM) return 'ABOVE_MAXIMUM';
  if (vol >= 0 && vol < Infinity) return null;
  return 'INVALID_INPUT';
}

let iterationsOfLastSolve = 0;

/** Householder iterations the last impliedBlackVolatility / normalisedImpliedBlackVolatility took (0, 1 or 2). */
export function lastIterations(): number {
  return iterationsOfLastSolve;
}

// ---------------------------------------------------------------------------------------------
// Constants

const DBL_EPSILON = Number.EPSILON;
const DBL_MIN = 2.2250738585072014e-308;
const DBL_MAX = Number.MAX_VALUE;
const SQRT_DBL_EPSILON = Math.sqrt(DBL_EPSILON);
const FOURTH_ROOT_DBL_EPSILON = Math.sqrt(SQRT_DBL_EPSILON);
const EIGHTH_ROOT_DBL_EPSILON = Math.sqrt(FOURTH_ROOT_DBL_EPSILON);
const SIXTEENTH_ROOT_DBL_EPSILON = Math.sqrt(EIGHTH_ROOT_DBL_EPSILON);
const SQRT_DBL_MIN = Math.sqrt(DBL_MIN);
const SQRT_DBL_MAX = Math.sqrt(DBL_MAX);

const TWO_PI = 6.283185307179586476925286766559005768394338798750;
const SQRT_TWO_PI = 2.506628274631000502415765284811045253006986740610;
const ONE_OVER_SQRT_TWO_PI = 0.3989422804014326779399460599343818684758586311649;
const LN_TWO_PI = 1.8378770664093454835606594728112352797227949472756;
const SQRT_PI_OVER_TWO = 1.253314137315500251207882642405522626503493370305;
const ONE_OVER_SQRT_TWO = 0.7071067811865475244008443621048490392848359376887;
const SQRT_THREE = 1.732050807568877293527446341505872366942805253810;
const SQRT_ONE_OVER_THREE = 0.577350269189625764509148780501957455647601751270;
const TWO_PI_OVER_SQRT_TWENTY_SEVEN = 1.209199576156145233729385505094770488189377498728;
const SQRT_THREE_OVER_THIRD_ROOT_TWO_PI = 0.938643487427383566075051356115075878414688769574; // √3/∛(2π)
const PI_OVER_SIX = 0.523598775598298873077107230546583814032861566563;

/** η: below h = x/s = −10 the asymptotic expansion is accurate to 1.64e−16. */
const ASYMPTOTIC_EXPANSION_ACCURACY_THRESHOLD = -10;
/** τ = 2·ε^(1/16) ≈ 0.21: below t = s/2 the small-t expansion is accurate to ε. */
const SMALL_T_EXPANSION_THRESHOLD = 2 * SIXTEENTH_ROOT_DBL_EPSILON;

function square(x: number): number {
  return x * x;
}

// ---------------------------------------------------------------------------------------------
// The normalised Black function b(x, s) = Φ(x/s + s/2)·e^{x/2} − Φ(x/s − s/2)·e^{−x/2}

/** Normalised intrinsic value of a call (θ = 1) or put (θ = −1): |e^{x/2} − e^{−x/2}| on the money side, else 0. */
function normalisedIntrinsic(x: number, theta: number): number {
  if (theta * x <= 0) return 0;
  const x2 = x * x;
  // Taylor series of 2·sinh(x/2) where the exponentials would cancel; 98 = ∜92897280 from the last coefficient.
  if (x2 < 98 * FOURTH_ROOT_DBL_EPSILON) {
    return Math.abs(Math.max((theta < 0 ? -1 : 1) * x *
      (1 + x2 * (1 / 24 + x2 * (1 / 1920 + x2 * (1 / 322560 + (1 / 92897280) * x2)))), 0));
  }
  const bMax = Math.exp(0.5 * x);
  return Math.abs(Math.max((theta < 0 ? -1 : 1) * (bMax - 1 / bMax), 0));
}

/**
 * b/b' for h < η, t < |h| − |η| + τ by Abramowitz & Stegun (26.2.12): with r = (h+t)(h−t),
 * e = (t/h)², q = (h/r)², a 17th-order expansion in q (Jäckel's, coefficients verbatim).
 */
function asymptoticExpansionOfNormalisedBlackCallOverVega(h: number, t: number): number {
  const e = square(t / h);
  const r = (h + t) * (h - t);
  const q = square(h / r);
  const sum = 2.0 + q * (-6.0E0 - 2.0 * e + 3.0 * q * (1.0E1 + e * (2.0E1 + 2.0 * e) + 5.0 * q * (-1.4E1 + e * (-7.0E1 + e * (-4.2E1 - 2.0 * e)) + 7.0 * q * (1.8E1 + e * (1.68E2 + e * (2.52E2 + e * (7.2E1 + 2.0 * e))) + 9.0 * q * (-2.2E1 + e * (-3.3E2 + e * (-9.24E2 + e * (-6.6E2 + e * (-1.1E2 - 2.0 * e)))) + 1.1E1 * q * (2.6E1 + e * (5.72E2 + e * (2.574E3 + e * (3.432E3 + e * (1.43E3 + e * (1.56E2 + 2.0 * e))))) + 1.3E1 * q * (-3.0E1 + e * (-9.1E2 + e * (-6.006E3 + e * (-1.287E4 + e * (-1.001E4 + e * (-2.73E3 + e * (-2.1E2 - 2.0 * e)))))) + 1.5E1 * q * (3.4E1 + e * (1.36E3 + e * (1.2376E4 + e * (3.8896E4 + e * (4.862E4 + e * (2.4752E4 + e * (4.76E3 + e * (2.72E2 + 2.0 * e))))))) + 1.7E1 * q * (-3.8E1 + e * (-1.938E3 + e * (-2.3256E4 + e * (-1.00776E5 + e * (-1.84756E5 + e * (-1.51164E5 + e * (-5.4264E4 + e * (-7.752E3 + e * (-3.42E2 - 2.0 * e)))))))) + 1.9E1 * q * (4.2E1 + e * (2.66E3 + e * (4.0698E4 + e * (2.3256E5 + e * (5.8786E5 + e * (7.05432E5 + e * (4.0698E5 + e * (1.08528E5 + e * (1.197E4 + e * (4.2E2 + 2.0 * e))))))))) + 2.1E1 * q * (-4.6E1 + e * (-3.542E3 + e * (-6.7298E4 + e * (-4.90314E5 + e * (-1.63438E6 + e * (-2.704156E6 + e * (-2.288132E6 + e * (-9.80628E5 + e * (-2.01894E5 + e * (-1.771E4 + e * (-5.06E2 - 2.0 * e)))))))))) + 2.3E1 * q * (5.0E1 + e * (4.6E3 + e * (1.0626E5 + e * (9.614E5 + e * (4.08595E6 + e * (8.9148E6 + e * (1.04006E7 + e * (6.53752E6 + e * (2.16315E6 + e * (3.542E5 + e * (2.53E4 + e * (6.0E2 + 2.0 * e))))))))))) + 2.5E1 * q * (-5.4E1 + e * (-5.85E3 + e * (-1.6146E5 + e * (-1.77606E6 + e * (-9.37365E6 + e * (-2.607579E7 + e * (-4.01166E7 + e * (-3.476772E7 + e * (-1.687257E7 + e * (-4.44015E6 + e * (-5.9202E5 + e * (-3.51E4 + e * (-7.02E2 - 2.0 * e)))))))))))) + 2.7E1 * q * (5.8E1 + e * (7.308E3 + e * (2.3751E5 + e * (3.12156E6 + e * (2.003001E7 + e * (6.919458E7 + e * (1.3572783E8 + e * (1.5511752E8 + e * (1.0379187E8 + e * (4.006002E7 + e * (8.58429E6 + e * (9.5004E5 + e * (4.7502E4 + e * (8.12E2 + 2.0 * e))))))))))))) + 2.9E1 * q * (-6.2E1 + e * (-8.99E3 + e * (-3.39822E5 + e * (-5.25915E6 + e * (-4.032015E7 + e * (-1.6934463E8 + e * (-4.1250615E8 + e * (-6.0108039E8 + e * (-5.3036505E8 + e * (-2.8224105E8 + e * (-8.870433E7 + e * (-1.577745E7 + e * (-1.472562E6 + e * (-6.293E4 + e * (-9.3E2 - 2.0 * e)))))))))))))) + 3.1E1 * q * (6.6E1 + e * (1.0912E4 + e * (4.74672E5 + e * (8.544096E6 + e * (7.71342E7 + e * (3.8707344E8 + e * (1.14633288E9 + e * (2.07431664E9 + e * (2.33360622E9 + e * (1.6376184E9 + e * (7.0963464E8 + e * (1.8512208E8 + e * (2.7768312E7 + e * (2.215136E6 + e * (8.184E4 + e * (1.056E3 + 2.0 * e))))))))))))))) + 3.3E1 * (-7.0E1 + e * (-1.309E4 + e * (-6.49264E5 + e * (-1.344904E7 + e * (-1.4121492E8 + e * (-8.344518E8 + e * (-2.9526756E9 + e * (-6.49588632E9 + e * (-9.0751353E9 + e * (-8.1198579E9 + e * (-4.6399188E9 + e * (-1.6689036E9 + e * (-3.67158792E8 + e * (-4.707164E7 + e * (-3.24632E6 + e * (-1.0472E5 + e * (-1.19E3 - 2.0 * e))))))))))))))))) * q))))))))))))))));
  return Math.abs(Math.max((t / r) * sum, 0));
}

/**
 * b/b' for t < τ, h ≤ 0: a 12th-order expansion of Y(h+t) − Y(h−t) in t, Y(z) = Φ(z)/φ(z),
 * with a = 1 + h·Y(h) computed through erfcx so it keeps its digits as h → −∞.
 */
function smallTExpansionOfNormalisedBlackCallOverVega(h: number, t: number): number {
  const a = 1 + h * SQRT_PI_OVER_TWO * erfcx(-ONE_OVER_SQRT_TWO * h);
  const w = t * t;
  const h2 = h * h;
  const bOverVega = 2 * t * (a + w * ((-1 + 3 * a + a * h2) / 6 + w * ((-7 + 15 * a + h2 * (-1 + 10 * a + a * h2)) / 120 + w * ((-57 + 105 * a + h2 * (-18 + 105 * a + h2 * (-1 + 21 * a + a * h2))) / 5040 + w * ((-561 + 945 * a + h2 * (-285 + 1260 * a + h2 * (-33 + 378 * a + h2 * (-1 + 36 * a + a * h2)))) / 362880 + w * ((-6555 + 10395 * a + h2 * (-4680 + 17325 * a + h2 * (-840 + 6930 * a + h2 * (-52 + 990 * a + h2 * (-1 + 55 * a + a * h2))))) / 39916800 + ((-89055 + 135135 * a + h2 * (-82845 + 270270 * a + h2 * (-20370 + 135135 * a + h2 * (-1926 + 25740 * a + h2 * (-75 + 2145 * a + h2 * (-1 + 78 * a + a * h2)))))) * w) / 6227020800.0))))));
  return Math.abs(Math.max(bOverVega, 0));
}

/**
 * b(x, s) in the remaining region through erfc and erfcx, picking per term the form that costs
 * the fewest exponentials given Cody's branch at 0.46875 (Jäckel, 2017-02-18):
 * 2b = e^{x/2}·erfc(q1) − e^{−x/2}·erfc(q2), with erfc(q) = e^{−q²}·erfcx(q) where q ≥ 0.46875,
 * q1 = −(h+t)/√2, q2 = −(h−t)/√2.
 */
function normalisedBlackCallWithOptimalUseOfCodysFunctions(x: number, s: number): number {
  const CODYS_THRESHOLD = 0.46875;
  const h = x / s;
  const t = 0.5 * s;
  const q1 = -ONE_OVER_SQRT_TWO * (h + t);
  const q2 = -ONE_OVER_SQRT_TWO * (h - t);
  let twoB: number;
  if (q1 < CODYS_THRESHOLD) {
    if (q2 < CODYS_THRESHOLD) twoB = Math.exp(0.5 * x) * erfc(q1) - Math.exp(-0.5 * x) * erfc(q2);
    else twoB = Math.exp(0.5 * x) * erfc(q1) - Math.exp(-0.5 * (h * h + t * t)) * erfcx(q2);
  } else if (q2 < CODYS_THRESHOLD) {
    twoB = Math.exp(-0.5 * (h * h + t * t)) * erfcx(q1) - Math.exp(-0.5 * x) * erfc(q2);
  } else {
    twoB = Math.exp(-0.5 * (h * h + t * t)) * (erfcx(q1) - erfcx(q2));
  }
  return Math.abs(Math.max(0.5 * twoB, 0));
}

/** ∂b(x,s)/∂s = exp(−½((x/s)² + (s/2)²))/√(2π). */
function normalisedVegaOf(x: number, s: number): number {
  const ax = Math.abs(x);
  if (ax <= 0) return ONE_OVER_SQRT_TWO_PI * Math.exp(-0.125 * s * s);
  if (s <= 0 || s <= ax * SQRT_DBL_MIN) return 0;
  return ONE_OVER_SQRT_TWO_PI * Math.exp(-0.5 * (square(x / s) + square(0.5 * s)));
}

function lnNormalisedVega(x: number, s: number): number {
  if (Math.abs(x) <= 0) return -(LN_TWO_PI / 2) - 0.125 * (s * s);
  if (s <= 0) return -DBL_MAX;
  return -(LN_TWO_PI / 2) - 0.5 * (square(x / s) + square(0.5 * s));
}

function normalisedBlackCall(x: number, s: number): number {
  if (x > 0) return normalisedIntrinsic(x, 1) + normalisedBlackCall(-x, s); // in the money
  if (s <= 0) return normalisedIntrinsic(x, 1); // σ = 0: intrinsic value
  // h < η and t < τ + |h| − |η|, written without dividing by s.
  if (x < s * ASYMPTOTIC_EXPANSION_ACCURACY_THRESHOLD &&
    0.5 * s * s + x < s * (SMALL_T_EXPANSION_THRESHOLD + ASYMPTOTIC_EXPANSION_ACCURACY_THRESHOLD)) {
    return asymptoticExpansionOfNormalisedBlackCallOverVega(x / s, 0.5 * s) * normalisedVegaOf(x, s);
  }
  if (0.5 * s < SMALL_T_EXPANSION_THRESHOLD) {
    return smallTExpansionOfNormalisedBlackCallOverVega(x / s, 0.5 * s) * normalisedVegaOf(x, s);
  }
  return normalisedBlackCallWithOptimalUseOfCodysFunctions(x, s);
}

/**
 * Extra results of the functions below, by slot: LN_VEGA from normalisedBlackCallOverVegaAndLnVega;
 * F_MAP, FP_MAP, FPP_MAP (f and its first two derivatives in b) from the lower and upper maps.
 */
const scratch = new Float64Array(4);
const LN_VEGA = 0;
const F_MAP = 1;
const FP_MAP = 2;
const FPP_MAP = 3;

/**
 * b/b' and (in scratch[LN_VEGA]) ln b': the lowest branch works with ln b, and b/b' stays finite
 * where b and b' both underflow.
 */
function normalisedBlackCallOverVegaAndLnVega(x: number, s: number): number {
  if (x > 0) {
    const bx = normalisedBlackCallOverVegaAndLnVega(-x, s); // ln b' is even in x
    return normalisedIntrinsic(x, 1) * Math.exp(-scratch[LN_VEGA]) + bx;
  }
  const lnVega = lnNormalisedVega(x, s);
  scratch[LN_VEGA] = lnVega;
  if (s <= 0) return 0; // OTM at σ = 0: b = 0 (the C++ would give 0·∞ here)
  if (x < s * ASYMPTOTIC_EXPANSION_ACCURACY_THRESHOLD &&
    0.5 * s * s + x < s * (SMALL_T_EXPANSION_THRESHOLD + ASYMPTOTIC_EXPANSION_ACCURACY_THRESHOLD)) {
    return asymptoticExpansionOfNormalisedBlackCallOverVega(x / s, 0.5 * s);
  }
  if (0.5 * s < SMALL_T_EXPANSION_THRESHOLD) return smallTExpansionOfNormalisedBlackCallOverVega(x / s, 0.5 * s);
  return normalisedBlackCallWithOptimalUseOfCodysFunctions(x, s) * Math.exp(-lnVega);
}

// ---------------------------------------------------------------------------------------------
// Rational cubic interpolation: Delbourgo & Gregory, "Shape preserving piecewise rational
// interpolation", SIAM J. Sci. Stat. Comput. 6(4), 1985 (Jäckel's rationalcubic.cpp).

const MINIMUM_RATIONAL_CUBIC_CONTROL_PARAMETER_VALUE = -(1 - Math.sqrt(DBL_EPSILON));
const MAXIMUM_RATIONAL_CUBIC_CONTROL_PARAMETER_VALUE = 2 / (DBL_EPSILON * DBL_EPSILON);

function isZero(x: number): boolean {
  return Math.abs(x) < DBL_MIN;
}

function rationalCubicInterpolation(x: number, xL: number, xR: number, yL: number, yR: number, dL: number,
  dR: number, r: number): number {
  const h = xR - xL;
  if (Math.abs(h) <= 0) return 0.5 * (yL + yR);
  // r should be > −1; no assertion so that NaN propagates as it should.
  const t = (x - xL) / h;
  if (!(r >= MAXIMUM_RATIONAL_CUBIC_CONTROL_PARAMETER_VALUE)) {
    const omt = 1 - t;
    const t2 = t * t;
    const omt2 = omt * omt;
    // Formula (2.4) divided by formula (2.5)
    return (yR * t2 * t + (r * yR - h * dR) * t2 * omt + (r * yL + h * dL) * t * omt2 + yL * omt2 * omt) /
      (1 + (r - 3) * t * omt);
  }
  // Linear interpolation without over- or underflow.
  return yR * t + yL * (1 - t);
}

function rationalCubicControlParameterToFitSecondDerivativeAtLeftSide(xL: number, xR: number, yL: number, yR: number,
  dL: number, dR: number, secondDerivativeL: number): number {
  const h = xR - xL;
  const numerator = 0.5 * h * secondDerivativeL + (dR - dL);
  if (isZero(numerator)) return 0;
  const denominator = (yR - yL) / h - dL;
  if (isZero(denominator)) {
    return numerator > 0 ? MAXIMUM_RATIONAL_CUBIC_CONTROL_PARAMETER_VALUE : MINIMUM_RATIONAL_CUBIC_CONTROL_PARAMETER_VALUE;
  }
  return numerator / denominator;
}

function rationalCubicControlParameterToFitSecondDerivativeAtRightSide(xL: number, xR: number, yL: number, yR: number,
  dL: number, dR: number, secondDerivativeR: number): number {
  const h = xR - xL;
  const numerator = 0.5 * h * secondDerivativeR + (dR - dL);
  if (isZero(numerator)) return 0;
  const denominator = dR - (yR - yL) / h;
  if (isZero(denominator)) {
    return numerator > 0 ? MAXIMUM_RATIONAL_CUBIC_CONTROL_PARAMETER_VALUE : MINIMUM_RATIONAL_CUBIC_CONTROL_PARAMETER_VALUE;
  }
  return numerator / denominator;
}

function minimumRationalCubicControlParameter(dL: number, dR: number, s: number,
  preferShapePreservationOverSmoothness: boolean): number {
  const monotonic = dL * s >= 0 && dR * s >= 0;
  const convex = dL <= s && s <= dR;
  const concave = dL >= s && s >= dR;
  if (!monotonic && !convex && !concave) return MINIMUM_RATIONAL_CUBIC_CONTROL_PARAMETER_VALUE;
  const dRmdL = dR - dL;
  const dRms = dR - s;
  const smdL = s - dL;
  let r1 = -DBL_MAX;
  let r2 = r1;
  // If monotonicity on this interval is possible, set r1 to satisfy the monotonicity condition (3.8).
  if (monotonic) {
    if (!isZero(s)) r1 = (dR + dL) / s;
    else if (preferShapePreservationOverSmoothness) r1 = MAXIMUM_RATIONAL_CUBIC_CONTROL_PARAMETER_VALUE;
  }
  if (convex || concave) {
    if (!(isZero(smdL) || isZero(dRms))) r2 = Math.max(Math.abs(dRmdL / dRms), Math.abs(dRmdL / smdL)); // (3.18)
    else if (preferShapePreservationOverSmoothness) r2 = MAXIMUM_RATIONAL_CUBIC_CONTROL_PARAMETER_VALUE;
  } else if (monotonic && preferShapePreservationOverSmoothness) {
    r2 = MAXIMUM_RATIONAL_CUBIC_CONTROL_PARAMETER_VALUE;
  }
  return Math.max(MINIMUM_RATIONAL_CUBIC_CONTROL_PARAMETER_VALUE, Math.max(r1, r2));
}

function convexRationalCubicControlParameterToFitSecondDerivativeAtLeftSide(xL: number, xR: number, yL: number,
  yR: number, dL: number, dR: number, secondDerivativeL: number, preferShapePreservationOverSmoothness: boolean): number {
  const r = rationalCubicControlParameterToFitSecondDerivativeAtLeftSide(xL, xR, yL, yR, dL, dR, secondDerivativeL);
  const rMin = minimumRationalCubicControlParameter(dL, dR, (yR - yL) / (xR - xL), preferShapePreservationOverSmoothness);
  return Math.max(r, rMin);
}

function convexRationalCubicControlParameterToFitSecondDerivativeAtRightSide(xL: number, xR: number, yL: number,
  yR: number, dL: number, dR: number, secondDerivativeR: number, preferShapePreservationOverSmoothness: boolean): number {
  const r = rationalCubicControlParameterToFitSecondDerivativeAtRightSide(xL, xR, yL, yR, dL, dR, secondDerivativeR);
  const rMin = minimumRationalCubicControlParameter(dL, dR, (yR - yL) / (xR - xL), preferShapePreservationOverSmoothness);
  return Math.max(r, rMin);
}

// ---------------------------------------------------------------------------------------------
// The transformations of the lowest and highest segments (section 4 of the paper)

/** f_l(s) = 2π/√27·|x|·Φ(−z)³ with z = |x|/(√3·s), and its first two derivatives with respect to b. */
function computeFLowerMapAndFirstTwoDerivatives(x: number, s: number): void {
  const ax = Math.abs(x);
  const z = (SQRT_ONE_OVER_THREE * ax) / s;
  const y = z * z;
  const s2 = s * s;
  const Phi = normCdf(-z);
  const phi = normPdf(z);
  scratch[FPP_MAP] = ((PI_OVER_SIX * y) / (s2 * s)) * Phi *
    (8 * SQRT_THREE * s * ax + ((3 * s2 * (s2 - 8) - 8 * x * x) * Phi) / phi) * Math.exp(2 * y + 0.25 * s2);
  const Phi2 = Phi * Phi;
  scratch[FP_MAP] = TWO_PI * y * Phi2 * Math.exp(y + 0.125 * s * s);
  scratch[F_MAP] = TWO_PI_OVER_SQRT_TWENTY_SEVEN * ax * (Phi2 * Phi);
}

/** Formula (4.38), with cube roots taken apart to avoid the underflow of f/|x| when f ≈ DBL_MIN. */
function inverseFLowerMap(x: number, f: number): number {
  return Math.abs(x / (SQRT_THREE * inverseNormCdf((SQRT_THREE_OVER_THIRD_ROOT_TWO_PI * Math.cbrt(f)) / Math.cbrt(Math.abs(x)))));
}

/** f_u(s) = Φ(−s/2) and its first two derivatives with respect to b. */
function computeFUpperMapAndFirstTwoDerivatives(x: number, s: number): void {
  scratch[F_MAP] = normCdf(-0.5 * s);
  const w = square(x / s);
  scratch[FP_MAP] = -0.5 * Math.exp(0.5 * w);
  scratch[FPP_MAP] = (SQRT_PI_OVER_TWO * Math.exp(w + 0.125 * s * s) * w) / s;
}

function inverseFUpperMap(f: number): number {
  return -2 * inverseNormCdf(f);
}

/** Householder(3) factor: s += ν·(1 + ν·h₂/2)/(1 + ν·(h₂ + ν·h₃/6)). */
function householder3Factor(nu: number, hh2: number, hh3: number): number {
  return (1 + 0.5 * hh2 * nu) / (1 + nu * (hh2 + (hh3 * nu) / 6));
}

/** Householder(4) factor (5th order), used only for extreme moneyness. */
function householder4Factor(nu: number, hh2: number, hh3: number, hh4: number): number {
  return (1 + nu * (hh2 + (nu * hh3) / 6)) / (1 + nu * (1.5 * hh2 + nu * ((hh2 * hh2) / 4 + hh3 / 3 + (nu * hh4) / 24)));
}

// ---------------------------------------------------------------------------------------------
// The solver

/**
 * Normalised implied volatility s for β > 0 already checked against intrinsic (Jäckel's
 * unchecked_normalised_implied_volatility_from_a_transformed_rational_guess_with_limited_iterations).
 * Sets iterationsOfLastSolve.
 */
function uncheckedNormalisedImpliedVolatility(beta: number, x: number, theta: number, N: number): number {
  iterationsOfLastSolve = 0;
  // Subtract intrinsic.
  if (theta * x > 0) {
    beta = Math.abs(Math.max(beta - normalisedIntrinsic(x, theta), 0));
    theta = -theta;
  }
  // Map puts to calls.
  if (theta < 0) {
    x = -x;
    theta = -theta;
  }
  if (!(beta > 0)) return 0; // zero (or negative) time value
  const bMax = Math.exp(0.5 * x);
  if (beta >= bMax) return ABOVE_MAXIMUM;
  let iterations = 0;
  let f = -DBL_MAX;
  let s = -DBL_MAX;
  let ds = -DBL_MAX;
  let sLeft = DBL_MIN;
  let sRight = DBL_MAX;
  const sC = Math.sqrt(Math.abs(2 * x));
  const bC = normalisedBlackCall(x, sC);
  const vC = normalisedVegaOf(x, sC);
  if (beta < bC) {
    const sL = sC - bC / vC;
    const bL = normalisedBlackCall(x, sL);
    if (beta < bL) {
      // Lowest segment: guess from the rational cubic in f_l, objective g(s) = 1/ln b(s) − 1/ln β.
      computeFLowerMapAndFirstTwoDerivatives(x, sL);
      const fLowerMapL = scratch[F_MAP];
      const dFLowerMapLDBeta = scratch[FP_MAP];
      const d2FLowerMapLDBeta2 = scratch[FPP_MAP];
      const rLL = convexRationalCubicControlParameterToFitSecondDerivativeAtRightSide(0, bL, 0, fLowerMapL, 1,
        dFLowerMapLDBeta, d2FLowerMapLDBeta2, true);
      f = rationalCubicInterpolation(beta, 0, bL, 0, fLowerMapL, 1, dFLowerMapLDBeta, rLL);
      if (!(f > 0)) {
        // Roundoff for extreme values such as |x| > 500: quadratic through f(0) = 0, f(b_l), f'(0) = 1.
        const t = beta / bL;
        f = (fLowerMapL * t + bL * (1 - t)) * t;
      }
      s = inverseFLowerMap(x, f);
      sRight = sL;
      //   ν  = −g/g'    = (ln β − ln b)·ln b/ln β · b/b'
      //   h₂ = g''/g'   = b''/b' − b'/b·(1 + 2λ),   λ = 1/ln b
      //   h₃ = g'''/g'  = b'''/b' + (b'/b)²·(2 + 6λ(1+λ)) − (b''/b)·3·(1+2λ)
      const lnBeta = Math.log(beta);
      for (; iterations < N && Math.abs(ds) > DBL_EPSILON * s; ++iterations) {
        const bx = normalisedBlackCallOverVegaAndLnVega(x, s);
        const lnB = Math.log(bx) + scratch[LN_VEGA];
        const bpob = 1 / bx;
        const h = x / s;
        const bHh2 = (h * h) / s - s / 4;
        const nu = ((lnBeta - lnB) * lnB) / lnBeta / bpob;
        const lambda = 1 / lnB;
        const otlambda = 1 + 2 * lambda;
        const hh2 = bHh2 - bpob * otlambda;
        const c = 3 * square(h / s);
        const bHh3 = bHh2 * bHh2 - c - 0.25;
        const sqBpob = square(bpob);
        const bppob = bHh2 * bpob;
        const mu = 6 * lambda * (1 + lambda);
        const hh3 = bHh3 + sqBpob * (2 + mu) - bppob * 3 * otlambda;
        if (x < -190) {
          // Jäckel (2023-12-14): two Householder(3) steps leave a residual error for moneyness
          // beyond e^{−190}; two Householder(4) steps do not.
          const hh4 = (bHh2 * (bHh3 - 0.5) - (bHh2 - 2 / s) * 2 * c) -
            bpob * (sqBpob * (6 + lambda * (22 + lambda * (36 + lambda * 24))) - bppob * (12 + 6 * mu)) -
            bppob * bHh2 * 3 * otlambda - bHh3 * bpob * 4 * otlambda;
          ds = nu * householder4Factor(nu, hh2, hh3, hh4);
        } else {
          ds = nu * householder3Factor(nu, hh2, hh3);
        }
        // Never leave the branch (or bracket).
        const next = Math.max(sLeft, Math.min(sRight, s + ds));
        ds = next - s;
        s = next;
      }
      iterationsOfLastSolve = iterations;
      return s;
    }
    const vL = normalisedVegaOf(x, sL);
    const rLm = convexRationalCubicControlParameterToFitSecondDerivativeAtRightSide(bL, bC, sL, sC, 1 / vL, 1 / vC, 0, false);
    s = rationalCubicInterpolation(beta, bL, bC, sL, sC, 1 / vL, 1 / vC, rLm);
    sLeft = sL;
    sRight = sC;
  } else {
    const sU = vC > DBL_MIN ? sC + (bMax - bC) / vC : sC;
    const bU = normalisedBlackCall(x, sU);
    if (beta <= bU) {
      const vU = normalisedVegaOf(x, sU);
      const rUm = convexRationalCubicControlParameterToFitSecondDerivativeAtLeftSide(bC, bU, sC, sU, 1 / vC, 1 / vU, 0, false);
      s = rationalCubicInterpolation(beta, bC, bU, sC, sU, 1 / vC, 1 / vU, rUm);
      sLeft = sC;
      sRight = sU;
    } else {
      // Highest segment, β ∈ (b_u, b_max).
      computeFUpperMapAndFirstTwoDerivatives(x, sU);
      const fUpperMapH = scratch[F_MAP];
      const dFUpperMapHDBeta = scratch[FP_MAP];
      const d2FUpperMapHDBeta2 = scratch[FPP_MAP];
      if (d2FUpperMapHDBeta2 > -SQRT_DBL_MAX && d2FUpperMapHDBeta2 < SQRT_DBL_MAX) {
        const rUu = convexRationalCubicControlParameterToFitSecondDerivativeAtLeftSide(bU, bMax, fUpperMapH, 0,
          dFUpperMapHDBeta, -0.5, d2FUpperMapHDBeta2, true);
        f = rationalCubicInterpolation(beta, bU, bMax, fUpperMapH, 0, dFUpperMapHDBeta, -0.5, rUu);
      }
      if (f <= 0) {
        // Quadratic through f(b_u), f(b_max) = 0 and f'(b_max) = −1/2.
        const h = bMax - bU;
        const t = (beta - bU) / h;
        f = (fUpperMapH * (1 - t) + 0.5 * h * t) * (1 - t);
      }
      s = inverseFUpperMap(f);
      sLeft = sU;
      if (beta > 0.5 * bMax) {
        // Objective g(s) = ln(b_max − β) − ln(b_max − b(s)), with the complementary price
        // b̄ = b_max − b = √(π/2)·[erfcx((t+h)/√2) + erfcx((t−h)/√2)]·b' computed without any
        // subtraction (Jäckel, 2023-12-10). With g' = b'/b̄:
        //   ν = ln(b̄/β̄)·b̄/b',  h₂ = b''/b' + g',  h₃ = b'''/b' + g'·(2g' + 3b''/b').
        const betaBar = bMax - beta;
        for (; iterations < N && Math.abs(ds) > DBL_EPSILON * s; ++iterations) {
          const h = x / s;
          const t = s / 2;
          const gp = (2 / SQRT_TWO_PI) / (erfcx((t + h) * ONE_OVER_SQRT_TWO) + erfcx((t - h) * ONE_OVER_SQRT_TWO));
          const bBar = normalisedVegaOf(x, s) / gp;
          const g = Math.log(betaBar / bBar);
          const bHh2 = (h * h) / s - s / 4;
          const c = 3 * square(h / s);
          const bHh3 = bHh2 * bHh2 - c - 0.25;
          const nu = -g / gp;
          const hh2 = bHh2 + gp;
          const hh3 = bHh3 + gp * (2 * gp + 3 * bHh2);
          if (x < -580) {
            // As in the lowest segment, Householder(4) past moneyness e^{−580} (Jäckel, 2023-12-14).
            const hh4 = (bHh2 * (bHh3 - 0.5) - (bHh2 - 2 / s) * 2 * c) + gp * (6 * gp * (gp + 2 * bHh2) + 3 * bHh2 * bHh2 + 4 * bHh3);
            ds = nu * householder4Factor(nu, hh2, hh3, hh4);
          } else {
            ds = nu * householder3Factor(nu, hh2, hh3);
          }
          const next = Math.max(sLeft, Math.min(sRight, s + ds));
          ds = next - s;
          s = next;
        }
        iterationsOfLastSolve = iterations;
        return s;
      }
    }
  }
  // The two middle segments: objective g(s) = b(s) − β,
  //   ν = (β − b)/b',  h₂ = b''/b' = x²/s³ − s/4,  h₃ = b'''/b' = h₂² − 3x²/s⁴ − 1/4.
  for (; iterations < N && Math.abs(ds) > DBL_EPSILON * s; ++iterations) {
    const b = normalisedBlackCall(x, s);
    const bp = normalisedVegaOf(x, s);
    const nu = (beta - b) / bp;
    const h = x / s;
    const hh2 = (h * h) / s - s / 4;
    const hh3 = hh2 * hh2 - 3 * square(h / s) - 0.25;
    ds = nu * householder3Factor(nu, hh2, hh3);
    const next = Math.max(sLeft, Math.min(sRight, s + ds));
    ds = next - s;
    s = next;
  }
  iterationsOfLastSolve = iterations;
  return s;
}

// ---------------------------------------------------------------------------------------------
// Public API

/**
 * Black's implied volatility σ of an undiscounted European option price (the market price
 * divided by the discount factor): the σ with black(F, K, σ, T, isCall) = price.
 * Converges to the attainable machine accuracy in at most two iterations (lastIterations()).
 * Returns a sentinel (BELOW_INTRINSIC, ABOVE_MAXIMUM, INVALID_INPUT; see ivFailure) when no
 * volatility fits; never NaN, never throws. A price equal to intrinsic gives 0.
 */
export function impliedBlackVolatility(price: number, F: number, K: number, T: number, isCall: boolean): number {
  iterationsOfLastSolve = 0;
  if (!(T > 0 && F > 0 && K > 0 && T < Infinity && F < Infinity && K < Infinity) || !Number.isFinite(price)) {
    return INVALID_INPUT;
  }
  const intrinsic = Math.abs(Math.max(isCall ? F - K : K - F, 0));
  if (price < intrinsic) return BELOW_INTRINSIC;
  const maxPrice = isCall ? F : K;
  if (price >= maxPrice) return ABOVE_MAXIMUM;
  const x = Math.log(F / K);
  let theta = isCall ? 1 : -1;
  // Map in-the-money to out-of-the-money.
  if (theta * x > 0) {
    price = Math.abs(Math.max(price - intrinsic, 0));
    theta = -theta;
  }
  const s = uncheckedNormalisedImpliedVolatility(price / (Math.sqrt(F) * Math.sqrt(K)), x, theta, MAX_ITERATIONS);
  if (s === ABOVE_MAXIMUM) return ABOVE_MAXIMUM; // β rounded onto b_max after normalisation
  return s / Math.sqrt(T);
}

/**
 * Normalised implied volatility s = σ√T from a normalised price β = price/√(FK) and x = ln(F/K)
 * (Jäckel's NormalisedImpliedBlackVolatility). Same sentinels as impliedBlackVolatility; INVALID_INPUT
 * when β or x is not finite.
 */
export function normalisedImpliedBlackVolatility(beta: number, x: number, isCall: boolean): number {
  iterationsOfLastSolve = 0;
  if (!Number.isFinite(beta) || !Number.isFinite(x)) return INVALID_INPUT;
  let theta = isCall ? 1 : -1;
  if (theta * x > 0) {
    beta -= normalisedIntrinsic(x, theta);
    theta = -theta;
  }
  if (beta < 0) return BELOW_INTRINSIC;
  return uncheckedNormalisedImpliedVolatility(beta, x, theta, MAX_ITERATIONS);
}

/**
 * The undiscounted Black price F·Φ(θd₁)θ − K·Φ(θd₂)θ through Jäckel's normalised Black function:
 * the out-of-the-money time value is computed without cancellation (asymptotic and small-t
 * expansions, erfcx), so deep-OTM prices keep relative machine precision down to underflow.
 * σ ≤ 0 or T ≤ 0 gives intrinsic value.
 */
export function black(F: number, K: number, sigma: number, T: number, isCall: boolean): number {
  const intrinsic = Math.abs(Math.max(isCall ? F - K : K - F, 0));
  if (!(sigma > 0 && T > 0)) return intrinsic;
  const x = Math.log(F / K);
  const s = sigma * Math.sqrt(T);
  const theta = isCall ? 1 : -1;
  // In the money: intrinsic plus the out-of-the-money option of the other kind.
  if (theta * (F - K) > 0) return intrinsic + Math.sqrt(F) * Math.sqrt(K) * normalisedBlackCall(theta < 0 ? x : -x, s);
  return Math.max(intrinsic, Math.sqrt(F) * Math.sqrt(K) * normalisedBlackCall(theta < 0 ? -x : x, s));
}

/** Normalised Black price b(x, s) for a call (θ = 1) or put (θ = −1), x = ln(F/K), s = σ√T. */
export function normalisedBlack(x: number, s: number, isCall: boolean): number {
  return normalisedBlackCall(isCall ? x : -x, s);
}

/** ∂b(x, s)/∂s, the same for calls and puts. */
export function normalisedVega(x: number, s: number): number {
  return normalisedVegaOf(x, s);
}

/**
 * The relative accuracy an implied volatility can have at (x, s) given a price known to
 * DBL_EPSILON: (1 + |b/(s·b')|)·ε (Jäckel's ImpliedVolatilityAttainableAccuracy, first-order
 * error propagation). 1 where the price is not a normal double below b_max.
 */
export function impliedVolatilityAttainableAccuracy(x: number, s: number, isCall: boolean): number {
  const xc = isCall ? x : -x;
  const bx = normalisedBlackCallOverVegaAndLnVega(xc, s);
  const b = bx * Math.exp(scratch[LN_VEGA]);
  const bMax = Math.exp(xc / 2);
  return b > DBL_MIN && b < bMax ? DBL_EPSILON * (1 + Math.abs(bx / s)) : 1;
}
