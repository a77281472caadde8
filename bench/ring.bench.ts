/**
 * Ring throughput: records pushed and popped per second through src/core/ring.ts, for one
 * producer and one consumer, against the straightforward alternatives in the same run.
 *
 * A record here is a pipeline slot (52 words); each push writes its sequence number and a receive
 * time (f64), each pop reads the sequence number back and checks the order. That is the ring's
 * own cost: claim, commit, publish (one Atomics.store per batch), drain, release. Filling a whole
 * record is the decoder's cost and is timed in decode.bench.ts.
 *
 * 1. Same thread (tinybench, process CPU time as the clock, as decode.bench.ts explains): push a
 *    batch, publish, drain it; batches of 1 (a publish and a release per record) and 256.
 *    Baseline: a JavaScript array used as a queue of plain objects (push / shift).
 * 2. Across threads (wall time: two threads running at once is the point): the main thread
 *    produces for RUN_MS, a worker consumes, sleeping on the ring (Atomics.waitAsync) when it is
 *    empty; the producer sleeps (waitForSpace) when it is full. Batches of 1 and 64 records per
 *    publish (64 is about one busy Kite frame). Baseline: worker_threads postMessage, one object
 *    per record, and arrays of 64 objects per message.
 */
import { Worker } from 'node:worker_threads';
import { performance } from 'node:perf_hooks';
import { Bench } from 'tinybench';
import { createRingBuffer, RingConsumer, RingProducer } from '../src/core/ring.ts';
import { F, type SlotViews } from '../src/core/packet-slot.ts';
import { startWorker } from '../src/threads.ts';
import type { RingConsumerData, RingConsumerResult } from './ring-consumer.ts';
import { QUICK, record } from './report.ts';
import { CPU_CLOCK, cpuMs, GcCounter, loadLine, M } from './support.ts';

const CAPACITY = 1 << 16;
const OP_RECORDS = 4096;
const RUN_MS = QUICK ? 300 : 2000;
const MESSAGE_RECORDS = QUICK ? 30_000 : 300_000;
const MESSAGE_BATCH_RECORDS = QUICK ? 300_000 : 3_000_000;
const CONSUMER = new URL('./ring-consumer.ts', import.meta.url);

let expected = 0;
let outOfOrder = 0;
function check(v: SlotViews, b: number): void {
  if (v.u32[b + F.TOKEN] !== expected) outOfOrder++;
  expected = (expected + 1) >>> 0;
}

function push(p: RingProducer, seq: number): void {
  const b = p.claim();
  p.views.u32[b + F.TOKEN] = seq;
  p.views.f64[(b >> 1) + F.RECV_TIME_US_F64] = seq;
  p.commit();
}

interface QueueItem { seq: number; recvUs: number }

async function sameThread(): Promise<Record<string, string | number>[]> {
  const sab = createRingBuffer(CAPACITY);
  const p = new RingProducer(sab);
  const c = new RingConsumer(sab);
  let seq = 0;
  const queue: QueueItem[] = [];
  let sink = 0;
  const bench = new Bench({ name: 'ring, same thread', time: QUICK ? 150 : 1500, warmupTime: QUICK ? 50 : 300, timestampProvider: CPU_CLOCK });
  bench.add('ring, batch 1', () => {
    for (let i = 0; i < OP_RECORDS; i++) {
      push(p, seq++);
      p.publish();
      c.drain(check);
    }
  });
  bench.add('ring, batch 256', () => {
    for (let i = 0; i < OP_RECORDS; i += 256) {
      for (let j = 0; j < 256; j++) push(p, seq++);
      p.publish();
      c.drain(check);
    }
  });
  bench.add('baseline: array of objects, batch 256', () => {
    for (let i = 0; i < OP_RECORDS; i += 256) {
      for (let j = 0; j < 256; j++) queue.push({ seq: j, recvUs: j });
      while (queue.length > 0) sink += queue.shift()!.seq;
    }
  });
  await bench.run();
  if (outOfOrder !== 0) throw new Error(`ring handed out ${outOfOrder} records out of order`);
  const rows: Record<string, string | number>[] = [];
  for (const t of bench.tasks) {
    const r = t.result;
    if (r.state !== 'completed') throw new Error(`${t.name}: ${r.state}`);
    const perSec = (OP_RECORDS * 1000) / r.latency.mean;
    rows.push({ task: t.name, 'records/CPU-s (M)': M(perSec), 'ns/record': (1e9 / perSec).toFixed(1), '±rme %': r.latency.rme.toFixed(2) });
  }
  if (sink === -1) console.log('');
  return rows;
}

/** Start the consumer worker; resolves once it runs (its module loaded), with its result to come. */
async function startConsumer(data: RingConsumerData): Promise<{ worker: Worker; result: Promise<RingConsumerResult> }> {
  const worker = startWorker(CONSUMER, { workerData: data, name: 'ring-consumer' });
  let resolveResult!: (r: RingConsumerResult) => void;
  const result = new Promise<RingConsumerResult>((res) => (resolveResult = res));
  await new Promise<void>((ready, reject) => {
    worker.on('message', (m: 'ready' | RingConsumerResult) => (m === 'ready' ? ready() : resolveResult(m)));
    worker.once('error', reject);
  });
  return { worker, result };
}

interface CrossResult { task: string; records: number; wallMs: number; cpuMs: number; wakeups: number; gcs: number }

async function crossRing(batch: number): Promise<CrossResult> {
  const sab = createRingBuffer(CAPACITY);
  const p = new RingProducer(sab);
  const { worker, result } = await startConsumer({ mode: 'ring', sab, records: Number.MAX_SAFE_INTEGER });
  const gc = new GcCounter();
  gc.start();
  const c0 = cpuMs();
  const t0 = performance.now();
  let seq = 0;
  let waits = 0;
  while (performance.now() - t0 < RUN_MS) {
    // A few thousand records between clock reads.
    for (let k = 0; k < 64; k++) {
      let room = p.free();
      if (room < batch) {
        waits++;
        await p.waitForSpace(batch, 100);
        room = p.free();
      }
      const n = Math.min(room, batch);
      for (let i = 0; i < n; i++) push(p, seq++);
      p.publish();
    }
  }
  p.close();
  const r = await result;
  const wallMs = performance.now() - t0;
  const cpu = cpuMs() - c0;
  await gc.stop();
  await worker.terminate();
  if (r.outOfOrder !== 0 || r.records !== seq) throw new Error(`ring, batch ${batch}: consumer saw ${r.records} of ${seq}, ${r.outOfOrder} out of order`);
  return { task: `ring, batch ${batch}`, records: seq, wallMs, cpuMs: cpu, wakeups: r.wakeups + waits, gcs: gc.total() };
}

async function crossMessages(batch: number): Promise<CrossResult> {
  const records = batch === 1 ? MESSAGE_RECORDS : MESSAGE_BATCH_RECORDS;
  const { worker, result } = await startConsumer({ mode: 'message', sab: null, records });
  const gc = new GcCounter();
  gc.start();
  const c0 = cpuMs();
  const t0 = performance.now();
  for (let seq = 0; seq < records;) {
    if (batch === 1) {
      worker.postMessage({ seq, recvUs: seq });
      seq++;
    } else {
      const arr: QueueItem[] = [];
      for (let i = 0; i < batch && seq < records; i++, seq++) arr.push({ seq, recvUs: seq });
      worker.postMessage(arr);
    }
    // Let the port flush now and then, as a real event loop would between socket reads.
    if (seq % 4096 === 0) await new Promise((res) => setImmediate(res));
  }
  const r = await result;
  const wallMs = performance.now() - t0;
  const cpu = cpuMs() - c0;
  await gc.stop();
  await worker.terminate();
  if (r.outOfOrder !== 0 || r.records !== records) throw new Error(`postMessage: consumer saw ${r.records} of ${records}`);
  return {
    task: batch === 1 ? 'baseline: postMessage, 1 object/msg' : `baseline: postMessage, ${batch} objects/msg`,
    records, wallMs, cpuMs: cpu, wakeups: r.wakeups, gcs: gc.total(),
  };
}

export default async function run(): Promise<void> {
  console.log(`one producer, one consumer; ring capacity ${CAPACITY} slots of 52 words; ${loadLine()}`);
  console.log('\nsame thread (clock: process CPU time):');
  const same = await sameThread();
  console.table(same);
  const perSec = (task: string): number => 1e9 / Number(same.find((r) => r.task === task)!['ns/record']);
  console.log(`ratio ring batch 256 / array queue: ${(perSec('ring, batch 256') / perSec('baseline: array of objects, batch 256')).toFixed(1)}x`);
  record({
    bench: 'ring', name: 'same thread, batch 256', unit: 'records/CPU-s', better: 'higher', value: perSec('ring, batch 256'),
    baseline: { name: 'array of objects as a queue', value: perSec('baseline: array of objects, batch 256') },
  });

  console.log(`\nacross threads (main thread produces, a worker consumes; wall clock, ~${RUN_MS / 1000} s each):`);
  const cross = [await crossRing(1), await crossRing(64), await crossMessages(1), await crossMessages(64)];
  console.table(cross.map((r) => ({
    task: r.task,
    records: r.records,
    'records/s (M)': M(r.records / (r.wallMs / 1000)),
    'CPU ns/record (both threads)': ((r.cpuMs * 1e6) / r.records).toFixed(1),
    'waits (both sides)': r.wakeups,
    'GC (main thread)': r.gcs,
  })));
  const rate = (task: string): number => { const r = cross.find((x) => x.task === task)!; return r.records / r.wallMs; };
  console.log(`ratio ring batch 64 / postMessage 64 objects/msg: ${(rate('ring, batch 64') / rate('baseline: postMessage, 64 objects/msg')).toFixed(1)}x; ` +
    `ring batch 1 / postMessage 1 object/msg: ${(rate('ring, batch 1') / rate('baseline: postMessage, 1 object/msg')).toFixed(1)}x`);
  for (const [batch, base] of [[64, 'baseline: postMessage, 64 objects/msg'], [1, 'baseline: postMessage, 1 object/msg']] as const) {
    record({
      bench: 'ring', name: `across threads, batch ${batch}`, unit: 'records/s', better: 'higher', value: rate(`ring, batch ${batch}`) * 1000,
      baseline: { name: base.replace('baseline: ', ''), value: rate(base) * 1000 },
    });
  }
}
