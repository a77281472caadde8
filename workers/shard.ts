/**
 * A pipeline shard: one worker thread that owns one ring and every token hashed to it.
 *
 * Why worker_threads and not a piscina task: a shard is a long-lived, stateful consumer pinned to
 * its ring (its tokens' bars and last volumes live here), not a short task any idle thread may
 * take. Piscina's model (queue tasks, hand each to whichever worker is free) would have to be bent
 * into "one never-ending task per worker", losing what it offers. The shard count is still the one
 * fixed pool size, WORKERS.
 *
 * The loop drains everything the ring holds as one batch, then sleeps on the ring's write counter
 * with Atomics.waitAsync (no timer polling; the event loop stays free for timers and messages).
 */
import { parentPort, workerData } from 'node:worker_threads';
import { RingConsumer } from '../src/rings/ring.ts';
import { F } from '../src/kite/record.ts';
import type { RecordViews } from '../src/kite/record.ts';
import { ShardCounter, type ShardData, type ShardMessage } from './protocol.ts';

const data = (workerData as { data: ShardData }).data;
const ring = new RingConsumer(data.ring);
const counters = new Float64Array(data.counters);

function onRecord(v: RecordViews, b: number): void {
  counters[ShardCounter.TICKS]++;
  counters[ShardCounter.LAST_RECV_US] = v.f64[(b >> 1) + F.RECV_TIME_US_F64];
}

async function run(): Promise<void> {
  for (;;) {
    const n = ring.drain(onRecord);
    if (n > 0) {
      counters[ShardCounter.BATCHES]++;
      continue;
    }
    if (ring.closed() && ring.available() === 0) break;
    await ring.waitForData(1000);
  }
  parentPort!.postMessage({ type: 'drained', shard: data.shard } satisfies ShardMessage);
}

void run();
