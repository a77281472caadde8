import { describe, expect, it } from 'vitest';
import { erf, erfc, erfcx, inverseNormCdf, normCdf, normPdf } from './normal.ts';

// Reference values computed to 40 digits with mpmath (ncdf, erfc), rounded to 20.
function relErr(got: number, want: number): number {
  return Math.abs(got - want) / Math.abs(want);
}

describe('normal distribution', () => {
  it('gives the density 1/√(2π) at 0 and is symmetric', () => {
    expect(normPdf(0)).toBe(0.3989422804014327);
    expect(normPdf(1.7)).toBe(normPdf(-1.7));
  });

  it('gives Φ to relative machine precision from the centre to the far lower tail', () => {
    const table: Array<[number, number]> = [
      [-1, 0.15865525393145705141],
      [-5, 2.8665157187919391167e-7],
      [-8, 6.2209605742717841235e-16],
      [-10, 7.619853024160526066e-24],
      [-20, 2.7536241186062336951e-89],
      [-30, 4.9067139271481870595e-198],
      [-37, 5.7255712225245768227e-300],
    ];
    for (const [z, want] of table) expect(relErr(normCdf(z), want), `Φ(${z})`).toBeLessThan(5e-15);
    expect(normCdf(0)).toBe(0.5);
    expect(normCdf(1.959963984540054)).toBeCloseTo(0.975, 15);
  });

  it('keeps Φ(z) + Φ(−z) = 1', () => {
    for (let z = -8; z <= 8; z += 0.37) expect(Math.abs(normCdf(z) + normCdf(-z) - 1)).toBeLessThan(3e-16);
  });

  it('gives Cody\'s erf, erfc and erfcx to machine precision, erfcx without overflow in the tail', () => {
    expect(relErr(erf(0.5), 1 - 0.47950012218695346232)).toBeLessThan(3e-16);
    expect(erf(-0.5)).toBe(-erf(0.5));
    const table: Array<[number, number, number]> = [
      [0.5, 0.47950012218695346232, 0.61569034419292587487],
      [3, 0.000022090496998585441373, 0.17900115118138995042],
      [5, 1.5374597944280348502e-12, 0.11070463773306862637],
      [10, 2.088487583762544757e-45, 0.056140992743822585858],
      [26, 5.6631924088561428465e-296, 0.021683584850562906616],
    ];
    for (const [x, c, cx] of table) {
      expect(relErr(erfc(x), c), `erfc(${x})`).toBeLessThan(5e-15);
      expect(relErr(erfcx(x), cx), `erfcx(${x})`).toBeLessThan(5e-15);
    }
    expect(relErr(erfcx(-3), 16205.988853999586625)).toBeLessThan(5e-15);
    expect(erfc(30)).toBe(0);
    expect(erfcx(1e8)).toBeCloseTo(0.5641895835477563 / 1e8, 22);
    expect(erfcx(-30)).toBe(Number.MAX_VALUE);
  });

  it('inverts Φ with AS241 to within 2 ulp (Wichura\'s "about 1 part in 10^16"), deep into both tails', () => {
    const table: Array<[number, number]> = [
      [1e-300, -37.047096299361199237],
      [1e-100, -21.273453560965324295],
      [1e-20, -9.2623400897984075737],
      [0.001, -3.0902323061678135415],
      [0.975, 1.9599639845400542355],
    ];
    for (const [p, want] of table) expect(relErr(inverseNormCdf(p), want), `Φ⁻¹(${p})`).toBeLessThan(2 * Number.EPSILON);
    expect(inverseNormCdf(0.5)).toBe(0);
    // Lower half only: for z > 0, Φ(z) rounds towards 1 and loses the tail's digits, so Φ⁻¹(Φ(z))
    // cannot return z there; the upper half is the mirror image (Φ⁻¹(1 − p) = −Φ⁻¹(p)).
    for (let z = -37; z <= 0; z += 0.41) {
      const back = inverseNormCdf(normCdf(z));
      expect(Math.abs(back - z), `z=${z}`).toBeLessThan(4 * Number.EPSILON * Math.max(1, Math.abs(z)));
    }
  });

  it('gives the infinite limits, not NaN, at and beyond 0 and 1', () => {
    expect(inverseNormCdf(0)).toBe(-Infinity);
    expect(inverseNormCdf(-1)).toBe(-Infinity);
    expect(inverseNormCdf(1)).toBe(Infinity);
    expect(inverseNormCdf(2)).toBe(Infinity);
  });
});
