/**
 * The servers and the clients process of bench/wait.bench.ts, as bench/feed.bench.ts runs them for
 * its case 2 (the same clients, the same bytes): ours, the real stack (front → shard worker → hub →
 * msgpack feed on uWebSockets.js) with a given PIPELINE_WAIT policy, and the floor, a bare
 * uWebSockets.js app publishing the same records to the same clients with no pipeline at all.
 * The clients are bench/feed-clients.ts in a second process; latency is a tick's push into the
 * front (its `rt`) → decoded in a client.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import type { TemplatedApp } from 'uWebSockets.js';
import { nowMicros } from '../src/core/clock.ts';
import { Front } from '../src/front.ts';
import { Feed } from '../src/gateway/feed.ts';
import { FeedHub } from '../src/gateway/hub.ts';
import { createPackr } from '../src/gateway/messages.ts';
import { FRAME_HEAD } from '../src/gateway/fanout.ts';
import { encodeSymbol, RecordWriter } from '../src/gateway/msgpack-encoder.ts';
import { startGateway } from '../src/gateway/server.ts';
import { decodeToTicks } from '../src/kite/codec.ts';
import type { Instrument } from '../src/core/instrument.ts';
import type { WaitPolicy } from '../src/core/ring.ts';
import { silentLogger } from '../src/log.ts';
import { OutputPump, Pipeline } from '../src/pipeline.ts';
import { N, N_FIELDS, TickConsumer } from '../src/core/tick.ts';
import { SC } from '../src/core/shard-protocol.ts';
import { DEFAULT_TIMEFRAMES, parseTimeframe } from '../src/core/ist.ts';
import type { ReplayFrames } from './feed.bench.ts';
import type { ClientCommand } from './feed-clients.ts';
import { canonicalFromWire } from './support.ts';

const KEY = 'bench-key-0123456789abcdef';
const ORIGIN_MS = performance.timeOrigin;
const auth = { verify: (s: string) => (s === KEY ? { name: 'bench' } : null) };

export interface Server {
  url: string;
  push(bytes: Uint8Array): void;
  blocked(): boolean;
  /** Ticks pushed that no client will get (quarantined, duplicates). */
  dropped(): number;
  /** Front → hub p50/p99 (µs) since the last call with on = true; null: no pipeline. */
  hubLatency: ((on: boolean) => { p50: number; p99: number }) | null;
  close(): Promise<void>;
}

export function percentiles(a: Float64Array, n: number): { p50: number; p99: number } {
  if (n === 0) return { p50: NaN, p99: NaN };
  const s = a.slice(0, n).sort();
  return { p50: s[Math.ceil(0.5 * n) - 1], p99: s[Math.ceil(0.99 * n) - 1] };
}

/** Ours, as bench/feed.bench.ts's startOurs, with the pipeline waiting as `wait` says. */
export async function startOurs(instruments: Instrument[], wait: WaitPolicy, workers: number): Promise<Server> {
  const front = new Front({ shards: workers, ringCapacity: 1 << 16 });
  let failure: Error | null = null;
  const timeframes = DEFAULT_TIMEFRAMES.map(parseTimeframe);
  const pipeline = new Pipeline({
    rings: front.rings, instruments, mode: 'full', timeframesMs: timeframes, wait, onError: (_s, e) => { failure = e; },
  });
  // The STORE slot read by an interim consumer in this thread, as bench/feed.bench.ts does (in
  // the service the writer thread reads it).
  const store = new OutputPump(pipeline.reader(TickConsumer.STORE), { tick() {}, bar() {} });
  const hub = new FeedHub(instruments, timeframes);
  let feed!: Feed;
  const gateway = await startGateway({
    host: '127.0.0.1', port: 0, health: () => ({}),
    routes: (app) => { feed = new Feed(app, { hub, auth, log: silentLogger }); },
  });
  hub.add(feed);
  const hubLat = new Float64Array(1 << 20);
  let nHub = 0;
  let hubOn = false;
  hub.add({
    tick(f, o) {
      if (hubOn && nHub < hubLat.length) hubLat[nHub++] = (ORIGIN_MS + performance.now()) * 1000 - f[o + N.RECV_TIME_US];
    },
  });
  hub.start(pipeline);
  // Ready when the shard answers: its thread has loaded (seconds on a busy machine, under tsx).
  await pipeline.memory(60_000);
  let seq = 0;
  return {
    url: `ws://127.0.0.1:${gateway.port}/ws?key=${KEY}`,
    push: (bytes) => front.onBinary(bytes, 0, ++seq, nowMicros()),
    blocked: () => front.pendingCount() > 0,
    dropped: () => {
      if (failure) throw failure;
      let n = 0;
      for (const sh of pipeline.shards) n += sh.counters[SC.QUARANTINED] + sh.counters[SC.DUPLICATES];
      return n;
    },
    hubLatency: (on) => {
      hubOn = on;
      if (on) nHub = 0;
      return percentiles(hubLat, nHub);
    },
    async close() {
      feed.close();
      gateway.close();
      await front.close();
      await pipeline.stop();
      await Promise.all([store.done, hub.done()]);
    },
  };
}

/**
 * The floor, as bench/feed.bench.ts's startFloor: per burst of pushes (the next turn of the event
 * loop), one frame per client holding a real full-tick record per packet of its tokens, `rt`
 * patched to the push time, published on the client's own topic. No front, rings, threads or hub.
 */
export async function startFloor(instruments: Instrument[], frames: ReplayFrames): Promise<Server> {
  const w = new RecordWriter();
  const f = new Float64Array(N_FIELDS);
  canonicalFromWire(decodeToTicks(frames.frames[0])[0], f, 0);
  w.tick(f, 0, 2, encodeSymbol(instruments[0].tradingsymbol));
  const record = w.buf.slice(0, w.pos);
  const packr = createPackr(true);
  const MAX_CLIENTS = 1024;
  const clientOf = new Map<number, number>();
  const topics = Array.from({ length: MAX_CLIENTS }, (_, i) => `c${i}`);
  const rts = Array.from({ length: MAX_CLIENTS }, () => new Float64Array(4096));
  const counts = new Int32Array(MAX_CLIENTS);
  const touched = new Int32Array(MAX_CLIENTS);
  let nTouched = 0;
  let nextClient = 0;
  let scheduled = false;
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
      let v = views[len];
      if (v === undefined || v.buffer !== out.buf.buffer) views[len] = v = out.buf.subarray(FRAME_HEAD, out.pos);
      app.publish(topics[c], v, true);
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
    dropped: () => 0,
    hubLatency: null,
    async close() {
      gateway.close();
    },
  };
}

/** bench/feed-clients.ts in its own process, driven over IPC. */
export class Clients {
  private nextId = 1;
  private readonly waiting = new Map<number, (m: Record<string, unknown>) => void>();
  private readonly exited: Promise<void>;

  private constructor(private readonly child: ChildProcess) {
    child.on('message', (m: { type?: string; id?: number; ok?: boolean; error?: string }) => {
      if (m.type === 'progress' || m.id === undefined) return;
      const w = this.waiting.get(m.id);
      this.waiting.delete(m.id);
      w?.(m as Record<string, unknown>);
    });
    this.exited = new Promise((r) => child.once('exit', () => r()));
  }

  static start(): Clients {
    return new Clients(fork(new URL('./feed-clients.ts', import.meta.url), [], {
      execArgv: ['--import', 'tsx', '--expose-gc'],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    }));
  }

  request<T = Record<string, unknown>>(c: ClientCommand, timeoutMs = 60_000): Promise<T> {
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        reject(new Error(`clients process did not answer ${c.cmd} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiting.set(id, (m) => {
        clearTimeout(timer);
        if (m.ok) resolve(m as T);
        else reject(new Error(`clients process: ${String(m.error)}`));
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

/** CPU of this process (every thread) and of its main thread alone, ms, and the wall clock. */
export interface CpuMark { wall: number; procMs: number; mainMs: number }

export function cpuMark(): CpuMark {
  const u = process.cpuUsage();
  let mainMs = NaN;
  try {
    mainMs = Number(readFileSync(`/proc/self/task/${process.pid}/schedstat`, 'utf8').split(' ')[0]) / 1e6;
  } catch { /* not Linux: the split is unknown */ }
  return { wall: performance.now(), procMs: (u.user + u.system) / 1000, mainMs };
}

/** % of one core: the whole process, its main thread, the rest (shard workers, helpers). */
export function cpuUse(a: CpuMark, b: CpuMark): { server: number; main: number; other: number } {
  const wall = b.wall - a.wall;
  const server = ((b.procMs - a.procMs) / wall) * 100;
  const main = ((b.mainMs - a.mainMs) / wall) * 100;
  return { server, main, other: server - main };
}
