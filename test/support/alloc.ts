/**
 * What a hot loop allocates on this thread's V8 heap, in bytes, for the tests that pin "nothing
 * allocated per tick" (the *.alloc.test.ts files).
 *
 * Counting GCs alone is coarse: how many scavenges a megabyte of garbage costs depends on how
 * large V8 has grown the young generation so far. So the bytes are counted instead, exactly:
 * v8.GCProfiler reports the used heap before and after every collection during the run, and what
 * was allocated is the used heap's growth over the run plus what every collection freed. Measured
 * on Node 20: an object of two fields per iteration comes out at 40.0002 bytes each, a loop that
 * allocates nothing at 0.003 bytes each (the profiler's own bookkeeping, once per run).
 *
 * The run is warmed up first, so that what is measured is the optimised code (a loop still in the
 * interpreter boxes doubles that the optimised one keeps in registers), and the heap is collected
 * before the measurement when gc() can be had, so that no sweeping left over from an earlier
 * collection frees memory during the run and hides an allocation.
 *
 * boxOne(x) is the smallest garbage a hot path makes by accident, one 16-byte HeapNumber (a
 * fractional double passed to a call V8 does not inline, or stored where only tagged values go):
 * each test also measures its loop with boxOne added per tick and checks that its bound tells the
 * two apart, so the test's power is shown in every run rather than trusted.
 */
import { GCProfiler, getHeapStatistics, setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

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
 * a tick, room for what a loop may make per frame or per batch (a view, a promise) when a frame
 * holds tens of ticks, but not for anything made per tick.
 */
export const NOTHING_PER_TICK = 2;

/** Bytes of one boxed double (HeapNumber: map word and value) on a 64-bit heap without pointer compression. */
export const BOXED_DOUBLE_BYTES = 16;

/** A full collection of this thread's heap, or null when V8 will not give one. */
export const fullGc: (() => void) | null = (() => {
  try {
    setFlagsFromString('--expose-gc');
    return runInNewContext('gc') as () => void;
  } catch {
    return null;
  }
})();

/** A generic array slot: a double stored here must be boxed, since the slot holds tagged values only. */
const boxes: unknown[] = [null];

/** Allocate one boxed double (BOXED_DOUBLE_BYTES), which outlives the call by staying reachable until the next. */
export function boxOne(x: number): void {
  boxes[0] = x + 0.5;
}

/**
 * Run `run(warmupTicks)` a few times to let V8 optimise it, then measure what `run(ticks)`
 * allocates. `run` must do `ticks` units of work with inputs prepared before the call.
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

/** One line for an assertion message: what was measured. */
export function describeAllocation(label: string, a: Allocation): string {
  return `${label}: ${a.bytesPerTick.toFixed(3)} bytes/tick (${(a.bytes / 2 ** 20).toFixed(2)} MiB over ${a.ticks} ticks), ` +
    `${a.minorGcs} minor and ${a.otherGcs} other GCs`;
}
