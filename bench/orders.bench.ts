/**
 * The orders bench, `npm run bench -- orders`: three figures, each beside a baseline measured in
 * the same run.
 *
 * 1. Order round trip on paper with the feed running: the whole service started in this process
 *    as the tests start it (src/service.ts, the built-in simulator at SIM_RATE 20,000 ticks/s, the
 *    batch writer, the paper broker), storage a fresh PostgreSQL database on 127.0.0.1:5432
 *    (BENCH_PG_URL names the admin database; `bench_orders_<pid>` is created and dropped), or the
 *    embedded PGlite with BENCH_ORDERS_DB=embedded. The client (bench/orders-roundtrip.ts) runs in
 *    a worker thread on one keep-alive connection and alternates `GET /api/quote` (baseline: a
 *    keyed REST call that places nothing) with `POST /api/orders` (a LIMIT BUY 10 % under the
 *    market, which rests): request → 201 with the order id, p50/p99/p99.9/max. Target p99 < 2 ms.
 *    The hub's tick counter over the measurement shows the feed really ran at the rate asked.
 *    The service answers an order once it is committed, so on PostgreSQL a third row times the
 *    floor under that: one-row transactions on the same database, from a thread, feed running.
 *    Kite's account limits (10 orders/s, 400/min, 5,000/day) and the key's risk limits are raised
 *    so the bench measures latency, not refusals; the output says which.
 * 2. Matching cost per tick: bench/orders-matching.ts (the paper book against scanning all 1,000
 *    resting orders; target ≥ 50× and < 1 µs per tick).
 * 3. Pre-trade checks per order: `checkPlace` (src/orders/checks.ts) on a typical LIMIT request
 *    with the context the service fills in, and `parsePlaceJson` + `checkPlace`, against
 *    `JSON.parse` of the same body, the least any request costs. Hand loops, each in its own
 *    function, warmed up, timed on the process CPU clock, best of rounds.
 *
 * A summary at the end: figure, baseline, target, MET / NOT MET. If the service does not start or
 * an order fails, the failure (status code and body) is printed and the summary says so; nothing
 * in the service is worked around. BENCH_ORDERS_N sets the timed pairs (default 3,000).
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import postgres from 'postgres';
import { loadConfig } from '../src/config.ts';
import { pgOptions } from '../src/core/db.ts';
import { buildNifty50Universe } from '../src/kite/sim/universe.ts';
import { silentLogger } from '../src/log.ts';
import { checkPlace, type CheckContext } from '../src/orders/checks.ts';
import { parsePlaceJson, type PlaceRequest } from '../src/orders/request.ts';
import { startService, type Service } from '../src/service.ts';
import { startWorker } from '../src/threads.ts';
import { until } from '../test/support/until.ts';
import { matchingBench, type MatchingResult } from './orders-matching.ts';
import type { Latency, RoundTripMessage, RoundTripOptions, RoundTripResult } from './orders-roundtrip.ts';
import { QUICK, record } from './report.ts';
import { cpuMs, forceGc, loadLine, schedDelta, schedOf, startSimProcess, us, type Sched } from './support.ts';

const ADMIN_URL = process.env.BENCH_PG_URL ?? 'postgres://root@127.0.0.1:5432/test';
const EMBEDDED = process.env.BENCH_ORDERS_DB === 'embedded';
/**
 * Where the feed comes from. `process` (default): the Kite simulator as its own process (`npm run
 * sim`), as Kite is in production, remote, so the service's main thread does what it does in
 * production: ingest, hub, REST. `inprocess`: the built-in simulator inside the service's main
 * thread (what `npm start` with no Kite credentials does), which adds generating 20k ticks/s to it.
 */
const SIM_WHERE = process.env.BENCH_ORDERS_SIM === 'inprocess' ? 'inprocess' : 'process';
const PAIRS = Number(process.env.BENCH_ORDERS_N ?? (QUICK ? 300 : 3000));
const WARMUP_PAIRS = QUICK ? 100 : 500;
const CANCEL_EVERY = 500;
const BLOCK = 1000;
/** One-row transactions timed for the commit floor (PostgreSQL only). */
const COMMITS = QUICK ? 100 : 1000;
const SIM_RATE = 20_000;
/** The feed counts as "at 20k ticks/s" from this share of it. */
const FEED_FLOOR = 0.9;
const TARGET_P99_US = 2000;
const SECRET = 'bench-orders-secret-0123456789';

/** Raised from Kite's and the key's defaults so that no order is refused during the bench. */
const RAISED: Record<string, string> = {
  API_RATE_PER_SEC: '1000000',
  API_RATE_BURST: '1000000',
  KITE_ORDER_RATE_PER_SEC: '1000000',
  KITE_ORDER_RATE_PER_MIN: '1000000',
  KITE_ORDER_RATE_PER_DAY: '100000000',
  ORDER_MAX_PER_DAY: '10000000',
  ORDER_MAX_OPEN_QTY: '1000000000',
  PAPER_CAPITAL: '1000000000',
};

/** The event loop delay monitor's timer, ms. */
const LOOP_RESOLUTION_MS = 1;
const CHECK_ROUNDS = QUICK ? 2 : 7;
const CHECK_ROUND_MS = QUICK ? 30 : 150;

// --- 1. round trip -------------------------------------------------------------------------------

interface FeedRate {
  ticksPerS: number;
  packetsPerS: number;
  seconds: number;
  /** The service's main thread (ingest, hub, REST; and the simulator with BENCH_ORDERS_SIM=inprocess) over the window: share of wall time on a core, and waiting for one. */
  mainBusy: number | null;
  mainWaiting: number | null;
  /** Its event loop's delay, µs. */
  loopP50Us: number;
  loopP99Us: number;
}

type Part1 = { ok: true; rt: RoundTripResult; feed: FeedRate; storage: string } | { ok: false; storage: string; failure: string };

function counters(s: Service): { ticks: number; packets: number; t: number } {
  const h = s.health() as { live: { ticks: number }; decode: { packets: number } };
  return { ticks: h.live.ticks, packets: h.decode.packets, t: performance.now() };
}

/** The client worker's run, with the feed's rate sampled from the service between 'measuring' and 'done'. */
function runClient(service: Service, opts: RoundTripOptions): Promise<{ rt: RoundTripResult; feed: FeedRate }> {
  return new Promise((resolve, reject) => {
    const w = startWorker(new URL('./orders-roundtrip.ts', import.meta.url), { workerData: { roundTrip: opts } });
    let before = counters(service);
    let sched0: Sched | null = null;
    const loop = monitorEventLoopDelay({ resolution: LOOP_RESOLUTION_MS });
    let done = false;
    w.on('message', (m: RoundTripMessage) => {
      if (m.type === 'measuring') {
        before = counters(service);
        sched0 = schedOf([process.pid]);
        loop.enable();
      } else {
        const after = counters(service);
        const d = schedDelta(sched0, schedOf([process.pid]));
        loop.disable();
        const s = (after.t - before.t) / 1000;
        done = true;
        resolve({
          rt: m.result,
          feed: {
            ticksPerS: (after.ticks - before.ticks) / s, packetsPerS: (after.packets - before.packets) / s, seconds: s,
            mainBusy: d === null ? null : d.runNs / 1e9 / s, mainWaiting: d === null ? null : d.waitNs / 1e9 / s,
            // The histogram holds the whole interval between its timer's firings: the delay is past LOOP_RESOLUTION_MS.
            loopP50Us: Math.max(0, loop.percentile(50) / 1000 - LOOP_RESOLUTION_MS * 1000),
            loopP99Us: Math.max(0, loop.percentile(99) / 1000 - LOOP_RESOLUTION_MS * 1000),
          },
        });
        void w.terminate();
      }
    });
    w.on('error', reject);
    w.on('exit', (code) => {
      if (!done) reject(new Error(`the client worker exited (${code}) before reporting`));
    });
  });
}

function describe(e: unknown): string {
  const err = e as Error & { code?: string };
  return `${err.name ?? 'Error'}${err.code ? ` [${err.code}]` : ''}: ${err.message ?? String(e)}`;
}

async function roundTrip(): Promise<Part1> {
  const dataDir = mkdtempSync(join(tmpdir(), 'bench-orders-'));
  const name = `bench_orders_${process.pid}`;
  const admin = EMBEDDED ? null : postgres(ADMIN_URL, pgOptions({ max: 1 }));
  let storage = EMBEDDED ? `embedded PGlite in ${dataDir}` : `PostgreSQL database ${name}`;
  let service: Service | null = null;
  let sim: ChildProcess | null = null;
  try {
    const env: Record<string, string> = {
      DATA_DIR: dataDir, PORT: '0', API_KEYS: `bench:${SECRET}`, SIM_RATE: String(SIM_RATE), ...RAISED,
    };
    if (SIM_WHERE === 'process') {
      const started = await startSimProcess(SIM_RATE);
      sim = started.child;
      Object.assign(env, {
        KITE_API_KEY: 'sim', KITE_ACCESS_TOKEN: 'sim', KITE_WS_URL: started.wsUrl, KITE_API_URL: started.apiUrl, MARKET_HOURS: 'always',
      });
    }
    console.log(`   feed source: ${SIM_WHERE === 'process' ? 'the Kite simulator in a process of its own (npm run sim), as Kite is remote in production' : 'the built-in simulator in the service\'s main thread (BENCH_ORDERS_SIM=inprocess)'}`);
    if (admin !== null) {
      await admin.unsafe(`DROP DATABASE IF EXISTS ${name}`);
      await admin.unsafe(`CREATE DATABASE ${name}`);
      env.DATABASE_URL = ADMIN_URL.replace(/\/[^/]*$/, `/${name}`);
      storage = `PostgreSQL database ${name} (${env.DATABASE_URL.replace(/\/\/[^@/]*@/, '//')})`;
    }
    const config = loadConfig(env);
    try {
      service = await startService(config, silentLogger);
    } catch (e) {
      return { ok: false, storage, failure: `startService failed: ${describe(e)}` };
    }
    const s = service;
    const infy = s.tokens.find((t) => s.orders.kiteSymbol(t) === 'INFY');
    if (infy === undefined) return { ok: false, storage, failure: 'INFY is not in the service\'s universe (service.tokens)' };
    await until('INFY to tick', () => s.orders.mark(infy) !== null, 60_000);
    // The feed up to its rate before anything is timed: a second of ticks at the hub at 90 % of it.
    let c0 = counters(s);
    let lastRate = 0;
    await until(() => `the feed to reach ${FEED_FLOOR * SIM_RATE} ticks/s at the hub (last second: ${lastRate.toFixed(0)})`, () => {
      const c = counters(s);
      if (c.t - c0.t < 1000) return false;
      lastRate = (c.ticks - c0.ticks) / ((c.t - c0.t) / 1000);
      c0 = c;
      return lastRate >= FEED_FLOOR * SIM_RATE;
    }, 30_000);
    console.log(`   feed before the run: ${lastRate.toFixed(0)} ticks/s at the hub over the last second`);
    const { rt, feed } = await runClient(s, {
      port: s.port, secret: SECRET, warmupPairs: WARMUP_PAIRS, pairs: PAIRS, cancelEvery: CANCEL_EVERY, block: BLOCK,
      dbUrl: env.DATABASE_URL ?? null, commits: COMMITS,
    });
    const writeErrors = s.orders.stats().writeErrors;
    if (writeErrors > 0 && rt.failure === null) rt.failure = `the order service counted ${writeErrors} failed writes (orders.stats().writeErrors)`;
    return { ok: true, rt, feed, storage };
  } catch (e) {
    return { ok: false, storage, failure: describe(e) };
  } finally {
    await service?.close();
    sim?.kill('SIGTERM');
    if (admin !== null) {
      await admin.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`).catch(() => {});
      await admin.end();
    }
    rmSync(dataDir, { recursive: true, force: true });
  }
}

function latencyRow(label: string, l: Latency): string[] {
  return [label, String(l.count), us(l.meanUs), us(l.p50Us), us(l.p99Us), us(l.p999Us), us(l.maxUs)];
}

function printTable(head: string[], rows: string[][], indent = '   '): void {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const fmt = (r: string[]) => indent + r.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  console.log(fmt(head));
  for (const r of rows) console.log(fmt(r));
}

function printPart1(p: Part1): void {
  if (!p.ok) {
    console.log(`   FAILED (${p.storage}): ${p.failure}`);
    return;
  }
  const { rt, feed } = p;
  console.log(`   storage: ${p.storage}; client: a worker thread, ${rt.connections} keep-alive connection${rt.connections === 1 ? '' : 's'} over the whole run`);
  console.log(`   feed during the measurement: ${feed.ticksPerS.toFixed(0)} ticks/s reached the hub ` +
    `(${feed.packetsPerS.toFixed(0)} packets/s decoded) over ${feed.seconds.toFixed(1)} s; asked ${SIM_RATE} ticks/s`);
  if (feed.mainBusy !== null && feed.mainWaiting !== null) {
    console.log(`   the service's main thread (${SIM_WHERE === 'process' ? '' : 'simulator, '}ingest, hub, REST) over the measurement: on a core ${(feed.mainBusy * 100).toFixed(0)} % ` +
      `of the time, runnable but waiting for one ${(feed.mainWaiting * 100).toFixed(0)} %; event loop delay (past a 1 ms timer) p50 ${us(feed.loopP50Us)}, p99 ${us(feed.loopP99Us)}`);
  }
  if (rt.failure !== null) console.log(`   FAILED after ${rt.ordersPlaced} orders: ${rt.failure}`);
  printTable(['request', 'n', 'mean', 'p50', 'p99', 'p99.9', 'max'], [
    latencyRow('GET /api/quote?symbols=NSE:INFY (baseline)', rt.quote),
    latencyRow('POST /api/orders (LIMIT 10 % under, rests)', rt.order),
    ...(rt.commit === null ? [] : [latencyRow('floor: 1-row INSERT transaction, same PostgreSQL', rt.commit)]),
  ]);
  if (rt.order.count > 0 && rt.quote.count > 0) {
    console.log(`   order over quote: p50 +${us(rt.order.p50Us - rt.quote.p50Us)} (${(rt.order.p50Us / rt.quote.p50Us).toFixed(2)}x), ` +
      `p99 +${us(rt.order.p99Us - rt.quote.p99Us)} (${(rt.order.p99Us / rt.quote.p99Us).toFixed(2)}x)`);
  }
  if (rt.orderBlockP50Us.length > 0) {
    console.log(`   order p50 per ${BLOCK} timed orders, in order (after ${WARMUP_PAIRS} warm-up): ${rt.orderBlockP50Us.map(us).join(', ')}`);
  }
  console.log(`   ${loadLine()} (after the run)`);
  console.log(`   orders placed ${rt.ordersPlaced} (warm-up included), cancelled ${rt.ordersCancelled} in batches of ${CANCEL_EVERY} (untimed)`);
}

// --- 3. pre-trade checks -------------------------------------------------------------------------

interface CheckFigures {
  jsonNs: number;
  checkNs: number;
  parseCheckNs: number;
  allNs: number;
}

/** CPU ns per call of a loop of `n` calls, best of the rounds; each loop is its own function. */
function best(loop: (n: number) => number): number {
  // Calibrate to ~CHECK_ROUND_MS a round, after a warm-up.
  let n = 1000;
  loop(n);
  for (;;) {
    const t0 = cpuMs();
    loop(n);
    const ms = cpuMs() - t0;
    if (ms >= 20) {
      n = Math.max(1000, Math.round((n * CHECK_ROUND_MS) / ms));
      break;
    }
    n *= 4;
  }
  let bestNs = Infinity;
  let sink = 0;
  for (let r = 0; r < CHECK_ROUNDS; r++) {
    forceGc();
    const t0 = cpuMs();
    sink += loop(n);
    bestNs = Math.min(bestNs, ((cpuMs() - t0) * 1e6) / n);
  }
  if (!Number.isFinite(sink)) throw new Error('sink');
  return bestNs;
}

function checksBench(): CheckFigures {
  const inst = buildNifty50Universe({ today: new Date() }).find((i) => i.tradingsymbol === 'INFY' && i.exchange === 'NSE');
  if (inst === undefined) throw new Error('INFY is not in buildNifty50Universe');
  const config = loadConfig({}).orders;
  const lastPaise = Math.round(inst.lastPrice * 100);
  const ctx: CheckContext = {
    config, instrument: inst, lastPricePaise: lastPaise, closePaise: Math.round(lastPaise * 0.99 / 5) * 5,
    nowMs: Date.now(), openQty: 10, ordersToday: 120, availablePaise: 50_00_000_00,
  };
  const pricePaise = Math.floor((lastPaise * 9) / 10 / 5) * 5;
  const body = JSON.stringify({
    variety: 'regular', exchange: 'NSE', tradingsymbol: 'INFY', transaction_type: 'BUY', quantity: 1, product: 'CNC',
    order_type: 'LIMIT', price: pricePaise / 100, tag: 'bench',
  });
  const obj = JSON.parse(body) as unknown;
  const req: PlaceRequest = parsePlaceJson(obj);
  // The same answer both ways, and a passing one, or the timing means nothing.
  const a = checkPlace(req, ctx);
  const b = checkPlace(parsePlaceJson(JSON.parse(body)), ctx);
  if (a.valuePaise !== pricePaise || b.valuePaise !== a.valuePaise || a.marginPaise !== b.marginPaise) {
    throw new Error(`checkPlace disagrees with itself: ${a.valuePaise}/${a.marginPaise} vs ${b.valuePaise}/${b.marginPaise}`);
  }
  console.log(`   request: ${body} (${body.length} bytes); instrument INFY from buildNifty50Universe, config loadConfig({}).orders`);

  const jsonNs = best((n) => {
    let s = 0;
    for (let i = 0; i < n; i++) s += (JSON.parse(body) as { quantity: number }).quantity;
    return s;
  });
  const checkNs = best((n) => {
    let s = 0;
    for (let i = 0; i < n; i++) s += checkPlace(req, ctx).marginPaise;
    return s;
  });
  const parseCheckNs = best((n) => {
    let s = 0;
    for (let i = 0; i < n; i++) s += checkPlace(parsePlaceJson(obj), ctx).marginPaise;
    return s;
  });
  const allNs = best((n) => {
    let s = 0;
    for (let i = 0; i < n; i++) s += checkPlace(parsePlaceJson(JSON.parse(body)), ctx).marginPaise;
    return s;
  });
  return { jsonNs, checkNs, parseCheckNs, allNs };
}

const ns = (x: number): string => (x < 1000 ? `${x.toFixed(0)} ns` : `${(x / 1000).toFixed(2)} µs`);

// --- the bench -----------------------------------------------------------------------------------

export default async function run(): Promise<void> {
  console.log(loadLine());

  console.log(`\n1. Order round trip on paper, the whole service in this process (feed at ${SIM_RATE} ticks/s, ` +
    `shard workers, batch writer, paper broker, REST), ${PAIRS} quote/order pairs after ${WARMUP_PAIRS} warm-up, one at a time:`);
  console.log(`   raised so the bench measures latency, not refusals: ${Object.entries(RAISED).map(([k, v]) => `${k}=${v}`).join(' ')}`);
  const p1 = await roundTrip();
  printPart1(p1);

  console.log('\n2. Matching cost per tick (bench/orders-matching.ts):');
  const m: MatchingResult = await matchingBench();

  console.log('\n3. Pre-trade checks per order, CPU time, best of ' + `${CHECK_ROUNDS} rounds of ~${CHECK_ROUND_MS} ms:`);
  const c = checksBench();
  printTable(['step', 'per order', 'vs JSON.parse'], [
    ['JSON.parse of the body (baseline)', ns(c.jsonNs), '1.00x'],
    ['checkPlace (request already parsed)', ns(c.checkNs), `${(c.checkNs / c.jsonNs).toFixed(2)}x`],
    ['parsePlaceJson + checkPlace', ns(c.parseCheckNs), `${(c.parseCheckNs / c.jsonNs).toFixed(2)}x`],
    ['JSON.parse + parsePlaceJson + checkPlace', ns(c.allNs), `${(c.allNs / c.jsonNs).toFixed(2)}x`],
  ]);

  // --- summary
  const rows: string[][] = [];
  if (p1.ok && p1.rt.order.count > 0) {
    const feedOk = p1.feed.ticksPerS >= FEED_FLOOR * SIM_RATE;
    const met = p1.rt.failure === null && feedOk && p1.rt.order.p99Us < TARGET_P99_US;
    const why = p1.rt.failure !== null ? ' (orders failed)' : feedOk ? '' : ` (feed at ${(p1.feed.ticksPerS / 1000).toFixed(1)}k ticks/s, not ~${SIM_RATE / 1000}k)`;
    rows.push([`order round trip p99, paper, feed ${(p1.feed.ticksPerS / 1000).toFixed(1)}k ticks/s`, us(p1.rt.order.p99Us),
      `quote p99 ${us(p1.rt.quote.p99Us)}` + (p1.rt.commit === null ? '' : `; 1-row commit p99 ${us(p1.rt.commit.p99Us)}`), `< ${us(TARGET_P99_US)}`, (met ? 'MET' : 'NOT MET') + why]);
  } else {
    rows.push(['order round trip p99, paper, feed 20k ticks/s', '—', '—', `< ${us(TARGET_P99_US)}`,
      `NOT MEASURED: ${p1.ok ? p1.rt.failure : p1.failure}`.slice(0, 160)]);
  }
  if (p1.ok && p1.rt.order.count > 0) {
    const rt = p1.rt;
    record({ bench: 'orders', name: 'paper order round trip p50', unit: 'µs', better: 'lower', value: rt.order.p50Us, baseline: { name: 'GET /api/quote p50', value: rt.quote.p50Us } });
    record({
      bench: 'orders', name: 'paper order round trip p99', unit: 'µs', better: 'lower', value: rt.order.p99Us,
      baseline: { name: 'GET /api/quote p99', value: rt.quote.p99Us }, target: { op: '<=', value: TARGET_P99_US },
    });
  }
  record({
    bench: 'orders', name: 'matching per tick, 1,000 resting orders', unit: 'ns/tick CPU', better: 'lower', value: m.bookNsPerTick,
    baseline: { name: 'scan every resting order', value: m.scanNsPerTick }, target: { op: '<=', value: 1000 },
  });
  record({ bench: 'orders', name: 'parse + check per order', unit: 'ns CPU', better: 'lower', value: c.parseCheckNs, baseline: { name: 'JSON.parse of the body', value: c.jsonNs } });
  rows.push(['matching per tick, 1,000 resting orders', ns(m.bookNsPerTick), `scan ${ns(m.scanNsPerTick)} (${m.ratio.toFixed(1)}x)`,
    '< 1 µs and >= 50x', m.bookNsPerTick < 1000 && m.ratio >= 50 ? 'MET' : 'NOT MET']);
  rows.push(['pre-trade check per order (checkPlace)', ns(c.checkNs), `JSON.parse ${ns(c.jsonNs)}`, 'none set', '—']);
  rows.push(['parse + check per order (parsePlaceJson + checkPlace)', ns(c.parseCheckNs), `JSON.parse ${ns(c.jsonNs)}`, 'none set', '—']);
  console.log('\nsummary');
  printTable(['figure', 'value', 'baseline', 'target', 'result'], rows);
}
