/**
 * Decode throughput: our decodeFrame (into a preallocated ring, no allocation per packet) against
 * the official client's KiteTicker#parseBinary, on the same frames, in one run; then a long run of
 * ours with GC events counted, to show the hot path does not allocate per packet.
 *
 * One bench "op" decodes a whole set of frames (FRAMES frames of 50-200 packets, like a busy Kite
 * frame), so per-op timer overhead is negligible next to the work.
 *
 * Clock: tinybench times ops with this process's CPU time (process.cpuUsage, user + system), which
 * is what "packets per second on one core" means and stays honest on a shared, busy machine where
 * wall time includes waiting for a core. Wall-clock figures are printed beside it; on an idle
 * machine the two agree. BENCH_CLOCK=wall makes tinybench use performance.now instead.
 */

import { loadavg, cpus } from 'node:os';
import { PerformanceObserver, performance } from 'node:perf_hooks';
import { Bench, type TimestampProvider } from 'tinybench';
import { DecodeStats, decodeFrame, encodeFrame, type FrameStamp } from '../src/kite/codec.ts';
import { Kind, type KindCode } from '../src/core/packet-slot.ts';
import { Rng, genTick } from '../test/support/gen.ts';
import { exactArrayBuffer, officialTicker } from '../test/support/kite-official.ts';
import { RingSink } from '../test/support/sinks.ts';
import { QUICK, record } from './report.ts';

const FRAMES = 64;
const MIN_PER_FRAME = 50;
const MAX_PER_FRAME = 200;
const TARGET_FULL_PPS = 5_000_000;
const LONG_RUN_PACKETS = QUICK ? 1_000_000 : 20_000_000;
const LONG_RUN_OFFICIAL_PACKETS = QUICK ? 10_000 : 100_000;

interface FrameSet {
  label: string;
  frames: Uint8Array[];
  buffers: ArrayBuffer[];
  packets: number;
  bytes: number;
}

function frameSet(label: string, kind: KindCode, seed: number): FrameSet {
  const r = new Rng(seed);
  const frames: Uint8Array[] = [];
  let packets = 0;
  let bytes = 0;
  for (let f = 0; f < FRAMES; f++) {
    const n = r.int(MIN_PER_FRAME, MAX_PER_FRAME);
    const ticks = [];
    for (let i = 0; i < n; i++) ticks.push(genTick(r, kind, r.int(1, 8)));
    const frame = encodeFrame(ticks);
    frames.push(frame);
    packets += n;
    bytes += frame.byteLength;
  }
  return { label, frames, buffers: frames.map(exactArrayBuffer), packets, bytes };
}

const M = (x: number): string => (x / 1e6).toFixed(2);
const cpuMs = (): number => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};
const CPU_CLOCK: TimestampProvider = { name: 'process-cpu', fn: cpuMs, fromMs: (v) => v, toMs: (v) => Number(v) };

export default async function run(): Promise<void> {
  const useWall = process.env.BENCH_CLOCK === 'wall';
  const load = loadavg()[0];
  console.log(`clock: ${useWall ? 'wall (performance.now)' : 'process CPU time (process.cpuUsage)'}; load average ${load.toFixed(2)} on ${cpus().length} cores` +
    (load > cpus().length - 0.5 ? ' — busy machine: wall-clock figures include waiting for a core' : ''));

  const sets = [frameSet('full (184)', Kind.FULL, 184), frameSet('quote (44)', Kind.QUOTE, 44)];
  const ticker = officialTicker({ api_key: 'bench', access_token: 'bench', reconnect: false }); // never connected
  const sink = new RingSink(1024);
  const stats = new DecodeStats();
  const stamp: FrameStamp = { recvTimeUs: 0, seq: 0, conn: 0 };

  // Both decoders must see every packet of every set before we time them.
  for (const s of sets) {
    let ours = 0;
    let theirs = 0;
    for (let i = 0; i < s.frames.length; i++) {
      ours += decodeFrame(s.frames[i], stamp, sink, stats);
      theirs += ticker.parseBinary(s.buffers[i]).length;
    }
    if (ours !== s.packets || theirs !== s.packets || stats.totalErrors() !== 0) {
      throw new Error(`${s.label}: expected ${s.packets} packets, ours ${ours}, official ${theirs}, errors ${stats.totalErrors()}`);
    }
    console.log(`${s.label}: ${s.frames.length} frames, ${s.packets} packets, ${s.bytes} bytes per op (avg ${(s.packets / s.frames.length).toFixed(0)} packets/frame)`);
  }

  // The official parser needs ~0.3 s per op (a whole frame set): a low iteration floor keeps its
  // tasks near the 2 s budget instead of tinybench's default 64 samples.
  const bench = new Bench({
    name: 'decode',
    time: QUICK ? 200 : 2000,
    iterations: QUICK ? 2 : 10,
    warmupTime: QUICK ? 50 : 500,
    warmupIterations: QUICK ? 1 : 3,
    ...(useWall ? {} : { timestampProvider: CPU_CLOCK }),
  });
  // Wall time of every op (warm-up included), measured around the op: two performance.now() calls
  // per op of ~1 ms or more.
  const wall = new Map<string, { ms: number; ops: number }>();
  const timed = (name: string, op: () => void): void => {
    const w = { ms: 0, ops: 0 };
    wall.set(name, w);
    bench.add(name, () => {
      const t0 = performance.now();
      op();
      w.ms += performance.now() - t0;
      w.ops++;
    });
  };
  let sinkhole = 0;
  for (const s of sets) {
    const { frames, buffers } = s;
    timed(`ours ${s.label}`, () => {
      for (let i = 0; i < frames.length; i++) {
        stamp.seq++;
        sinkhole += decodeFrame(frames[i], stamp, sink, stats);
      }
    });
    timed(`kiteconnect ${s.label}`, () => {
      for (let i = 0; i < buffers.length; i++) sinkhole += ticker.parseBinary(buffers[i]).length;
    });
  }
  await bench.run();

  const rows: Record<string, string | number>[] = [];
  const pps = new Map<string, number>();
  for (const s of sets) {
    for (const who of ['ours', 'kiteconnect']) {
      const task = bench.getTask(`${who} ${s.label}`)!;
      const res = task.result;
      if (res.state !== 'completed') throw new Error(`${task.name}: ${res.state}`);
      const opsPerSec = 1000 / res.latency.mean;
      const p = s.packets * opsPerSec;
      const w = wall.get(task.name)!;
      pps.set(task.name, p);
      rows.push({
        task: task.name,
        'packets/s (M)': M(p),
        'MB/s': ((s.bytes * opsPerSec) / 1e6).toFixed(1),
        'ns/packet': (1e9 / p).toFixed(1),
        '±rme %': res.latency.rme.toFixed(2),
        samples: res.latency.samplesCount,
        'wall packets/s (M)': M((s.packets * w.ops) / (w.ms / 1000)),
      });
    }
  }
  console.table(rows);
  for (const s of sets) {
    const ours = pps.get(`ours ${s.label}`)!;
    const theirs = pps.get(`kiteconnect ${s.label}`)!;
    console.log(`ratio ours/official, ${s.label}: ${(ours / theirs).toFixed(1)}x`);
    record({
      bench: 'decode', name: `decode ${s.label.split(' ')[0]} packets, one core`, unit: 'packets/CPU-s', better: 'higher', value: ours,
      baseline: { name: 'KiteTicker.parseBinary', value: theirs },
      ...(s === sets[0] ? { target: { op: '>=', value: TARGET_FULL_PPS } } : {}),
    });
  }
  const full = pps.get(`ours ${sets[0].label}`)!;
  console.log(`target ≥ ${M(TARGET_FULL_PPS)}M full packets/s on one core: ${M(full)}M → ${full >= TARGET_FULL_PPS ? 'MET' : 'NOT MET'}`);

  await longRun(sets[0], sink, stats, stamp, ticker);
  if (sinkhole === -1) console.log('');
}

/**
 * Long run with GC events observed: our decoder for ~20M full packets, then the official parser
 * on far fewer for contrast. Per-frame cost is one DataView at most; per-packet should be nothing.
 */
async function longRun(
  s: FrameSet,
  sink: RingSink,
  stats: DecodeStats,
  stamp: FrameStamp,
  ticker: ReturnType<typeof officialTicker>,
): Promise<void> {
  const gcs = { minor: 0, major: 0, other: 0, ms: 0 };
  const obs = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      const kind = (e as unknown as { detail?: { kind?: number } }).detail?.kind;
      // perf_hooks constants: 1 minor (scavenge), 2 major (mark-sweep-compact), 4 incremental, 8 weakcb
      if (kind === 1) gcs.minor++;
      else if (kind === 2) gcs.major++;
      else gcs.other++;
      gcs.ms += e.duration;
    }
  });
  const settle = (): Promise<void> => new Promise((res) => setTimeout(res, 50));

  const measure = async (label: string, frames: number, packets: number, body: () => number): Promise<Record<string, string | number>> => {
    await settle();
    gcs.minor = gcs.major = gcs.other = gcs.ms = 0;
    const heapBefore = process.memoryUsage().heapUsed;
    obs.observe({ entryTypes: ['gc'] });
    const c0 = cpuMs();
    const t0 = performance.now();
    const done = body();
    const wallMs = performance.now() - t0;
    const cpu = cpuMs() - c0;
    const heapAfter = process.memoryUsage().heapUsed;
    await settle(); // gc entries are delivered asynchronously
    obs.disconnect();
    if (done !== packets) throw new Error(`${label}: decoded ${done} of ${packets}`);
    const gcTotal = gcs.minor + gcs.major + gcs.other;
    return {
      run: label,
      frames,
      packets,
      'packets/CPU-s (M)': M(packets / (cpu / 1000)),
      'packets/wall-s (M)': M(packets / (wallMs / 1000)),
      'heap before (MB)': (heapBefore / 2 ** 20).toFixed(2),
      'heap after (MB)': (heapAfter / 2 ** 20).toFixed(2),
      'GC minor': gcs.minor,
      'GC major': gcs.major,
      'GC other': gcs.other,
      'GC ms': gcs.ms.toFixed(1),
      'GCs per 1M packets': ((gcTotal * 1e6) / packets).toFixed(2),
      // Only meaningful when no GC ran in between (then it is what the run allocated and kept).
      'heap growth B/frame': gcTotal === 0 ? ((heapAfter - heapBefore) / frames).toFixed(1) : 'n/a (GC ran)',
    };
  };

  const oursRounds = Math.ceil(LONG_RUN_PACKETS / s.packets);
  const theirsRounds = Math.max(1, Math.ceil(LONG_RUN_OFFICIAL_PACKETS / s.packets));
  const rows = [
    await measure(`ours, ${s.label}`, oursRounds * s.frames.length, oursRounds * s.packets, () => {
      let n = 0;
      for (let r = 0; r < oursRounds; r++) {
        for (let i = 0; i < s.frames.length; i++) n += decodeFrame(s.frames[i], stamp, sink, stats);
      }
      return n;
    }),
    await measure(`kiteconnect, ${s.label}`, theirsRounds * s.frames.length, theirsRounds * s.packets, () => {
      let n = 0;
      for (let r = 0; r < theirsRounds; r++) {
        for (let i = 0; i < s.buffers.length; i++) n += ticker.parseBinary(s.buffers[i]).length;
      }
      return n;
    }),
  ];
  record({
    bench: 'decode', name: 'GCs per 1M full packets, long run', unit: 'GCs', better: 'lower', value: Number(rows[0]['GCs per 1M packets']),
    baseline: { name: 'KiteTicker.parseBinary', value: Number(rows[1]['GCs per 1M packets']) },
  });
  console.log('\nlong run, GC events observed via perf_hooks (heap sampled without forcing GC):');
  console.table(rows);
}
