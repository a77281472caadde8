/**
 * The analytics bench, `npm run bench -- analytics`: the figures of the chain analytics, each beside
 * its baseline from the same run.
 *
 * 1. Implied-volatility solves per second on one core: Jäckel's "Let's Be Rational"
 *    (workers/analytics/lets-be-rational.ts) against Newton-Raphson with a bisection fallback, what
 *    common npm IV packages do (bench/iv-newton.ts), on the same grid, with each one's worst-case
 *    iteration count (bench/analytics-iv.ts). Target ≥ 1M solves/s per core.
 * 2. One chain refresh end to end on the piscina pool (src/analytics/service.ts: snapshot, post,
 *    compute and encode on the pool thread, take the answer, publish): latency p50/p99, and the main
 *    thread's time per refresh, for the default chain (2 expiries × 21 strikes × CE/PE) and the
 *    largest the config allows (OPTION_EXPIRIES 12 × OPTION_STRIKES 200 each side: 401 strikes).
 *    The main thread's time is measured two ways: the service's own share (snapshot + post, then
 *    storing and publishing the answer; `lastMainUs`), and all of the main thread's busy time per
 *    refresh from the event loop's utilisation while the bench does nothing but refresh, which also
 *    counts receiving the pool's message and garbage collection. Target: under 50 µs. Baselines: the
 *    same refresh computed and encoded on the main thread (what the pool keeps off it), and a piscina
 *    task that does nothing (bench/piscina-noop.mjs: the floor any task costs the main thread).
 *
 * Quotes are Black-76 prices of a smile around a forward, with a one-rupee spread, written into a
 * hub's latest-tick array as the pipeline writes them. BENCH_ANALYTICS_N sets the refreshes timed
 * per chain (default 500).
 */
import { performance } from 'node:perf_hooks';
import { Piscina } from 'piscina';
import { N, N_FIELDS, NType } from '../src/core/tick.ts';
import type { Instrument } from '../src/core/instrument.ts';
import { silentLogger } from '../src/log.ts';
import { AnalyticsService } from '../src/analytics/service.ts';
import { buildLayout } from '../src/analytics/layout.ts';
import { SnapshotBuilder } from '../src/analytics/snapshot.ts';
import { snapshotLength } from '../src/core/chain-snapshot.ts';
import { createPackr } from '../src/core/feed-structures.ts';
import { computeAnalytics } from '../workers/analytics/chain.ts';
import { black76 } from '../workers/analytics/black.ts';
import { ivBench } from './analytics-iv.ts';
import { QUICK, record } from './report.ts';

const REFRESHES = Number(process.env.BENCH_ANALYTICS_N ?? (QUICK ? 30 : 500));
/** The largest chain takes ~0.5 s a refresh on a busy 2-core machine: quick mode times a few. */
const LARGEST_REFRESHES = QUICK ? 3 : REFRESHES;
const F = 26_000;
const DAY = 86_400_000;

/** NIFTY index, 50 stocks, a future per expiry and `expiries` × (2·each + 1) strikes of CE and PE. */
export function universe(expiries: number, each: number): Instrument[] {
  const base = { exchangeToken: 0, lastPrice: 0, tickSize: 0.05, lotSize: 75, strike: 0, expiry: '' };
  const out: Instrument[] = [{ ...base, instrumentToken: 256265, tradingsymbol: 'NIFTY 50', name: 'NIFTY 50', instrumentType: 'EQ', segment: 'INDICES', exchange: 'NSE' }];
  for (let s = 0; s < 50; s++) out.push({ ...base, instrumentToken: 1000 + s, tradingsymbol: `STOCK${s}`, name: `STOCK${s}`, instrumentType: 'EQ', segment: 'NSE', exchange: 'NSE' });
  let token = 100_000;
  for (let e = 0; e < expiries; e++) {
    const expiry = new Date(Date.now() + (7 * e + 5) * DAY).toISOString().slice(0, 10);
    out.push({ ...base, instrumentToken: token++, tradingsymbol: `NIFTYFUT${e}`, name: 'NIFTY', expiry, instrumentType: 'FUT', segment: 'NFO-FUT', exchange: 'NFO' });
    for (let k = -each; k <= each; k++) {
      for (const t of ['CE', 'PE'] as const) {
        out.push({ ...base, instrumentToken: token++, tradingsymbol: `NIFTY${e}${F + 50 * k}${t}`, name: 'NIFTY', expiry, strike: F + 50 * k, instrumentType: t, segment: 'NFO-OPT', exchange: 'NFO' });
      }
    }
  }
  return out;
}

/** Latest ticks as the hub holds them: priced options with depth, a future, the index and stocks. */
export function quotes(instruments: Instrument[]): { ticks: Float64Array; has: Uint8Array } {
  const ticks = new Float64Array(instruments.length * N_FIELDS);
  const has = new Uint8Array(instruments.length);
  const now = Date.now();
  instruments.forEach((i, row) => {
    const o = row * N_FIELDS;
    let price = 1000 + row;
    if (i.instrumentType === 'CE' || i.instrumentType === 'PE') {
      const T = Math.max(1 / 365, (Date.parse(`${i.expiry}T10:00:00Z`) - now) / (365 * DAY));
      const m = Math.log(i.strike / F);
      price = Math.max(0.05, black76(F, i.strike, T, 0.065, 0.12 + 0.3 * m * m, i.instrumentType === 'CE'));
    } else if (i.instrumentType === 'FUT') price = F;
    else if (i.segment === 'INDICES') price = F - 50;
    ticks[o + N.TYPE] = NType.TICK;
    ticks[o + N.TOKEN] = i.instrumentToken;
    ticks[o + N.EXCH_TIME_MS] = now;
    ticks[o + N.PRICE] = price;
    ticks[o + N.VOLUME] = 10_000 + row;
    ticks[o + N.OPEN] = price * 0.99;
    ticks[o + N.HIGH] = price * 1.01;
    ticks[o + N.LOW] = price * 0.98;
    ticks[o + N.CLOSE] = price * (row % 2 === 0 ? 0.995 : 1.005);
    ticks[o + N.OI] = 50_000 + 75 * row;
    ticks[o + N.DEPTH_LEVELS] = 5;
    for (let l = 0; l < 10; l++) {
      const d = o + N.DEPTH + 3 * l;
      ticks[d] = 75 * (l + 1);
      ticks[d + 1] = l < 5 ? Math.max(0.05, price - 0.5 - 0.05 * l) : price + 0.5 + 0.05 * (l - 5);
      ticks[d + 2] = l + 1;
    }
    has[row] = 1;
  });
  return { ticks, has };
}

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
}

interface RefreshFigures {
  options: number;
  p50Ms: number;
  p99Ms: number;
  mainP50Us: number;
  mainP99Us: number;
  mainEluUs: number;
  workP50Us: number;
  bytes: number;
  onMainP50Us: number;
}

async function refreshBench(name: string, expiries: number, each: number, REFRESHES: number): Promise<RefreshFigures> {
  const instruments = universe(expiries, each);
  const { ticks, has } = quotes(instruments);
  const settings = { refreshMs: 1000, threads: 1, rate: 0.065, staleMs: 30_000, oiIntervalMs: 300_000 };
  let bytes = 0;
  const svc = new AnalyticsService({
    settings, instruments, latestTicks: ticks, hasTick: has, log: silentLogger,
    publish: (_k, b) => { bytes += b.json.length + b.records.length + b.plain.length; },
  });
  const options = svc.layout.groups.reduce((a, g) => a + g.options.length, 0);
  const warm = Math.min(QUICK ? 1 : 50, REFRESHES);
  for (let i = 0; i < warm; i++) await svc.refresh();
  const lat: number[] = [];
  const main: number[] = [];
  const work: number[] = [];
  bytes = 0;
  const elu0 = performance.eventLoopUtilization();
  for (let i = 0; i < REFRESHES; i++) {
    await svc.refresh();
    const s = svc.stats();
    lat.push(s.lastLatencyMs);
    main.push(s.lastMainUs);
    work.push(s.lastWorkUs);
  }
  const elu = performance.eventLoopUtilization(elu0);
  await svc.close();

  // Baseline: the same refresh computed and encoded on the main thread.
  const { layout, hubRows } = buildLayout(instruments, settings);
  const builder = new SnapshotBuilder(hubRows, settings.oiIntervalMs, settings.refreshMs);
  const snap = new Float64Array(snapshotLength(layout.rows));
  const records = createPackr(true);
  const plain = createPackr(false);
  const utf8 = new TextEncoder();
  const onMain: number[] = [];
  for (let i = 0; i < Math.min(REFRESHES, QUICK ? 2 : 200); i++) {
    const t0 = performance.now();
    builder.fill(snap, ticks, has, Date.now(), i + 1);
    const a = computeAnalytics(layout, snap);
    for (const g of a.groups) {
      utf8.encode(JSON.stringify(g));
      records.pack({ type: 'chain', d: g });
      plain.pack({ type: 'chain', d: g });
    }
    onMain.push((performance.now() - t0) * 1000);
  }
  const figures: RefreshFigures = {
    options, p50Ms: pct(lat, 50), p99Ms: pct(lat, 99), mainP50Us: pct(main, 50), mainP99Us: pct(main, 99),
    mainEluUs: (elu.active * 1000) / REFRESHES, workP50Us: pct(work, 50), bytes: bytes / REFRESHES, onMainP50Us: pct(onMain, 50),
  };
  console.log(`  ${name}: ${options} options, ${layout.groups.length} expiries, ${REFRESHES} refreshes, ${(figures.bytes / 1024).toFixed(1)} KiB published per refresh`);
  console.log(`    refresh latency on the pool      p50 ${figures.p50Ms.toFixed(3)} ms   p99 ${figures.p99Ms.toFixed(3)} ms   (pool thread's work p50 ${(figures.workP50Us / 1000).toFixed(3)} ms)`);
  console.log(`    main thread, the service's share  p50 ${figures.mainP50Us.toFixed(1)} µs   p99 ${figures.mainP99Us.toFixed(1)} µs`);
  console.log(`    main thread, all busy time (ELU)  ${figures.mainEluUs.toFixed(1)} µs per refresh`);
  console.log(`    baseline: computed on the main thread  p50 ${figures.onMainP50Us.toFixed(1)} µs per refresh`);
  return figures;
}

/** The main thread's busy time per piscina task that does nothing (same loop shape): the pool's floor. */
async function piscinaFloor(): Promise<number> {
  const pool = new Piscina({ filename: new URL('./piscina-noop.mjs', import.meta.url).href, minThreads: 1, maxThreads: 1 });
  for (let i = 0; i < 200; i++) await pool.run({ seq: i, out: 0 });
  const e0 = performance.eventLoopUtilization();
  for (let i = 0; i < REFRESHES; i++) await pool.run({ seq: i, out: 0 });
  const e = performance.eventLoopUtilization(e0);
  await pool.destroy();
  return (e.active * 1000) / REFRESHES;
}

export default async function analyticsBench(): Promise<void> {
  console.log('1. implied volatility solves, one core');
  const iv = await ivBench();
  console.log('\n2. chain refresh on the piscina pool (1 thread)');
  const small = await refreshBench('default chain (OPTION_EXPIRIES 2 × OPTION_STRIKES 10)', 2, 10, REFRESHES);
  const large = await refreshBench('largest chain (OPTION_EXPIRIES 12 × OPTION_STRIKES 200)', 12, 200, LARGEST_REFRESHES);
  const floor = await piscinaFloor();
  console.log(`  piscina's floor: a task that does nothing costs the main thread ${floor.toFixed(1)} µs (all busy time, same loop)`);
  const met = (ok: boolean) => (ok ? 'MET' : 'NOT MET');
  record({
    bench: 'analytics', name: "IV solves, Let's Be Rational", unit: 'solves/CPU-s', better: 'higher', value: iv.lbrPerSec,
    baseline: { name: 'Newton + bisection', value: iv.newtonPerSec }, target: { op: '>=', value: 1e6 },
  });
  for (const [name, f] of [['default', small], ['largest', large]] as const) {
    record({
      bench: 'analytics', name: `${name} chain refresh, main thread busy (ELU)`, unit: 'µs/refresh', better: 'lower', value: f.mainEluUs,
      baseline: { name: 'computed on the main thread, p50', value: f.onMainP50Us }, target: { op: '<=', value: 50 },
    });
    record({ bench: 'analytics', name: `${name} chain refresh p99 on the pool`, unit: 'ms', better: 'lower', value: f.p99Ms });
  }
  console.log('\nsummary');
  console.log(`  IV solves/s per core: Let's Be Rational ${(iv.lbrPerSec / 1e6).toFixed(2)}M (worst ${iv.lbrWorstIters} iterations) vs Newton+bisection ${(iv.newtonPerSec / 1e6).toFixed(2)}M (worst ${iv.newtonWorstIters}); target ≥ 1M: ${met(iv.lbrPerSec >= 1e6)}`);
  for (const [name, f] of [['default', small], ['largest', large]] as const) {
    console.log(`  ${name} chain (${f.options} options): refresh p50 ${f.p50Ms.toFixed(2)} ms / p99 ${f.p99Ms.toFixed(2)} ms; ` +
      `main thread: the service's share ${f.mainP50Us.toFixed(1)} µs p50 (target < 50 µs: ${met(f.mainP50Us < 50)}), ` +
      `all busy time ${f.mainEluUs.toFixed(1)} µs (target: ${met(f.mainEluUs < 50)}; piscina's floor ${floor.toFixed(1)} µs), computed on it instead ${f.onMainP50Us.toFixed(0)} µs`);
  }
}
