/**
 * The packet slot: one fixed-size slot per decoded Kite packet, in Kite's integer units.
 *
 * Names, so that each word means one thing: a *packet* is Kite's bytes (src/kite/packet-layout.ts,
 * docs/kite-protocol.md); a *packet slot* is this decoded form; a *canonical tick* is what the shard
 * makes of it (tick.ts, rupees and epoch ms); a *tick record* is msgpack's encoding of a canonical
 * tick for /ws clients (src/gateway/msgpack-encoder.ts).
 *
 * The decoder writes it, the rings of the pipeline carry it, the workers read it. It is the one
 * layout shared by all of them; nothing else may invent offsets. A slot is WORDS 32-bit words,
 * addressed through three views of the same memory (Int32Array, Uint32Array, Float64Array), so a
 * slot in a SharedArrayBuffer ring and a scratch slot in a plain ArrayBuffer read the same way.
 * Host byte order (the views are native typed arrays), unlike Kite's big-endian wire.
 *
 * Prices stay integers in Kite's smallest unit (paise for most segments) until the edge; the
 * divisor follows from the segment, `token & 0xff` (see `priceDivisor`).
 *
 * | word | field            | type | unit / meaning                                                |
 * |------|------------------|------|---------------------------------------------------------------|
 * | 0    | TOKEN            | u32  | instrument token                                              |
 * | 1    | KIND             | u32  | packet kind: 1 ltp(8) 2 index quote(28) 3 index full(32) 4 quote(44) 5 full(184) |
 * | 2    | LAST_PRICE       | i32  | smallest price unit                                           |
 * | 3    | LAST_QTY         | u32  | shares / contracts                                            |
 * | 4    | AVG_PRICE        | i32  | smallest price unit                                           |
 * | 5    | VOLUME           | u32  | cumulative for the day; unsigned, passes 2^31                 |
 * | 6    | BUY_QTY          | u32  | total pending buy quantity                                    |
 * | 7    | SELL_QTY         | u32  | total pending sell quantity                                   |
 * | 8    | OPEN             | i32  | smallest price unit                                           |
 * | 9    | HIGH             | i32  | smallest price unit                                           |
 * | 10   | LOW              | i32  | smallest price unit                                           |
 * | 11   | CLOSE            | i32  | previous day's close, smallest price unit                     |
 * | 12   | CHANGE_RAW       | i32  | index packets only: the raw change field Kite sends           |
 * | 13   | LAST_TRADE_TIME  | i32  | epoch seconds, 0 when absent (full only)                      |
 * | 14   | OI               | u32  | open interest                                                 |
 * | 15   | OI_HIGH          | u32  | OI day high                                                   |
 * | 16   | OI_LOW           | u32  | OI day low                                                    |
 * | 17   | EXCHANGE_TIME    | i32  | epoch seconds, 0 when absent (full and index full only)       |
 * | 18   | DEPTH            | —    | 10 entries × 3 words: 5 bids then 5 asks                      |
 * |      |   +0 qty         | u32  | quantity at the level                                         |
 * |      |   +1 price       | i32  | smallest price unit                                           |
 * |      |   +2 orders      | u32  | order count (2 bytes on the wire)                             |
 * | 48   | RECV_TIME_US     | f64  | receive time, epoch microseconds (words 48-49, 8-aligned)     |
 * | 50   | SEQ              | u32  | per-connection frame sequence, for gap and duplicate checks   |
 * | 51   | CONN             | u32  | upstream connection slot the packet arrived on                |
 *
 * Fields a packet kind does not carry are written as 0, so a slot never shows a previous tick.
 */

export const WORDS = 52;
export const BYTES = WORDS * 4;

export const F = {
  TOKEN: 0,
  KIND: 1,
  LAST_PRICE: 2,
  LAST_QTY: 3,
  AVG_PRICE: 4,
  VOLUME: 5,
  BUY_QTY: 6,
  SELL_QTY: 7,
  OPEN: 8,
  HIGH: 9,
  LOW: 10,
  CLOSE: 11,
  CHANGE_RAW: 12,
  LAST_TRADE_TIME: 13,
  OI: 14,
  OI_HIGH: 15,
  OI_LOW: 16,
  EXCHANGE_TIME: 17,
  DEPTH: 18,
  /** Index into the Float64Array view: word 48 / 2. */
  RECV_TIME_US_F64: 24,
  SEQ: 50,
  CONN: 51,
} as const;

export const DEPTH_LEVELS = 5;
export const DEPTH_ENTRY_WORDS = 3;

/** Packet kinds, named for what Kite sends; the value is what KIND holds. */
export const Kind = {
  LTP: 1,
  INDEX_QUOTE: 2,
  INDEX_FULL: 3,
  QUOTE: 4,
  FULL: 5,
} as const;
export type KindCode = (typeof Kind)[keyof typeof Kind];

/** Kite's wire length of each kind, indexed by kind code. */
export const KIND_LENGTH = [0, 8, 28, 32, 44, 184] as const;

export function modeOfKind(kind: number): 'ltp' | 'quote' | 'full' {
  if (kind === Kind.LTP) return 'ltp';
  if (kind === Kind.INDEX_FULL || kind === Kind.FULL) return 'full';
  return 'quote';
}

/** Kite segments (token & 0xff). */
export const Segment = {
  NSE_CM: 1,
  NSE_FO: 2,
  NSE_CDS: 3,
  BSE_CM: 4,
  BSE_FO: 5,
  BSE_CDS: 6,
  MCX_FO: 7,
  MCX_SX: 8,
  INDICES: 9,
} as const;

/** Smallest price unit per rupee for a token's segment. */
export function priceDivisor(token: number): number {
  const segment = token & 0xff;
  if (segment === Segment.NSE_CDS) return 10_000_000;
  if (segment === Segment.BSE_CDS) return 10_000;
  return 100;
}

/**
 * Three views over one memory region. Word offsets address all three; the f64 view is indexed by
 * word/2, so records must start at even word offsets (WORDS is even).
 */
export interface SlotViews {
  readonly i32: Int32Array;
  readonly u32: Uint32Array;
  readonly f64: Float64Array;
}

export function viewsOf(buffer: ArrayBufferLike): SlotViews {
  return { i32: new Int32Array(buffer), u32: new Uint32Array(buffer), f64: new Float64Array(buffer) };
}

/** A standalone record (one slot), for tests, tools and single-tick scratch. */
export function scratchSlot(): SlotViews {
  return viewsOf(new ArrayBuffer(BYTES));
}

/**
 * Where decoded packets go. `claim(token)` returns the word offset of a free record in `views`,
 * or -1 when there is no room; `commit()` completes the record last claimed. The token lets a
 * sharded sink pick the shard's ring; `views` is read after each claim, so it may change with it.
 */
export interface SlotSink {
  readonly views: SlotViews;
  claim(token: number): number;
  commit(): void;
}
