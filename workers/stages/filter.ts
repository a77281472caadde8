/**
 * Filter: exact duplicates out; then, per downstream consumer, whether it wants the tick.
 *
 * Duplicates: a packet is a duplicate only when it repeats, word for word, the token's immediately
 * previous packet: the snapshot Kite re-sends after a reconnect, or one packet arriving on two
 * connections during a resubscribe. Anything else is a tick, even one equal to an older packet: a
 * price that returns to an earlier value (A → B → A) is a new tick (always in ltp mode, for indices
 * in quote mode, whose packets carry no time, and in full mode within one exchange second).
 * Remembering more than the previous packet dropped such ticks. The payload compared is the record
 * minus receive time, sequence and connection (words 0..47), which the decoder fills from the
 * packet alone, so equal payloads are equal packets. It is compared exactly, not by hash: 48 word
 * compares per tick cost less than hashing them, and no collision can ever drop a tick. The shard
 * asks this before validation: a replayed snapshot would otherwise be quarantined as "volume
 * decreased" rather than dropped as the duplicate it is.
 *
 * Across modes: Kite answers a subscribe in quote mode and switches a token to full only once the
 * mode message takes effect, with a snapshot in each, so after a reconnect one trade can come once
 * as a quote packet and once as a full one, in either order. On the wire a shorter packet is the
 * head of the longer one of its family (ltp heads every family, quote heads full, index quote
 * heads index full: src/kite/packet-layout.ts), so two packets of related kinds are the same tick
 * when they agree on the words the shorter carries (COMMON_KIND, CARRIED_WORDS). Compared whole,
 * they differed, and a soak stored 18 trades twice. When the longer one is the repeat, it becomes
 * the previous packet: the next full packet is then compared with a full one, so a change only in
 * depth is still a tick. Kinds of different families (an index packet and a quote) are never the
 * same tick: validation refuses one of them.
 *
 * Consumer filters: up to 31 filters, each a token set (or all), a field-group mask and a
 * changed-only flag. The shard sets bit k of the canonical tick's CONSUMERS word when filter k
 * wants it. Filter 0 is the store: every valid, non-duplicate tick, never thinned (a tick store
 * that silently thins the feed is not one). Changed-only compares a hash of the selected field
 * groups with the last one that filter passed for the token.
 */
import { F, Kind, type SlotViews } from '../../src/core/packet-slot.ts';
import type { LastStored } from '../../src/core/shard-protocol.ts';

/** The record words a seed (the last stored tick) is compared on, in LastStored's order. */
const SEED_FIELDS = [F.KIND, F.LAST_PRICE, F.LAST_QTY, F.AVG_PRICE, F.VOLUME, F.BUY_QTY, F.SELL_QTY, F.OI, F.EXCHANGE_TIME, F.LAST_TRADE_TIME] as const;

/** Payload words compared for identity: everything before RECV_TIME_US (words 0..47). */
export const PAYLOAD_WORDS = 48;

/** Kind codes index the tables below: 1..5 (packet-slot.ts), so 6 entries a row. */
const KINDS = 6;

function range(from: number, to: number): number[] {
  return Array.from({ length: to - from }, (_, i) => from + i);
}

/**
 * The record words each kind's packet carries, by kind code, KIND itself left out (it is what
 * differs): the decoder writes 0 to every other word. CHANGE_RAW is an index field; quote and full
 * records hold 0 there.
 */
const CARRIED_WORDS: readonly Int32Array[] = [
  new Int32Array(0),
  Int32Array.from([F.TOKEN, F.LAST_PRICE]),
  Int32Array.from([F.TOKEN, F.LAST_PRICE, F.OPEN, F.HIGH, F.LOW, F.CLOSE, F.CHANGE_RAW]),
  Int32Array.from([F.TOKEN, F.LAST_PRICE, F.OPEN, F.HIGH, F.LOW, F.CLOSE, F.CHANGE_RAW, F.EXCHANGE_TIME]),
  Int32Array.from([F.TOKEN, ...range(F.LAST_PRICE, F.CHANGE_RAW)]),
  Int32Array.from([F.TOKEN, ...range(F.LAST_PRICE, PAYLOAD_WORDS)]),
];

/** CARRIED_WORDS as a mask: CARRIED[kind * PAYLOAD_WORDS + word] is 1 when the kind carries the word. */
const CARRIED = new Uint8Array(KINDS * PAYLOAD_WORDS);
for (let k = 1; k < KINDS; k++) for (const w of CARRIED_WORDS[k]) CARRIED[k * PAYLOAD_WORDS + w] = 1;

/**
 * For a previous packet of kind a and a new one of kind b (COMMON_KIND[a * KINDS + b]): the kind
 * whose words the two have in common, the shorter of two related kinds; 0 when they are of
 * different families, and so never the same tick.
 */
const COMMON_KIND = new Uint8Array(KINDS * KINDS);
{
  const family = [0, 0, 1, 1, 2, 2]; // ltp, index, tradable
  const len = [0, 8, 28, 32, 44, 184];
  for (let a = 1; a < KINDS; a++) {
    for (let b = 1; b < KINDS; b++) {
      if (a === b || family[a] === 0 || family[b] === 0 || family[a] === family[b]) COMMON_KIND[a * KINDS + b] = len[a] <= len[b] ? a : b;
    }
  }
}
if (COMMON_KIND[Kind.QUOTE * KINDS + Kind.FULL] !== Kind.QUOTE || COMMON_KIND[Kind.INDEX_FULL * KINDS + Kind.QUOTE] !== 0) {
  throw new Error('filter: COMMON_KIND is built wrong');
}

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
  /** Each row's previous packet payload, PAYLOAD_WORDS words a row. */
  private readonly last: Uint32Array;
  /** 1 once a row has a previous packet (an all-zero payload is still a packet). */
  private readonly seen: Uint8Array;
  /** Rows seeded with the last tick stored before this process (seed()): SEED_FIELDS words a row. */
  private seeds: Uint32Array | null = null;
  private seeded: Uint8Array | null = null;
  private readonly filters: (ConsumerFilter | null)[] = [];
  private readonly wants: (Uint8Array | null)[] = [];
  private readonly lastHash: (Uint32Array | null)[] = [];

  constructor(private readonly rows: number) {
    this.last = new Uint32Array(rows * PAYLOAD_WORDS);
    this.seen = new Uint8Array(rows);
    this.setFilter(STORE_FILTER, { rows: null, fields: FieldGroup.ALL, changedOnly: false });
  }

  /**
   * The previous packet of a row as the store last had it, from before this process: the first
   * packet of the row that equals it on SEED_FIELDS (kind, prices, quantities, OI, times) is a
   * duplicate. The store keeps no raw packet, so the comparison is on what identifies a tick there;
   * depth and OHLC follow from those. Off the hot path (start-up).
   */
  seed(row: number, s: LastStored): void {
    if (row < 0 || row >= this.rows) return;
    this.seeds ??= new Uint32Array(this.rows * SEED_FIELDS.length);
    this.seeded ??= new Uint8Array(this.rows);
    const w = [s.kind, s.price, s.lastQty, s.avgPrice, s.volume, s.buyQty, s.sellQty, s.oi, s.exchangeTime, s.lastTradeTime];
    for (let i = 0; i < w.length; i++) this.seeds[row * SEED_FIELDS.length + i] = w[i] >>> 0;
    this.seeded[row] = 1;
  }

  /**
   * True when the record at `b` repeats the token's immediately previous packet: word for word, or,
   * for a packet of another mode, on every word both carry (module header).
   */
  isDuplicate(v: SlotViews, b: number, row: number): boolean {
    if (row < 0) return false;
    const u32 = v.u32;
    const last = this.last;
    const base = row * PAYLOAD_WORDS;
    const kind = u32[b + F.KIND];
    // The seed waits for a packet of its kind or a related one: Kite answers a subscribe in quote
    // mode and then the switch to full with a snapshot each, both the repeat of a stored full tick
    // when nothing traded meanwhile.
    if (this.seeded !== null && this.seeded[row] === 1) {
      const seeds = this.seeds!;
      const sb = row * SEED_FIELDS.length;
      const common = COMMON_KIND[seeds[sb] * KINDS + kind];
      if (common !== 0) {
        this.seeded[row] = 0;
        const carried = common * PAYLOAD_WORDS;
        let i = 1;
        while (i < SEED_FIELDS.length && (CARRIED[carried + SEED_FIELDS[i]] === 0 || u32[b + SEED_FIELDS[i]] === seeds[sb + i])) i++;
        if (i === SEED_FIELDS.length) {
          for (let k = 0; k < PAYLOAD_WORDS; k++) last[base + k] = u32[b + k];
          this.seen[row] = 1;
          this.duplicates++;
          return true;
        }
      }
    }
    if (this.seen[row] === 1) {
      const lastKind = last[base + F.KIND];
      if (lastKind === kind) {
        let i = 0;
        while (i < PAYLOAD_WORDS && u32[b + i] === last[base + i]) i++;
        if (i === PAYLOAD_WORDS) {
          this.duplicates++;
          return true;
        }
        // Copy from the first difference on; the words before it are already equal.
        for (; i < PAYLOAD_WORDS; i++) last[base + i] = u32[b + i];
        return false;
      }
      const common = COMMON_KIND[lastKind * KINDS + kind];
      if (common !== 0) {
        const words = CARRIED_WORDS[common];
        let i = 0;
        while (i < words.length && u32[b + words[i]] === last[base + words[i]]) i++;
        if (i === words.length) {
          // The longer packet of the two stays the previous one: it carries the more.
          if (common === lastKind) for (let k = 0; k < PAYLOAD_WORDS; k++) last[base + k] = u32[b + k];
          this.duplicates++;
          return true;
        }
      }
    }
    for (let i = 0; i < PAYLOAD_WORDS; i++) last[base + i] = u32[b + i];
    this.seen[row] = 1;
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
  consumers(v: SlotViews, b: number, row: number): number {
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
