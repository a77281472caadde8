/**
 * Filter: exact duplicates out; then, per downstream consumer, whether it wants the tick.
 *
 * Duplicates: the same packet seen twice (a reconnect overlap replays the last snapshot; two
 * connections holding one token each deliver it). A packet's identity is a 64-bit hash of its
 * payload words (the record minus receive time, sequence and connection); the last DEDUPE_DEPTH
 * identities per token are remembered. The shard asks this before validation: an older packet
 * replayed after a newer one would otherwise be quarantined as "volume decreased" rather than
 * dropped as the duplicate it is.
 *
 * Consumer filters: up to 31 filters, each a token set (or all), a field-group mask and a
 * changed-only flag. The shard sets bit k of the canonical tick's CONSUMERS word when filter k
 * wants it. Filter 0 is the store: every valid, non-duplicate tick, never thinned (a tick store
 * that silently thins the feed is not one). Changed-only compares a hash of the selected field
 * groups with the last one that filter passed for the token.
 */
import { F, type RecordViews } from '../../src/kite/record.ts';

export const DEDUPE_DEPTH = 4;
/** Payload words hashed for identity: everything before RECV_TIME_US (words 0..47). */
const PAYLOAD_WORDS = 48;

export const FieldGroup = {
  /** last price */
  LTP: 1,
  /** quantities, volume, average price, OHLC */
  QUOTE: 2,
  /** open interest */
  OI: 4,
  /** market depth */
  DEPTH: 8,
  ALL: 15,
} as const;

export interface ConsumerFilter {
  /** Instrument-table rows wanted, or null for every token. */
  rows: readonly number[] | null;
  fields: number;
  changedOnly: boolean;
}

export const MAX_FILTERS = 31;
export const STORE_FILTER = 0;

function mix(h: number, x: number): number {
  h = Math.imul(h ^ x, 0x5bd1e995);
  return h ^ (h >>> 15);
}

function hashWords(u32: Uint32Array, from: number, to: number, seed: number): number {
  let h = seed;
  for (let i = from; i < to; i++) h = mix(h, u32[i]);
  return h >>> 0;
}

/** Word ranges of each field group in the decoded record. */
const GROUP_RANGES: readonly (readonly [number, number, number])[] = [
  [FieldGroup.LTP, F.LAST_PRICE, F.LAST_PRICE + 1],
  [FieldGroup.QUOTE, F.LAST_QTY, F.CHANGE_RAW + 1],
  [FieldGroup.OI, F.OI, F.OI_LOW + 1],
  [FieldGroup.DEPTH, F.DEPTH, F.DEPTH + 30],
];

export class Filter {
  duplicates = 0;
  private readonly seenA: Uint32Array;
  private readonly seenB: Uint32Array;
  private readonly seenNext: Uint8Array;
  private readonly filters: (ConsumerFilter | null)[] = [];
  private readonly wants: (Uint8Array | null)[] = [];
  private readonly lastHash: (Uint32Array | null)[] = [];

  constructor(private readonly rows: number) {
    this.seenA = new Uint32Array(rows * DEDUPE_DEPTH);
    this.seenB = new Uint32Array(rows * DEDUPE_DEPTH);
    this.seenNext = new Uint8Array(rows);
    this.setFilter(STORE_FILTER, { rows: null, fields: FieldGroup.ALL, changedOnly: false });
  }

  /** True when the record at `b` repeats one of the token's last DEDUPE_DEPTH packets. */
  isDuplicate(v: RecordViews, b: number, row: number): boolean {
    if (row < 0) return false;
    // Both 32-bit hashes in one pass over the payload (the same values as two hashWords calls
    // with these seeds, for half the loads): this was the shard's largest stage.
    const u32 = v.u32;
    let a = 0x9747b28c;
    let c = 0x1b873593;
    for (let i = b, end = b + PAYLOAD_WORDS; i < end; i++) {
      const x = u32[i];
      a = mix(a, x);
      c = mix(c, x);
    }
    a >>>= 0;
    c >>>= 0;
    const base = row * DEDUPE_DEPTH;
    for (let i = 0; i < DEDUPE_DEPTH; i++) {
      if (this.seenA[base + i] === a && this.seenB[base + i] === c) {
        this.duplicates++;
        return true;
      }
    }
    const slot = base + this.seenNext[row];
    this.seenA[slot] = a;
    this.seenB[slot] = c;
    this.seenNext[row] = (this.seenNext[row] + 1) % DEDUPE_DEPTH;
    return false;
  }

  /** Install or replace filter `k` (1..30; 0 is the store and fixed). Off the hot path. */
  setFilter(k: number, f: ConsumerFilter | null): void {
    if (!Number.isInteger(k) || k < 0 || k >= MAX_FILTERS) throw new RangeError(`filter index must be 0..${MAX_FILTERS - 1}, got ${k}`);
    if (k === STORE_FILTER && this.filters[k] && f?.rows !== null) throw new RangeError('filter 0 is the store: it takes every tick');
    while (this.filters.length <= k) {
      this.filters.push(null);
      this.wants.push(null);
      this.lastHash.push(null);
    }
    this.filters[k] = f;
    if (f === null) {
      this.wants[k] = null;
      this.lastHash[k] = null;
      return;
    }
    let wants: Uint8Array | null = null;
    if (f.rows !== null) {
      wants = new Uint8Array(this.rows);
      for (const r of f.rows) if (r >= 0 && r < this.rows) wants[r] = 1;
    }
    this.wants[k] = wants;
    this.lastHash[k] = f.changedOnly ? new Uint32Array(this.rows) : null;
  }

  /** Bit k set for every filter that wants the record at `b` (a valid, non-duplicate tick). */
  consumers(v: RecordViews, b: number, row: number): number {
    let mask = 0;
    const n = this.filters.length;
    for (let k = 0; k < n; k++) {
      const f = this.filters[k];
      if (f === null) continue;
      const wants = this.wants[k];
      if (wants !== null && (row < 0 || wants[row] === 0)) continue;
      const last = this.lastHash[k];
      if (last !== null) {
        let h = 0x811c9dc5;
        for (let g = 0; g < GROUP_RANGES.length; g++) {
          const r = GROUP_RANGES[g];
          if ((f.fields & r[0]) !== 0) h = hashWords(v.u32, b + r[1], b + r[2], h);
        }
        // 0 is "never passed": nudge a real 0 so the first tick always passes.
        h = h === 0 ? 1 : h;
        if (last[row] === h) continue;
        last[row] = h;
      }
      mask |= 1 << k;
    }
    return mask;
  }
}
