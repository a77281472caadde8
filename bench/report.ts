/**
 * What a bench reports besides its own printed tables: one record per case, collected by
 * bench/run.ts for the closing summary table and the results file (bench/results/*.json).
 *
 * A case is one figure (ticks/s, µs per op, ms at p99) measured in this run, with the baseline it
 * is judged against, measured in the same run, and the target where an issue set one. `runs` holds
 * every repetition's value when the case was measured several times (the summary shows the median
 * and the spread, and --compare judges a change against that noise).
 *
 *   record({ bench: 'decode', name: 'full packets', unit: 'packets/s', better: 'higher',
 *            value: 13.1e6, baseline: { name: 'official KiteTicker.parseBinary', value: 0.9e6 } });
 */

export interface BenchCase {
  /** The bench file's short name: 'decode' for bench/decode.bench.ts. */
  bench: string;
  /** The case, as its table names it. */
  name: string;
  /** The figure (the median when `runs` has several). */
  value: number;
  unit: string;
  /** Which way is better: a rate is 'higher', a latency or a cost 'lower'. */
  better: 'higher' | 'lower';
  /** What it is judged against, measured in this same run. */
  baseline?: { name: string; value: number };
  /** A target an issue set, e.g. { op: '>=', value: 1e6 }. */
  target?: { op: '>=' | '<='; value: number };
  /** Every repetition's value, when measured more than once. */
  runs?: number[];
}

const cases: BenchCase[] = [];

/** Record one case for the summary and the results file. */
export function record(c: BenchCase): void {
  cases.push(c);
}

/** Every case recorded so far in this process. */
export function recorded(): readonly BenchCase[] {
  return cases;
}

/**
 * `npm run bench -- --quick` (BENCH_QUICK=1): every case briefly, so the benches are run (and
 * cannot rot) in CI; the figures then say nothing, and nothing is asserted about them.
 */
export const QUICK = process.argv.includes('--quick') || process.env.BENCH_QUICK === '1';

/** The median of some values (the mean of the middle two for an even count). */
export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m] : (s[m - 1] + s[m]) / 2;
}
