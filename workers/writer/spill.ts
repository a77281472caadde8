/**
 * The on-disk spill: where a batch goes when the database is down or refuses it, so its records
 * can leave the rings (which must keep moving) without being lost. Batches are replayed in the
 * order they were spilled once the database answers again, and at start-up.
 *
 * Append-only segment files `spill/seg-NNNNNNNNNNNN.spill` (a new one past SPILL_SEGMENT_BYTES),
 * each a run of records. A record is written with one write() and then fsync()ed; only after
 * fsync returns is the batch released from the rings. A kill -9 can therefore leave at most a
 * torn last record, which the checksum exposes: it is cut off at open (its records were never
 * released, so nothing they held is claimed to be safe). Damage anywhere else is kept aside, not
 * deleted, and reported.
 *
 * Bounded: an append that would take the files past SPILL_MAX_BYTES is refused; the writer then
 * holds the batch (so the rings fill and the feed is paused: back-pressure, not loss) and says so.
 * A segment is deleted once every record in it has been replayed.
 *
 * Record layout (little-endian; our own file, read only by this module):
 *
 * | off | size | field      | meaning                                                        |
 * |-----|------|------------|----------------------------------------------------------------|
 * | 0   | 4    | MAGIC      | 0x4C50534E ("NSPL")                                            |
 * | 4   | 4    | LENGTH     | whole record in bytes, header included; a multiple of 4        |
 * | 8   | 4    | CRC        | CRC-32 of bytes [12, LENGTH)                                   |
 * | 12  | 4    | VERSION    | 1                                                              |
 * | 16  | 16   | EPOCH      | service start id, uuid bytes                                   |
 * | 32  | 4    | STREAM     | shard × 2 (+1 for bars)                                        |
 * | 36  | 4    | —          | 0                                                              |
 * | 40  | 8    | FIRST      | f64: ring position of the first record                         |
 * | 48  | 8    | END        | f64: one past the last                                         |
 * | 56  | 8    | MIN_MS     | f64: earliest row time (NaN: no rows)                          |
 * | 64  | 8    | MAX_MS     | f64: latest row time                                           |
 * | 72  | 24   | SECTIONS   | per section (batch.ts): u32 rows, u32 tuple bytes              |
 * | 96  | …    | BODY       | per section: rel i32 × rows, off i32 × rows, tuples padded to 4 |
 *
 * The batch id (EPOCH, STREAM, FIRST) and range travel with the rows, so a replay is checked
 * against the database's high water exactly as a direct write is (writer.ts).
 */
import { closeSync, existsSync, fstatSync, fsyncSync, ftruncateSync, mkdirSync, openSync, readdirSync, readSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { SECTIONS, type BatchData, type SectionData } from './batch.ts';

const MAGIC = 0x4c50534e;
const VERSION = 1;
export const SPILL_HEADER_BYTES = 96;
const SEG_RE = /^seg-(\d{12})\.spill$/;

export interface SpillOptions {
  dir: string;
  /** Refuse appends past this many bytes on disk. */
  maxBytes: number;
  /** Start a new segment file past this size. */
  segmentBytes: number;
  /** Told about torn tails and damaged segments found at open. */
  onDamage?: (what: { file: string; offset: number; bytes: number; tail: boolean }) => void;
}

interface Entry {
  seg: number;
  offset: number;
  length: number;
  stream: number;
}

/** One stream's spilled records, oldest first (a stream's records replay in order; streams are independent). */
interface Queue {
  entries: Entry[];
  head: number;
  /** Decoded head record, kept until acked. */
  batch: BatchData | null;
}

interface Segment {
  seq: number;
  path: string;
  size: number;
  /** Records in it not yet replayed. */
  pending: number;
  damaged: boolean;
}

const pad4 = (n: number): number => (n + 3) & ~3;

export function recordBytes(b: BatchData): number {
  let n = SPILL_HEADER_BYTES;
  for (const s of b.sections) n += 8 * s.rows + pad4(s.bytes.length);
  return n;
}

function uuidBytes(u: string, out: Uint8Array, at: number): void {
  const hex = u.replace(/-/g, '');
  if (!/^[0-9a-f]{32}$/i.test(hex)) throw new RangeError(`epoch "${u}" is not a uuid`);
  for (let i = 0; i < 16; i++) out[at + i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
}

function uuidText(b: Uint8Array, at: number): string {
  let h = '';
  for (let i = 0; i < 16; i++) h += b[at + i].toString(16).padStart(2, '0');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** Encode `b` as one spill record into `out` (which must hold recordBytes(b)); returns its length. */
export function encodeRecord(b: BatchData, out: Uint8Array): number {
  const len = recordBytes(b);
  const dv = new DataView(out.buffer, out.byteOffset, len);
  out.fill(0, 0, len);
  dv.setUint32(0, MAGIC, true);
  dv.setUint32(4, len, true);
  dv.setUint32(12, VERSION, true);
  uuidBytes(b.epoch, out, 16);
  dv.setUint32(32, b.stream, true);
  dv.setFloat64(40, b.first, true);
  dv.setFloat64(48, b.end, true);
  dv.setFloat64(56, b.minMs, true);
  dv.setFloat64(64, b.maxMs, true);
  let p = SPILL_HEADER_BYTES;
  for (let i = 0; i < SECTIONS; i++) {
    const s = b.sections[i];
    dv.setUint32(72 + 8 * i, s.rows, true);
    dv.setUint32(76 + 8 * i, s.bytes.length, true);
    for (let r = 0; r < s.rows; r++) dv.setInt32(p + 4 * r, s.rel[r], true);
    p += 4 * s.rows;
    for (let r = 0; r < s.rows; r++) dv.setInt32(p + 4 * r, s.off[r], true);
    p += 4 * s.rows;
    out.set(s.bytes, p);
    p += pad4(s.bytes.length);
  }
  dv.setUint32(8, crc32(out.subarray(12, len)), true);
  return len;
}

/** Problem with a record's bytes, or null when it is whole. */
function checkRecord(buf: Uint8Array, len: number): string | null {
  if (len < SPILL_HEADER_BYTES) return 'short header';
  const dv = new DataView(buf.buffer, buf.byteOffset, len);
  if (dv.getUint32(0, true) !== MAGIC) return 'bad magic';
  const rl = dv.getUint32(4, true);
  if (rl !== len) return 'length mismatch';
  if (dv.getUint32(12, true) !== VERSION) return 'unknown version';
  if (crc32(buf.subarray(12, len)) !== dv.getUint32(8, true)) return 'checksum mismatch';
  return null;
}

/** Decode a whole record (checked). The batch's arrays are views of `buf` (4-byte aligned). */
export function decodeRecord(buf: Uint8Array): BatchData {
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.length);
  const sections: SectionData[] = [];
  let p = SPILL_HEADER_BYTES;
  for (let i = 0; i < SECTIONS; i++) {
    const rows = dv.getUint32(72 + 8 * i, true);
    const nbytes = dv.getUint32(76 + 8 * i, true);
    // Copy the index arrays out: the record buffer's offset need not be 4-aligned.
    const rel = new Int32Array(rows);
    for (let r = 0; r < rows; r++) rel[r] = dv.getInt32(p + 4 * r, true);
    p += 4 * rows;
    const off = new Int32Array(rows);
    for (let r = 0; r < rows; r++) off[r] = dv.getInt32(p + 4 * r, true);
    p += 4 * rows;
    sections.push({ rows, rel, off, bytes: buf.subarray(p, p + nbytes) });
    p += pad4(nbytes);
  }
  return {
    epoch: uuidText(buf, 16),
    stream: dv.getUint32(32, true),
    first: dv.getFloat64(40, true),
    end: dv.getFloat64(48, true),
    minMs: dv.getFloat64(56, true),
    maxMs: dv.getFloat64(64, true),
    sections,
  };
}

export class Spill {
  private readonly segments: Segment[] = [];
  private readonly queues = new Map<number, Queue>();
  private count = 0;
  private fd = -1;
  private scratch = new Uint8Array(1 << 20);
  private total = 0;
  /** Records refused because the spill was full (each retried later by the caller). */
  refusals = 0;

  constructor(private readonly opts: SpillOptions) {
    mkdirSync(opts.dir, { recursive: true });
    const names = readdirSync(opts.dir).filter((f) => SEG_RE.test(f)).sort();
    for (let i = 0; i < names.length; i++) this.scan(names[i], i === names.length - 1);
  }

  /** Records spilled and not yet replayed. */
  pending(): number {
    return this.count;
  }

  /** Records of `stream` spilled and not yet replayed. */
  pendingFor(stream: number): number {
    const q = this.queues.get(stream);
    return q === undefined ? 0 : q.entries.length - q.head;
  }

  /** Streams with records to replay. */
  streams(): number[] {
    const out: number[] = [];
    for (const [stream, q] of this.queues) if (q.entries.length > q.head) out.push(stream);
    return out;
  }

  /** Bytes the spill takes on disk. */
  bytes(): number {
    return this.total;
  }

  get maxBytes(): number {
    return this.opts.maxBytes;
  }

  /**
   * Write `b` durably (write + fsync). False, and nothing written, when that would pass maxBytes.
   * Synchronous on purpose: the writer thread does nothing else useful while its database is
   * away, and a record is either wholly on disk or torn at the tail, never interleaved.
   */
  append(b: BatchData): boolean {
    const len = recordBytes(b);
    if (this.total + len > this.opts.maxBytes) {
      this.refusals++;
      return false;
    }
    if (this.scratch.length < len) this.scratch = new Uint8Array(Math.max(len, Math.ceil(this.scratch.length * 1.5)));
    encodeRecord(b, this.scratch);
    let seg = this.segments[this.segments.length - 1];
    if (this.fd < 0 || seg === undefined || seg.damaged || seg.size >= this.opts.segmentBytes) seg = this.newSegment();
    let done = 0;
    while (done < len) done += writeSync(this.fd, this.scratch, done, len - done, seg.size + done);
    fsyncSync(this.fd);
    this.enqueue({ seg: seg.seq, offset: seg.size, length: len, stream: b.stream });
    seg.size += len;
    seg.pending++;
    this.total += len;
    return true;
  }

  private enqueue(e: Entry): void {
    let q = this.queues.get(e.stream);
    if (q === undefined) {
      q = { entries: [], head: 0, batch: null };
      this.queues.set(e.stream, q);
    }
    q.entries.push(e);
    this.count++;
  }

  private read(e: Entry): Uint8Array {
    const buf = new Uint8Array(e.length);
    const fd = openSync(this.segPath(e.seg), 'r');
    try {
      readSync(fd, buf, 0, e.length, e.offset);
    } finally {
      closeSync(fd);
    }
    return buf;
  }

  /** The oldest record of `stream` not yet replayed, or null. */
  peek(stream: number): BatchData | null {
    const q = this.queues.get(stream);
    if (q === undefined || q.head >= q.entries.length) return null;
    if (q.batch !== null) return q.batch;
    const e = q.entries[q.head];
    const buf = this.read(e);
    const problem = checkRecord(buf, e.length);
    if (problem !== null) throw new Error(`spill record at ${this.segPath(e.seg)}:${e.offset} changed on disk (${problem})`);
    q.batch = decodeRecord(buf);
    return q.batch;
  }

  /** The oldest record of `stream` is in the database (or known to be): forget it, delete spent segments. */
  ack(stream: number, batch?: BatchData): void {
    const q = this.queues.get(stream);
    if (q === undefined || q.head >= q.entries.length) return;
    if (batch !== undefined && q.batch !== batch) throw new Error(`spill: ack of stream ${stream} for a record that is not its oldest`);
    const e = q.entries[q.head++];
    q.batch = null;
    this.count--;
    const seg = this.segments.find((x) => x.seq === e.seg)!;
    seg.pending--;
    if (q.head > 1024 && q.head * 2 > q.entries.length) {
      q.entries.splice(0, q.head);
      q.head = 0;
    }
    this.retire();
  }

  /**
   * Move the oldest record of `stream` to `rejected/` (kept, not deleted) and forget it: for a
   * batch the database refuses every time, so that one bad batch cannot stop every later one.
   */
  setAside(stream: number): string {
    const q = this.queues.get(stream)!;
    const e = q.entries[q.head];
    const b = this.peek(stream)!;
    const dir = join(this.opts.dir, 'rejected');
    mkdirSync(dir, { recursive: true });
    const file = join(dir, `${b.epoch}-${b.stream}-${b.first}-${b.end}.spill`);
    const out = openSync(file, 'w');
    try {
      writeSync(out, this.read(e));
      fsyncSync(out);
    } finally {
      closeSync(out);
    }
    this.ack(stream);
    return file;
  }

  close(): void {
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = -1;
  }

  private segPath(seq: number): string {
    return join(this.opts.dir, `seg-${String(seq).padStart(12, '0')}.spill`);
  }

  private newSegment(): Segment {
    if (this.fd >= 0) closeSync(this.fd);
    const last = this.segments[this.segments.length - 1];
    const seq = last === undefined ? 1 : last.seq + 1;
    const path = this.segPath(seq);
    this.fd = openSync(path, 'w');
    const dirFd = openSync(this.opts.dir, 'r');
    try {
      fsyncSync(dirFd); // the new file's name is durable too
    } finally {
      closeSync(dirFd);
    }
    const seg: Segment = { seq, path, size: 0, pending: 0, damaged: false };
    this.segments.push(seg);
    return seg;
  }

  /** Delete segments with nothing left to replay (all but the one being appended to). */
  private retire(): void {
    while (this.segments.length > 0) {
      const s = this.segments[0];
      if (s.pending > 0) return;
      const appending = this.fd >= 0 && s === this.segments[this.segments.length - 1];
      if (appending) {
        // Everything replayed: start afresh instead of keeping an empty-of-work file open.
        closeSync(this.fd);
        this.fd = -1;
      }
      if (s.damaged) renameSync(s.path, `${s.path}.damaged`);
      else unlinkSync(s.path);
      this.total -= s.size;
      this.segments.shift();
      if (appending) return;
    }
  }

  /** Index the whole records of one segment; cut a torn tail off the last one. */
  private scan(name: string, last: boolean): void {
    const seq = Number(SEG_RE.exec(name)![1]);
    const path = join(this.opts.dir, name);
    const fd = openSync(path, last ? 'r+' : 'r');
    const seg: Segment = { seq, path, size: 0, pending: 0, damaged: false };
    try {
      const size = fstatSync(fd).size;
      const hdr = new Uint8Array(8);
      let off = 0;
      while (off < size) {
        let problem: string | null = null;
        let len = 0;
        let stream = 0;
        if (size - off < 8 || readSync(fd, hdr, 0, 8, off) < 8) problem = 'short header';
        else {
          len = new DataView(hdr.buffer).getUint32(4, true);
          if (len < SPILL_HEADER_BYTES || off + len > size) problem = 'runs past the end';
          else {
            const buf = new Uint8Array(len);
            readSync(fd, buf, 0, len, off);
            problem = checkRecord(buf, len);
            stream = new DataView(buf.buffer).getUint32(32, true);
          }
        }
        if (problem !== null) {
          this.opts.onDamage?.({ file: path, offset: off, bytes: size - off, tail: last });
          if (last) {
            ftruncateSync(fd, off); // a torn tail: never fsynced, so never released from a ring
            fsyncSync(fd);
          } else {
            seg.damaged = true;
          }
          break;
        }
        this.enqueue({ seg: seq, offset: off, length: len, stream });
        seg.pending++;
        off += len;
      }
      seg.size = seg.damaged ? size : off;
    } finally {
      closeSync(fd);
    }
    this.total += seg.size;
    this.segments.push(seg);
    if (seg.pending === 0 && !seg.damaged && existsSync(path)) {
      unlinkSync(path);
      this.total -= seg.size;
      this.segments.pop();
    }
  }
}
