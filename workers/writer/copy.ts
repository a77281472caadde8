/**
 * Binary COPY rows, written straight from ring slots into one reusable byte buffer: no string, no
 * Date, no object per tick. PostgreSQL's binary COPY format is
 *
 *   header:  "PGCOPY\n\377\r\n\0" (11 bytes) | int32 flags = 0 | int32 extension length = 0
 *   tuple:   int16 field count | per field: int32 byte length (-1 = NULL) | the value's bytes
 *   trailer: int16 -1
 *
 * all big-endian. A batch keeps its tuples without header and trailer, so it can send any suffix
 * of them (rows below the stream's committed high water are skipped: writer.ts) framed by
 * COPY_HEADER and COPY_TRAILER.
 *
 * Value encodings used here: int2/int4/int8 two's complement; float8 IEEE 754; timestamptz int64
 * microseconds since 2000-01-01 UTC; bool one byte; text UTF-8; float8[] the array wire format
 * (int32 ndim, int32 has-nulls, int32 element oid 701, per dimension int32 length and int32 lower
 * bound 1, then each element as int32 length 8 + float8).
 *
 * int8 from a JS number: hi = floor(v / 2^32) as int32, lo = v - hi × 2^32 as uint32, exact for
 * |v| < 2^53 (volumes and OI are uint32 upstream) and without BigInt, which would allocate.
 *
 * Why binary and not text: a text row needs a string per number (Number → decimal), which is an
 * allocation per field per tick, and the server then parses the decimals back; binary is a store
 * of the f64 we already hold. bench/storage.bench.ts times both against the same rows.
 *
 * ## market_data row (MARKET_COLUMNS; from the canonical tick, src/core/tick.ts N)
 *
 * | # | column          | type          | bytes | from                                              |
 * |---|-----------------|---------------|-------|---------------------------------------------------|
 * | 1 | token           | int8          | 8     | N.TOKEN                                           |
 * | 2 | time            | timestamptz   | 8     | N.EXCH_TIME_MS × 1000                             |
 * | 3 | recv_time       | timestamptz   | 8     | N.RECV_TIME_US (read back for write latency)      |
 * | 4 | kind            | int2          | 2     | N.KIND                                            |
 * | 5 | price           | float8        | 8     | N.PRICE                                           |
 * | 6 | last_qty        | int8          | 8     | N.LAST_QTY                                        |
 * | 7 | avg_price       | float8        | 8     | N.AVG_PRICE                                       |
 * | 8 | volume          | int8          | 8     | N.VOLUME                                          |
 * | 9 | volume_delta    | int8          | 8     | N.VOLUME_DELTA                                    |
 * | 10| buy_qty         | int8          | 8     | N.BUY_QTY                                         |
 * | 11| sell_qty        | int8          | 8     | N.SELL_QTY                                        |
 * | 12| open            | float8        | 8     | N.OPEN                                            |
 * | 13| high            | float8        | 8     | N.HIGH                                            |
 * | 14| low             | float8        | 8     | N.LOW                                             |
 * | 15| close           | float8        | 8     | N.CLOSE                                           |
 * | 16| change_pct      | float8        | 8     | N.CHANGE_PCT                                      |
 * | 17| oi              | int8          | 8     | N.OI                                              |
 * | 18| oi_high         | int8          | 8     | N.OI_HIGH                                         |
 * | 19| oi_low          | int8          | 8     | N.OI_LOW                                          |
 * | 20| last_trade_time | timestamptz   | 8/NULL| N.LAST_TRADE_MS × 1000; NULL when 0               |
 * | 21| bid_price       | float8        | 8/NULL| depth bid 1 price; NULL without depth             |
 * | 22| bid_qty         | int8          | 8/NULL| depth bid 1 qty                                   |
 * | 23| ask_price       | float8        | 8/NULL| depth ask 1 price                                 |
 * | 24| ask_qty         | int8          | 8/NULL| depth ask 1 qty                                   |
 * | 25| depth           | float8[10][3] | 388/NULL | N.DEPTH as rows [qty, price, orders], bids 1-5 then asks 1-5 |
 * | 26| conn            | int2          | 2     | N.CONN                                            |
 * | 27| seq             | int8          | 8     | N.SEQ                                             |
 *
 * Tuple: 2 + 27 × 4 + 584 = 694 bytes with depth, 306 without.
 *
 * ## quarantined_ticks row (QUARANTINE_COLUMNS)
 *
 * | # | column    | type        | bytes | from                                                  |
 * |---|-----------|-------------|-------|-------------------------------------------------------|
 * | 1 | token     | int8        | 8     | N.TOKEN                                               |
 * | 2 | time      | timestamptz | 8     | N.EXCH_TIME_MS × 1000                                 |
 * | 3 | recv_time | timestamptz | 8     | N.RECV_TIME_US                                        |
 * | 4 | reason    | text        | ≤ 16  | QUARANTINE_REASON_NAMES[N.REASON], bytes made once    |
 * | 5 | kind      | int2        | 2     | N.KIND                                                |
 * | 6 | price     | float8      | 8     | N.PRICE                                               |
 * | 7 | volume    | int8        | 8     | N.VOLUME                                              |
 * | 8 | oi        | int8        | 8     | N.OI                                                  |
 * | 9 | conn      | int2        | 2     | N.CONN                                                |
 * | 10| seq       | int8        | 8     | N.SEQ                                                 |
 *
 * ## bars row (BAR_COLUMNS; from the bar record, src/core/bar.ts B; closed bars only)
 *
 * | # | column       | type        | bytes  | from                                              |
 * |---|--------------|-------------|--------|---------------------------------------------------|
 * | 1 | token        | int8        | 8      | B.TOKEN                                           |
 * | 2 | timeframe    | text        | ≤ 4    | timeframeName(B.TF_MS), bytes made once per timeframe |
 * | 3 | bucket_start | timestamptz | 8      | B.START_MS × 1000                                 |
 * | 4 | bucket_end   | timestamptz | 8      | B.END_MS × 1000                                   |
 * | 5 | open         | float8      | 8      | B.OPEN                                            |
 * | 6 | high         | float8      | 8      | B.HIGH                                            |
 * | 7 | low          | float8      | 8      | B.LOW                                             |
 * | 8 | close        | float8      | 8      | B.CLOSE                                           |
 * | 9 | volume       | int8        | 8      | B.VOLUME                                          |
 * | 10| vwap         | float8      | 8/NULL | B.VWAP; NULL when NaN (no volume)                 |
 * | 11| trades       | int4        | 4      | B.TRADES                                          |
 * | 12| oi           | int8        | 8      | B.OI                                              |
 * | 13| ticks        | int4        | 4      | B.TICKS                                           |
 * | 14| partial      | bool        | 1      | B.FLAGS & BarFlag.PARTIAL                         |
 * | 15| flags        | int2        | 2      | B.FLAGS                                           |
 */
import { N } from '../../src/core/tick.ts';
import { B, BarFlag } from '../../src/core/bar.ts';
import { timeframeName } from '../../src/core/ist.ts';
import { QUARANTINE_REASON_NAMES } from '../../src/core/tick.ts';

export const MARKET_COLUMNS = [
  'token', 'time', 'recv_time', 'kind', 'price', 'last_qty', 'avg_price', 'volume', 'volume_delta', 'buy_qty', 'sell_qty',
  'open', 'high', 'low', 'close', 'change_pct', 'oi', 'oi_high', 'oi_low', 'last_trade_time',
  'bid_price', 'bid_qty', 'ask_price', 'ask_qty', 'depth', 'conn', 'seq',
] as const;
export const QUARANTINE_COLUMNS = ['token', 'time', 'recv_time', 'reason', 'kind', 'price', 'volume', 'oi', 'conn', 'seq'] as const;
export const BAR_COLUMNS = [
  'token', 'timeframe', 'bucket_start', 'bucket_end', 'open', 'high', 'low', 'close', 'volume', 'vwap', 'trades', 'oi', 'ticks', 'partial', 'flags',
] as const;

/** Largest market_data tuple (with depth). */
export const MARKET_ROW_MAX = 2 + MARKET_COLUMNS.length * 4 + 584;
/** Byte offset of recv_time's value inside a market_data tuple (after count, token, time). */
export const MARKET_RECV_AT = 2 + (4 + 8) + (4 + 8) + 4;

export const COPY_HEADER = new Uint8Array([0x50, 0x47, 0x43, 0x4f, 0x50, 0x59, 0x0a, 0xff, 0x0d, 0x0a, 0x00, 0, 0, 0, 0, 0, 0, 0, 0]);
export const COPY_TRAILER = new Uint8Array([0xff, 0xff]);

/** Microseconds from the Unix epoch to PostgreSQL's (2000-01-01T00:00:00Z). */
export const PG_EPOCH_US = 946_684_800_000_000;
const TWO32 = 4_294_967_296;
const FLOAT8_OID = 701;
const DEPTH_ROWS = 10;
const DEPTH_COLS = 3;

const utf8 = new TextEncoder();
const REASON_BYTES = QUARANTINE_REASON_NAMES.map((n) => utf8.encode(n));

/**
 * A growable byte buffer of COPY tuples. Grows by half when short (the only allocation, and only
 * until it has seen the largest batch).
 */
export class CopyBuffer {
  bytes: Uint8Array;
  private view: DataView;
  /** Bytes written. */
  length = 0;
  /** A timestamp on its way to int8At, so that it is never a double argument. */
  private readonly scratch = new Float64Array(1);

  constructor(capacity = 1 << 16) {
    this.bytes = new Uint8Array(capacity);
    this.view = new DataView(this.bytes.buffer);
  }

  reset(): void {
    this.length = 0;
  }

  /** Make room for `n` more bytes. */
  ensure(n: number): void {
    const need = this.length + n;
    if (need <= this.bytes.length) return;
    let cap = this.bytes.length;
    while (cap < need) cap = Math.ceil(cap * 1.5);
    const next = new Uint8Array(cap);
    next.set(this.bytes.subarray(0, this.length));
    this.bytes = next;
    this.view = new DataView(next.buffer);
  }

  i16(v: number): void {
    this.view.setInt16(this.length, v);
    this.length += 2;
  }

  fieldCount(n: number): void {
    this.i16(n);
  }

  nullField(): void {
    this.view.setInt32(this.length, -1);
    this.length += 4;
  }

  int2(v: number): void {
    const d = this.view;
    d.setInt32(this.length, 2);
    d.setInt16(this.length + 4, v);
    this.length += 6;
  }

  int4(v: number): void {
    const d = this.view;
    d.setInt32(this.length, 4);
    d.setInt32(this.length + 4, v);
    this.length += 8;
  }

  // Wider numbers are read from `f[i]` rather than taken as arguments: a double passed to a call
  // V8 does not inline is boxed in a fresh HeapNumber, and a market_data row makes ~25 calls, more
  // than V8 inlines into one function (measured: 143 bytes of garbage a row, a bars row 30;
  // copy.alloc.test.ts). Small integers (int2, int4) travel unboxed.

  /** int8 from `f[i]`, a whole number below 2^53 in magnitude. */
  int8At(f: Float64Array, i: number): void {
    const v = f[i];
    const d = this.view;
    const hi = Math.floor(v / TWO32);
    d.setInt32(this.length, 8);
    d.setInt32(this.length + 4, hi);
    d.setUint32(this.length + 8, v - hi * TWO32);
    this.length += 12;
  }

  float8At(f: Float64Array, i: number): void {
    const d = this.view;
    d.setInt32(this.length, 8);
    d.setFloat64(this.length + 4, f[i]);
    this.length += 12;
  }

  /** timestamptz from epoch milliseconds at `f[i]`. */
  timestampMsAt(f: Float64Array, i: number): void {
    this.scratch[0] = Math.round(f[i] * 1000) - PG_EPOCH_US;
    this.int8At(this.scratch, 0);
  }

  /** timestamptz from epoch microseconds at `f[i]`. */
  timestampUsAt(f: Float64Array, i: number): void {
    this.scratch[0] = Math.round(f[i]) - PG_EPOCH_US;
    this.int8At(this.scratch, 0);
  }

  bool(v: boolean): void {
    const d = this.view;
    d.setInt32(this.length, 1);
    d.setUint8(this.length + 4, v ? 1 : 0);
    this.length += 5;
  }

  /** A text value from bytes prepared once (never a per-tick string). */
  text(b: Uint8Array): void {
    this.view.setInt32(this.length, b.length);
    this.bytes.set(b, this.length + 4);
    this.length += 4 + b.length;
  }

  /** float8[rows][cols] from `src[at ..]`, row-major. */
  float8Matrix(src: Float64Array, at: number, rows: number, cols: number): void {
    const d = this.view;
    let p = this.length;
    d.setInt32(p, 4 * 3 + 8 * 2 + rows * cols * 12);
    d.setInt32(p + 4, 2); // ndim
    d.setInt32(p + 8, 0); // no NULL elements
    d.setInt32(p + 12, FLOAT8_OID);
    d.setInt32(p + 16, rows);
    d.setInt32(p + 20, 1);
    d.setInt32(p + 24, cols);
    d.setInt32(p + 28, 1);
    p += 32;
    const n = rows * cols;
    for (let i = 0; i < n; i++) {
      d.setInt32(p, 8);
      d.setFloat64(p + 4, src[at + i]);
      p += 12;
    }
    this.length = p;
  }
}

/** Append the market_data tuple of the canonical tick at f64 index `o`. */
export function writeMarketRow(buf: CopyBuffer, f: Float64Array, o: number): void {
  const hasDepth = f[o + N.DEPTH_LEVELS] > 0;
  buf.ensure(MARKET_ROW_MAX);
  buf.fieldCount(MARKET_COLUMNS.length);
  buf.int8At(f, o + N.TOKEN);
  buf.timestampMsAt(f, o + N.EXCH_TIME_MS);
  buf.timestampUsAt(f, o + N.RECV_TIME_US);
  buf.int2(f[o + N.KIND]);
  buf.float8At(f, o + N.PRICE);
  buf.int8At(f, o + N.LAST_QTY);
  buf.float8At(f, o + N.AVG_PRICE);
  buf.int8At(f, o + N.VOLUME);
  buf.int8At(f, o + N.VOLUME_DELTA);
  buf.int8At(f, o + N.BUY_QTY);
  buf.int8At(f, o + N.SELL_QTY);
  buf.float8At(f, o + N.OPEN);
  buf.float8At(f, o + N.HIGH);
  buf.float8At(f, o + N.LOW);
  buf.float8At(f, o + N.CLOSE);
  buf.float8At(f, o + N.CHANGE_PCT);
  buf.int8At(f, o + N.OI);
  buf.int8At(f, o + N.OI_HIGH);
  buf.int8At(f, o + N.OI_LOW);
  const ltt = f[o + N.LAST_TRADE_MS];
  if (ltt > 0) buf.timestampMsAt(f, o + N.LAST_TRADE_MS);
  else buf.nullField();
  if (hasDepth) {
    // Depth entries are [qty, price, orders]; bid 1 is entry 0, ask 1 is entry 5.
    const d = o + N.DEPTH;
    buf.float8At(f, d + 1);
    buf.int8At(f, d);
    buf.float8At(f, d + 5 * DEPTH_COLS + 1);
    buf.int8At(f, d + 5 * DEPTH_COLS);
    buf.float8Matrix(f, d, DEPTH_ROWS, DEPTH_COLS);
  } else {
    buf.nullField();
    buf.nullField();
    buf.nullField();
    buf.nullField();
    buf.nullField();
  }
  buf.int2(f[o + N.CONN]);
  buf.int8At(f, o + N.SEQ);
}

/** Append the quarantined_ticks tuple of the flagged tick at f64 index `o`. */
export function writeQuarantineRow(buf: CopyBuffer, f: Float64Array, o: number): void {
  buf.ensure(2 + QUARANTINE_COLUMNS.length * 4 + 80);
  buf.fieldCount(QUARANTINE_COLUMNS.length);
  buf.int8At(f, o + N.TOKEN);
  buf.timestampMsAt(f, o + N.EXCH_TIME_MS);
  buf.timestampUsAt(f, o + N.RECV_TIME_US);
  buf.text(REASON_BYTES[f[o + N.REASON]] ?? REASON_BYTES[0]);
  buf.int2(f[o + N.KIND]);
  buf.float8At(f, o + N.PRICE);
  buf.int8At(f, o + N.VOLUME);
  buf.int8At(f, o + N.OI);
  buf.int2(f[o + N.CONN]);
  buf.int8At(f, o + N.SEQ);
}

/** Timeframe names as bytes, made once per timeframe length. */
export class TimeframeNames {
  private readonly ms: number[] = [];
  private readonly bytes: Uint8Array[] = [];

  get(tfMs: number): Uint8Array {
    for (let i = 0; i < this.ms.length; i++) if (this.ms[i] === tfMs) return this.bytes[i];
    const b = utf8.encode(timeframeName(tfMs));
    this.ms.push(tfMs);
    this.bytes.push(b);
    return b;
  }
}

/** Append the bars tuple of the bar at f64 index `o`. */
export function writeBarRow(buf: CopyBuffer, f: Float64Array, o: number, names: TimeframeNames): void {
  buf.ensure(2 + BAR_COLUMNS.length * 4 + 120);
  buf.fieldCount(BAR_COLUMNS.length);
  buf.int8At(f, o + B.TOKEN);
  buf.text(names.get(f[o + B.TF_MS]));
  buf.timestampMsAt(f, o + B.START_MS);
  buf.timestampMsAt(f, o + B.END_MS);
  buf.float8At(f, o + B.OPEN);
  buf.float8At(f, o + B.HIGH);
  buf.float8At(f, o + B.LOW);
  buf.float8At(f, o + B.CLOSE);
  buf.int8At(f, o + B.VOLUME);
  const vwap = f[o + B.VWAP];
  if (Number.isNaN(vwap)) buf.nullField();
  else buf.float8At(f, o + B.VWAP);
  buf.int4(f[o + B.TRADES]);
  buf.int8At(f, o + B.OI);
  buf.int4(f[o + B.TICKS]);
  const flags = f[o + B.FLAGS];
  buf.bool((flags & BarFlag.PARTIAL) !== 0);
  buf.int2(flags);
}

