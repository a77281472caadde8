/**
 * A shard worker thread's entry (started by src/pipeline.ts through startWorker): builds the
 * Shard (shard.ts) from workerData, hands it the host's control messages, runs its loop, and says
 * 'drained' once the input ring is closed and the shard has closed its outputs.
 *
 * Why worker_threads and not a piscina task: a shard is a long-lived, stateful consumer pinned to
 * its ring (its tokens' bars, last volumes and dedupe memory live here), not a short task any idle
 * thread may take. Piscina's model (queue tasks, hand each to whichever worker is free) would have
 * to be bent into "one never-ending task per worker", losing what it offers. The shard count is
 * the one fixed pool size, WORKERS.
 */
import { PerformanceObserver } from 'node:perf_hooks';
import { getHeapStatistics } from 'node:v8';
import { parentPort, workerData } from 'node:worker_threads';
import { Shard } from './shard.ts';
import type { ShardControl, ShardData, ShardMessage } from '../src/core/shard-protocol.ts';

const data = (workerData as { data: ShardData }).data;
const port = parentPort!;
const shard = new Shard(data);

/** GC events of this thread, counted from the first 'memory' request on. */
const gcSeen = { count: 0, ms: 0 };
let gcObserver: PerformanceObserver | null = null;

/** This thread's heap (its own isolate, not the process's) and the GC events seen so far. */
function memory(): ShardMessage {
  if (gcObserver === null) {
    gcObserver = new PerformanceObserver((list) => {
      for (const e of list.getEntries()) {
        gcSeen.count++;
        gcSeen.ms += e.duration;
      }
    });
    gcObserver.observe({ entryTypes: ['gc'] });
  }
  const h = getHeapStatistics();
  return { type: 'memory', shard: data.shard, heapUsed: h.used_heap_size, heapTotal: h.total_heap_size, gcs: gcSeen.count, gcMs: gcSeen.ms };
}

// The listener also keeps the thread alive: a pending Atomics.waitAsync alone does not.
port.on('message', (m: ShardControl) => {
  if (m.type === 'memory') port.postMessage(memory());
  else shard.control(m);
});

let stopping = false;
async function main(): Promise<void> {
  await shard.run();
  stopping = true;
  await shard.shutdown();
  port.postMessage({ type: 'drained', shard: data.shard } satisfies ShardMessage);
}

void main().catch((err) => {
  // Surface as a worker error; the host logs it and the process decides.
  if (!stopping) throw err;
});
