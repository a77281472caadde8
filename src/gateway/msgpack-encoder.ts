/**
 * The tick record encoder: writes a tick record straight from the canonical Float64Array
 * (src/core/tick.ts) into a byte buffer, in the bytes `createPackr(true).pack(tickFor(...))`
 * would produce for the same tick. No per-tick object, no generic walk: what it saves is most of the
 * gateway's main-thread cost per tick (bench/feed.bench.ts; about 2-4 µs a full tick through
 * tickFor + msgpackr, against ~0.2 µs here).
 *
 * Byte-identical to msgpackr, which is what makes it safe: any msgpackr Unpackr holding the shared
 * STRUCTURES decodes it, and src/gateway/msgpack-encoder.test.ts compares the two on random and edge values.
 * Fields go in the record structure's key order (the field table in messages.ts). Records from one
 * tick are self-contained (shared structures never change at run time), so records encoded once can
 * be concatenated into any frame: that is how one encoding serves every subscription set (fanout.ts).
 *
 * msgpackr's number rules, with records on, which this follows exactly:
 * | value                                   | bytes                                 |
 * |-----------------------------------------|---------------------------------------|
 * | integer 0 ..= 0x3f (and -0)             | positive fixint (0x40..0x7f are record ids) |
 * | integer 0x40 ..= 0xff                   | 0xcc u8                               |
 * | integer 0x100 ..= 0xffff                | 0xcd u16                              |
 * | integer 0x10000 ..= 0xffffffff          | 0xce u32                              |
 * | integer -0x20 ..= -1                    | negative fixint                       |
 * | integer -0x80 ..= -0x21                 | 0xd0 i8                               |
 * | integer -0x8000 ..= -0x81               | 0xd1 i16                              |
 * | integer -0x80000000 ..= -0x8001         | 0xd2 i32                              |
 * | anything else (fractions, ≥ 2^32, NaN)  | 0xcb f64                              |
 */
import { Packr } from 'msgpackr';
import { N } from '../core/tick.ts';
import type { FrameFormat } from './fanout.ts';
import { STRUCTURES } from './messages.ts';

/** First byte of a record with shared structure i: msgpackr takes 0x40 + i. */
const RECORD_ID = 0x40;
const FRAME_RECORD = RECORD_ID + STRUCTURES.findIndex((s) => s.length === 2 && s[0] === 'type' && s[1] === 'd');
const MODE_RECORD = [0, 1, 2].map((m) => RECORD_ID + m);

/** Room for the longest record but its symbol: a full tick is 50 numbers (≤ 9 bytes each) and 12 headers. */
export const MAX_TICK_RECORD_BYTES = 1024;
/** `{ type: 'ticks', d: [` with an array32 header. */
export const MAX_FRAME_HEADER_BYTES = 1 + 6 + 5;

/** A short ASCII string as msgpack (fixstr). */
function str(s: string): number[] {
  return [0xa0 | s.length, ...Buffer.from(s, 'latin1')];
}
const TICKS_STR = str('ticks');

/** Canonical fields in key order after t and s, by mode (messages.ts's field table). */
const LTP_FIELDS = [N.PRICE, N.EXCH_TIME_MS];
const QUOTE_FIELDS = [N.LAST_QTY, N.AVG_PRICE, N.VOLUME, N.VOLUME_DELTA, N.BUY_QTY, N.SELL_QTY, N.OPEN, N.HIGH, N.LOW, N.CLOSE, N.CHANGE_PCT];
/** Then dvw, bid, ask and rt, which are not plain numbers. */
const FULL_FIELDS = [N.OI, N.OI_HIGH, N.OI_LOW, N.LAST_TRADE_MS];
/** Each mode's keys as msgpack strings, for plain maps. */
const TICK_KEYS = STRUCTURES.slice(0, 3).map((keys) => keys.map((k) => Uint8Array.from(str(k))));

/**
 * A growable byte buffer that ticks are written into; an Arena for the fan-out (fanout.ts) when
 * made with `start` = FRAME_HEAD (the bytes below are where frames get built).
 */
export class RecordWriter {
  buf: Uint8Array;
  /** Over `buf` (replaced with it when it grows). */
  dv: DataView;
  pos: number;

  /** Smallest integer that is not a positive fixint: records take 0x40..0x7f for record ids. */
  private fixintEnd = 0x40;

  constructor(initialBytes = 1 << 16, readonly start = 0) {
    this.buf = new Uint8Array(Math.max(initialBytes, start * 2));
    this.dv = new DataView(this.buf.buffer);
    this.pos = start;
  }

  /** Drop what was written: writing starts again at `start`. */
  reset(): void {
    this.pos = this.start;
  }

  /** Make room for `n` more bytes after pos, keeping what is written. */
  ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.pos + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.pos));
    this.buf = next;
    this.dv = new DataView(next.buffer);
  }

  /**
   * The number at `f[i]`, by msgpackr's rules above. It takes the array and the index, not the
   * value: a double passed to a call V8 does not inline is boxed in a fresh HeapNumber, and a full
   * tick has 50 numbers (measured: ~40 MB/s of garbage at 100k ticks/s, a scavenge every 300 ms).
   */
  num(f: Float64Array, i: number): void {
    const v = f[i];
    const b = this.buf;
    let p = this.pos;
    if (v >>> 0 === v) {
      if (v < this.fixintEnd) b[p++] = v;
      else if (v < 0x100) {
        b[p++] = 0xcc;
        b[p++] = v;
      } else if (v < 0x10000) {
        b[p++] = 0xcd;
        b[p++] = v >> 8;
        b[p++] = v & 0xff;
      } else {
        b[p++] = 0xce;
        this.dv.setUint32(p, v);
        p += 4;
      }
    } else if (v >> 0 === v) {
      if (v >= -0x20) b[p++] = 0x100 + v;
      else if (v >= -0x80) {
        b[p++] = 0xd0;
        b[p++] = v + 0x100;
      } else if (v >= -0x8000) {
        b[p++] = 0xd1;
        this.dv.setInt16(p, v);
        p += 2;
      } else {
        b[p++] = 0xd2;
        this.dv.setInt32(p, v);
        p += 4;
      }
    } else {
      b[p++] = 0xcb;
      this.dv.setFloat64(p, v);
      p += 8;
    }
    this.pos = p;
  }

  /** Bytes already msgpack-encoded (a symbol string made once per instrument). */
  raw(bytes: Uint8Array): void {
    this.buf.set(bytes, this.pos);
    this.pos += bytes.length;
  }

  /**
   * The tick of mode `m` (0 ltp, 1 quote, 2 full) for the canonical tick at `o` in `f`, `symbol`
   * being the msgpack bytes of its trading symbol (encodeSymbol): a shared-structure record, or
   * with `records` false a plain map with the same keys in the same order (`?records=0`).
   */
  tick(f: Float64Array, o: number, m: number, symbol: Uint8Array, records = true): void {
    this.ensure(MAX_TICK_RECORD_BYTES + symbol.length);
    const plain = !records;
    this.fixintEnd = records ? 0x40 : 0x80;
    if (plain) {
      // msgpackr always writes an object's map header as map16
      this.buf[this.pos++] = 0xde;
      this.buf[this.pos++] = 0;
      this.buf[this.pos++] = TICK_KEYS[m].length;
    } else this.buf[this.pos++] = MODE_RECORD[m];
    const keys = TICK_KEYS[2];
    let k = 0;
    if (plain) this.raw(keys[k++]);
    this.num(f, o + N.TOKEN);
    if (plain) this.raw(keys[k++]);
    this.raw(symbol);
    for (let i = 0; i < 2; i++) {
      if (plain) this.raw(keys[k++]);
      this.num(f, o + LTP_FIELDS[i]);
    }
    if (m === 0) return;
    for (let i = 0; i < QUOTE_FIELDS.length; i++) {
      if (plain) this.raw(keys[k++]);
      this.num(f, o + QUOTE_FIELDS[i]);
    }
    if (m === 1) return;
    for (let i = 0; i < FULL_FIELDS.length; i++) {
      if (plain) this.raw(keys[k++]);
      this.num(f, o + FULL_FIELDS[i]);
    }
    if (plain) this.raw(keys[k++]);
    if (f[o + N.DAY_VWAP] === f[o + N.DAY_VWAP]) this.num(f, o + N.DAY_VWAP);
    else this.buf[this.pos++] = 0xc0; // null (NaN): no day VWAP yet
    // bid then ask: 5 × [price, quantity, orders]; the canonical depth is [qty, price, orders].
    for (let side = 0; side < 2; side++) {
      if (plain) this.raw(keys[k++]);
      this.buf[this.pos++] = 0x95;
      for (let i = 0; i < 5; i++) {
        const d = o + N.DEPTH + 3 * (5 * side + i);
        this.buf[this.pos++] = 0x93;
        this.num(f, d + 1);
        this.num(f, d);
        this.num(f, d + 2);
      }
    }
    if (plain) this.raw(keys[k++]);
    this.num(f, o + N.RECV_TIME_US);
  }

  /** `{ type: 'ticks', d: [` followed by `count` ticks (written after). */
  ticksHeader(count: number, records = true): void {
    this.ensure(MAX_FRAME_HEADER_BYTES);
    this.pos = (records ? RECORD_FRAMES : PLAIN_FRAMES).writeHeader(this.buf, this.pos, count);
  }
}

function arrayHeader(out: Uint8Array, pos: number, count: number): number {
  if (count < 16) out[pos++] = 0x90 | count;
  else if (count < 0x10000) {
    out[pos++] = 0xdc;
    out[pos++] = count >> 8;
    out[pos++] = count & 0xff;
  } else {
    out[pos++] = 0xdd;
    out[pos++] = count >>> 24;
    out[pos++] = (count >> 16) & 0xff;
    out[pos++] = (count >> 8) & 0xff;
    out[pos++] = count & 0xff;
  }
  return pos;
}

const arrayHeaderBytes = (count: number): number => (count < 16 ? 1 : count < 0x10000 ? 3 : 5);

function frameFormat(prefix: readonly number[]): FrameFormat {
  return {
    headerBytes: (count) => prefix.length + arrayHeaderBytes(count),
    writeHeader(out, pos, count) {
      for (let i = 0; i < prefix.length; i++) out[pos++] = prefix[i];
      return arrayHeader(out, pos, count);
    },
  };
}

/** `{ type: 'ticks', d: [...] }` as the shared frame record. */
export const RECORD_FRAMES: FrameFormat = frameFormat([FRAME_RECORD, ...TICKS_STR]);
/** The same as a plain map (`?records=0`). */
export const PLAIN_FRAMES: FrameFormat = frameFormat([0xde, 0, 2, ...str('type'), ...TICKS_STR, ...str('d')]);

/** A trading symbol as msgpack bytes, made once per instrument by msgpackr itself. */
export function encodeSymbol(symbol: string): Uint8Array {
  return Uint8Array.from(symbolPackr.pack(symbol));
}
const symbolPackr = new Packr({ useRecords: false });
