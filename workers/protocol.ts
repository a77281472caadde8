/**
 * What the front and a shard worker share besides the ring: the start-up data and the counters
 * buffer the front reads for health and metrics.
 *
 * Counters (Float64Array over `counters`, written by the shard only):
 *
 * | index | name         | meaning                                        |
 * |-------|--------------|------------------------------------------------|
 * | 0     | TICKS        | records taken from the ring                    |
 * | 1     | LAST_RECV_US | receive time of the newest record, epoch µs    |
 * | 2     | BATCHES      | non-empty drains                               |
 */
export interface ShardData {
  shard: number;
  ring: SharedArrayBuffer;
  counters: SharedArrayBuffer;
}

export const ShardCounter = { TICKS: 0, LAST_RECV_US: 1, BATCHES: 2 } as const;
export const SHARD_COUNTERS = 8;

export type ShardMessage = { type: 'drained'; shard: number };
