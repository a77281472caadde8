/**
 * How the pipeline's threads wait (PIPELINE_WAIT, src/core/ring.ts): each strategy against the
 * floor, in one run.
 *
 * 1. Latency: the setup of bench/feed.bench.ts's case 2 (100 clients in a second process, client i
 *    on the tokens whose index is i mod 100, full mode, frames of 1..80 packets pushed on a 1 ms
 *    timer) at 1k, 10k and 100k ticks/s in. Tick → client p50/p99 (push into the front → decoded
 *    in the client), front → hub p99 (the pipeline's own share), and CPU: this process (front,
 *    shard worker, hub, uWS), its main thread, its other threads, the clients process. At each
 *    rate the floor runs first: a bare uWebSockets.js app publishing the same records to the same
 *    clients (startFloor in bench/feed-harness.ts, as bench/feed.bench.ts runs it), what the
 *    transport and the clients cost with no pipeline.
 * 2. Saturated throughput: front → shard → both consumer slots drained by OutputPumps in this
 *    thread (STORE with no work, FEED through the FeedHub, no sockets), frames pushed as fast as
 *    the rings take them, ticks/s through the hub, each strategy against park.
 *
 * `npm run bench -- wait` (about 4 minutes); QUICK: one short step per strategy at 10k ticks/s.
 * WAIT_BENCH_ONLY=spin-park:50,park runs only those strategies, WAIT_BENCH_SATURATED_ONLY=1 only part 2,
 * for development.
 *
 * What it chose: park (DEFAULT_PIPELINE_WAIT in src/core/ring.ts has the figures and why).
 * On a shared 2-core machine tick → client p99 is the clients' and the scheduler's: the floor's
 * own p99 moves by tens of ms between rounds, far more than the 1 ms the issue aimed for, so the
 * front → hub column (the pipeline's own share) is what tells the strategies apart. At 1k and 10k
 * ticks/s frames come 4-40 ms apart and every strategy wakes from sleep (p50 ~0.35-0.6 ms front →
 * hub); a spin long enough to bridge that would hold a core all the time.
 */
import { cpus, loadavg } from 'node:os';
import { performance } from 'node:perf_hooks';
import { nowMicros } from '../src/core/clock.ts';
import { Front } from '../src/front.ts';
import { FeedHub } from '../src/gateway/hub.ts';
import { DEFAULT_PIPELINE_WAIT, formatWaitPolicy, parseWaitPolicy, type WaitPolicy } from '../src/core/ring.ts';
import { OutputPump, Pipeline } from '../src/pipeline.ts';
import { TickConsumer } from '../src/core/tick.ts';
import { DEFAULT_TIMEFRAMES, parseTimeframe } from '../src/core/ist.ts';
import type { Instrument } from '../src/core/instrument.ts';
import { universe } from '../test/pipeline/harness.ts';
import type { ClientStats } from './feed-clients.ts';
import { Clients, cpuMark, cpuUse, ReplayFrames, startFloor, startOurs, type CpuUse, type Server } from './feed-harness.ts';
import { QUICK, median, record } from './report.ts';
import { forceGc } from './support.ts';

const STRIKES = 40;
const EXPIRIES = 2;
/** One shard worker: the service's default on 2 cores (WORKERS = cores - 1). */
const WORKERS = 1;
const CLIENTS = 100;
const SET_TICKS = 50_000;
const RATES = QUICK ? [10_000] : [1_000, 10_000, 100_000];
const WARM_MS = QUICK ? 200 : 1000;
const WINDOW_MS = QUICK ? 500 : 3000;
const SAT_WARM_MS = QUICK ? 200 : 700;
const SAT_MS = QUICK ? 500 : 2000;
/**
 * Rounds: each measures the floor and every strategy at every rate, the strategies in a rotated
 * order, so load that comes and goes on this shared machine falls on each in turn; figures are
 * medians over the rounds.
 */
const ROUNDS = QUICK ? 1 : 2;
/** Saturated runs swing 2x between rounds on this machine (other work takes the cores): more of them, each shorter. */
const SAT_ROUNDS = QUICK ? 1 : 4;
/** For development: WAIT_BENCH_SATURATED_ONLY=1 skips the latency runs. */
const SATURATED_ONLY = process.env.WAIT_BENCH_SATURATED_ONLY === '1';
/** Longest the bench pushes frames in one turn of the event loop. */
const BURST_MS = 2;
/** The issue's targets: p99 within 1 ms of the floor, at most 10 % of saturated throughput lost. */
const TARGET_P99_OVER_FLOOR_US = 1000;
const MAX_THROUGHPUT_LOSS = 0.1;

const STRATEGIES: WaitPolicy[] = (process.env.WAIT_BENCH_ONLY ?? 'park,spin-park:50,spin-park:500,adaptive:500,adaptive:1000')
  .split(',').map((s) => {
    const p = parseWaitPolicy(s);
    if (p === null) throw new RangeError(`WAIT_BENCH_ONLY: "${s}" is not a wait policy`);
    return p;
  });

interface Paced {
  inTps: number;
  client: ClientStats;
  hubP50: number;
  hubP99: number;
  cpu: CpuUse;
  clientCpu: number;
  lagP99: number;
}

async function paced(server: Server, clients: Clients, frames: ReplayFrames, subs: number[][], rate: number): Promise<Paced> {
  frames.reset();
  await clients.request({ cmd: 'open', url: server.url, n: CLIENTS, proto: 'feed', mode: 'full', subs });
  let pushed = 0;
  let stopped = false;
  let timer: NodeJS.Timeout | null = null;
  let immediate: NodeJS.Immediate | null = null;
  const lags = new Float64Array(200_000);
  let nLags = 0;
  let lagOn = false;
  const tStart = performance.now();
  const step = (): void => {
    timer = null;
    immediate = null;
    if (stopped) return;
    const until = performance.now() + BURST_MS;
    const due = (rate * (performance.now() - tStart)) / 1000;
    while (pushed < due && !server.blocked()) {
      const f = frames.next(Date.now());
      if (lagOn && nLags < lags.length) lags[nLags++] = (performance.now() - tStart - (pushed / rate) * 1000) * 1000;
      server.push(frames.frames[f]);
      pushed += frames.counts[f];
      if (performance.now() > until) {
        immediate = setImmediate(step);
        return;
      }
    }
    timer = setTimeout(step, 1);
  };
  step();
  await new Promise((r) => setTimeout(r, WARM_MS));
  forceGc();
  await clients.request({ cmd: 'start', latency: true });
  lagOn = true;
  server.hubLatency?.(true);
  const p0 = pushed;
  const m0 = cpuMark();
  await new Promise((r) => setTimeout(r, WINDOW_MS));
  const stats = await clients.request<ClientStats>({ cmd: 'stop' });
  const m1 = cpuMark();
  const p1 = pushed;
  const hub = server.hubLatency?.(false) ?? { p50: NaN, p99: NaN };
  stopped = true;
  if (timer) clearTimeout(timer);
  if (immediate) clearImmediate(immediate);
  await clients.request({ cmd: 'close' });
  return {
    inTps: ((p1 - p0) / (m1.wall - m0.wall)) * 1000,
    client: stats,
    hubP50: hub.p50,
    hubP99: hub.p99,
    cpu: cpuUse(m0, m1),
    clientCpu: ((stats.cpuUserMs + stats.cpuSystemMs) / stats.windowMs) * 100,
    lagP99: nLags > 0 ? lags.slice(0, nLags).sort()[Math.ceil(0.99 * nLags) - 1] : NaN,
  };
}

/** Ticks/s through front → shard → hub with the rings kept full, and this process's CPU. */
async function saturate(instruments: Instrument[], frames: ReplayFrames, wait: WaitPolicy): Promise<{ tps: number; cpu: number }> {
  frames.reset();
  const front = new Front({ shards: WORKERS, ringCapacity: 1 << 16 });
  const timeframes = DEFAULT_TIMEFRAMES.map(parseTimeframe);
  let failure: Error | null = null;
  const pipeline = new Pipeline({ rings: front.rings, instruments, mode: 'full', timeframesMs: timeframes, wait, onError: (_s, e) => { failure = e; } });
  const store = new OutputPump(pipeline.reader(TickConsumer.STORE), { tick() {}, bar() {} });
  const hub = new FeedHub(instruments, timeframes);
  let ticks = 0;
  hub.add({ tick() { ticks++; } });
  hub.start(pipeline);
  await pipeline.memory(60_000); // the shard thread has loaded
  let stopped = false;
  let seq = 0;
  const step = (): void => {
    if (stopped) return;
    const until = performance.now() + BURST_MS;
    while (!front.pendingCount() && performance.now() < until) {
      const f = frames.next(Date.now());
      front.onBinary(frames.frames[f], 0, ++seq, nowMicros());
    }
    setImmediate(step);
  };
  step();
  await new Promise((r) => setTimeout(r, SAT_WARM_MS));
  const t0 = ticks;
  const m0 = cpuMark();
  await new Promise((r) => setTimeout(r, SAT_MS));
  const m1 = cpuMark();
  const t1 = ticks;
  stopped = true;
  await front.close();
  await pipeline.stop();
  await Promise.all([store.done, hub.done()]);
  if (failure) throw failure;
  return { tps: ((t1 - t0) / (m1.wall - m0.wall)) * 1000, cpu: cpuUse(m0, m1).server };
}

const fmt = (x: number): string => (x >= 1e6 ? `${(x / 1e6).toFixed(2)}M` : x >= 1e3 ? `${(x / 1e3).toFixed(1)}k` : x.toFixed(0));
const ms = (us: number): string => (us / 1000).toFixed(2);
const pct = (x: number): string => `${x.toFixed(0)}%`;

export default async function run(): Promise<void> {
  const cores = cpus().length;
  const instruments = universe(STRIKES, EXPIRIES);
  const tokens = instruments.map((i) => i.instrumentToken);
  const subs = Array.from({ length: CLIENTS }, (_, i) => tokens.filter((_t, j) => j % CLIENTS === i));
  const frames = new ReplayFrames(instruments, SET_TICKS);
  const tStart = performance.now();
  console.log(`load average ${loadavg().map((l) => l.toFixed(2)).join(' ')} on ${cores} cores; ${instruments.length} instruments, ` +
    `${WORKERS} shard worker, ${CLIENTS} clients on 1 % each, full mode; strategies ${STRATEGIES.map(formatWaitPolicy).join(', ')}` +
    (QUICK ? ' (QUICK: figures say nothing)' : ''));

  // 1. Latency at each rate: the floor, then each strategy.
  const lat: { rate: number; name: string; r: Paced }[] = [];
  const clients = Clients.start();
  try {
    for (let round = 0; round < (SATURATED_ONLY ? 0 : ROUNDS); round++) for (const rate of RATES) {
      const order = STRATEGIES.map((_w, i) => STRATEGIES[(i + round) % STRATEGIES.length]);
      for (const which of [null, ...order]) {
        const server = which === null ? await startFloor(instruments, frames) : await startOurs(instruments, { wait: which, workers: WORKERS });
        try {
          const r = await paced(server, clients, frames, subs, rate);
          lat.push({ rate, name: which === null ? 'floor' : formatWaitPolicy(which), r });
        } finally {
          await server.close();
        }
        process.stdout.write(`  done: ${fmt(rate)}/s ${which === null ? 'floor' : formatWaitPolicy(which)} (${((performance.now() - tStart) / 1000).toFixed(0)} s)\n`);
      }
    }
  } finally {
    await clients.stop();
  }

  // 2. Saturated throughput.
  const satRuns: { name: string; tps: number; cpu: number }[] = [];
  for (let round = 0; round < SAT_ROUNDS; round++) {
    for (const w of STRATEGIES.map((_w, i) => STRATEGIES[(i + round) % STRATEGIES.length])) {
      const r = await saturate(instruments, frames, w);
      satRuns.push({ name: formatWaitPolicy(w), ...r });
      process.stdout.write(`  done: saturated ${formatWaitPolicy(w)} (${((performance.now() - tStart) / 1000).toFixed(0)} s)\n`);
    }
  }
  const sat = STRATEGIES.map((w) => {
    const name = formatWaitPolicy(w);
    const runs = satRuns.filter((x) => x.name === name);
    return { name, tps: median(runs.map((x) => x.tps)), cpu: median(runs.map((x) => x.cpu)), runs: runs.map((x) => x.tps) };
  });
  const parkTps = sat.find((s) => s.name === 'park')?.tps ?? sat[0].tps;

  // Medians over the rounds, per rate and server.
  const names = ['floor', ...STRATEGIES.map(formatWaitPolicy)];
  const cells = RATES.flatMap((rate) => names.map((name) => {
    const rs = lat.filter((x) => x.rate === rate && x.name === name).map((x) => x.r);
    const m = (f: (r: Paced) => number): number => median(rs.map(f));
    return {
      rate, name, p99s: rs.map((r) => r.client.p99),
      p50: m((r) => r.client.p50), p99: m((r) => r.client.p99), hubP50: m((r) => r.hubP50), hubP99: m((r) => r.hubP99),
      delivered: m((r) => (r.client.ticks / r.client.windowMs) * 1000),
      server: m((r) => r.cpu.server), main: m((r) => r.cpu.serverMain), other: m((r) => r.cpu.serverOther), clients: m((r) => r.clientCpu),
      lag: m((r) => r.lagP99),
    };
  }));
  const cell = (rate: number, name: string) => cells.find((c) => c.rate === rate && c.name === name)!;

  if (SATURATED_ONLY) {
    console.table(sat.map((x) => ({ strategy: x.name, 'ticks/s': fmt(x.tps), 'each round': x.runs.map(fmt).join(' '), 'vs park': `${((x.tps / parkTps) * 100).toFixed(0)}%`, 'process CPU': pct(x.cpu) })));
    return;
  }
  console.log(`\n1. Tick → client latency (push into the front → decoded in a client), ms, median of ${ROUNDS} round(s) of ` +
    `${WINDOW_MS / 1000} s after ${WARM_MS / 1000} s. CPU in % of one core (${cores} cores shared by this process and the clients process).`);
  console.table(cells.map((c) => {
    const floor = cell(c.rate, 'floor');
    const ours = c.name !== 'floor';
    return {
      'ticks/s in': fmt(c.rate),
      server: c.name,
      'delivered/s': fmt(c.delivered),
      p50: ms(c.p50),
      p99: ms(c.p99),
      'p99 each round': c.p99s.map(ms).join(' '),
      'p99 − floor': ours ? ms(c.p99 - floor.p99) : '',
      'front→hub p50/p99': ours ? `${ms(c.hubP50)} / ${ms(c.hubP99)}` : '',
      'server CPU': pct(c.server),
      '· main': pct(c.main),
      '· workers etc.': pct(c.other),
      'clients CPU': pct(c.clients),
      'push lag p99': ms(c.lag),
    };
  }));
  console.log(`\n2. Saturated: front → ${WORKERS} shard → both output slots drained in this thread (hub, no sockets), ${SAT_MS / 1000} s after ${SAT_WARM_MS / 1000} s, median of ${SAT_ROUNDS}.`);
  console.table(sat.map((s) => ({
    strategy: s.name, 'ticks/s': fmt(s.tps), 'each round': s.runs.map(fmt).join(' '), 'vs park': `${((s.tps / parkTps) * 100).toFixed(0)}%`, 'process CPU': pct(s.cpu),
  })));

  for (const c of cells) {
    const floor = cell(c.rate, 'floor');
    record({
      bench: 'wait', name: `${c.name}: tick → client p99 at ${fmt(c.rate)} ticks/s`, unit: 'ms', better: 'lower',
      value: c.p99 / 1000, runs: c.p99s.map((x) => x / 1000),
      ...(c.name === 'floor' ? {} : {
        baseline: { name: 'bare uWebSockets.js floor', value: floor.p99 / 1000 },
        target: { op: '<=' as const, value: (floor.p99 + TARGET_P99_OVER_FLOOR_US) / 1000 },
      }),
    });
  }
  for (const s of sat) {
    record({
      bench: 'wait', name: `${s.name}: saturated throughput`, unit: 'ticks/s', better: 'higher', value: s.tps, runs: s.runs,
      baseline: { name: 'park', value: parkTps }, target: { op: '>=', value: parkTps * (1 - MAX_THROUGHPUT_LOSS) },
    });
  }

  // The verdict: which strategies meet both targets, and how far each is from the floor.
  console.log('');
  for (const w of STRATEGIES) {
    const name = formatWaitPolicy(w);
    const over = RATES.map((rate) => cell(rate, name).p99 - cell(rate, 'floor').p99);
    const loss = 1 - sat.find((s) => s.name === name)!.tps / parkTps;
    const meets = over.every((o) => o <= TARGET_P99_OVER_FLOOR_US) && loss <= MAX_THROUGHPUT_LOSS;
    console.log(`${name.padEnd(16)} p99 − floor ${over.map((o) => `${ms(o)}`).join(' / ')} ms at ${RATES.map(fmt).join(' / ')} ticks/s; ` +
      `saturated ${loss >= 0 ? '−' : '+'}${Math.abs(loss * 100).toFixed(0)}% vs park → ${meets ? 'MEETS' : 'misses'} the targets`);
  }
  // The floor's own rounds say how much of a difference is this machine's noise.
  const floorSpread = RATES.map((rate) => {
    const xs = cell(rate, 'floor').p99s;
    return `${ms(Math.min(...xs))}-${ms(Math.max(...xs))}`;
  });
  console.log(`the floor's own p99 across rounds: ${floorSpread.join(' / ')} ms at ${RATES.map(fmt).join(' / ')} ticks/s (differences smaller than that are noise)`);
  console.log(`default (PIPELINE_WAIT unset): ${formatWaitPolicy(DEFAULT_PIPELINE_WAIT)}; ${loadavg()[0] > cores ? `load average ${loadavg()[0].toFixed(1)} on ${cores} cores: a busy machine, latencies are its queueing` : ''}`);
}
