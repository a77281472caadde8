/**
 * The closing summary of `npm run bench` and its `--compare`: pure functions over the cases
 * bench/report.ts collected (or a results file read back), so they print the same for a run and
 * for a file.
 *
 * Noise. A case measured several times (`--runs N`) carries every value; its spread is the range
 * of those values over their median, (max − min) / median. A change between two results is judged
 * against the larger spread of the two. A case measured once has no spread of its own, so it gets
 * the default band of its kind (DEFAULT_NOISE): what `--runs 3` showed those figures to move by on
 * one 2-core machine that other jobs share, rounded up. A change worse than the noise is flagged
 * REGRESSION; nothing fails on it (timings are not asserted anywhere).
 */
import { median, type BenchCase } from './report.ts';

/** The machine a results file was measured on. */
export interface Machine {
  cpu: string;
  cores: number;
  memoryBytes: number;
  node: string;
  v8: string;
  platform: string;
  /** 1, 5 and 15 minute load averages before the first bench and after the last. */
  loadBefore: number[];
  loadAfter: number[];
}

/** What `bench/results/<time>-<commit>.json` holds. */
export interface Results {
  time: string;
  commit: string;
  dirty: boolean;
  quick: boolean;
  runs: number;
  filters: string[];
  totalSeconds: number;
  machine: Machine;
  benches: { bench: string; seconds: number; ok: boolean; error?: string }[];
  cases: BenchCase[];
}

/**
 * Default noise bands for a case measured once, as a fraction of its value: the ranges `--runs 3`
 * showed on this project's 2-core machine shared with other jobs (load average 4-6): 14-46 % for
 * rates and per-op costs, CPU clock or wall clock alike, and more for tail latencies, which a
 * single descheduling moves.
 */
export const DEFAULT_NOISE = { tail: 0.5, other: 0.3 } as const;

export function defaultNoise(c: BenchCase): { band: number; why: string } {
  if (/p99|p999|max\b/i.test(c.name) && !/max rate|max ticks/i.test(c.name)) return { band: DEFAULT_NOISE.tail, why: 'default, tail latency' };
  return { band: DEFAULT_NOISE.other, why: 'default, one run' };
}

/** (max − min) / median of a case's repetitions; null when it was measured once. */
export function spread(c: BenchCase): number | null {
  if (c.runs === undefined || c.runs.length < 2) return null;
  const m = median(c.runs);
  return m === 0 ? 0 : (Math.max(...c.runs) - Math.min(...c.runs)) / Math.abs(m);
}

/** Cases of the same bench and name, from several repetitions, as one: the median, every value kept. */
export function merge(reps: readonly BenchCase[][]): BenchCase[] {
  const byKey = new Map<string, BenchCase[]>();
  for (const rep of reps) {
    for (const c of rep) {
      const k = `${c.bench}\u0000${c.name}`;
      const list = byKey.get(k);
      if (list === undefined) byKey.set(k, [c]);
      else list.push(c);
    }
  }
  const out: BenchCase[] = [];
  for (const list of byKey.values()) {
    const first = list[0];
    // A bench that repeats a case itself hands its runs over; otherwise one value per repetition.
    const runs = list.flatMap((c) => c.runs ?? [c.value]);
    if (runs.length === 1) {
      out.push(first);
      continue;
    }
    const baselines = list.flatMap((c) => (c.baseline === undefined ? [] : [c.baseline.value]));
    out.push({
      ...first,
      value: median(runs),
      runs,
      ...(first.baseline === undefined ? {} : { baseline: { name: first.baseline.name, value: median(baselines) } }),
    });
  }
  return out;
}

/** 3 significant figures with k/M/G: 13.1M, 412, 0.0310. */
export function num(x: number): string {
  if (!Number.isFinite(x)) return '—';
  const a = Math.abs(x);
  if (a >= 1e9) return `${(x / 1e9).toPrecision(3)}G`;
  if (a >= 1e6) return `${(x / 1e6).toPrecision(3)}M`;
  if (a >= 1e4) return `${(x / 1e3).toPrecision(3)}k`;
  if (a >= 100) return x.toFixed(0);
  return x.toPrecision(3);
}

/** A figure with its unit; µs past 10,000 read better as ms. */
export function fig(x: number, unit: string): string {
  return unit === 'µs' && Math.abs(x) >= 1e4 ? `${num(x / 1000)} ms` : `${num(x)} ${unit}`;
}

const pct = (x: number): string => `${x >= 0 ? '+' : '−'}${Math.abs(x * 100).toFixed(1)} %`;

/** How many times better than its baseline a case is (> 1 = better), whichever way is better. */
export function advantage(c: BenchCase): number | null {
  if (c.baseline === undefined || c.baseline.value === 0 || c.value === 0) return null;
  return c.better === 'higher' ? c.value / c.baseline.value : c.baseline.value / c.value;
}

export function targetMet(c: BenchCase): boolean | null {
  if (c.target === undefined) return null;
  return c.target.op === '>=' ? c.value >= c.target.value : c.value <= c.target.value;
}

/** Left-aligned text columns, right-aligned figures, two spaces between. */
export function table(head: string[], rows: string[][], numeric: boolean[]): string {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (r: string[]) => r.map((c, i) => (numeric[i] ? c.padStart(widths[i]) : c.padEnd(widths[i]))).join('  ').trimEnd();
  return [line(head), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

/** The closing table: every case, its baseline from the same run, the ratio, the target. */
export function summaryTable(cases: readonly BenchCase[]): string {
  const rows = cases.map((c) => {
    const adv = advantage(c);
    const met = targetMet(c);
    const s = spread(c);
    return [
      c.bench,
      c.name,
      fig(c.value, c.unit),
      c.baseline === undefined ? '—' : `${c.baseline.name}: ${fig(c.baseline.value, c.unit)}`,
      adv === null ? '—' : `${adv.toFixed(adv >= 10 ? 0 : 2)}x`,
      c.target === undefined ? '—' : `${c.target.op} ${fig(c.target.value, c.unit)}: ${met ? 'MET' : 'NOT MET'}`,
      s === null ? '1' : `${c.runs!.length}, range ${(s * 100).toFixed(1)} %`,
    ];
  });
  return table(['bench', 'case', 'value', 'baseline (same run)', 'x better', 'target', 'runs, spread'], rows, [false, false, true, false, true, false, true]);
}

export interface Change {
  c: BenchCase;
  old: BenchCase | undefined;
  /** (new − old) / old; null when the case is new or the old value was 0. */
  change: number | null;
  noise: number;
  noiseWhy: string;
  verdict: 'REGRESSION' | 'better' | 'within noise' | 'new' | '—';
}

/** Each case of `now` against the same bench and name in `before`. */
export function compare(before: readonly BenchCase[], now: readonly BenchCase[]): Change[] {
  const old = new Map(before.map((c) => [`${c.bench}\u0000${c.name}`, c]));
  return now.map((c) => {
    const o = old.get(`${c.bench}\u0000${c.name}`);
    const sNew = spread(c);
    const sOld = o === undefined ? null : spread(o);
    const measured = Math.max(sNew ?? 0, sOld ?? 0);
    const d = defaultNoise(c);
    const [noise, noiseWhy] = sNew === null && sOld === null ? [d.band, d.why] : [measured, `spread of ${[sOld === null ? '' : 'old', sNew === null ? '' : 'new'].filter(Boolean).join(' and ')} runs`];
    if (o === undefined) return { c, old: o, change: null, noise, noiseWhy, verdict: 'new' };
    if (o.value === 0) return { c, old: o, change: null, noise, noiseWhy, verdict: '—' };
    const change = (c.value - o.value) / Math.abs(o.value);
    const worse = c.better === 'higher' ? -change : change;
    const verdict = worse > noise ? 'REGRESSION' : -worse > noise ? 'better' : 'within noise';
    return { c, old: o, change, noise, noiseWhy, verdict };
  });
}

export function compareTable(changes: readonly Change[]): string {
  const rows = changes.map((x) => [
    x.c.bench,
    x.c.name,
    x.c.unit,
    x.old === undefined ? '—' : num(x.old.value),
    num(x.c.value),
    x.change === null ? '—' : pct(x.change),
    `±${(x.noise * 100).toFixed(1)} % (${x.noiseWhy})`,
    x.verdict,
  ]);
  return table(['bench', 'case', 'unit', 'old', 'new', 'change', 'noise', 'verdict'], rows, [false, false, false, true, true, true, false, false]);
}
