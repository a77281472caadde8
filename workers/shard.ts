/**
 * A pipeline shard: one worker thread that owns one input ring and every token hashed to it.
 * Per record: filter out exact duplicates → validate → normalize → filter (consumer bits) →
 * aggregate. Outputs go to two output rings read in place by their consumers: canonical ticks
 * (accepted and quarantined, tick.ts layout) and bars (bar.ts layout, updates and closes).
 *
 * Why worker_threads and not a piscina task: a shard is a long-lived, stateful consumer pinned to
 * its ring (its tokens' bars, last volumes and dedupe memory live here), not a short task any idle
 * thread may take. Piscina's model (queue tasks, hand each to whichever worker is free) would have
 * to be bent into "one never-ending task per worker", losing what it offers. The shard count is
 * the one fixed pool size, WORKERS.
 *
 * The loop drains what the input ring holds as one batch (bounded by the room in the output
 * rings: a slow consumer slows the shard, which fills its input ring, which pauses the upstream
 * socket; nothing is dropped), then sleeps on the ring with Atomics.waitAsync (no timer polling;
 * the event loop stays free for the bar clock and control messages). A saturated ring never
 * empties, so while draining continuously the loop also yields to the event loop every
 * YIELD_EVERY_US, or control messages (filter, advance, memory) would wait until the input stops.
 *
 * The stages read each accepted tick from its canonical record in the output slot (onTickAt):
 * doubles passed as arguments to a call V8 does not inline are boxed, one HeapNumber each per tick.
 *
 * In-progress bar updates are coalesced: at most one per (token, timeframe) per batch, written
 * after the batch, so a burst of ticks costs one update, not one per tick.
 */
import { PerformanceObserver } from 'node:perf_hooks';
import { getHeapStatistics } from 'node:v8';
import { parentPort, workerData } from 'node:worker_threads';
import { RingConsumer, RingProducer } from '../src/core/ring.ts';
import { F, Kind, type SlotViews } from '../src/core/packet-slot.ts';
import { nowMicros } from '../src/core/clock.ts';
import { Aggregator, type AggregatorFields } from './stages/aggregate.ts';
import { BAR_FIELDS } from '../src/core/bar.ts';
import { Filter } from './stages/filter.ts';
import { InstrumentTable } from './stages/instrument-table.ts';
import { normalize } from './stages/normalize.ts';
import { Validator } from './stages/validate.ts';
import { Carries, DayStats, type DayStatsFields } from './stages/day-stats.ts';
import { N, NType, TICK_CONSUMERS } from '../src/core/tick.ts';
import { optionGroups, ringDoorbells, SC, type ShardControl, type ShardData, type ShardMessage } from '../src/core/shard-protocol.ts';

const data = (workerData as { data: ShardData }).data;
const input = new RingConsumer(data.ring);
const ticksOut = new RingProducer(data.ticksOut);
const barsOut = new RingProducer(data.barsOut);
const counters = new Float64Array(data.counters);
const doorbells = new Int32Array(data.doorbells);
let published = 0;
const table = new InstrumentTable(data.instruments);
const validator = new Validator(table, { mode: data.mode });
const filter = new Filter(table.size);
const manualClock = data.clock ? new Float64Array(data.clock) : null;
const clock = (): number => (manualClock ? manualClock[0] : Date.now());

const nTf = data.timeframesMs.length;

// Session stats for this shard's tokens; option OI sums go to the shared chain-stats buffer.
const groups = optionGroups(data.instruments);
const groupOf = new Map(groups.map((g, i) => [g, i]));
const chain = new Float64Array(data.chainStats);
const chainBase = data.shard * groups.length * 2;
/** Where the stages find the tick in a canonical record (tick.ts), so they need not import it. */
const sessionFields: DayStatsFields = {
  token: N.TOKEN, exchTimeMs: N.EXCH_TIME_MS, price: N.PRICE, prevClose: N.CLOSE, volumeDelta: N.VOLUME_DELTA,
  oi: N.OI, avgPrice: N.AVG_PRICE, dayVwap: N.DAY_VWAP,
};
const aggregatorFields: AggregatorFields = {
  token: N.TOKEN, exchTimeMs: N.EXCH_TIME_MS, price: N.PRICE, volumeDelta: N.VOLUME_DELTA, oi: N.OI,
};
const session = data.tokens.length > 0
  ? new DayStats({ tokens: data.tokens, maxGroups: Math.max(1, groups.length), fields: sessionFields })
  : null;
if (session) {
  const mine = new Set(data.tokens);
  for (const i of data.instruments) {
    if ((i.instrumentType === 'CE' || i.instrumentType === 'PE') && mine.has(i.instrumentToken)) {
      session.registerOption(i.instrumentToken, groupOf.get(`${i.name}:${i.expiry}`)!, i.instrumentType);
    }
  }
}
let dirtyCount = 0;
/**
 * When the current batch was taken from the input ring, epoch µs: every tick of the batch is
 * stamped with it (N.PROC_TIME_US). One clock read per batch, not per tick: performance.now()
 * costs ~60 ns and, as a call that returns a double, boxed a fresh HeapNumber per tick.
 */
let batchUs = 0;

/**
 * Bars that found the bar ring full (at shutdown, when every open bar closes at once, or in a
 * burst larger than the batch bound allowed for). Kept, not dropped; written before more input
 * is taken. Allocates, but only in those moments.
 */
const overflow: Float64Array[] = [];

function writeBar(view: Float64Array, base: number): void {
  if (overflow.length > 0 || !barsOut.hasRoom()) {
    overflow.push(view.slice(base, base + BAR_FIELDS));
    return;
  }
  const o = barsOut.claim();
  const out = barsOut.views.f64;
  const fo = o >> 1;
  for (let i = 0; i < BAR_FIELDS; i++) out[fo + i] = view[base + i];
  barsOut.commit();
}

const aggregator = data.tokens.length > 0
  ? new Aggregator({
    tokens: data.tokens,
    timeframesMs: data.timeframesMs,
    graceMs: data.graceMs,
    fields: aggregatorFields,
    onBar: (view, base, closed) => {
      if (closed) {
        writeBar(view, base);
        counters[SC.BARS_CLOSED]++;
        return;
      }
      if (dirtyFlag[base] === 0) {
        dirtyFlag[base] = 1;
        dirty[dirtyCount++] = base;
      }
    },
  })
  : null;
/** Bases (in the aggregator's view) of bars updated in this batch, and a flag per base to dedupe. */
const dirtyFlag = new Uint8Array(aggregator ? aggregator.view().length : 1);
const dirty = new Int32Array(Math.max(1, data.tokens.length * nTf));

function onRecord(v: SlotViews, b: number): void {
  counters[SC.TICKS_IN]++;
  const token = v.u32[b + F.TOKEN];
  const row = table.row(token);
  if (filter.isDuplicate(v, b, row)) {
    counters[SC.DUPLICATES]++;
    return;
  }
  const reason = validator.check(v, b, row);
  const o = ticksOut.claim();
  if (o < 0) return; // counted as a ring drop; the batch bound keeps room, so this stays 0
  const out = ticksOut.views.f64;
  const fo = o >> 1;
  if (reason !== 0) {
    const exchS = v.u32[b + F.EXCHANGE_TIME];
    const exchMs = exchS !== 0 ? exchS * 1000 : v.f64[(b >> 1) + F.RECV_TIME_US_F64] / 1000;
    normalize(v, b, row, table, exchMs, 0, NType.QUARANTINE, reason, out, fo);
    out[fo + N.PROC_TIME_US] = batchUs;
    out[fo + N.SHARD] = data.shard;
    ticksOut.commit();
    counters[SC.QUARANTINED]++;
    counters[SC.REASON0 + reason]++;
    return;
  }
  // Exchange time and volume delta are doubles: passed to normalize (too large to inline) each
  // would be boxed in a fresh HeapNumber per tick, so they are written here instead.
  normalize(v, b, row, table, 0, 0, NType.TICK, 0, out, fo);
  out[fo + N.EXCH_TIME_MS] = validator.exchTimeMs;
  out[fo + N.VOLUME_DELTA] = validator.volumeDelta;
  out[fo + N.CONSUMERS] = filter.consumers(v, b, row);
  out[fo + N.PROC_TIME_US] = batchUs;
  out[fo + N.SHARD] = data.shard;
  ticksOut.commit();
  counters[SC.TICKS_OUT]++;
  counters[SC.LAST_RECV_US] = out[fo + N.RECV_TIME_US];
  if (session !== null) {
    // Only full packets carry OI, and full and quote ones the average price (N holds 0 otherwise).
    const kind = v.u32[b + F.KIND];
    const carries = kind === Kind.FULL ? Carries.OI | Carries.AVG_PRICE : kind === Kind.QUOTE ? Carries.AVG_PRICE : 0;
    session.onTickAt(out, fo, carries); // writes N.DAY_VWAP
  }
  aggregator?.onTickAt(out, fo); // its clock: setNow() in tickClock(), once per batch
}

/** Write overflowed bars while there is room; true when none are left. */
function writeOverflow(): boolean {
  let i = 0;
  while (i < overflow.length && barsOut.hasRoom()) {
    const o = barsOut.claim();
    barsOut.views.f64.set(overflow[i++], o >> 1);
    barsOut.commit();
  }
  if (i > 0) overflow.splice(0, i);
  return overflow.length === 0;
}

async function drainOverflow(): Promise<void> {
  while (!writeOverflow()) {
    publish();
    await barsOut.waitForSpace(1, 100);
  }
}

function emitUpdates(): void {
  if (aggregator === null || dirtyCount === 0) return;
  const view = aggregator.view();
  for (let i = 0; i < dirtyCount; i++) {
    const base = dirty[i];
    dirtyFlag[base] = 0;
    if (aggregator.isOpen(base)) {
      writeBar(view, base);
      counters[SC.BAR_UPDATES]++;
    }
  }
  dirtyCount = 0;
}

function publishChainStats(): void {
  if (session === null) return;
  for (let g = 0; g < groups.length; g++) {
    const c = session.callOi(g);
    const p = session.putOi(g);
    chain[chainBase + 2 * g] = c === c ? c : 0;
    chain[chainBase + 2 * g + 1] = p === p ? p : 0;
  }
}

function publish(): void {
  publishChainStats();
  ticksOut.publish();
  barsOut.publish();
  const written = counters[SC.TICKS_OUT] + counters[SC.QUARANTINED] + counters[SC.BARS_CLOSED] + counters[SC.BAR_UPDATES];
  if (written !== published) {
    published = written;
    ringDoorbells(doorbells, TICK_CONSUMERS);
  }
  if (aggregator !== null) {
    counters[SC.LATE] = aggregator.stats.late;
  }
}

/** Records per batch: bounded by the output rings' room (a batch may close and update bars). */
function batchLimit(): number {
  const perTickBars = 2 * nTf;
  return Math.min(data.maxBatch, ticksOut.free(), Math.floor(barsOut.free() / perTickBars));
}

function tickClock(): void {
  const now = clock();
  if (aggregator !== null) {
    aggregator.advance(now);
    aggregator.setNow(now);
  }
}

let stopping = false;

/**
 * Longest stretch of continuous draining before the loop yields to the event loop, µs. A yield
 * (await new Promise(setImmediate)) costs ~2 µs of CPU, measured: 0.04 % of a 5 ms slice, below
 * what bench/pipeline.bench.ts can tell from noise. Without it a filter change posted to a
 * saturated single shard was never applied within 2 s; with it, within 2–22 ms on the busy
 * 2-core machine (a slice, plus waiting for a core).
 */
const YIELD_EVERY_US = 5000;

parentPort!.on('message', (m: ShardControl) => {
  if (m.type === 'advance') {
    tickClock();
    publish();
  } else if (m.type === 'filter') {
    const rows = m.tokens === null ? null : m.tokens.map((t) => table.row(t)).filter((r) => r >= 0);
    filter.setFilter(m.k, m.filter === null ? null : { rows, fields: m.filter.fields, changedOnly: m.filter.changedOnly });
  } else if (m.type === 'memory') {
    reportMemory();
  }
});

/** GC events of this thread, counted from the first 'memory' request on. */
const gcSeen = { count: 0, ms: 0 };
let gcObserver: PerformanceObserver | null = null;

function reportMemory(): void {
  if (gcObserver === null) {
    gcObserver = new PerformanceObserver((list) => {
      for (const e of list.getEntries()) {
        gcSeen.count++;
        gcSeen.ms += e.duration;
      }
    });
    gcObserver.observe({ entryTypes: ['gc'] });
  }
  const h = getHeapStatistics(); // this isolate's heap, not the process's
  parentPort!.postMessage({
    type: 'memory', shard: data.shard, heapUsed: h.used_heap_size, heapTotal: h.total_heap_size, gcs: gcSeen.count, gcMs: gcSeen.ms,
  } satisfies ShardMessage);
}

async function run(): Promise<void> {
  /** When the event loop last had a turn (roughly: after a sleep or a yield), epoch µs. */
  let sliceUs = nowMicros();
  for (;;) {
    tickClock();
    if (overflow.length > 0) await drainOverflow();
    const avail = input.available();
    if (avail > 0) {
      const limit = batchLimit();
      if (limit <= 0) {
        counters[SC.OUT_WAITS]++;
        if (ticksOut.free() === 0) await ticksOut.waitForSpace(1, 100);
        else await barsOut.waitForSpace(2 * nTf, 100);
        continue;
      }
      batchUs = nowMicros();
      const n = input.drain(onRecord, limit);
      emitUpdates();
      publish();
      counters[SC.BATCHES]++;
      if (n > 0) {
        if (batchUs - sliceUs >= YIELD_EVERY_US) {
          await new Promise(setImmediate);
          sliceUs = nowMicros();
        }
        continue;
      }
    }
    if (input.closed() && input.available() === 0) break;
    publish();
    // No spin before sleeping, measured (bench/pipeline.bench.ts, 1 worker, 100k ticks/s): a
    // 100 µs spin doubled the shard's CPU per tick and left p50 where it was (frames come ~0.7 ms
    // apart, beyond any spin worth paying for), and a 700 µs one cost 5x. Waking from waitAsync
    // takes ~35 µs; on a 2-core machine the core is worth more to the front and the consumers.
    await input.waitForData(data.clockIntervalMs);
    sliceUs = nowMicros();
  }
  stopping = true;
  // Shutdown: bars in progress leave as partial bars; then the outputs close.
  aggregator?.flush();
  await drainOverflow();
  publish();
  ticksOut.close();
  barsOut.close();
  ringDoorbells(doorbells, TICK_CONSUMERS);
  parentPort!.postMessage({ type: 'drained', shard: data.shard } satisfies ShardMessage);
}

void run().catch((err) => {
  // Surface as a worker error; the host logs it and the process decides.
  if (!stopping) throw err;
});
