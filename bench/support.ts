/**
 * Helpers shared by the ring and pipeline benches: the CPU clock, a GC counter, a latency
 * histogram that records without allocating, a line about how busy the machine is, and the Kite
 * simulator as a process of its own.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { PerformanceObserver } from 'node:perf_hooks';
import { setFlagsFromString } from 'node:v8';
import { fileURLToPath } from 'node:url';
import { runInNewContext } from 'node:vm';
import type { TimestampProvider } from 'tinybench';
import type { WireTick } from '../src/kite/codec.ts';
import { priceDivisor } from '../src/core/packet-slot.ts';
import { N } from '../src/core/tick.ts';

/** This process's CPU time (every thread), ms. */
export const cpuMs = (): number => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};

/** tinybench clock: process CPU time, steady on a shared machine where wall time includes waiting for a core. */
export const CPU_CLOCK: TimestampProvider = { name: 'process-cpu', fn: cpuMs, fromMs: (v) => v, toMs: (v) => Number(v) };

export const M = (x: number): string => (x / 1e6).toFixed(2);
export const K = (x: number): string => (x / 1e3).toFixed(0);

export function loadLine(): string {
  const load = loadavg()[0];
  const n = cpus().length;
  return `load average ${load.toFixed(2)} on ${n} cores` + (load > n - 0.5 ? ' (busy machine: wall-clock figures include waiting for a core)' : '');
}

export const settle = (ms = 50): Promise<void> => new Promise((res) => setTimeout(res, ms));

/**
 * Counts this thread's GC events (perf_hooks 'gc' entries). Entries arrive asynchronously:
 * `stop()` waits a moment for the last ones.
 */
export class GcCounter {
  minor = 0;
  major = 0;
  other = 0;
  ms = 0;
  /** Longest single pause, ms. */
  maxMs = 0;
  private readonly obs = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      if (e.duration > this.maxMs) this.maxMs = e.duration;
      const kind = (e as unknown as { detail?: { kind?: number } }).detail?.kind;
      // perf_hooks constants: 1 minor (scavenge), 2 major (mark-sweep-compact), 4 incremental, 8 weakcb
      if (kind === 1) this.minor++;
      else if (kind === 2) this.major++;
      else this.other++;
      this.ms += e.duration;
    }
  });

  start(): void {
    this.minor = this.major = this.other = this.ms = this.maxMs = 0;
    this.obs.observe({ entryTypes: ['gc'] });
  }

  async stop(): Promise<void> {
    await settle();
    this.obs.disconnect();
  }

  total(): number {
    return this.minor + this.major + this.other;
  }
}

/**
 * Latency histogram in µs, fixed memory: 1 µs buckets below 1024 µs, then 64 buckets per power of
 * two (±1.6 %) up to 2^31 µs (36 minutes). `record` is integer arithmetic on a Float64Array.
 */
export class Histogram {
  private counts = new Float64Array(1024 + 64 * 21);
  count = 0;
  max = 0;
  sum = 0;

  record(us: number): void {
    const v = us < 0 ? 0 : us;
    this.count++;
    this.sum += v;
    if (v > this.max) this.max = v;
    this.counts[Histogram.index(v)]++;
  }

  private static index(v: number): number {
    const x = v < 2147483647 ? v | 0 : 2147483647;
    if (x < 1024) return x;
    const msb = 31 - Math.clz32(x); // 10..30
    return 1024 + (msb - 10) * 64 + ((x >>> (msb - 6)) & 63);
  }

  /** Upper edge of bucket i, µs. */
  private static upper(i: number): number {
    if (i < 1024) return i + 1;
    const msb = 10 + Math.floor((i - 1024) / 64);
    const sub = (i - 1024) % 64;
    return (64 + sub + 1) * 2 ** (msb - 6);
  }

  /** The q-quantile (0..1), µs: the upper edge of its bucket, capped at the largest value seen. */
  quantile(q: number): number {
    if (this.count === 0) return NaN;
    const target = Math.ceil(q * this.count);
    let seen = 0;
    for (let i = 0; i < this.counts.length; i++) {
      seen += this.counts[i];
      if (seen >= target) return Math.min(Histogram.upper(i), this.max);
    }
    return this.max;
  }

  reset(): void {
    this.counts.fill(0);
    this.count = this.max = this.sum = 0;
  }

  copy(): Histogram {
    const h = new Histogram();
    h.counts = this.counts.slice();
    h.count = this.count;
    h.max = this.max;
    h.sum = this.sum;
    return h;
  }
}

/**
 * Per-thread CPU accounting from Linux's /proc/self/task/<tid>/schedstat: nanoseconds run on a
 * core, and nanoseconds spent runnable but waiting for one (the cost of a busy machine, ours or
 * someone else's). Null where /proc does not have it.
 */
export interface Sched { runNs: number; waitNs: number }

export function threadIds(): number[] {
  try {
    return readdirSync('/proc/self/task').map(Number);
  } catch {
    return [];
  }
}

export function schedOf(tids: readonly number[]): Sched | null {
  const s: Sched = { runNs: 0, waitNs: 0 };
  try {
    for (const tid of tids) {
      const [run, wait] = readFileSync(`/proc/self/task/${tid}/schedstat`, 'utf8').split(' ');
      s.runNs += Number(run);
      s.waitNs += Number(wait);
    }
  } catch {
    return null;
  }
  return s;
}

export function schedDelta(a: Sched | null, b: Sched | null): Sched | null {
  return a && b ? { runNs: b.runNs - a.runNs, waitNs: b.waitNs - a.waitNs } : null;
}

/** µs as a short string: "412 µs", "3.41 ms". */
export function us(x: number): string {
  if (!Number.isFinite(x)) return '—';
  return x < 1000 ? `${x.toFixed(0)} µs` : `${(x / 1000).toFixed(2)} ms`;
}

/**
 * A full GC of this thread's heap, for heap figures that show what is retained rather than what
 * happens not to be collected yet. (`--expose-gc` set at run time, so `npm run bench` needs no flag.)
 */
export const forceGc: () => void = (() => {
  setFlagsFromString('--expose_gc');
  return runInNewContext('gc') as () => void;
})();

/**
 * A canonical full tick (src/core/tick.ts) at f64 offset `o` of `f`, filled from a wire tick
 * of the market model the way the pipeline would (prices to rupees, times to ms), for benches that
 * encode feed records without running the pipeline. Volume delta is the last quantity; the receive
 * time is not an integer, so it encodes as an f64 (the record's last 8 bytes).
 */
export function canonicalFromWire(t: WireTick, f: Float64Array, o: number): void {
  const div = priceDivisor(t.token);
  f[o + N.TOKEN] = t.token;
  f[o + N.EXCH_TIME_MS] = t.exchangeTime * 1000;
  f[o + N.RECV_TIME_US] = t.exchangeTime * 1e6 + 123_456.7;
  f[o + N.PRICE] = t.lastPrice / div;
  f[o + N.LAST_QTY] = t.lastQty;
  f[o + N.AVG_PRICE] = t.avgPrice / div;
  f[o + N.VOLUME] = t.volume;
  f[o + N.VOLUME_DELTA] = t.lastQty;
  f[o + N.BUY_QTY] = t.buyQty;
  f[o + N.SELL_QTY] = t.sellQty;
  f[o + N.OPEN] = t.open / div;
  f[o + N.HIGH] = t.high / div;
  f[o + N.LOW] = t.low / div;
  f[o + N.CLOSE] = t.close / div;
  f[o + N.CHANGE_PCT] = t.close ? ((t.lastPrice - t.close) * 100) / t.close : 0;
  f[o + N.OI] = t.oi;
  f[o + N.OI_HIGH] = t.oiHigh;
  f[o + N.OI_LOW] = t.oiLow;
  f[o + N.LAST_TRADE_MS] = t.lastTradeTime * 1000;
  f[o + N.DAY_VWAP] = t.avgPrice / div + 0.0137;
  t.depth.forEach((d, i) => {
    f[o + N.DEPTH + 3 * i] = d.quantity;
    f[o + N.DEPTH + 3 * i + 1] = d.price / div;
    f[o + N.DEPTH + 3 * i + 2] = d.orders;
  });
}

/**
 * `npm run sim` as a child process at `rate` ticks/s (Kite is remote in production, so benches run
 * it apart from the service); resolves with its URLs from its start-up log line.
 */
export function startSimProcess(rate: number): Promise<{ child: ChildProcess; wsUrl: string; apiUrl: string }> {
  const entry = fileURLToPath(new URL('../src/kite/sim/main.ts', import.meta.url));
  const child = spawn(process.execPath, ['--import', 'tsx', entry], {
    env: { PATH: process.env.PATH ?? '', SIM_RATE: String(rate), SIM_PORT: '0', LOG_LEVEL: 'info' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  return new Promise((resolve, reject) => {
    let buf = '';
    child.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      const m = /KITE_WS_URL=(\S+) KITE_API_URL=(\S+?)"/.exec(buf);
      if (m !== null) resolve({ child, wsUrl: m[1], apiUrl: m[2] });
    });
    child.on('exit', (code) => reject(new Error(`the simulator process exited (${code}) before listening`)));
  });
}
