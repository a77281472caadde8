/**
 * Implied-volatility solves per second on one core: Jäckel's "Let's Be Rational"
 * (workers/analytics/lets-be-rational.ts) beside the Newton-Raphson + bisection baseline
 * (bench/iv-newton.ts), in the same process, single thread, warmed up, over the same options.
 * bench/analytics.bench.ts calls ivBench(); alone:
 *   node --import tsx -e "import('./bench/analytics-iv.ts').then(m=>m.ivBench())"
 *
 * Two sets, both on a NIFTY-like forward F = 26,000, expiries 1 hour, 1 and 2 days, 1 and 2 weeks,
 * 1, 2, 3 and 6 months and 1 year, volatilities 5% to 80%, calls and puts, priced by
 * lets-be-rational.ts's black():
 *  - chain: strikes ±20% of F in 50-point steps, as the exchange lists them; options priced below
 *    one tick (₹0.05) are left out, as no quote exists for them.
 *  - wings: strikes 3 to 8 standard deviations (σ√T) either side of F, in and out of the money,
 *    wherever the price is a normal double below its bound (F for a call, K for a put).
 *
 * Figures: solves/s (median of rounds, each over the whole set), worst and mean iterations, and
 * the largest relative round-trip error |black(σ̂) − price|/price (the baseline stops at 1e−8 in
 * price, so it cannot do better on small prices; a NaN counts as a failure). The clock is the
 * process's CPU time (solves per core-second); BENCH_CLOCK=wall uses wall time. GC events seen
 * while each solver runs are counted: neither creates objects per solve, so what they collect is
 * V8's boxing of doubles across calls it does not inline, which grows with the calls per solve.
 */
import { PerformanceObserver, performance } from 'node:perf_hooks';
import { black, impliedBlackVolatility, lastIterations } from '../workers/analytics/lets-be-rational.ts';
import { newtonImpliedVol, newtonLastIterations } from './iv-newton.ts';
import { QUICK } from './report.ts';

const F = 26_000;
const TICK = 0.05;
const HOUR = 1 / (365 * 24);
const DAY = 1 / 365;
const EXPIRIES = [HOUR, DAY, 2 * DAY, 7 * DAY, 14 * DAY, 30 * DAY, 60 * DAY, 91 * DAY, 182 * DAY, 1];
const VOLS = [0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.6, 0.8];
const WING_SDS = [-8, -6, -5, -4, -3, 3, 4, 5, 6, 8];
const DBL_MIN = 2.2250738585072014e-308;
const TARGET_PER_SEC = 1e6;
const ROUNDS = QUICK ? 1 : 5;
const MIN_ROUND_MS = QUICK ? 50 : 250;

/** Options as columns, so the timed loops read typed arrays and allocate nothing. */
interface OptionSet {
  name: string;
  n: number;
  price: Float64Array;
  strike: Float64Array;
  expiry: Float64Array;
  call: Uint8Array;
}

function optionSet(name: string, rows: Array<[price: number, K: number, T: number, call: boolean]>): OptionSet {
  const n = rows.length;
  const s: OptionSet = {
    name, n, price: new Float64Array(n), strike: new Float64Array(n), expiry: new Float64Array(n), call: new Uint8Array(n),
  };
  rows.forEach(([p, K, T, c], i) => {
    s.price[i] = p;
    s.strike[i] = K;
    s.expiry[i] = T;
    s.call[i] = c ? 1 : 0;
  });
  return s;
}

function chainSet(): OptionSet {
  const rows: Array<[number, number, number, boolean]> = [];
  for (let K = 0.8 * F; K <= 1.2 * F; K += 50) {
    for (const T of EXPIRIES) for (const sigma of VOLS) for (const call of [true, false]) {
      const p = black(F, K, sigma, T, call);
      if (p >= TICK && p < (call ? F : K)) rows.push([p, K, T, call]);
    }
  }
  return optionSet('chain ±20%', rows);
}

function wingSet(): OptionSet {
  const rows: Array<[number, number, number, boolean]> = [];
  for (const d of WING_SDS) for (const T of EXPIRIES) for (const sigma of VOLS) for (const call of [true, false]) {
    const K = F * Math.exp(d * sigma * Math.sqrt(T));
    const p = black(F, K, sigma, T, call);
    if (p >= DBL_MIN && p < (call ? F : K)) rows.push([p, K, T, call]);
  }
  return optionSet('wings 3–8 sd', rows);
}

function concat(name: string, a: OptionSet, b: OptionSet): OptionSet {
  const rows: Array<[number, number, number, boolean]> = [];
  for (const s of [a, b]) for (let i = 0; i < s.n; i++) rows.push([s.price[i], s.strike[i], s.expiry[i], s.call[i] === 1]);
  return optionSet(name, rows);
}

type Solver = (price: number, F: number, K: number, T: number, isCall: boolean) => number;

interface SolverStats {
  worstIters: number;
  meanIters: number;
  maxRelErr: number;
  failures: number;
}

/** Iterations and round-trip error, outside the timed loops. */
function accuracy(solve: Solver, iterations: () => number, s: OptionSet): SolverStats {
  let worstIters = 0;
  let totalIters = 0;
  let maxRelErr = 0;
  let failures = 0;
  for (let i = 0; i < s.n; i++) {
    const call = s.call[i] === 1;
    const iv = solve(s.price[i], F, s.strike[i], s.expiry[i], call);
    const it = iterations();
    worstIters = Math.max(worstIters, it);
    totalIters += it;
    if (!(iv >= 0 && iv < Infinity)) {
      failures++;
      continue;
    }
    const err = Math.abs(black(F, s.strike[i], iv, s.expiry[i], call) - s.price[i]) / s.price[i];
    maxRelErr = Math.max(maxRelErr, err);
  }
  return { worstIters, meanIters: totalIters / s.n, maxRelErr, failures };
}

const useWall = process.env.BENCH_CLOCK === 'wall';
function nowMs(): number {
  if (useWall) return performance.now();
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

/** Results land here so the solves cannot be optimised away (a typed array: no boxing per write). */
const sink = new Float64Array(1);

/** Solves per second over whole passes of the set, for at least MIN_ROUND_MS. */
function rate(solve: Solver, s: OptionSet): number {
  const { n, price, strike, expiry, call } = s;
  let solves = 0;
  let acc = 0;
  const t0 = nowMs();
  let elapsed = 0;
  do {
    for (let i = 0; i < n; i++) acc += solve(price[i], F, strike[i], expiry[i], call[i] === 1);
    solves += n;
    elapsed = nowMs() - t0;
  } while (elapsed < MIN_ROUND_MS);
  sink[0] += acc;
  return solves / (elapsed / 1000);
}

function median(xs: number[]): number {
  const a = [...xs].sort((x, y) => x - y);
  return a[a.length >> 1];
}

let gcEvents = 0;
const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

/** Median solves/s over ROUNDS alternating rounds, and the GC events seen during them. */
async function timeBoth(s: OptionSet): Promise<{ lbr: number; newton: number; lbrGc: number; newtonGc: number }> {
  const lbr: number[] = [];
  const newton: number[] = [];
  let lbrGc = 0;
  let newtonGc = 0;
  for (let r = 0; r < ROUNDS; r++) {
    await tick();
    let before = gcEvents;
    lbr.push(rate(impliedBlackVolatility, s));
    await tick(); // GC entries are delivered on a later turn of the event loop
    lbrGc += gcEvents - before;
    before = gcEvents;
    newton.push(rate(newtonImpliedVol, s));
    await tick();
    newtonGc += gcEvents - before;
  }
  return { lbr: median(lbr), newton: median(newton), lbrGc, newtonGc };
}

export interface IvSetFigures {
  name: string;
  options: number;
  lbrPerSec: number;
  newtonPerSec: number;
  lbr: SolverStats;
  newton: SolverStats;
}

export interface IvBenchResult {
  /** Let's Be Rational solves per core-second over both sets. */
  lbrPerSec: number;
  lbrWorstIters: number;
  lbrMeanIters: number;
  lbrMaxRelErr: number;
  /** Newton-Raphson + bisection solves per core-second over both sets. */
  newtonPerSec: number;
  newtonWorstIters: number;
  newtonMeanIters: number;
  newtonMaxRelErr: number;
  newtonFailures: number;
  /** lbrPerSec / newtonPerSec. */
  ratio: number;
  options: number;
  targetPerSec: number;
  targetMet: boolean;
  /** GC events while each solver ran (all sets, all rounds). */
  lbrGcEvents: number;
  newtonGcEvents: number;
  sets: IvSetFigures[];
}

const M = (x: number): string => (x / 1e6).toFixed(2);
const E = (x: number): string => (x === 0 ? '0' : x.toExponential(1));

export async function ivBench(): Promise<IvBenchResult> {
  const chain = chainSet();
  const wings = wingSet();
  const all = concat('all', chain, wings);
  const sets = [chain, wings, all];

  const gc = new PerformanceObserver((list) => {
    gcEvents += list.getEntries().length;
  });
  gc.observe({ entryTypes: ['gc'] });
  try {
    // Warm up: every solver sees every option, several times, before anything is timed.
    for (let w = 0; w < 3; w++) {
      for (let i = 0; i < all.n; i++) {
        const c = all.call[i] === 1;
        sink[0] += impliedBlackVolatility(all.price[i], F, all.strike[i], all.expiry[i], c);
        sink[0] += newtonImpliedVol(all.price[i], F, all.strike[i], all.expiry[i], c);
      }
    }

    console.log(`IV solves, one thread, clock: ${useWall ? 'wall' : 'process CPU time'}; F = ${F}, ` +
      `${EXPIRIES.length} expiries (1 hour to 1 year), vols ${VOLS[0] * 100}%–${VOLS[VOLS.length - 1] * 100}%, ` +
      `calls and puts; median of ${ROUNDS} rounds of ≥ ${MIN_ROUND_MS} ms`);
    const figures: IvSetFigures[] = [];
    let lbrGcEvents = 0;
    let newtonGcEvents = 0;
    for (const s of sets) {
      const t = await timeBoth(s);
      lbrGcEvents += t.lbrGc;
      newtonGcEvents += t.newtonGc;
      figures.push({
        name: s.name,
        options: s.n,
        lbrPerSec: t.lbr,
        newtonPerSec: t.newton,
        lbr: accuracy(impliedBlackVolatility, lastIterations, s),
        newton: accuracy(newtonImpliedVol, newtonLastIterations, s),
      });
    }

    const rows: Record<string, string | number>[] = [];
    for (const f of figures) {
      for (const [who, perSec, st] of [
        ["Let's Be Rational", f.lbrPerSec, f.lbr],
        ['Newton + bisection', f.newtonPerSec, f.newton],
      ] as const) {
        rows.push({
          set: f.name,
          solver: who,
          options: f.options,
          'solves/s per core (M)': M(perSec),
          'ns/solve': (1e9 / perSec).toFixed(0),
          'worst iters': st.worstIters,
          'mean iters': st.meanIters.toFixed(2),
          'max rel. round-trip err': E(st.maxRelErr),
          failures: st.failures,
        });
      }
    }
    console.table(rows);

    const a = figures[figures.length - 1];
    const result: IvBenchResult = {
      lbrPerSec: a.lbrPerSec,
      lbrWorstIters: a.lbr.worstIters,
      lbrMeanIters: a.lbr.meanIters,
      lbrMaxRelErr: a.lbr.maxRelErr,
      newtonPerSec: a.newtonPerSec,
      newtonWorstIters: a.newton.worstIters,
      newtonMeanIters: a.newton.meanIters,
      newtonMaxRelErr: a.newton.maxRelErr,
      newtonFailures: a.newton.failures,
      ratio: a.lbrPerSec / a.newtonPerSec,
      options: a.options,
      targetPerSec: TARGET_PER_SEC,
      targetMet: a.lbrPerSec >= TARGET_PER_SEC,
      lbrGcEvents,
      newtonGcEvents,
      sets: figures,
    };
    console.log(`ratio Let's Be Rational / Newton + bisection, all ${a.options} options: ${result.ratio.toFixed(1)}x; ` +
      `GC events while solving: Let's Be Rational ${lbrGcEvents}, Newton ${newtonGcEvents}`);
    console.log(`target ≥ ${M(TARGET_PER_SEC)}M solves/s per core: Let's Be Rational ${M(result.lbrPerSec)}M → ` +
      `${result.targetMet ? 'MET' : 'NOT MET'}`);
    if (sink[0] === -1) console.log('');
    return result;
  } finally {
    gc.disconnect();
  }
}
