/**
 * What the front and a shard worker share besides the rings: the start-up data, the control
 * messages, and the counters buffer the host reads for health and metrics.
 *
 * Counters (Float64Array over `counters`, written by the shard only):
 *
 * | index      | name         | meaning                                                  |
 * |------------|--------------|----------------------------------------------------------|
 * | 0          | TICKS_IN     | records taken from the input ring                        |
 * | 1          | TICKS_OUT    | canonical ticks emitted (valid, not duplicate)           |
 * | 2          | QUARANTINED  | ticks that failed validation (emitted flagged)           |
 * | 3          | DUPLICATES   | exact duplicates dropped                                 |
 * | 4          | BARS_CLOSED  | bars emitted closed                                      |
 * | 5          | BAR_UPDATES  | in-progress bar updates emitted (coalesced per batch)    |
 * | 6          | LATE         | (tick, timeframe) pairs placed by the late-tick rule     |
 * | 7          | LAST_RECV_US | receive time of the newest emitted tick, epoch µs        |
 * | 8          | BATCHES      | drains of the input ring                                 |
 * | 9          | OUT_WAITS    | times the shard waited for room in an output ring        |
 * | 16 + r     | REASON0 + r  | quarantined ticks by QuarantineReason r                  |
 */
import type { TickMode } from './instrument.ts';
import type { Instrument } from './instrument.ts';
import { BAR_FIELDS } from './bar.ts';

export interface ShardData {
  shard: number;
  /** Input ring of decoded Kite records (one consumer: this shard). */
  ring: SharedArrayBuffer;
  /** Output ring of canonical ticks (tick.ts), N_SLOT_WORDS per slot. */
  ticksOut: SharedArrayBuffer;
  /** Output ring of bars (bar.ts), BAR_SLOT_WORDS per slot. */
  barsOut: SharedArrayBuffer;
  counters: SharedArrayBuffer;
  /**
   * Doorbells of the output consumers (shared by all shards): Int32Array, consumer k at
   * DOORBELL_STRIDE × k: [seq, waiting]. After publishing, a shard bumps seq and wakes a waiting
   * reader, so one reader can sleep on all shards' rings at once.
   */
  doorbells: SharedArrayBuffer;
  /**
   * Option-chain OI sums, shared by all shards: Float64Array, [shard][group][CALL_OI, PUT_OI]
   * with `groups` groups (see optionGroups). Each shard writes its own tokens' sums after every
   * batch; a chain's PCR is Σ over shards of puts / Σ of calls (Pipeline.pcr).
   */
  chainStats: SharedArrayBuffer;
  /** The instruments of the universe: the same rows, in the same order, in every thread. */
  instruments: Instrument[];
  /** Tokens this shard owns (bars are kept for these). */
  tokens: number[];
  /**
   * The mode the ingest asks Kite for. Validation does not hold packets to it: Kite sends quote
   * packets until a mode message takes effect (workers/stages/validate.ts).
   */
  mode: TickMode;
  timeframesMs: number[];
  graceMs: number;
  /** Records per batch at most. */
  maxBatch: number;
  /** How often the bar clock runs when no tick arrives, ms. */
  clockIntervalMs: number;
  /** A Float64Array[1] of epoch ms that replaces Date.now (tests), or null. */
  clock: SharedArrayBuffer | null;
  /**
   * The last tick stored per token before this process started (an ingest taking over, a restart):
   * the first packet of a token that repeats it is the snapshot Kite sends on subscribe, already
   * stored by the previous process, and is dropped as a duplicate (workers/stages/filter.ts seed).
   */
  lastStored?: LastStored[];
}

/**
 * A stored tick's identity in the decoded record's raw units (src/core/packet-slot.ts): prices in
 * the segment's smallest unit, times in epoch seconds (0 when the packet had none).
 */
export interface LastStored {
  token: number;
  kind: number;
  price: number;
  lastQty: number;
  avgPrice: number;
  volume: number;
  buyQty: number;
  sellQty: number;
  oi: number;
  exchangeTime: number;
  lastTradeTime: number;
}

export const SC = {
  TICKS_IN: 0,
  TICKS_OUT: 1,
  QUARANTINED: 2,
  DUPLICATES: 3,
  BARS_CLOSED: 4,
  BAR_UPDATES: 5,
  LATE: 6,
  LAST_RECV_US: 7,
  BATCHES: 8,
  OUT_WAITS: 9,
  REASON0: 16,
} as const;
export const SHARD_COUNTERS = 32;

/** Bar output slot: the bar record padded to an even number of f64 (room for later fields). */
export const BAR_SLOT_F64 = BAR_FIELDS + (BAR_FIELDS % 2 === 0 ? 2 : 1);
export const BAR_SLOT_WORDS = BAR_SLOT_F64 * 2;

export const DOORBELL_STRIDE = 16;

/**
 * Option groups for put-call ratios: one per (underlying name, expiry), numbered in sorted order,
 * so every thread derives the same numbering from the same instrument rows.
 */
export function optionGroups(instruments: readonly Instrument[]): string[] {
  const keys = new Set<string>();
  for (const i of instruments) if (i.instrumentType === 'CE' || i.instrumentType === 'PE') keys.add(`${i.name}:${i.expiry}`);
  return [...keys].sort();
}

export function chainStatsBytes(shards: number, groups: number): number {
  return Math.max(1, shards * groups * 2) * 8;
}

/** Shard side: ring every consumer's doorbell after publishing new output. */
export function ringDoorbells(bells: Int32Array, consumers: number): void {
  for (let k = 0; k < consumers; k++) {
    const at = k * DOORBELL_STRIDE;
    Atomics.add(bells, at, 1);
    if (Atomics.load(bells, at + 1) === 1) Atomics.notify(bells, at);
  }
}

/** This shard thread's heap (its own isolate) and the GC events it has seen since first asked. */
export interface ShardMemory {
  shard: number;
  heapUsed: number;
  heapTotal: number;
  /** GC events since the first 'memory' request (the observer starts then; nothing is watched before). */
  gcs: number;
  gcMs: number;
}

export type ShardMessage = { type: 'drained'; shard: number } | ({ type: 'memory' } & ShardMemory);

export type ShardControl =
  | { type: 'advance' }
  | { type: 'memory' }
  | {
    type: 'filter';
    k: number;
    /** null = every token */
    tokens: number[] | null;
    filter: { fields: number; changedOnly: boolean } | null;
  };
