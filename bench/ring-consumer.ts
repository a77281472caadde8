/**
 * Worker side of the ring bench's cross-thread runs: one consumer that drains a ring (ours) or
 * counts messages (the postMessage baseline) and checks that records arrive in order.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { RingConsumer } from '../src/core/ring.ts';
import type { SlotViews } from '../src/core/packet-slot.ts';

export interface RingConsumerData {
  mode: 'ring' | 'message';
  sab: SharedArrayBuffer | null;
  records: number;
}

export interface RingConsumerResult {
  records: number;
  outOfOrder: number;
  wakeups: number;
}

const data = (workerData as { data: RingConsumerData }).data;
let expected = 0;
let outOfOrder = 0;

function onRecord(v: SlotViews, b: number): void {
  if (v.u32[b] !== expected) outOfOrder++;
  expected = (v.u32[b] + 1) >>> 0;
}

function done(wakeups: number): void {
  parentPort!.postMessage({ records: expected, outOfOrder, wakeups } satisfies RingConsumerResult);
}

parentPort!.postMessage('ready');
if (data.mode === 'ring') {
  // A pending Atomics.waitAsync does not keep a thread alive; a port listener does (as in shard.ts).
  parentPort!.on('message', () => {});
  const c = new RingConsumer(data.sab!);
  let wakeups = 0;
  for (;;) {
    if (c.drain(onRecord) > 0) continue;
    if (expected >= data.records || (c.closed() && c.available() === 0)) break;
    wakeups++;
    await c.waitForData(100);
  }
  done(wakeups);
  parentPort!.close();
} else {
  let wakeups = 0;
  parentPort!.on('message', (m: { seq: number }[] | { seq: number }) => {
    wakeups++;
    if (Array.isArray(m)) {
      for (let i = 0; i < m.length; i++) {
        if (m[i].seq !== expected) outOfOrder++;
        expected = m[i].seq + 1;
      }
    } else {
      if (m.seq !== expected) outOfOrder++;
      expected = m.seq + 1;
    }
    if (expected >= data.records) {
      done(wakeups);
      parentPort!.close();
    }
  });
}
