/**
 * What a hot loop allocates on the V8 heap, in bytes, for the tests that pin "nothing allocated
 * per tick" (the *.alloc.test.ts files).
 *
 * Counting GCs alone is coarse: how many scavenges a megabyte of garbage costs depends on how far
 * V8 has grown the young generation so far. So the bytes are counted instead, exactly:
 * v8.GCProfiler reports the used heap before and after every collection during the run, and what
 * was allocated is the used heap's growth over the run plus what every collection freed. Measured
 * on Node 20: an object of two fields per iteration comes out at 40.0002 bytes each, a loop that
 * allocates nothing at 0.003 bytes each (the profiler's own bookkeeping, once per run).
 *
 * Where: in a worker thread started as the service starts its shards (src/threads.ts), so the
 * code measured is the code the service runs, compiled by tsx. Inside a vitest fork it is not:
 * vitest rewrites every imported name into a getter on a module object, which changes what V8
 * inlines, and so what it boxes; measured, the shard stages there made 1.2-1.35 bytes a tick at
 * 2-5 µs a tick, against 0.06-0.3 bytes at 0.5 µs in a worker. A test file exports its
 * `scenarios`; measureInWorker has a worker import the file, build a scenario, run it and report.
 * The worker only imports the test file, so its `describe` must not run there: test files guard
 * it with `isMainThread`.
 *
 * The run is warmed up first, so that what is measured is the optimised code (a loop still in the
 * interpreter boxes doubles that the optimised one keeps in registers), and the heap is collected
 * before the measurement, so that no sweeping left over from an earlier collection frees memory
 * during the run and hides an allocation.
 *
 * boxOne(x) is the smallest garbage a hot path makes by accident, one 16-byte HeapNumber (a
 * fractional double passed to a call V8 does not inline, or stored where only tagged values go).
 * Each test also measures its loop with boxOne added per tick and checks that its bound tells the
 * two apart, so the test's power is shown in every run rather than trusted.
 */
import { GCProfiler, getHeapStatistics, setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { isMainThread, parentPort, workerData } from 'node:worker_threads';
import { startWorker } from '../../src/threads.ts';

export interface Allocation {
  /** Units of work measured (packets, ticks, rows). */
  ticks: number;
  /** Bytes allocated on the V8 heap during the measured run. */
  bytes: number;
  bytesPerTick: number;
  /** Young-generation collections (scavenges) during the run. */
  minorGcs: number;
  /** Every other collection (mark-compact, its incremental steps, weak callbacks). */
  otherGcs: number;
}

/**
 * Bound on bytes per tick for code that allocates nothing per tick: an eighth of one boxed double
 * a tick, room for what a loop may make per frame or per batch (a view, a boxed clock reading)
 * when a frame holds tens of ticks, but not for anything made per tick.
 */
export const NOTHING_PER_TICK = 2;

/** Bytes of one boxed double (HeapNumber: map word and value) on a 64-bit heap without pointer compression. */
export const BOXED_DOUBLE_BYTES = 16;

/** A generic array slot: a double stored here must be boxed, since the slot holds tagged values only. */
const boxes: unknown[] = [null];

/** Allocate one boxed double (BOXED_DOUBLE_BYTES), which stays reachable until the next call. */
export function boxOne(x: number): void {
  boxes[0] = x + 0.5;
}

/** A full collection of this thread's heap, or null when V8 will not give one. */
const fullGc: (() => void) | null = (() => {
  try {
    setFlagsFromString('--expose-gc');
    return runInNewContext('gc') as () => void;
  } catch {
    return null;
  }
})();

/**
 * Run `run(warmupTicks)` a few times to let V8 optimise it, then measure what `run(ticks)`
 * allocates on this thread's heap. `run` must do `ticks` units of work on inputs made before.
 */
export function measureAllocation(run: (ticks: number) => void, ticks: number, warmupTicks = Math.min(ticks, 200_000)): Allocation {
  for (let i = 0; i < 3; i++) run(warmupTicks);
  if (fullGc) {
    // Twice: the second finds nothing left to sweep from the first.
    fullGc();
    fullGc();
  }
  const profiler = new GCProfiler();
  profiler.start();
  const before = getHeapStatistics().used_heap_size;
  run(ticks);
  const after = getHeapStatistics().used_heap_size;
  const result = profiler.stop();
  let freed = 0;
  let minorGcs = 0;
  let otherGcs = 0;
  for (const s of result.statistics) {
    freed += s.beforeGC.heapStatistics.usedHeapSize - s.afterGC.heapStatistics.usedHeapSize;
    if (s.gcType === 'Scavenge' || s.gcType === 'MinorMarkCompact') minorGcs++;
    else otherGcs++;
  }
  const bytes = after - before + freed;
  return { ticks, bytes, bytesPerTick: bytes / ticks, minorGcs, otherGcs };
}

/** Work to measure, its inputs made when the scenario is made. */
export interface Scenario {
  /** Do `ticks` units of work. */
  run(ticks: number): void;
  /** Counts the test checks after the runs (what the work did), reported with the measurement. */
  facts?(): Record<string, number>;
}

/** Makes a scenario; with `box` its run also calls boxOne once per tick. */
export type ScenarioFactory = (box: boolean) => Scenario;

export interface Measured extends Allocation {
  facts: Record<string, number>;
}

interface Job {
  allocModule: string;
  scenario: string;
  ticks: number;
  box: boolean;
}

/**
 * Import `moduleUrl` (a test file's import.meta.url) in a worker thread, make its
 * `scenarios[scenario]` and measure it; one fresh worker per entry of `runs`, one after the other.
 * Fresh, because a thread runs one shard or one feed: a second instance of the same classes in one
 * thread (another closure at a call site V8 had seen one at) deoptimises code that the service
 * never sees deoptimised.
 */
export async function measureInWorker(moduleUrl: string, scenario: string, runs: readonly { ticks: number; box?: boolean }[]): Promise<Measured[]> {
  const out: Measured[] = [];
  for (const r of runs) out.push(await measureOne({ allocModule: moduleUrl, scenario, ticks: r.ticks, box: r.box ?? false }));
  return out;
}

function measureOne(job: Job): Promise<Measured> {
  return new Promise((resolve, reject) => {
    const worker = startWorker(new URL(import.meta.url), { workerData: job, name: `alloc ${job.scenario}` });
    worker.once('message', (m: Measured) => resolve(m));
    worker.once('error', reject);
    worker.once('exit', (code) => reject(new Error(`the allocation worker for ${job.scenario} exited (code ${code}) before reporting`)));
  });
}

async function serve(job: Job): Promise<void> {
  const mod = (await import(job.allocModule)) as { scenarios?: Record<string, ScenarioFactory> };
  const make = mod.scenarios?.[job.scenario];
  if (typeof make !== 'function') throw new Error(`${job.allocModule} exports no scenarios.${job.scenario}`);
  const s = make(job.box);
  const a = measureAllocation((n) => s.run(n), job.ticks);
  parentPort!.postMessage({ ...a, facts: s.facts?.() ?? {} } satisfies Measured);
}

const job = isMainThread ? undefined : ((workerData as { data?: Partial<Job> } | null)?.data);
if (job?.allocModule !== undefined) void serve(job as Job);

/** One line for an assertion message: what was measured. */
export function describeAllocation(label: string, a: Allocation): string {
  return `${label}: ${a.bytesPerTick.toFixed(3)} bytes/tick (${(a.bytes / 2 ** 20).toFixed(2)} MiB over ${a.ticks} ticks), ` +
    `${a.minorGcs} minor and ${a.otherGcs} other GCs`;
}
