/**
 * Starts one shard worker per ring and stops them in order: the front closes its rings, each
 * shard drains what is left and says so, then the threads end.
 */
import type { Worker } from 'node:worker_threads';
import { startWorker } from './threads.ts';
import { SHARD_COUNTERS, ShardCounter, type ShardData, type ShardMessage } from '../workers/protocol.ts';

const SHARD_MODULE = new URL('../workers/shard.ts', import.meta.url);

export interface ShardHandle {
  readonly worker: Worker;
  readonly counters: Float64Array;
  readonly drained: Promise<void>;
}

export class Pipeline {
  readonly shards: ShardHandle[];

  constructor(rings: readonly SharedArrayBuffer[], onError: (shard: number, err: Error) => void) {
    this.shards = rings.map((ring, shard) => {
      const countersBuf = new SharedArrayBuffer(SHARD_COUNTERS * 8);
      const data: ShardData = { shard, ring, counters: countersBuf };
      const worker = startWorker(SHARD_MODULE, { workerData: data, name: `shard-${shard}` });
      const drained = new Promise<void>((resolve) => {
        worker.on('message', (m: ShardMessage) => { if (m.type === 'drained') resolve(); });
        worker.on('exit', () => resolve());
      });
      worker.on('error', (err) => onError(shard, err));
      return { worker, counters: new Float64Array(countersBuf), drained };
    });
  }

  ticks(): number {
    let n = 0;
    for (const s of this.shards) n += s.counters[ShardCounter.TICKS];
    return n;
  }

  /** After the front closed its rings: wait for every shard to drain, then end the threads. */
  async stop(timeoutMs = 10_000): Promise<void> {
    const all = Promise.all(this.shards.map((s) => s.drained));
    await Promise.race([all, new Promise((r) => setTimeout(r, timeoutMs).unref())]);
    await Promise.all(this.shards.map((s) => s.worker.terminate()));
  }
}
