/**
 * A seeded PRNG (mulberry32): the simulator must replay the same market for the same seed, which
 * Math.random cannot. 32 bits of state, period 2^32, plenty for a tick stream and cheap: a handful
 * of integer ops per draw, no allocation.
 */
export class Rng {
  private state: number;
  /** Box-Muller yields normals in pairs; the second waits here (NaN = none). */
  private spare = Number.NaN;

  constructor(seed: number) {
    this.state = seed >>> 0;
  }

  /** Uniform in [0, 1). */
  next(): number {
    let t = (this.state = (this.state + 0x6d2b79f5) | 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** Uniform integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  /** Standard normal. */
  normal(): number {
    const s = this.spare;
    if (s === s) {
      this.spare = Number.NaN;
      return s;
    }
    let u = this.next();
    while (u === 0) u = this.next();
    const v = this.next();
    const r = Math.sqrt(-2 * Math.log(u));
    this.spare = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  }

  /** Exponential with the given mean: trade and order sizes are many small, few large. */
  exp(mean: number): number {
    return -Math.log(1 - this.next()) * mean;
  }
}
