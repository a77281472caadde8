/**
 * Which message engine carries the live feed from the ingest to the gateways (issue 15): the same
 * messages through Redis pub/sub, Redis Streams, NATS core and NATS JetStream (a memory stream with
 * acked publishes, and a conflating one with a subject per instrument and max_msgs_per_subject = 1,
 * published without PubAcks; the same acked runs case 1 only, to show that ceiling;
 * bench/engines-transport.ts has the table), from this process
 * (the ingest's publisher) to 2 gateway stand-ins, each a process of its own (bench/engines-sub.ts,
 * forked with `node --import tsx`). The floor, in the same run: the same messages over plain
 * loopback TCP sockets from this process to the same 2 processes (u32 length + message, written
 * to each socket), which is what any engine adds its cost to.
 *
 * Messages (bench/engines-frames.ts): one per hub drain, carrying per tick the full msgpack record
 * /ws sends and the full Kite packet /kite sends, and the drain's in-progress bars, built with the
 * project's encoders from the simulator's market model. Subscribers read the 16-byte head only.
 *
 * 1. Maximum sustained rate, drains of 1, 50 and 500 ticks a message: the publisher keeps at most
 *    WINDOW_BYTES (and at most as many unanswered publishes) ahead of the slower subscriber, whose
 *    highest sequence each reports every 2 ms over IPC; rate = messages the slower subscriber
 *    received per second in the window. The conflating variant publishes one message per tick
 *    whatever the drain size, so it runs once; its credit being the highest sequence seen, what the
 *    stream replaced before delivery counts as lost (conflated) rather than holding the publisher.
 * 2. Latency at 1k, 10k and 100k ticks/s: a drain every millisecond (a 1 ms timer; each wake-up
 *    publishes what is due), so 1, 10 and 100 ticks a message. Latency = receive − publish time
 *    stamped in the message just before the publish call, performance.timeOrigin + now() in both
 *    processes (one machine: the clock offset between them is printed, not subtracted), per message.
 * 3. A slow gateway: 10k ticks/s; subscriber 2 SIGSTOPped for 3 s, then SIGCONT. What the
 *    publisher's calls and the engine's answers cost before, during and after; subscriber 1's
 *    latency in each phase; what subscriber 2 gets on resume (messages sent while it was stopped,
 *    catch-up time, messages lost by sequence, connection events); the server's memory.
 * 4. Snapshot on (re)connect: the latest message of each of the 136 instruments, read by a new
 *    client: MGET of 136 Redis keys (as the cache in src/cache/redis.ts keeps them) against a new
 *    ordered JetStream consumer with deliver_policy last_per_subject.
 *
 * `npm run bench -- engines` (about 3 minutes), `npm run bench -- engines --quick` (shorter windows,
 * about 1.5 minutes). ENGINES_BENCH_ONLY=tcp,nats runs only those engines (for development);
 * ENGINES_BENCH_STOP_MS=10000 stops the slow gateway longer than 3 s (past Redis's and NATS's own
 * limits on what they buffer for one client).
 * Creates Redis keys and JetStream streams named bench-engines-* and deletes them at the end.
 *
 * bench/scale.bench.ts imports SubProc, EngineRun (its maximum-rate case, on messages the size of
 * the service's drains) and the /proc readers from here.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { defaultUniverse } from './pipeline-frames.ts';
import { EngineFrames, stamp, wallMs, type FrameSource, type Template } from './engines-frames.ts';
import { createPublisher, ENGINES, JS_STREAM_BYTES, redisSubscriberOutput, REDIS, SNAPSHOT_PREFIX, STREAM_BYTES, type Engine, type Publisher } from './engines-transport.ts';
import type { Progress, SubCommand, SubStats } from './engines-sub.ts';
import { QUICK, record } from './report.ts';
import { Histogram } from './support.ts';

const SUBSCRIBERS = 2;
/** Quick mode: one message size (a drain of 50 ticks) and one rate, short windows. */
const SIZES = QUICK ? [50] : [1, 50, 500];
const RATES = QUICK ? [10_000] : [1_000, 10_000, 100_000];
const SLOW_RATE = 10_000;
const T = QUICK
  ? { warm: 100, max: 300, paced: 300, before: 200, stop: 500, after: 300 }
  : { warm: 400, max: 1500, paced: 2000, before: 1000, stop: 3000, after: 3000 };
if (process.env.ENGINES_BENCH_STOP_MS) T.stop = Number(process.env.ENGINES_BENCH_STOP_MS);
/** Bytes the publisher keeps ahead of the slower subscriber at the maximum rate (Redis's pub/sub soft limit is 8 MB). */
const WINDOW_BYTES = 4 << 20;
const MAX_WINDOW_MSGS = 4096;
/** Longest the publisher publishes in one turn of its event loop. */
const BURST_MS = 2;
/** Ticks generated once and replayed. */
const SET_TICKS = 6000;
/** Clock ticks per second in /proc/<pid>/stat (Linux's USER_HZ). */
const USER_HZ = 100;

const ONLY = process.env.ENGINES_BENCH_ONLY?.split(',').map((s) => s.trim()).filter(Boolean);

const sleep = (ms: number): Promise<void> => new Promise((res) => setTimeout(res, ms));

// --- subscriber processes -----------------------------------------------------------------------

type Ask = { [C in SubCommand as C['cmd']]: Omit<C, 'id'> }[SubCommand['cmd']];

export class SubProc {
  progress: Progress | null = null;
  stopped = false;
  private nextId = 1;
  private readonly waiting = new Map<number, { res: (v: unknown) => void; rej: (e: Error) => void }>();
  private progressWaiters: (() => void)[] = [];

  private constructor(readonly child: ChildProcess, readonly index: number) {
    child.on('message', (m: { type: string; id?: number; v?: unknown; error?: string } & Progress) => {
      if (m.type === 'progress') {
        this.progress = m;
        for (const w of this.progressWaiters.splice(0)) w();
      } else if (m.type === 'answer') {
        const w = this.waiting.get(m.id!);
        this.waiting.delete(m.id!);
        if (m.error) w?.rej(new Error(`subscriber ${index}: ${m.error}`));
        else w?.res(m.v);
      }
    });
    child.on('exit', (code, signal) => {
      for (const w of this.waiting.values()) w.rej(new Error(`subscriber ${index} exited (${code ?? signal})`));
      this.waiting.clear();
    });
  }

  static start(index: number): Promise<SubProc> {
    const entry = fileURLToPath(new URL('./engines-sub.ts', import.meta.url));
    const child = fork(entry, [], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    const p = new SubProc(child, index);
    return new Promise((res, rej) => {
      child.once('message', () => res(p));
      child.once('exit', (code) => rej(new Error(`subscriber ${index} exited with ${code} before starting`)));
    });
  }

  ask<R>(c: Ask, timeoutMs = 30_000): Promise<R> {
    const id = this.nextId++;
    return new Promise<R>((res, rej) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        rej(new Error(`subscriber ${this.index} did not answer ${c.cmd} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiting.set(id, {
        res: (v) => {
          clearTimeout(timer);
          res(v as R);
        },
        rej: (e) => {
          clearTimeout(timer);
          rej(e);
        },
      });
      this.child.send({ ...c, id });
    });
  }

  /** Resolves at the next progress report (or after `ms`). */
  nextProgress(ms: number): Promise<void> {
    return new Promise((res) => {
      const t = setTimeout(res, ms);
      this.progressWaiters.push(() => {
        clearTimeout(t);
        res();
      });
    });
  }

  lastSeq(): number {
    return this.progress?.lastSeq ?? -1;
  }

  signal(sig: 'SIGSTOP' | 'SIGCONT'): void {
    this.stopped = sig === 'SIGSTOP';
    this.child.kill(sig);
  }

  kill(): void {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      this.child.kill('SIGCONT');
      this.child.kill('SIGKILL');
    }
  }
}

// --- the servers, seen from /proc ---------------------------------------------------------------

export function pidOf(comm: string): number | null {
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      if (readFileSync(`/proc/${d}/comm`, 'utf8').trim() === comm) return Number(d);
    } catch {
      // gone meanwhile
    }
  }
  return null;
}

export function procCpuMs(pid: number | null): number {
  if (pid === null) return NaN;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(f[11]) + Number(f[12])) * 1000) / USER_HZ; // utime, stime: fields 14 and 15
  } catch {
    return NaN;
  }
}

function procRss(pid: number | null): number {
  if (pid === null) return NaN;
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : NaN;
  } catch {
    return NaN;
  }
}

const PIDS = { redis: pidOf('redis-server'), nats: pidOf('nats-server') };
const serverPid = (e: Engine): number | null => (e === 'tcp' ? null : e.startsWith('redis') ? PIDS.redis : PIDS.nats);

/** Busy and total jiffies of the whole machine (/proc/stat's cpu line; idle and iowait are not busy). */
export function machineJiffies(): { busy: number; total: number } {
  try {
    const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
    const total = f.reduce((a, b) => a + b, 0);
    return { busy: total - f[3] - f[4], total };
  } catch {
    return { busy: NaN, total: NaN };
  }
}

/** CPU of this process, of the engine's server and of the machine (the subscribers measure their own). */
class CpuWindow {
  private readonly pub0 = process.cpuUsage();
  private readonly server0: number;
  private readonly machine0 = machineJiffies();
  private readonly t0 = wallMs();
  constructor(private readonly pid: number | null) {
    this.server0 = procCpuMs(pid);
  }
  /** % of one core: this process, the server, the machine (all cores together). */
  read(): { pub: number; server: number; machine: number; ms: number } {
    const ms = wallMs() - this.t0;
    const c = process.cpuUsage(this.pub0);
    const m = machineJiffies();
    const machine = ((m.busy - this.machine0.busy) / (m.total - this.machine0.total)) * 100 * cpus().length;
    return { pub: ((c.user + c.system) / 1000 / ms) * 100, server: ((procCpuMs(this.pid) - this.server0) / ms) * 100, machine, ms };
  }
}

// --- one engine's runs --------------------------------------------------------------------------

export interface MaxRow {
  engine: Engine;
  size: number;
  msgBytes: number;
  msgsPerS: number;
  ticksPerS: number;
  bytesPerS: number;
  p50: number;
  p99: number;
  gaps: number;
  cpuPub: number;
  cpuSubs: number;
  cpuServer: number;
  cpuMachine: number;
  errors: number;
}

interface PacedRow {
  engine: Engine;
  rate: number;
  ticksPerMsg: number;
  achieved: number;
  p50: number;
  p99: number;
  p999: number;
  max: number;
  gaps: number;
  callP99: number;
  ackP50: number;
  ackP99: number;
  lagMax: number;
  cpuPub: number;
  cpuSubs: number;
  cpuServer: number;
  cpuMachine: number;
  errors: number;
}

interface Phase {
  ticks: number;
  call: Histogram;
  ack: Histogram;
  latA: Histogram;
}

interface SlowRow {
  engine: Engine;
  phases: Phase[];
  phaseMs: number[];
  /** Subscriber 2 after SIGCONT. */
  resumed: { msgs: number; sentWhileStopped: number; maxLatMs: number; catchUpMs: number; lost: number; sentDuringStop: number; events: string[]; gapsTotal: number; reconnected: boolean };
  eventsA: string[];
  gauges: Gauge[];
}

/** A figure sampled every 100 ms in the slow case: its last value before the stop, its peak after, its value once caught up. */
interface Gauge {
  name: string;
  read: () => Promise<number | null> | number | null;
  before: number;
  peak: number;
  end: number;
}

export class EngineRun {
  private seq = 0;
  constructor(readonly engine: Engine, readonly pub: Publisher, readonly subs: SubProc[], readonly frames: FrameSource) {}

  private templates(size: number): Template[] {
    return this.pub.perInstrument ? this.frames.perInstrument() : this.frames.batches(size);
  }

  private minSeen(): number {
    let m = Infinity;
    for (const s of this.subs) m = Math.min(m, s.lastSeq());
    return m;
  }

  /** Until every subscriber has seen the last message (or none progressed for `idleMs`). */
  private async caughtUp(idleMs = 2000): Promise<boolean> {
    await this.pub.drain();
    await Promise.all(this.subs.map((s) => s.ask({ cmd: 'progress', on: true })));
    let last = -2;
    let since = wallMs();
    while (this.minSeen() < this.seq - 1) {
      const m = this.minSeen();
      if (m !== last) {
        last = m;
        since = wallMs();
      } else if (wallMs() - since > idleMs) break;
      await Promise.race(this.subs.map((s) => s.nextProgress(50)));
    }
    await Promise.all(this.subs.map((s) => s.ask({ cmd: 'progress', on: false })));
    return this.minSeen() >= this.seq - 1;
  }

  async maxRate(size: number): Promise<MaxRow> {
    const tpls = this.templates(size);
    const msgBytes = tpls.reduce((a, t) => a + t.bytes.length, 0) / tpls.length;
    await this.pub.configure(msgBytes);
    await Promise.all(this.subs.map((s) => s.ask({ cmd: 'reset' })));
    await Promise.all(this.subs.map((s) => s.ask({ cmd: 'progress', on: true })));
    const window = Math.max(4, Math.min(MAX_WINDOW_MSGS, Math.floor(WINDOW_BYTES / msgBytes)));
    const start = wallMs();
    const warmEnd = start + T.warm;
    const end = warmEnd + T.max;
    let p0: Progress[] | null = null;
    let cpu: CpuWindow | null = null;
    const errors0 = this.pub.errors;
    let k = 0;
    for (;;) {
      const now = wallMs();
      if (now >= end) break;
      if (p0 === null && now >= warmEnd) {
        p0 = this.subs.map((s) => s.progress ?? { type: 'progress', msgs: 0, ticks: 0, bytes: 0, lastSeq: -1, at: now });
        cpu = new CpuWindow(serverPid(this.engine));
      }
      const t0 = performance.now();
      let n = 0;
      while (this.seq - 1 - this.minSeen() < window && this.pub.inFlight() < window && performance.now() - t0 < BURST_MS) {
        const t = tpls[k++ % tpls.length];
        this.pub.publish(stamp(t, this.seq++), t.token);
        n++;
      }
      if (n === 0) await Promise.race([...this.subs.map((s) => s.nextProgress(1)), sleep(1)]);
      else await new Promise((res) => setImmediate(res));
    }
    const p1 = this.subs.map((s) => s.progress!);
    const c = cpu!.read();
    const rates = p1.map((p, i) => {
      const dt = (p.at - p0![i].at) / 1000;
      return { msgs: (p.msgs - p0![i].msgs) / dt, ticks: (p.ticks - p0![i].ticks) / dt, bytes: (p.bytes - p0![i].bytes) / dt };
    });
    const slower = rates.reduce((a, b) => (b.msgs < a.msgs ? b : a));
    await Promise.all(this.subs.map((s) => s.ask({ cmd: 'progress', on: false })));
    await this.caughtUp();
    const st = await Promise.all(this.subs.map((s) => s.ask<SubStats>({ cmd: 'stats' })));
    return {
      engine: this.engine, size, msgBytes,
      msgsPerS: slower.msgs, ticksPerS: slower.ticks, bytesPerS: slower.bytes,
      p50: Math.max(...st.map((s) => s.p50)), p99: Math.max(...st.map((s) => s.p99)),
      gaps: st.reduce((a, s) => a + s.gaps, 0),
      cpuPub: c.pub, cpuSubs: st.reduce((a, s) => a + (s.cpuMs / s.wallMs) * 100, 0), cpuServer: c.server, cpuMachine: c.machine,
      errors: this.pub.errors - errors0,
    };
  }

  /**
   * Publish at `rate` ticks/s: every wake-up of a 1 ms timer, what is due (`perMsg` ticks a
   * message, or one per-instrument message per tick), for `ms` after `warmMs`. `phaseOf` picks the
   * phase (0, 1, 2) by time for the slow case; `at` runs once when a phase begins.
   */
  private async paced(rate: number, warmMs: number, ms: number, hooks: {
    onWarm?: () => void;
    onPublish?: (callUs: number, ticks: number, now: number) => void;
    onWake?: (now: number) => void;
  }): Promise<{ lagMax: number; ticks: number; msgs: number; errors: number }> {
    const perInst = this.pub.perInstrument;
    const tpls = this.templates(perInst ? 1 : Math.max(1, rate / 1000));
    const msgsPerMs = perInst ? rate / 1000 : 1;
    await this.pub.configure(tpls[0].bytes.length);
    const start = wallMs();
    const warmEnd = start + warmMs;
    const end = warmEnd + ms;
    let warm = true;
    let sent = 0;
    let ticks = 0;
    let lagMax = 0;
    let k = 0;
    const errors0 = this.pub.errors;
    for (;;) {
      const now = wallMs();
      if (now >= end) break;
      if (warm && now >= warmEnd) {
        warm = false;
        ticks = 0;
        lagMax = 0;
        hooks.onWarm?.();
      }
      hooks.onWake?.(now);
      const due = Math.floor((now - start) * msgsPerMs);
      const t0 = performance.now();
      while (sent < due && performance.now() - t0 < 20) {
        const t = tpls[k++ % tpls.length];
        const b = stamp(t, this.seq++);
        const c0 = performance.now();
        this.pub.publish(b, t.token);
        hooks.onPublish?.((performance.now() - c0) * 1000, t.ticks, now);
        sent++;
        ticks += t.ticks;
      }
      const lag = (due - sent) / msgsPerMs;
      if (lag > lagMax) lagMax = lag;
      await sleep(1);
    }
    return { lagMax, ticks, msgs: sent, errors: this.pub.errors - errors0 };
  }

  async latency(rate: number): Promise<PacedRow> {
    const call = new Histogram();
    const ack = new Histogram();
    let cpu: CpuWindow | null = null;
    let t0 = 0;
    this.pub.onAck = (us) => ack.record(us);
    const r = await this.paced(rate, T.warm, T.paced, {
      onWarm: () => {
        for (const s of this.subs) s.ask({ cmd: 'reset' }).catch(() => undefined);
        call.reset();
        ack.reset();
        cpu = new CpuWindow(serverPid(this.engine));
        t0 = wallMs();
      },
      onPublish: (us) => call.record(us),
    });
    const elapsed = wallMs() - t0;
    const c = (cpu as CpuWindow | null)!.read();
    await this.caughtUp();
    this.pub.onAck = () => {};
    const st = await Promise.all(this.subs.map((s) => s.ask<SubStats>({ cmd: 'stats' })));
    const worst = (f: (s: SubStats) => number): number => Math.max(...st.map(f));
    return {
      engine: this.engine, rate, ticksPerMsg: this.pub.perInstrument ? 1 : rate / 1000,
      achieved: (r.ticks / elapsed) * 1000,
      p50: worst((s) => s.p50), p99: worst((s) => s.p99), p999: worst((s) => s.p999), max: worst((s) => s.max),
      gaps: st.reduce((a, s) => a + s.gaps, 0),
      callP99: call.quantile(0.99), ackP50: this.pub.acks ? ack.quantile(0.5) : NaN, ackP99: this.pub.acks ? ack.quantile(0.99) : NaN,
      lagMax: r.lagMax, cpuPub: c.pub, cpuSubs: st.reduce((a, s) => a + (s.cpuMs / s.wallMs) * 100, 0), cpuServer: c.server, cpuMachine: c.machine,
      errors: r.errors,
    };
  }

  async slow(admin: Redis | null): Promise<SlowRow> {
    const [a, b] = this.subs;
    await Promise.all(this.subs.map((s) => s.ask({ cmd: 'reset' })));
    await Promise.all(this.subs.map((s) => s.ask({ cmd: 'trace', on: true })));
    const phases: Phase[] = [0, 1, 2].map(() => ({ ticks: 0, call: new Histogram(), ack: new Histogram(), latA: new Histogram() }));
    const t0 = wallMs();
    const tStop = t0 + T.before;
    const tCont = tStop + T.stop;
    const phaseOf = (now: number): number => (now < tStop ? 0 : now < tCont ? 1 : 2);
    let seqAtStop = -1;
    let seqAtCont = -1;
    const pid = serverPid(this.engine);
    const gauges: Gauge[] = [];
    const gauge = (name: string, read: () => Promise<number | null> | number | null): void => void gauges.push({ name, read, before: NaN, peak: NaN, end: NaN });
    if (this.engine === 'tcp') gauge('queued in the publisher', () => this.pub.queuedBytes());
    if (admin !== null) gauge('Redis output buffer (omem)', async () => Math.max(0, ...(await redisSubscriberOutput(admin))));
    if (pid !== null) gauge(this.engine.startsWith('redis') ? 'redis-server RSS' : 'nats-server RSS', () => procRss(pid));
    if (this.engine.startsWith('jetstream')) gauge('stream bytes', () => this.pub.serverBytes());
    let sampling = false;
    const sample = async (now: number, end = false): Promise<void> => {
      if (sampling && !end) return;
      sampling = true;
      try {
        for (const g of gauges) {
          const v = (await g.read()) ?? NaN;
          if (end) g.end = v;
          else if (phaseOf(now) === 0) g.before = v;
          else if (!(v <= g.peak)) g.peak = v;
        }
      } finally {
        sampling = false;
      }
    };
    let nextSample = 0;
    this.pub.onAck = (us) => phases[phaseOf(wallMs())].ack.record(us);
    await this.paced(SLOW_RATE, 0, T.before + T.stop + T.after, {
      onWake: (now) => {
        if (seqAtStop < 0 && now >= tStop) {
          b.signal('SIGSTOP');
          seqAtStop = this.seq;
        }
        if (seqAtCont < 0 && now >= tCont) {
          b.signal('SIGCONT');
          seqAtCont = this.seq;
        }
        if (now >= nextSample) {
          nextSample = now + 100;
          void sample(now);
        }
      },
      onPublish: (us, ticks, now) => {
        const p = phases[phaseOf(now)];
        p.call.record(us);
        p.ticks += ticks;
      },
    });
    if (b.stopped) b.signal('SIGCONT');
    const tEnd = wallMs();
    const caught = await this.caughtUp(3000);
    await sample(wallMs(), true);
    this.pub.onAck = () => {};
    const [trA, trB] = await Promise.all(this.subs.map((s) => s.ask<number[]>({ cmd: 'trace', on: false })));
    const [stA, stB] = await Promise.all(this.subs.map((s) => s.ask<SubStats>({ cmd: 'stats' })));
    for (let i = 0; i < trA.length; i += 3) phases[phaseOf(trA[i])].latA.record(trA[i + 1]);
    let msgs = 0;
    let sentWhileStopped = 0;
    let maxLat = 0;
    let catchUp = NaN;
    const seen = new Set<number>();
    for (let i = 0; i < trB.length; i += 3) {
      const at = trB[i];
      const lat = trB[i + 1];
      const seq = trB[i + 2];
      if (seq >= seqAtStop && seq < seqAtCont) seen.add(seq);
      if (at < tCont) continue;
      msgs++;
      const sentAt = at - lat / 1000;
      if (sentAt < tCont) sentWhileStopped++;
      if (lat > maxLat) maxLat = lat;
      if (Number.isNaN(catchUp) && sentAt >= tCont && lat < 20_000) catchUp = at - tCont;
    }
    return {
      engine: this.engine,
      phases,
      phaseMs: [tStop - t0, tCont - tStop, tEnd - tCont],
      resumed: {
        msgs, sentWhileStopped, maxLatMs: maxLat / 1000, catchUpMs: catchUp,
        sentDuringStop: seqAtCont - seqAtStop, lost: seqAtCont - seqAtStop - seen.size,
        events: stB.events, gapsTotal: stB.gaps, reconnected: caught,
      },
      eventsA: stA.events,
      gauges,
    };
  }
}

// --- printing -----------------------------------------------------------------------------------

const fmt = (x: number): string => (!Number.isFinite(x) ? '—' : x >= 1e6 ? `${(x / 1e6).toFixed(2)}M` : x >= 1e3 ? `${(x / 1e3).toFixed(1)}k` : x.toFixed(0));
const usStr = (x: number): string => (!Number.isFinite(x) ? '—' : x < 1000 ? `${x.toFixed(0)} µs` : x < 1e6 ? `${(x / 1000).toFixed(2)} ms` : `${(x / 1e6).toFixed(2)} s`);
const mb = (x: number): string => (!Number.isFinite(x) ? '—' : `${(x / 2 ** 20).toFixed(1)} MB`);
const pct = (x: number): string => (Number.isFinite(x) ? `${x.toFixed(0)}%` : '—');
const ratio = (x: number, floor: number | undefined): string => (floor && Number.isFinite(x) ? `${(x / floor).toFixed(2)}x` : '—');

// --- main -----------------------------------------------------------------------------------------

export default async function run(): Promise<void> {
  const engines = ENGINES.filter((e) => !ONLY || ONLY.includes(e));
  const tStart = wallMs();
  const universe = defaultUniverse();
  const frames = new EngineFrames(universe, SET_TICKS);
  const load = loadavg();
  console.log(`load average ${load.map((l) => l.toFixed(2)).join(' ')} on ${cpus().length} cores; ${QUICK ? 'quick mode' : 'full mode (--quick for shorter windows)'}`);
  console.log(`messages: ${universe.length} instruments, ${frames.ticks} ticks replayed; per tick a ${frames.recordBytes.toFixed(0)} B full msgpack record + ${frames.packetBytes.toFixed(0)} B Kite packet (+2 B length each); ` +
    `5 bar records of ${frames.barRecordBytes.toFixed(0)} B per instrument per drain; 16 B head`);
  const avgBytes = (ts: Template[]): string => fmt(ts.reduce((a, t) => a + t.bytes.length, 0) / ts.length);
  console.log(`message size by drain: ${[1, 10, 50, 100, 500].map((s) => `${s} ticks ${avgBytes(frames.batches(s))}B`).join(', ')}; ` +
    `per instrument (conflating JetStream: one tick and its 5 bars) ${avgBytes(frames.perInstrument())}B`);
  console.log(`servers: redis-server pid ${PIDS.redis ?? '?'}, nats-server pid ${PIDS.nats ?? '?'}; publisher = this process, ${SUBSCRIBERS} subscriber processes`);

  const subs: SubProc[] = [];
  const killAll = (): void => {
    for (const s of subs) s.kill();
  };
  const onSignal = (sig: NodeJS.Signals): void => {
    killAll();
    process.exit(sig === 'SIGINT' ? 130 : 143);
  };
  process.once('exit', killAll);
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  const maxRows: MaxRow[] = [];
  const pacedRows: PacedRow[] = [];
  const slowRows: SlowRow[] = [];
  const snapshots: { how: string; ms: number; values: number; bytes: number }[] = [];
  const admin = new Redis({ ...REDIS, lazyConnect: true });
  await admin.connect();
  try {
    for (let i = 0; i < SUBSCRIBERS; i++) subs.push(await SubProc.start(i + 1));
    // Clock offset between this process and a subscriber: the best of 20 IPC round trips.
    let best = { off: NaN, rtt: Infinity };
    for (let i = 0; i < 20; i++) {
      const t1 = wallMs();
      const v = await subs[0].ask<number>({ cmd: 'clock' });
      const t2 = wallMs();
      if (t2 - t1 < best.rtt) best = { off: v - (t1 + t2) / 2, rtt: t2 - t1 };
    }
    console.log(`clocks: subscriber − publisher = ${(best.off * 1000).toFixed(0)} µs ± ${((best.rtt / 2) * 1000).toFixed(0)} µs (IPC round trip); latencies are not corrected`);
    const rc = (await admin.config('GET', 'client-output-buffer-limit')) as string[];
    console.log(`redis ${rc.join(' ')}; Redis Streams MAXLEN ~ ${mb(STREAM_BYTES)} / message size; JetStream batch stream max_bytes ${mb(JS_STREAM_BYTES)}, memory storage`);

    for (const engine of engines) {
      const t0 = wallMs();
      const pub = await createPublisher(engine, SUBSCRIBERS);
      try {
        await Promise.all(subs.map((s) => s.ask({ cmd: 'connect', ep: pub.endpoint })));
        await pub.ready();
        const run = new EngineRun(engine, pub, subs, frames);
        for (const size of pub.perInstrument ? [1] : SIZES) maxRows.push(await run.maxRate(size));
        // Acked per-tick publishing is there to show its ceiling (case 1); the live feed would not wait for PubAcks.
        if (engine !== 'jetstream-last-acked') {
          for (const rate of RATES) pacedRows.push(await run.latency(rate));
          slowRows.push(await run.slow(engine.startsWith('redis') ? admin : null));
        }
        if (engine === 'jetstream-last') {
          // The stream now holds the latest message of every instrument: what a gateway (re)connecting reads.
          snapshots.push({ how: 'JetStream: new ordered consumer, deliver last per subject', ...await subs[0].ask<{ ms: number; values: number; bytes: number }>({ cmd: 'snapshot', engine: 'jetstream-last', tokens: [] }) });
        }
      } finally {
        await Promise.all(subs.map((s) => s.ask({ cmd: 'disconnect' }, 10_000).catch(() => undefined)));
        await pub.close();
      }
      console.log(`  done: ${engine} (${((wallMs() - t0) / 1000).toFixed(0)} s)`);
    }
    if (!ONLY || ONLY.some((e) => e.startsWith('redis'))) {
      // The cache keeps the latest value per instrument under one key each: the same bytes here.
      const per = new Map<number, Buffer>();
      for (const t of frames.perInstrument()) per.set(t.token, t.bytes);
      await admin.mset(...[...per].flatMap(([tok, b]) => [SNAPSHOT_PREFIX + tok, b]));
      snapshots.push({ how: 'Redis: MGET of one key per instrument', ...await subs[0].ask<{ ms: number; values: number; bytes: number }>({ cmd: 'snapshot', engine: 'redis', tokens: [...per.keys()] }) });
      await admin.del(...[...per.keys()].map((t) => SNAPSHOT_PREFIX + t));
    }
  } finally {
    killAll();
    const left = await admin.keys('bench-engines-*');
    if (left.length > 0) await admin.del(...left);
    await admin.quit();
    process.removeListener('exit', killAll);
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
  }

  // --- tables ---
  const floorMax = (size: number): MaxRow | undefined => maxRows.find((r) => r.engine === 'tcp' && r.size === size);
  console.log(`\n1. Maximum sustained rate to ${SUBSCRIBERS} subscribers (the slower one's receive rate), publisher at most ${mb(WINDOW_BYTES)} ahead, ${T.max / 1000} s after ${T.warm / 1000} s warm-up. Floor: loopback TCP from this process to the same subscribers. CPU in % of one core (${cpus().length} cores shared by all). "lost" for jetstream-last: replaced in the stream before delivery (conflated).`);
  console.table(maxRows.map((r) => ({
    engine: r.engine,
    'ticks/msg': r.engine.startsWith('jetstream-last') ? '1 (per instrument)' : r.size,
    'msg bytes': fmt(r.msgBytes),
    'msgs/s': fmt(r.msgsPerS),
    'ticks/s': fmt(r.ticksPerS),
    'MB/s per sub': (r.bytesPerS / 2 ** 20).toFixed(1),
    'vs floor (ticks/s)': ratio(r.ticksPerS, floorMax(r.size)?.ticksPerS),
    'latency p50 / p99 at max': `${usStr(r.p50)} / ${usStr(r.p99)}`,
    'lost (by seq)': r.gaps,
    'CPU pub / subs / server / machine': `${pct(r.cpuPub)} / ${pct(r.cpuSubs)} / ${pct(r.cpuServer)} / ${pct(r.cpuMachine)}`,
    errors: r.errors,
  })));

  for (const r of maxRows) {
    if (r.engine === 'tcp' || (r.size !== 50 && !r.engine.startsWith('jetstream-last'))) continue;
    const f = floorMax(r.size);
    record({
      bench: 'engines', name: `${r.engine}, max rate, ${r.engine.startsWith('jetstream-last') ? '1 tick per instrument message' : `${r.size} ticks/msg`}`, unit: 'ticks/s', better: 'higher',
      value: r.ticksPerS, ...(f === undefined ? {} : { baseline: { name: 'loopback TCP floor', value: f.ticksPerS } }),
    });
  }
  for (const r of pacedRows) {
    if (r.engine === 'tcp' || r.rate !== 10_000) continue;
    const f = pacedRows.find((x) => x.engine === 'tcp' && x.rate === r.rate);
    record({
      bench: 'engines', name: `${r.engine}, p99 publish → subscriber at 10k ticks/s`, unit: 'µs', better: 'lower', value: r.p99,
      ...(f === undefined ? {} : { baseline: { name: 'loopback TCP floor', value: f.p99 } }),
    });
  }
  const floorPaced = (rate: number): PacedRow | undefined => pacedRows.find((r) => r.engine === 'tcp' && r.rate === rate);
  console.log(`\n2. Publish → subscriber latency at fixed rates, a drain per 1 ms timer wake-up, ${T.paced / 1000} s after ${T.warm / 1000} s warm-up; the worse subscriber's figures, one sample per message. "answer" = publish → the engine's reply (Redis) or PubAck (JetStream).`);
  console.table(pacedRows.map((r) => {
    const f = floorPaced(r.rate);
    return {
      engine: r.engine,
      'ticks/s': fmt(r.rate),
      'ticks/msg': r.ticksPerMsg,
      achieved: fmt(r.achieved),
      p50: usStr(r.p50),
      p99: usStr(r.p99),
      'p99.9': usStr(r.p999),
      max: usStr(r.max),
      'floor p50 / p99': f ? `${usStr(f.p50)} / ${usStr(f.p99)}` : '—',
      'lost (by seq)': r.gaps,
      'publish call p99': usStr(r.callP99),
      'answer p50 / p99': r.ackP50 === r.ackP50 ? `${usStr(r.ackP50)} / ${usStr(r.ackP99)}` : '—',
      'publisher late max': `${r.lagMax.toFixed(0)} ms`,
      'CPU pub / subs / server / machine': `${pct(r.cpuPub)} / ${pct(r.cpuSubs)} / ${pct(r.cpuServer)} / ${pct(r.cpuMachine)}`,
      errors: r.errors,
    };
  }));

  console.log(`\n3. Slow gateway: ${fmt(SLOW_RATE)} ticks/s; subscriber 2 SIGSTOPped for ${T.stop / 1000} s after ${T.before / 1000} s, then resumed for ${T.after / 1000} s. Phases: before / stopped / after.`);
  console.table(slowRows.map((r) => ({
    engine: r.engine,
    'pub ticks/s': r.phases.map((p, i) => fmt((p.ticks / r.phaseMs[i]) * 1000)).join(' / '),
    'publish call p99 / max': r.phases.map((p) => `${usStr(p.call.quantile(0.99))}, ${usStr(p.call.max)}`).join(' / '),
    'answer p99 / max': r.phases[0].ack.count === 0 ? '—' : r.phases.map((p) => `${usStr(p.ack.quantile(0.99))}, ${usStr(p.ack.max)}`).join(' / '),
    'sub 1 latency p99 / max': r.phases.map((p) => `${usStr(p.latA.quantile(0.99))}, ${usStr(p.latA.max)}`).join(' / '),
  })));
  console.table(slowRows.map((r) => ({
    engine: r.engine,
    'sent while stopped (msgs)': r.resumed.sentDuringStop,
    'sub 2 after resume: msgs': r.resumed.msgs,
    'of them sent before resume (backlog)': r.resumed.sentWhileStopped,
    'lost of those sent while stopped': r.resumed.lost,
    'max latency': `${r.resumed.maxLatMs.toFixed(0)} ms`,
    'live again after': Number.isFinite(r.resumed.catchUpMs) ? `${r.resumed.catchUpMs.toFixed(0)} ms` : 'never (in window)',
    'caught up at end': r.resumed.reconnected ? 'yes' : 'no',
    'memory: before → peak → caught up': r.gauges.map((g) => `${g.name} ${mb(g.before)} → ${mb(g.peak)} → ${mb(g.end)}`).join('; '),
  })));
  for (const r of slowRows) {
    const ev = r.resumed.events;
    if (ev.length > 0 || r.eventsA.length > 0) {
      console.log(`  ${r.engine}: sub 2 events: ${ev.length ? ev.join('; ') : 'none'}${r.eventsA.length ? `; sub 1 events: ${r.eventsA.join('; ')}` : ''}`);
    }
  }

  if (snapshots.length > 0) {
    console.log(`\n4. Snapshot on (re)connect: the latest message of each of ${universe.length} instruments, read by a new client in subscriber 1's process.`);
    console.table(snapshots.map((s) => ({ how: s.how, values: s.values, bytes: fmt(s.bytes), time: `${s.ms.toFixed(1)} ms` })));
  }
  console.log(`total ${((wallMs() - tStart) / 1000).toFixed(0)} s`);
}
