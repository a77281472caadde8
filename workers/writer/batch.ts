/**
 * A batch: the COPY tuples made from one contiguous range of one output ring, [first, end) in the
 * stream's record positions. The range is what makes it exactly-once (writer.ts): the batch id is
 * (epoch, stream, first), and a row is known by its position, so a batch that overlaps what is
 * already committed sends only its tail.
 *
 * A batch has up to three sections, one per target table. Every record of the range counts toward
 * the range, but not every record is a row: bar updates (not closed) are not stored.
 *
 * | section | table             | from                                      |
 * |---------|-------------------|-------------------------------------------|
 * | 0       | market_data       | ticks ring, N.TYPE = TICK                 |
 * | 1       | quarantined_ticks | ticks ring, N.TYPE = QUARANTINE           |
 * | 2       | bars              | bars ring, B.FLAGS has CLOSED             |
 *
 * Per section, two int32 arrays beside the tuple bytes: `rel[i]` = position of row i minus
 * `first`, `off[i]` = byte offset of row i's tuple. Both only grow (in row order), so the rows at
 * or past a position are found by binary search.
 */
import { N, NType } from '../../src/core/tick.ts';
import { B, BarFlag } from '../../src/core/bar.ts';
import { CopyBuffer, TimeframeNames, writeBarRow, writeMarketRow, writeQuarantineRow } from './copy.ts';

export const Section = { MARKET: 0, QUARANTINE: 1, BARS: 2 } as const;
export const SECTIONS = 3;
export const SECTION_TABLES = ['market_data', 'quarantined_ticks', 'bars'] as const;

/** Stream id of shard `s`'s ticks or bars ring. */
export const tickStream = (shard: number): number => 2 * shard;
export const barStream = (shard: number): number => 2 * shard + 1;
export const isBarStream = (stream: number): boolean => (stream & 1) === 1;

export interface SectionData {
  rows: number;
  /** Tuples, exactly `bytes.length` long. */
  bytes: Uint8Array;
  rel: Int32Array;
  off: Int32Array;
}

/** What a sink commits: built in memory from a ring, or read back from the spill. */
export interface BatchData {
  /** Service start id (uuid text). */
  epoch: string;
  stream: number;
  /** Ring position of the first record (64-bit, as a whole f64). */
  first: number;
  /** One past the last record's position. */
  end: number;
  sections: readonly SectionData[];
  /** Smallest and largest row time (tick time; bar bucket start), epoch ms; NaN when no row. */
  minMs: number;
  maxMs: number;
}

/** Index of the first row of `s` whose position is at or after first + rel. */
export function firstRowAtOrAfter(s: SectionData, rel: number): number {
  let lo = 0;
  let hi = s.rows;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (s.rel[mid] < rel) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** Rows of the batch, all sections. */
export function batchRows(b: BatchData): number {
  let n = 0;
  for (const s of b.sections) n += s.rows;
  return n;
}

class SectionBuilder implements SectionData {
  readonly buf = new CopyBuffer();
  rel = new Int32Array(1024);
  off = new Int32Array(1024);
  rows = 0;

  get bytes(): Uint8Array {
    return this.buf.bytes.subarray(0, this.buf.length);
  }

  reset(): void {
    this.buf.reset();
    this.rows = 0;
  }

  /** Note a row that starts now, at relative position `rel`. */
  mark(rel: number): void {
    if (this.rows === this.rel.length) {
      const n = Math.ceil(this.rows * 1.5);
      const r = new Int32Array(n);
      r.set(this.rel);
      this.rel = r;
      const o = new Int32Array(n);
      o.set(this.off);
      this.off = o;
    }
    this.rel[this.rows] = rel;
    this.off[this.rows] = this.buf.length;
    this.rows++;
  }
}

/**
 * Builds one stream's batches, reused from batch to batch (its buffers grow to the largest batch
 * seen and stay). Fed record by record from RingConsumer.peek.
 */
export class BatchBuilder implements BatchData {
  epoch: string;
  first = 0;
  end = 0;
  minMs = NaN;
  maxMs = NaN;
  readonly sections: SectionBuilder[] = [new SectionBuilder(), new SectionBuilder(), new SectionBuilder()];
  private readonly names = new TimeframeNames();
  /** Bound to this builder once, so peek() gets the same function every time. */
  readonly onTick: (v: { f64: Float64Array }, base: number) => void;
  readonly onBar: (v: { f64: Float64Array }, base: number) => void;

  constructor(epoch: string, readonly stream: number) {
    this.epoch = epoch;
    this.onTick = (v, base) => this.addTick(v.f64, base >> 1);
    this.onBar = (v, base) => this.addBar(v.f64, base >> 1);
  }

  begin(first: number): void {
    this.first = first;
    this.end = first;
    this.minMs = NaN;
    this.maxMs = NaN;
    for (const s of this.sections) s.reset();
  }

  get count(): number {
    return this.end - this.first;
  }

  private time(ms: number): void {
    if (Number.isNaN(this.minMs) || ms < this.minMs) this.minMs = ms;
    if (Number.isNaN(this.maxMs) || ms > this.maxMs) this.maxMs = ms;
  }

  addTick(f: Float64Array, o: number): void {
    const rel = this.end - this.first;
    this.end++;
    if (f[o + N.TYPE] === NType.QUARANTINE) {
      const s = this.sections[Section.QUARANTINE];
      s.mark(rel);
      writeQuarantineRow(s.buf, f, o);
    } else {
      const s = this.sections[Section.MARKET];
      s.mark(rel);
      writeMarketRow(s.buf, f, o);
    }
    this.time(f[o + N.EXCH_TIME_MS]);
  }

  addBar(f: Float64Array, o: number): void {
    const rel = this.end - this.first;
    this.end++;
    if ((f[o + B.FLAGS] & BarFlag.CLOSED) === 0) return; // updates are for the live feed only
    const s = this.sections[Section.BARS];
    s.mark(rel);
    writeBarRow(s.buf, f, o, this.names);
    this.time(f[o + B.START_MS]);
  }
}
