/**
 * Live feed fan-out: the real stack (front → shard workers → hub → msgpack feed on
 * uWebSockets.js) in this process, WebSocket clients in another (bench/feed-clients.ts, forked
 * with `node --import tsx`), on loopback. Against it, in the same run, the baseline: a `ws`
 * WebSocketServer in this process that parses each Kite frame with the official
 * KiteTicker#parseBinary and sends JSON.stringify of each tick to each client that wants it, one
 * message per tick (stringified once per tick, sent per client), to the same clients process,
 * which JSON.parses every message.
 *
 * Input: full-mode Kite frames of 1..80 packets from the simulator's market model, encoded once
 * and replayed (ReplayFrames in bench/feed-harness.ts), pushed into the front as the Kite socket
 * would. Each frame's receive time is the clock when it is pushed; the pipeline carries it to the
 * full tick's `rt`.
 *
 * 1. Every client subscribed to every token (full mode), for 1, 100 and 1,000 clients, and in
 *    quote mode for 100 (the baseline then parses quote-mode Kite frames), at the maximum rate: frames are pushed as fast as the slowest client decodes them. The clients
 *    process reports, every 2 ms over IPC, the fewest ticks any client has received, and the bench
 *    keeps at most WINDOW_TOTAL / clients ticks per client (300..10,000) pushed but not yet decoded:
 *    a TCP-like credit, so every client gets every tick and none is conflated (conflations are
 *    counted and must be 0). Figure: ticks decoded per second by all clients together, and what it
 *    cost each side per CPU-second (the share of the cores each got varies with the machine's load).
 * 2. 100 clients, client i subscribed to the tokens whose index is i mod 100 (a different 1 % of
 *    the universe each, together all of it), full mode, input paced at 10k and 100k ticks/s
 *    (frames pushed on a 1 ms timer). Latency per tick: decode in the client minus `rt`. "input lag"
 *    is how late the bench pushed frames against that schedule: latency starts at the push, so when
 *    the lag grows the server did not keep up (or this process did not get a core), and the
 *    latency shown leaves out the time those frames would have waited in the socket.
 * 3. Bytes per tick on the wire, ltp / quote / full, from ticks captured off the hub during the run.
 *
 * Case 2 also runs a floor (startFloor in bench/feed-harness.ts, as bench/wait.bench.ts does):
 * uWS publishing the same bytes to the same clients at the same load with no pipeline, so the
 * table shows what the transport and the clients process alone cost in latency on this machine.
 *
 * For development: FEED_BENCH_ONLY=1:100[:ours|:floor|:baseline] (1q:100 for quote, 1c:100 for counting clients) or 2:100000 runs one row and prints
 * it raw, FEED_BENCH_DEBUG=1 prints each run's phases, FEED_BENCH_CLIENT_ARGS passes node flags to
 * the clients process (e.g. --cpu-prof), FEED_BENCH_WORKERS sets the shard workers (default 1).
 *
 * CPU per window: this process (process.cpuUsage, every thread), split into its main thread and the
 * rest (shard workers, V8 and libuv helpers) from /proc/self/task/<tid>/schedstat; the clients
 * process (its own process.cpuUsage); the whole machine from /proc/stat. All as % of one core; the
 * machine has cpus().length cores shared by all three (and by anything else running: "others").
 */
import { cpus, loadavg } from 'node:os';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { WebSocketServer, type WebSocket as WsSocket } from 'ws';
import { nowMicros } from '../src/core/clock.ts';
import type { HubListener } from '../src/gateway/hub.ts';
import { createPackr, FEED_MODES, tickFor } from '../src/gateway/messages.ts';
import { encodeFrame } from '../src/kite/codec.ts';
import type { Instrument } from '../src/core/instrument.ts';
import { Market } from '../src/kite/sim/market.ts';
import { N_FIELDS } from '../src/core/tick.ts';
import { officialTicker, type OfficialTick } from '../test/support/kite-official.ts';
import { universe } from '../test/pipeline/harness.ts';
import type { ClientStats, Proto } from './feed-clients.ts';
import { Clients, cpuMark, cpuUse, MAX_PER_FRAME, ReplayFrames, startFloor, startOurs, type CpuUse, type Server } from './feed-harness.ts';
import { QUICK, record } from './report.ts';
import { forceGc, GcCounter } from './support.ts';

/** Option strikes each side and expiries: universe(40, 2) = 376 instruments, so 1 % is 3-4 tokens. */
const STRIKES = 40;
const EXPIRIES = 2;
/** Shard workers (the service defaults to min(2, cores); 1 leaves a core to the clients). */
const WORKERS = Number(process.env.FEED_BENCH_WORKERS ?? 1);
const SET_TICKS = QUICK ? 10_000 : 50_000;
/** Quick mode keeps the rows the targets are judged on: 100 clients, and 100k ticks/s. */
const CLIENT_COUNTS = QUICK ? [100] : [1, 100, 1000];
const RATES = QUICK ? [100_000] : [10_000, 100_000];
const LATENCY_CLIENTS = 100;
const QUOTE_CLIENTS = 100;
const WARM_MS = QUICK ? 200 : 1000;
const MAX_MS = QUICK ? 500 : 3000;
const PACED_MS = QUICK ? 700 : 4000;
/** Ticks in flight per client at the maximum rate, within [MIN_WINDOW, MAX_WINDOW]. */
const WINDOW_TOTAL = 300_000;
const MIN_WINDOW = 300;
const MAX_WINDOW = 10_000;
/** Longest the bench pushes frames in one turn of the event loop, so uWS and the hub get theirs. */
const BURST_MS = 2;
/** No progress from the clients for this long while waiting: push one frame anyway (counted; expect 0). */
const STALL_MS = 1000;
const TARGET_RATIO = 20;
const TARGET_P99_US = 2000;
const TARGET_RATE = 100_000;

// ---------------------------------------------------------------------------------------------
// The baseline server (ours and the floor are in bench/feed-harness.ts).

/** The straightforward server: parse, stringify each tick, one `ws` message per tick per client. */
async function startBaseline(): Promise<Server> {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false });
  await new Promise<void>((resolve, reject) => {
    wss.once('listening', resolve);
    wss.once('error', reject);
  });
  const ticker = officialTicker({ api_key: 'bench', access_token: 'bench', reconnect: false }); // never connected
  const subs = new Map<number, Set<WsSocket>>();
  const counters = { frames: 0, ticks: 0, conflations: 0, slowCloses: 0, quarantined: 0 };
  wss.on('connection', (ws) => {
    const mine: number[] = [];
    ws.on('message', (data) => {
      const m = JSON.parse(String(data)) as { op: string; id?: number; instruments: number[] };
      if (m.op !== 'subscribe') return;
      for (const t of m.instruments) {
        let set = subs.get(t);
        if (!set) subs.set(t, (set = new Set()));
        set.add(ws);
        mine.push(t);
      }
      ws.send(JSON.stringify({ type: 'ack', id: m.id }));
    });
    ws.on('close', () => {
      for (const t of mine) subs.get(t)?.delete(ws);
    });
  });
  const port = (wss.address() as { port: number }).port;
  return {
    name: 'baseline (ws, JSON per tick)',
    url: `ws://127.0.0.1:${port}/`,
    push(bytes) {
      const recv = nowMicros();
      // The frames are whole ArrayBuffers (encodeFrame), as ws hands them to KiteTicker.
      const ticks = ticker.parseBinary(bytes.buffer as ArrayBuffer) as (OfficialTick & { rt?: number })[];
      for (const t of ticks) {
        t.rt = recv;
        const set = subs.get(t.instrument_token);
        if (!set || set.size === 0) continue;
        const s = JSON.stringify(t);
        for (const ws of set) ws.send(s);
        counters.frames += set.size;
        counters.ticks++;
      }
    },
    blocked: () => false,
    hubLatency: null,
    dropped: () => 0,
    counters: () => ({ ...counters }),
    async close() {
      for (const ws of wss.clients) ws.terminate();
      await new Promise<void>((r) => wss.close(() => r()));
    },
  };
}

// ---------------------------------------------------------------------------------------------
// One run: open clients, push for WARM + window, measure, close.

interface RunSpec {
  server: Server;
  clients: Clients;
  frames: ReplayFrames;
  proto: Proto;
  mode: 'quote' | 'full';
  n: number;
  subs: number[][];
  /** Ticks/s in, or null for the maximum rate under the clients' credit. */
  rate: number | null;
  windowMs: number;
  latency: boolean;
}

interface RunResult {
  inTps: number;
  client: ClientStats;
  cpu: CpuUse;
  clientCpu: number;
  framesPublished: number;
  ticksPublished: number;
  conflations: number;
  slowCloses: number;
  quarantined: number;
  stalls: number;
  openMs: number;
  /** Paced runs: p99 of how late frames were pushed against their schedule, µs. */
  lagP99: number;
  /** Ours: front → hub (the pipeline's part of the latency), µs. */
  hubP50: number;
  hubP99: number;
  /** This process's main thread over the window: event-loop delay (ms) and GC pauses. */
  loopP99: number;
  loopMax: number;
  gcs: number;
  gcMaxMs: number;
  gcMs: number;
}

async function runOnce(s: RunSpec): Promise<RunResult> {
  const { server, clients, frames } = s;
  frames.reset();
  const opened = await clients.request<{ openMs: number }>({ cmd: 'open', url: server.url, n: s.n, proto: s.proto, mode: s.mode, subs: s.subs });
  const window = Math.max(MIN_WINDOW, Math.min(MAX_WINDOW, Math.floor(WINDOW_TOTAL / s.n)));
  // Clients count from 0 since open; nothing has been pushed yet.
  clients.min = 0;
  let pushed = 0;
  let stopped = false;
  let waiting = false;
  let stalls = 0;
  let timer: NodeJS.Timeout | null = null;
  let immediate: NodeJS.Immediate | null = null;
  const tStart = performance.now();

  // Paced runs: when each frame was due, to measure how late the bench got it in (arrival lag).
  const lags = new Float64Array(200_000);
  let nLags = 0;
  let lagOn = false;
  const pushOne = (): void => {
    const f = frames.next(Date.now());
    if (lagOn && s.rate !== null && nLags < lags.length) lags[nLags++] = (performance.now() - tStart - (pushed / s.rate) * 1000) * 1000;
    server.push(frames.frames[f]);
    pushed += frames.counts[f];
  };
  const step = (): void => {
    timer = null;
    immediate = null;
    if (stopped) return;
    const until = performance.now() + BURST_MS;
    if (s.rate !== null) {
      const due = (s.rate * (performance.now() - tStart)) / 1000;
      while (pushed < due && !server.blocked()) {
        pushOne();
        if (performance.now() > until) {
          immediate = setImmediate(step);
          return;
        }
      }
      timer = setTimeout(step, 1);
      return;
    }
    while (performance.now() < until) {
      if (server.blocked()) {
        timer = setTimeout(step, 1);
        return;
      }
      if (pushed - server.dropped() - clients.min >= window) {
        waiting = true;
        // Progress wakes us; if none comes, do not hang.
        timer = setTimeout(() => {
          if (!waiting) return;
          waiting = false;
          stalls++;
          pushOne();
          step();
        }, STALL_MS);
        return;
      }
      pushOne();
    }
    immediate = setImmediate(step);
  };
  clients.onProgress = () => {
    if (!waiting || stopped) return;
    waiting = false;
    if (timer) clearTimeout(timer);
    step();
  };
  step();
  const dbg = process.env.FEED_BENCH_DEBUG ? (what: string) => console.log(`    ${(performance.now() - tStart).toFixed(0)} ms: ${what}, pushed ${pushed}, clients min ${clients.min}`) : () => {};
  dbg(`opened ${s.n} in ${opened.openMs} ms`);

  await new Promise((r) => setTimeout(r, WARM_MS));
  dbg('warm');
  const c0 = server.counters();
  const p0 = pushed;
  // A collected heap in both processes before each window, so one run's garbage is not the next
  // run's pause (the clients process collects on 'start').
  forceGc();
  await clients.request({ cmd: 'start', latency: s.latency });
  lagOn = true;
  server.hubLatency?.(true);
  // What can hold the main thread (and so every tick) up: event-loop stalls and GC pauses.
  const loop = monitorEventLoopDelay({ resolution: 1 });
  const gc = new GcCounter();
  gc.start();
  loop.enable();
  const m0 = cpuMark();
  await new Promise((r) => setTimeout(r, s.windowMs));
  loop.disable();
  const gcDone = gc.stop(); // its last entries arrive asynchronously; awaited below
  dbg('stop');
  const stats = await clients.request<ClientStats>({ cmd: 'stop' });
  dbg('stopped');
  const m1 = cpuMark();
  const c1 = server.counters();
  const p1 = pushed;
  lagOn = false;
  const hubLat = server.hubLatency?.(false) ?? { p50: NaN, p99: NaN };
  await gcDone;
  stopped = true;
  clients.onProgress = null;
  if (timer) clearTimeout(timer);
  if (immediate) clearImmediate(immediate);
  await clients.request({ cmd: 'close' });
  dbg('closed');
  return {
    inTps: ((p1 - p0) / (m1.wall - m0.wall)) * 1000,
    client: stats,
    cpu: cpuUse(m0, m1),
    clientCpu: ((stats.cpuUserMs + stats.cpuSystemMs) / stats.windowMs) * 100,
    framesPublished: c1.frames - c0.frames,
    ticksPublished: c1.ticks - c0.ticks,
    conflations: c1.conflations - c0.conflations,
    slowCloses: c1.slowCloses - c0.slowCloses,
    quarantined: c1.quarantined,
    stalls,
    openMs: opened.openMs,
    lagP99: nLags > 0 ? lags.slice(0, nLags).sort()[Math.ceil(0.99 * nLags) - 1] : NaN,
    hubP50: hubLat.p50,
    hubP99: hubLat.p99,
    loopP99: loop.percentile(99) / 1e6,
    loopMax: loop.max / 1e6,
    gcs: gc.total(),
    gcMaxMs: gc.maxMs,
    gcMs: gc.ms,
  };
}

// ---------------------------------------------------------------------------------------------
// Bytes per tick.

/** Server-to-client WebSocket header for a payload of `len` bytes. */
const wsHeader = (len: number): number => (len < 126 ? 2 : len < 65536 ? 4 : 10);

function bytesTable(instruments: Instrument[], captured: Float64Array, rows: number[], symbols: readonly string[]): Record<string, string | number>[] {
  const records = createPackr(true);
  const plain = createPackr(false);
  const ticker = officialTicker({ api_key: 'bench', access_token: 'bench', reconnect: false });
  const tokens = instruments.map((i) => i.instrumentToken);
  const n = rows.length;
  const out: Record<string, string | number>[] = [];
  for (const mode of FEED_MODES) {
    const ticks = rows.map((row, k) => tickFor(captured, k * N_FIELDS, mode, symbols[row]));
    const perFrame = (packr: { pack(v: unknown): Uint8Array }, size: number): number => {
      let bytes = 0;
      for (let k = 0; k < n; k += size) {
        const len = packr.pack({ type: 'ticks', d: ticks.slice(k, k + size) }).length;
        bytes += len + wsHeader(len);
      }
      return bytes / n;
    };
    let json = 0;
    for (const t of ticks) {
      const len = Buffer.byteLength(JSON.stringify(t));
      json += len + wsHeader(len);
    }
    // What the baseline sends: KiteTicker's objects for the same mode's packets (+ rt in full, as in the runs).
    const market = new Market({ instruments, seed: 3 });
    const frame = encodeFrame(market.nextTicks(Math.min(n, 200), tokens, mode));
    const official = ticker.parseBinary(frame.buffer as ArrayBuffer) as (OfficialTick & { rt?: number })[];
    let base = 0;
    let kite = 0;
    for (const t of official) {
      if (mode === 'full') t.rt = nowMicros();
      const len = Buffer.byteLength(JSON.stringify(t));
      base += len + wsHeader(len);
    }
    for (let k = 0, p = 2; k < official.length; k++) {
      const len = (frame[p] << 8) | frame[p + 1];
      kite += len + 2;
      p += 2 + len;
    }
    const rec1 = perFrame(records, 1);
    out.push({
      mode,
      'kite binary (in)': (kite / official.length).toFixed(1),
      'records, 1 tick/frame': rec1.toFixed(1),
      'records, 10 ticks/frame': perFrame(records, 10).toFixed(1),
      'plain msgpack, 1/frame': perFrame(plain, 1).toFixed(1),
      'plain msgpack, 10/frame': perFrame(plain, 10).toFixed(1),
      'JSON of our tick, 1/msg': (json / n).toFixed(1),
      'baseline JSON (KiteTicker), 1/msg': (base / official.length).toFixed(1),
      'baseline ÷ records(1)': (base / official.length / rec1).toFixed(2),
    });
  }
  return out;
}

// ---------------------------------------------------------------------------------------------

const fmt = (x: number): string => (x >= 1e6 ? `${(x / 1e6).toFixed(2)}M` : x >= 1e3 ? `${(x / 1e3).toFixed(1)}k` : x.toFixed(0));
const pct = (x: number): string => `${x.toFixed(0)}%`;
const usStr = (x: number): string => (!Number.isFinite(x) ? '—' : x < 1000 ? `${x.toFixed(0)} µs` : `${(x / 1000).toFixed(2)} ms`);

async function clockOffset(clients: Clients): Promise<{ offsetUs: number; rttUs: number }> {
  let best = { offsetUs: NaN, rttUs: Infinity };
  for (let i = 0; i < 30; i++) {
    const a = nowMicros();
    const r = await clients.request<{ us: number }>({ cmd: 'clock' });
    const b = nowMicros();
    if (b - a < best.rttUs) best = { offsetUs: r.us - (a + b) / 2, rttUs: b - a };
  }
  return best;
}

export default async function run(): Promise<void> {
  const load = loadavg();
  const cores = cpus().length;
  const instruments = universe(STRIKES, EXPIRIES);
  const tokens = instruments.map((i) => i.instrumentToken);
  const t0 = performance.now();
  const frames = new ReplayFrames(instruments, SET_TICKS);
  console.log(`load average ${load.map((l) => l.toFixed(2)).join(' ')} on ${cores} cores` +
    (load[0] > cores - 0.5 ? ' (busy machine before the bench started: "others" below is what else ran)' : ''));
  console.log(`universe(${STRIKES}, ${EXPIRIES}): ${instruments.length} instruments; ${WORKERS} shard worker(s); ` +
    `input ${frames.frames.length} full-mode Kite frames of 1-${MAX_PER_FRAME} packets (${frames.ticks} ticks, avg ${(frames.ticks / frames.frames.length).toFixed(1)}/frame), replayed, built in ${(performance.now() - t0).toFixed(0)} ms`);

  // FEED_BENCH_CLIENT_ARGS: extra node flags for the clients process (e.g. --cpu-prof), for development.
  const clients = Clients.start(process.env.FEED_BENCH_CLIENT_ARGS?.split(' ').filter(Boolean));
  const results: { case: string; mode: string; server: string; n: number; rate: number | null; countOnly?: boolean; r: RunResult }[] = [];
  const quoteFrames = new ReplayFrames(instruments, SET_TICKS, 'quote');
  const captureRows: number[] = [];
  const CAPTURE = 2000;
  const captured = new Float64Array(CAPTURE * N_FIELDS);
  let symbols: readonly string[] = [];
  const capture: HubListener = {
    tick(f, o, row) {
      const k = captureRows.length;
      if (k >= CAPTURE) return;
      captured.set(f.subarray(o, o + N_FIELDS), k * N_FIELDS);
      captureRows.push(row);
    },
  };
  try {
    const off = await clockOffset(clients);
    console.log(`clocks: clients process − this process = ${off.offsetUs.toFixed(0)} µs ± ${(off.rttUs / 2).toFixed(0)} µs (IPC round trip ${off.rttUs.toFixed(0)} µs); latencies are not corrected`);

    const all = [tokens];
    const slices = Array.from({ length: LATENCY_CLIENTS }, (_, i) => tokens.filter((_t, j) => j % LATENCY_CLIENTS === i));
    type Mode = 'quote' | 'full';
    const plan: { case: string; mode: Mode; n: number; rate: number | null; subs: number[][]; ms: number; latency: boolean; countOnly?: boolean }[] = [
      ...CLIENT_COUNTS.map((n) => ({ case: '1', mode: 'full' as Mode, n, rate: null, subs: all, ms: MAX_MS, latency: false })),
      // The same in quote mode (the default subscription): decoding costs the clients far less.
      { case: '1', mode: 'quote', n: QUOTE_CLIENTS, rate: null, subs: all, ms: MAX_MS, latency: false },
      // Full mode again with the clients counting ticks instead of decoding them: the server's and
      // the transport's capacity, once the one clients process's decoding is out of the way.
      ...(QUICK ? [] : [{ case: '1', mode: 'full' as Mode, n: 100, rate: null, subs: all, ms: MAX_MS, latency: false, countOnly: true }]),
      ...RATES.map((rate) => ({ case: '2', mode: 'full' as Mode, n: LATENCY_CLIENTS, rate, subs: slices, ms: PACED_MS, latency: true })),
    ];
    // For development: FEED_BENCH_ONLY=1:100 (case:clients; 1q:100 in quote mode, 1c:100 counting) or 2:100000 (case:rate), optionally
    // followed by :ours or :baseline, runs only the matching rows and prints them raw.
    const [onlyRow, onlyServer] = (() => {
      const o = process.env.FEED_BENCH_ONLY?.split(':');
      return o ? [`${o[0]}:${o[1]}`, o[2]] : [null, undefined];
    })();
    for (const p of plan) {
      if (onlyRow && onlyRow !== `${p.case}${p.mode === 'quote' ? 'q' : p.countOnly ? 'c' : ''}:${p.case === '1' ? p.n : p.rate}`) continue;
      // Case 2 also runs the floor: the transport and the clients at the same load, no pipeline.
      const variants = p.case === '2' ? (['ours', 'floor', 'baseline'] as const) : (['ours', 'baseline'] as const);
      for (const which of variants) {
        if (onlyServer && onlyServer !== which) continue;
        const server = which === 'ours'
          ? await startOurs(instruments, { workers: WORKERS, extra: captureRows.length === 0 ? [capture] : [], debug: !!process.env.FEED_BENCH_DEBUG })
          : which === 'floor' ? await startFloor(instruments, frames) : await startBaseline();
        if (which === 'ours' && symbols.length === 0) symbols = instruments.map((i) => i.tradingsymbol);
        try {
          // Our pipeline always takes full packets (KITE_MODE's default) and projects per client;
          // the baseline parses packets of the mode its clients want, as it would if connected so.
          const input = which === 'baseline' && p.mode === 'quote' ? quoteFrames : frames;
          const r = await runOnce({
            server, clients, frames: input, mode: p.mode, n: p.n, subs: p.subs, rate: p.rate,
            proto: which === 'baseline' ? (p.countOnly ? 'json-count' : 'json') : p.countOnly ? 'feed-count' : 'feed',
            windowMs: p.ms, latency: p.latency,
          });
          results.push({ case: p.case, mode: p.mode, server: server.name, n: p.n, rate: p.rate, countOnly: p.countOnly === true, r });
          process.stdout.write(`  done: case ${p.case}, ${which}, ${p.n} clients, ${p.mode}, ${p.rate === null ? 'max' : fmt(p.rate) + '/s'} (${((performance.now() - t0) / 1000).toFixed(0)} s)\n`);
        } finally {
          await server.close();
        }
      }
    }
  } finally {
    await clients.stop();
  }

  if (process.env.FEED_BENCH_ONLY) {
    console.dir(results, { depth: 4 });
    return;
  }
  const baselineOf = (n: number, rate: number | null, mode = 'full', countOnly = false) =>
    results.find((x) => x.n === n && x.rate === rate && x.mode === mode && x.countOnly === countOnly && x.server.startsWith('baseline'))!.r;
  const cpuCols = (r: RunResult): Record<string, string> => ({
    'server CPU': pct(r.cpu.server),
    '· main thread': pct(r.cpu.serverMain),
    '· of it in kernel': pct(r.cpu.mainKernelShare * 100),
    '· workers etc.': pct(r.cpu.serverOther),
    'clients CPU': pct(r.clientCpu),
    others: pct(Math.max(0, r.cpu.machine - r.cpu.server - r.clientCpu)),
    'main waited for a core (ms/s)': r.cpu.mainWaitMsPerS.toFixed(0),
  });

  console.log(`\n1. Every client subscribed to every token, maximum rate (at most ${WINDOW_TOTAL / 1000}k/clients, ${MIN_WINDOW}..${MAX_WINDOW}, ticks in flight per client), ${MAX_MS / 1000} s window after ${WARM_MS / 1000} s warm-up. CPU in % of one core (${cores} cores in all).`);
  console.table(results.filter((x) => x.case === '1').map((x) => {
    const r = x.r;
    const delivered = (r.client.ticks / r.client.windowMs) * 1000;
    const b = baselineOf(x.n, null, x.mode, x.countOnly);
    const base = (b.client.ticks / b.client.windowMs) * 1000;
    return {
      server: x.server,
      mode: x.mode,
      clients: x.n,
      'clients do': x.countOnly ? 'count' : 'decode',
      'ticks/s in': fmt(r.inTps),
      'ticks/s delivered (all clients)': fmt(delivered),
      'vs baseline': `${(delivered / base).toFixed(1)}x`,
      'ticks/frame': (r.client.ticks / Math.max(1, r.client.frames)).toFixed(1),
      'wire B/tick': (r.client.wireBytes / Math.max(1, r.client.ticks)).toFixed(1),
      // What each side spends per tick delivered, whatever share of the cores it got.
      'delivered per server CPU-s': fmt(delivered / (r.cpu.server / 100)),
      'per clients CPU-s': fmt(delivered / (r.clientCpu / 100)),
      'slowest/fastest client': `${fmt(r.client.minClientTicks)}/${fmt(r.client.maxClientTicks)}`,
      conflated: r.conflations + r.slowCloses + r.client.conflatedTicks,
      ...cpuCols(r),
    };
  }));
  const oursOf = (mode: string, countOnly: boolean) =>
    results.find((x) => x.case === '1' && x.mode === mode && x.n === 100 && x.countOnly === countOnly && x.server.startsWith('ours'))!.r;
  const ratioOf = (a: RunResult, b: RunResult): number => (a.client.ticks / a.client.windowMs) / (b.client.ticks / b.client.windowMs);
  const ratio = ratioOf(oursOf('full', false), baselineOf(100, null));
  const ratioQ = ratioOf(oursOf('quote', false), baselineOf(QUOTE_CLIENTS, null, 'quote'));
  const ratioC = QUICK ? NaN : ratioOf(oursOf('full', true), baselineOf(100, null, 'full', true));
  console.log(`target ≥ ${TARGET_RATIO}x the baseline's delivered ticks/s with 100 clients decoding every tick: full ${ratio.toFixed(1)}x → ${ratio >= TARGET_RATIO ? 'MET' : 'NOT MET'}; quote ${ratioQ.toFixed(1)}x → ${ratioQ >= TARGET_RATIO ? 'MET' : 'NOT MET'}` +
    ` (full, clients counting instead of decoding: ${ratioC.toFixed(1)}x, what the server and the transport deliver)`);

  console.log(`\n2. ${LATENCY_CLIENTS} clients, each subscribed to a different 1 % of the tokens (${slicesInfo(tokens.length)}), full mode, paced input, ${PACED_MS / 1000} s window after ${WARM_MS / 1000} s warm-up. Latency: push into the front (rt) → decoded in the client.`);
  console.table(results.filter((x) => x.case === '2').map((x) => {
    const r = x.r;
    return {
      server: x.server,
      'ticks/s in (target)': fmt(x.rate!),
      'ticks/s in': fmt(r.inTps),
      'ticks/s delivered': fmt((r.client.ticks / r.client.windowMs) * 1000),
      p50: usStr(r.client.p50),
      p99: usStr(r.client.p99),
      'p99.9': usStr(r.client.p999),
      max: usStr(r.client.max),
      'of which front → hub p50/p99': Number.isNaN(r.hubP50) ? '—' : `${usStr(r.hubP50)} / ${usStr(r.hubP99)}`,
      samples: r.client.samples,
      'ticks/frame': (r.client.ticks / Math.max(1, r.client.frames)).toFixed(2),
      'input lag p99': usStr(r.lagP99),
      'event-loop delay p99/max (ms), server / clients': `${r.loopP99.toFixed(1)} / ${r.loopMax.toFixed(1)}, ${r.client.loopP99.toFixed(1)} / ${r.client.loopMax.toFixed(1)}`,
      'GCs server / clients (max ms)': `${r.gcs} (${r.gcMaxMs.toFixed(1)}) / ${r.client.gcs} (${r.client.gcMaxMs.toFixed(1)})`,
      ...cpuCols(r),
    };
  }));
  const ours2 = results.find((x) => x.case === '2' && x.rate === TARGET_RATE && x.server.startsWith('ours'))!.r;
  const floor2 = results.find((x) => x.case === '2' && x.rate === TARGET_RATE && x.server.startsWith('floor'))!.r;
  console.log(`target p99 < ${TARGET_P99_US / 1000} ms at ${fmt(TARGET_RATE)} ticks/s in: ${usStr(ours2.client.p99)} → ${ours2.client.p99 < TARGET_P99_US ? 'MET' : 'NOT MET'}` +
    ` (the floor, uWS and these clients with no pipeline: p99 ${usStr(floor2.client.p99)})`);
  const delivered = (r: RunResult): number => (r.client.ticks / r.client.windowMs) * 1000;
  for (const [mode, countOnly, name] of [['full', false, 'full, clients decode'], ['quote', false, 'quote, clients decode'], ['full', true, 'full, clients count']] as const) {
    if (countOnly && QUICK) continue;
    record({
      bench: 'feed', name: `100 clients, every token, ${name}`, unit: 'ticks/s delivered', better: 'higher', value: delivered(oursOf(mode, countOnly)),
      baseline: { name: 'ws + KiteTicker + JSON per tick', value: delivered(baselineOf(100, null, mode, countOnly)) },
      ...(countOnly ? {} : { target: { op: '>=', value: TARGET_RATIO * delivered(baselineOf(100, null, mode, countOnly)) } }),
    });
  }
  record({
    bench: 'feed', name: `p99 push → decoded, 100 clients × 1 %, ${fmt(TARGET_RATE)} ticks/s`, unit: 'µs', better: 'lower', value: ours2.client.p99,
    baseline: { name: 'floor: uWS, no pipeline', value: floor2.client.p99 }, target: { op: '<=', value: TARGET_P99_US },
  });
  const q = results.reduce((a, x) => a + (x.server.startsWith('ours') ? x.r.quarantined : 0), 0);
  const stalls = results.reduce((a, x) => a + x.r.stalls, 0);
  console.log(`checks: ${q} ticks quarantined by the pipeline (replayed input must be valid: 0), ${stalls} flow-control stalls (no client progress for ${STALL_MS} ms)`);

  console.log(`\n3. Bytes per tick on the wire (payload + WebSocket header, server → client), ${captureRows.length} ticks captured off the hub; baseline from ${Math.min(captureRows.length, 200)} KiteTicker objects per mode:`);
  console.table(bytesTable(instruments, captured, captureRows, symbols));
  console.log(`total ${((performance.now() - t0) / 1000).toFixed(0)} s`);
}

function slicesInfo(n: number): string {
  const lo = Math.floor(n / LATENCY_CLIENTS);
  return `${lo}-${Math.ceil(n / LATENCY_CLIENTS)} of ${n} tokens each`;
}
