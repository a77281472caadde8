/**
 * What bench/feed.bench.ts and bench/wait.bench.ts both run, in one copy so a fix to one reaches
 * the other:
 *
 * - ReplayFrames: full-mode Kite frames from the simulator's market model, replayed with their
 *   clock-bound fields moved forward, so the pipeline accepts them for as long as a run lasts.
 * - startOurs: the real stack (front → shard workers → hub → /ws msgpack feed and /kite on
 *   uWebSockets.js) in this process, with the shard count and PIPELINE_WAIT policy as options,
 *   ready once every shard thread has loaded.
 * - startFloor: a bare uWebSockets.js app publishing the same records to the same clients with no
 *   pipeline: what the transport and the clients cost alone.
 * - Clients: bench/feed-clients.ts in its own process, driven over IPC.
 * - cpuMark / cpuUse: CPU per window of this process, its main thread, the rest, and the machine.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { performance } from 'node:perf_hooks';
import type { TemplatedApp } from 'uWebSockets.js';
import { nowMicros } from '../src/core/clock.ts';
import { Front } from '../src/front.ts';
import { Feed } from '../src/gateway/feed.ts';
import { FeedHub, type HubListener } from '../src/gateway/hub.ts';
import { KiteWs } from '../src/gateway/kite-ws.ts';
import { createPackr } from '../src/gateway/messages.ts';
import { FRAME_HEAD } from '../src/gateway/fanout.ts';
import { encodeSymbol, RecordWriter } from '../src/gateway/msgpack-encoder.ts';
import { startGateway } from '../src/gateway/server.ts';
import { decodeToTicks, encodeFrame } from '../src/kite/codec.ts';
import type { Instrument } from '../src/core/instrument.ts';
import { KIND_LENGTH, Kind } from '../src/core/packet-slot.ts';
import type { WaitPolicy } from '../src/core/ring.ts';
import { Market } from '../src/kite/sim/market.ts';
import { silentLogger } from '../src/log.ts';
import { OutputPump, Pipeline } from '../src/pipeline.ts';
import { N, N_FIELDS, TickConsumer } from '../src/core/tick.ts';
import { SC } from '../src/core/shard-protocol.ts';
import { DEFAULT_TIMEFRAMES, parseTimeframe } from '../src/core/ist.ts';
import { T0 } from '../test/pipeline/harness.ts';
import type { ClientCommand } from './feed-clients.ts';
import { canonicalFromWire } from './support.ts';

/** Most packets in one replayed frame (each frame has 1..MAX_PER_FRAME). */
export const MAX_PER_FRAME = 80;
const KEY = 'bench-key-0123456789abcdef';
const ORIGIN_MS = performance.timeOrigin;
const auth = { verify: (s: string) => (s === KEY ? { name: 'bench' } : null) };

// ---------------------------------------------------------------------------------------------
// Input: Kite frames replayed with their clock-bound fields moved forward.

/** Byte offsets in a full (184) packet and an index full (32) packet; see src/kite/codec.ts. */
const FULL = { LAST_QTY: 8, VOLUME: 16, LAST_TRADE_TIME: 44, OI: 48, OI_HIGH: 52, OI_LOW: 56, EXCHANGE_TIME: 60 } as const;
const INDEX_FULL_EXCHANGE_TIME = 28;

/**
 * Full-mode frames drawn once from the market model and replayed for as long as a run lasts, as
 * input the pipeline accepts. Played as is, a replay would be quarantined: prices jumping back to
 * where the set began (a deep out-of-the-money option moves past ×5), volume and OI high falling,
 * exchange times minutes old. So the frames play forward, then backward, then forward again
 * (each price step is one the model made, either way), and before a frame goes out its exchange and
 * last-trade times become the current second, its volume the token's running volume plus the
 * packet's last quantity, and its OI day high and low the running extremes of its OI.
 * That is up to 6 stores per packet, charged to this process's main thread like a socket read.
 * Quote-mode frames (for the baseline's quote row, which validates nothing) are left as they are.
 */
export class ReplayFrames {
  readonly frames: Uint8Array[] = [];
  readonly counts: number[] = [];
  readonly ticks: number;
  private readonly dvs: DataView[] = [];
  private readonly pktStart: number[] = [0];
  private readonly pos: number[] = [];
  /** 1: full packet, 2: index full packet, 0: neither (left alone). */
  private readonly kind: number[] = [];
  /** Instrument index of each packet, for the running state below. */
  private readonly inst: number[] = [];
  private readonly volume: Float64Array;
  private readonly oiHigh: Float64Array;
  private readonly oiLow: Float64Array;
  private nextFrame = 0;
  private dir = 1;

  constructor(instruments: readonly Instrument[], ticks: number, readonly mode: 'quote' | 'full' = 'full', seed = 11) {
    // The market model's clock held at the universe's session (options age by it; exchange times
    // are rewritten on the way out anyway).
    const market = new Market({ instruments, seed, clock: () => T0 });
    const tokens = instruments.map((i) => i.instrumentToken);
    const index = new Map(tokens.map((t, i) => [t, i]));
    let x = seed;
    const rnd = (): number => {
      x = (Math.imul(x ^ (x >>> 15), 0x2c1b3c6d) + 0x6d2b79f5) >>> 0;
      return x / 2 ** 32;
    };
    let total = 0;
    while (total < ticks) {
      const wire = market.nextTicks(1 + Math.floor(rnd() * MAX_PER_FRAME), tokens, mode);
      const bytes = encodeFrame(wire);
      let p = 2;
      for (const t of wire) {
        p += 2;
        this.pos.push(p);
        this.kind.push(t.kind === Kind.FULL ? 1 : t.kind === Kind.INDEX_FULL ? 2 : 0);
        this.inst.push(index.get(t.token)!);
        p += KIND_LENGTH[t.kind];
      }
      this.frames.push(bytes);
      this.dvs.push(new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength));
      this.counts.push(wire.length);
      this.pktStart.push(this.pos.length);
      total += wire.length;
    }
    this.ticks = total;
    this.volume = new Float64Array(instruments.length);
    this.oiHigh = new Float64Array(instruments.length);
    this.oiLow = new Float64Array(instruments.length);
  }

  /** Start again from the first frame: for a fresh pipeline, whose validator has no history. */
  reset(): void {
    this.nextFrame = 0;
    this.dir = 1;
    this.volume.fill(0);
    this.oiHigh.fill(0);
    this.oiLow.fill(Infinity);
  }

  /** Index of the next frame, its fields rewritten for `nowMs`. */
  next(nowMs: number): number {
    const f = this.nextFrame;
    const dv = this.dvs[f];
    const sec = Math.floor(nowMs / 1000);
    for (let k = this.pktStart[f]; k < this.pktStart[f + 1]; k++) {
      const p = this.pos[k];
      const kind = this.kind[k];
      if (kind === 1) {
        const i = this.inst[k];
        const v = (this.volume[i] += dv.getUint32(p + FULL.LAST_QTY) || 1);
        const oi = dv.getUint32(p + FULL.OI);
        if (oi > this.oiHigh[i]) this.oiHigh[i] = oi;
        if (oi < this.oiLow[i]) this.oiLow[i] = oi;
        dv.setUint32(p + FULL.VOLUME, v);
        dv.setUint32(p + FULL.OI_HIGH, this.oiHigh[i]);
        dv.setUint32(p + FULL.OI_LOW, this.oiLow[i]);
        dv.setUint32(p + FULL.LAST_TRADE_TIME, sec);
        dv.setUint32(p + FULL.EXCHANGE_TIME, sec);
      } else if (kind === 2) {
        dv.setUint32(p + INDEX_FULL_EXCHANGE_TIME, sec);
      }
    }
    // Bounce at the ends without playing the end frame twice (its packets would be duplicates).
    const n = this.frames.length;
    let nf = f + this.dir;
    if (nf === n || nf < 0) {
      this.dir = -this.dir;
      nf = Math.max(0, Math.min(n - 1, f + this.dir));
    }
    this.nextFrame = nf;
    return f;
  }
}

// ---------------------------------------------------------------------------------------------
// The servers: ours and the floor (bench/feed.bench.ts adds its baseline).

export interface Server {
  name: string;
  url: string;
  /** One Kite frame arriving now. */
  push(bytes: Uint8Array): void;
  /** The input cannot take a frame now (the front holds frames for ring room). */
  blocked(): boolean;
  /** Ticks pushed that no client will get: quarantined or dropped as duplicates by the pipeline. */
  dropped(): number;
  counters(): { frames: number; ticks: number; conflations: number; slowCloses: number; quarantined: number };
  /** Start (true) or stop recording how long ticks took from the front to the hub; null: no pipeline. */
  hubLatency: ((on: boolean) => { p50: number; p99: number }) | null;
  close(): Promise<void>;
}

/** Sorted-sample percentiles of the first `n` values of `a`. */
function percentiles(a: Float64Array, n: number): { p50: number; p99: number } {
  if (n === 0) return { p50: NaN, p99: NaN };
  const s = a.slice(0, n).sort();
  return { p50: s[Math.ceil(0.5 * n) - 1], p99: s[Math.ceil(0.99 * n) - 1] };
}

export interface OursOptions {
  /** Shard worker threads; 1 (the default) leaves a core to the clients process on 2 cores. */
  workers?: number;
  /** How the pipeline's threads wait for ticks (PIPELINE_WAIT); unset: the service's default. */
  wait?: WaitPolicy;
  /** More hub listeners (e.g. one capturing ticks), added after the feed and /kite. */
  extra?: HubListener[];
  /** Print the pipeline's quarantine counts by reason on close. */
  debug?: boolean;
}

/** Ours: frames pushed into the front as the Kite socket would, the hub feeding /ws and /kite. */
export async function startOurs(instruments: Instrument[], opts: OursOptions = {}): Promise<Server> {
  const front = new Front({ shards: opts.workers ?? 1, ringCapacity: 1 << 16 });
  let failure: Error | null = null;
  const timeframes = DEFAULT_TIMEFRAMES.map(parseTimeframe);
  const pipeline = new Pipeline({
    rings: front.rings, instruments, mode: 'full', timeframesMs: timeframes, wait: opts.wait, onError: (_s, e) => { failure = e; },
  });
  // The STORE slot read by an interim consumer in this thread (in the service the writer thread reads it).
  const store = new OutputPump(pipeline.reader(TickConsumer.STORE), { tick() {}, bar() {} });
  const hub = new FeedHub(instruments, timeframes);
  let feed!: Feed;
  let kite!: KiteWs;
  const gateway = await startGateway({
    host: '127.0.0.1', port: 0, health: () => ({}),
    routes: (app) => {
      feed = new Feed(app, { hub, auth, log: silentLogger });
      kite = new KiteWs(app, hub, auth, silentLogger);
    },
  });
  hub.add(feed);
  hub.add(kite);
  for (const l of opts.extra ?? []) hub.add(l);
  // Front → hub latency per tick: the pipeline's share of what the clients measure.
  const hubLat = new Float64Array(1 << 20);
  let nHub = 0;
  let hubOn = false;
  hub.add({
    tick(f, o) {
      // The clock read inline: nowMicros()'s double result would be boxed, garbage in the server's heap.
      if (hubOn && nHub < hubLat.length) hubLat[nHub++] = (ORIGIN_MS + performance.now()) * 1000 - f[o + N.RECV_TIME_US];
    },
  });
  hub.start(pipeline);
  // Ready when every shard answers: its thread has loaded (seconds on a busy machine, under tsx).
  // Frames pushed before that wait in the ring and their latency would count the load.
  await pipeline.memory(60_000);
  let seq = 0;
  return {
    name: 'ours (uWS, msgpack records)',
    url: `ws://127.0.0.1:${gateway.port}/ws?key=${KEY}`,
    push: (bytes) => front.onBinary(bytes, 0, ++seq, nowMicros()),
    blocked: () => front.pendingCount() > 0,
    hubLatency: (on) => {
      hubOn = on;
      if (on) nHub = 0;
      return percentiles(hubLat, nHub);
    },
    dropped: () => {
      if (failure) throw failure;
      let n = 0;
      for (const sh of pipeline.shards) n += sh.counters[SC.QUARANTINED] + sh.counters[SC.DUPLICATES];
      return n;
    },
    counters: () => {
      if (failure) throw failure;
      return {
        frames: feed.stats.framesPublished, ticks: feed.stats.ticksPublished, conflations: feed.stats.conflations,
        slowCloses: feed.stats.slowCloses, quarantined: pipeline.counters().quarantined,
      };
    },
    async close() {
      if (opts.debug) console.log('    quarantine', JSON.stringify(pipeline.counters().quarantineByReason));
      feed.close();
      kite.close();
      gateway.close();
      await front.close();
      await pipeline.stop();
      await Promise.all([store.done, hub.done()]);
    },
  };
}

/**
 * The floor (feed's case 2, and wait's latency runs): what uWebSockets.js and the clients process do at the same load with no
 * pipeline at all. It reads only each packet's token from the pushed Kite frame and, once per
 * burst of pushes (the next turn of the event loop, as our hub drains once per wake-up), publishes
 * to each client's own topic one ticks frame holding a copy of a real full-tick record per packet
 * of its tokens, `rt` patched to the push time: the bytes our feed sends, without the front, the
 * rings, the shard thread or the hub. Its latency is what the transport and the clients add; ours
 * minus this is what the pipeline adds.
 */
export async function startFloor(instruments: Instrument[], frames: ReplayFrames): Promise<Server> {
  // A realistic full-tick record, from the first packet of the input; the rt patched per send is
  // its last 8 bytes (canonicalFromWire makes it a non-integer, so an f64).
  const w = new RecordWriter();
  const f = new Float64Array(N_FIELDS);
  canonicalFromWire(decodeToTicks(frames.frames[0])[0], f, 0);
  w.tick(f, 0, 2, encodeSymbol(instruments[0].tradingsymbol));
  const record = w.buf.slice(0, w.pos);
  const packr = createPackr(true);
  // Per client (its index is its topic): the push times of the ticks gathered this burst.
  // Preallocated: the floor must not pay GC pauses our feed does not.
  const MAX_CLIENTS = 1024;
  const clientOf = new Map<number, number>();
  const topics = Array.from({ length: MAX_CLIENTS }, (_, i) => `c${i}`);
  const rts = Array.from({ length: MAX_CLIENTS }, () => new Float64Array(4096));
  const counts = new Int32Array(MAX_CLIENTS);
  const touched = new Int32Array(MAX_CLIENTS);
  let nTouched = 0;
  let nextClient = 0;
  let scheduled = false;
  const counters = { frames: 0, ticks: 0, conflations: 0, slowCloses: 0, quarantined: 0 };
  const out = new RecordWriter(1 << 20, FRAME_HEAD);
  const views: Uint8Array[] = [];
  let app!: TemplatedApp;
  const flush = (): void => {
    scheduled = false;
    for (let i = 0; i < nTouched; i++) {
      const c = touched[i];
      const n = counts[c];
      counts[c] = 0;
      out.reset();
      out.ticksHeader(n);
      out.ensure(n * record.length);
      for (let k = 0; k < n; k++) {
        out.buf.set(record, out.pos);
        out.pos += record.length;
        out.dv.setFloat64(out.pos - 8, rts[c][k]);
      }
      const len = out.pos - FRAME_HEAD;
      // A view per frame length, made once (as the feed does), over the frame's bytes.
      let v = views[len];
      if (v === undefined || v.buffer !== out.buf.buffer) views[len] = v = out.buf.subarray(FRAME_HEAD, out.pos);
      app.publish(topics[c], v, true);
      counters.frames++;
      counters.ticks += n;
    }
    nTouched = 0;
  };
  const gateway = await startGateway({
    host: '127.0.0.1', port: 0, health: () => ({}),
    routes: (a) => {
      app = a;
      a.ws<{ client: number }>('/ws', {
        maxBackpressure: 64 << 20,
        upgrade: (res, req, ctx) => {
          res.upgrade({ client: nextClient++ % MAX_CLIENTS }, req.getHeader('sec-websocket-key'), req.getHeader('sec-websocket-protocol'), req.getHeader('sec-websocket-extensions'), ctx);
        },
        message: (ws, data) => {
          const m = JSON.parse(Buffer.from(data).toString('utf8')) as { id?: number; instruments: number[] };
          const { client } = ws.getUserData();
          for (const t of m.instruments) clientOf.set(t, client);
          ws.subscribe(topics[client]);
          ws.send(packr.pack({ type: 'ack', op: 'subscribe', id: m.id, instruments: m.instruments, rejected: [] }), true);
          ws.send(packr.pack({ type: 'snapshot', ticks: [], bars: [] }), true);
        },
      });
    },
  });
  return {
    name: 'floor (uWS + these clients, no pipeline)',
    url: `ws://127.0.0.1:${gateway.port}/ws`,
    push(bytes) {
      const rt = nowMicros();
      const n = (bytes[0] << 8) | bytes[1];
      for (let k = 0, p = 2; k < n; k++) {
        const len = (bytes[p] << 8) | bytes[p + 1];
        const token = ((bytes[p + 2] << 24) | (bytes[p + 3] << 16) | (bytes[p + 4] << 8) | bytes[p + 5]) >>> 0;
        p += 2 + len;
        const c = clientOf.get(token);
        if (c === undefined || counts[c] === rts[c].length) continue;
        if (counts[c] === 0) touched[nTouched++] = c;
        rts[c][counts[c]++] = rt;
      }
      if (!scheduled) {
        scheduled = true;
        setImmediate(flush);
      }
    },
    blocked: () => false,
    hubLatency: null,
    dropped: () => 0,
    counters: () => ({ ...counters }),
    async close() {
      gateway.close();
    },
  };
}


// ---------------------------------------------------------------------------------------------
// The clients process.

/** bench/feed-clients.ts in its own process, driven over IPC. */
export class Clients {
  /** Fewest ticks any client has received (cumulative since open). */
  min = 0;
  onProgress: (() => void) | null = null;
  lastProgress = 0;
  private nextId = 1;
  private readonly waiting = new Map<number, { resolve: (r: Record<string, unknown>) => void; reject: (e: Error) => void }>();
  readonly exited: Promise<number | null>;

  constructor(private readonly child: ChildProcess) {
    child.on('message', (m: { type?: string; min?: number; id?: number; ok?: boolean; error?: string }) => {
      if (m.type === 'progress') {
        this.min = m.min!;
        this.lastProgress = performance.now();
        this.onProgress?.();
        return;
      }
      const w = this.waiting.get(m.id!);
      if (!w) return;
      this.waiting.delete(m.id!);
      if (m.ok) w.resolve(m as Record<string, unknown>);
      else w.reject(new Error(`clients process: ${m.error}`));
    });
    this.exited = new Promise((r) => child.once('exit', (code) => {
      for (const w of this.waiting.values()) w.reject(new Error(`clients process exited (${code})`));
      r(code);
    }));
  }

  /** `nodeArgs`: extra node flags for the clients process (e.g. --cpu-prof), for development. */
  static start(nodeArgs: readonly string[] = []): Clients {
    const child = fork(new URL('./feed-clients.ts', import.meta.url), [], {
      execArgv: ['--import', 'tsx', '--expose-gc', ...nodeArgs],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    return new Clients(child);
  }

  request<T = Record<string, unknown>>(c: ClientCommand, timeoutMs = 60_000): Promise<T> {
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        reject(new Error(`clients process did not answer ${c.cmd} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiting.set(id, {
        resolve: (r) => { clearTimeout(timer); resolve(r as T); },
        reject: (e) => { clearTimeout(timer); reject(e); },
      });
      this.child.send({ id, ...c });
    });
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    this.child.disconnect();
    const t = setTimeout(() => this.child.kill('SIGKILL'), 3000);
    await this.exited;
    clearTimeout(t);
  }
}

// ---------------------------------------------------------------------------------------------
// CPU accounting.

export interface CpuMark {
  wall: number;
  procMs: number;
  mainRunNs: number;
  mainWaitNs: number;
  /** Main thread user and kernel time, clock ticks (/proc/self/task/<pid>/stat). */
  mainUtime: number;
  mainStime: number;
  machineBusy: number;
  machineTotal: number;
}

function schedstat(tid: number): [number, number] {
  try {
    const [run, wait] = readFileSync(`/proc/self/task/${tid}/schedstat`, 'utf8').split(' ');
    return [Number(run), Number(wait)];
  } catch {
    return [NaN, NaN];
  }
}

/** utime and stime of a thread, in clock ticks (fields 14 and 15 of its stat line, after the comm). */
function threadTimes(tid: number): [number, number] {
  try {
    const st = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
    const f = st.slice(st.lastIndexOf(')') + 2).split(' ');
    return [Number(f[11]), Number(f[12])];
  } catch {
    return [NaN, NaN];
  }
}

function machineJiffies(): [number, number] {
  try {
    const v = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
    const total = v.reduce((a, b) => a + b, 0);
    return [total - v[3] - (v[4] ?? 0), total]; // busy = all but idle and iowait
  } catch {
    return [NaN, NaN];
  }
}

export function cpuMark(): CpuMark {
  const u = process.cpuUsage();
  const [run, wait] = schedstat(process.pid);
  const [busy, total] = machineJiffies();
  const [ut, stt] = threadTimes(process.pid);
  return {
    wall: performance.now(), procMs: (u.user + u.system) / 1000, mainRunNs: run, mainWaitNs: wait, mainUtime: ut, mainStime: stt,
    machineBusy: busy, machineTotal: total,
  };
}

export interface CpuUse {
  /** % of one core over the window. */
  server: number;
  serverMain: number;
  serverOther: number;
  /** ms the server's main thread was runnable but waited for a core, per second of window. */
  mainWaitMsPerS: number;
  /** Share of the main thread's CPU time spent in the kernel (socket writes, epoll, futex). */
  mainKernelShare: number;
  machine: number;
}

export function cpuUse(a: CpuMark, b: CpuMark): CpuUse {
  const wall = b.wall - a.wall;
  const server = ((b.procMs - a.procMs) / wall) * 100;
  const serverMain = ((b.mainRunNs - a.mainRunNs) / 1e6 / wall) * 100;
  const cores = cpus().length;
  return {
    server, serverMain, serverOther: server - serverMain,
    mainWaitMsPerS: ((b.mainWaitNs - a.mainWaitNs) / 1e6 / wall) * 1000,
    mainKernelShare: (b.mainStime - a.mainStime) / (b.mainUtime - a.mainUtime + b.mainStime - a.mainStime),
    machine: ((b.machineBusy - a.machineBusy) / (b.machineTotal - a.machineTotal)) * 100 * cores,
  };
}

