/**
 * Kite binary market-feed codec: frames in, tick records out (and back, for the simulator).
 *
 * The wire layout (frame header, the five packet kinds, depth entries) is the field table in
 * ./packet-layout.ts, described in docs/kite-protocol.md; this file names every offset from there.
 *
 * Counts (quantities, volume, OI) are read unsigned: they pass 2^31 on busy days, where the
 * official client's signed read turns them negative. Prices and times are read as Kite's client
 * reads them (signed 32-bit), so a corrupt negative price reaches validation visibly instead of as
 * a huge positive number.
 *
 * The hot-path decoder writes each packet straight into a record slot claimed from a SlotSink (a
 * ring or a scratch record): one DataView per frame, no allocation per packet. Malformed input is
 * counted by reason and skipped; the decoder never throws and never reads past the message.
 */

import { DEPTH_ENTRY_WORDS, DEPTH_LEVELS, F, KIND_LENGTH, Kind, type KindCode, type SlotViews, type SlotSink, viewsOf, WORDS } from '../core/packet-slot.ts';
import { DEPTH_ENTRIES, DepthEntry, Frame, Full, HEARTBEAT_BYTES, Index, Ltp, PacketLength, Quote } from './packet-layout.ts';

export { PacketLength };

// The offsets read and written per packet, bound once as this module's own consts. An import is a
// live binding that V8 reloads at every use: written as `Quote.VOLUME` at each access, full packets
// decoded a third slower than with literal offsets (12.4M against 18.2M packets per CPU-second,
// both decoders timed in one process); bound here they decode within noise of the literals.
const { TOKEN, LAST_PRICE } = Ltp;
const { HIGH: IX_HIGH, LOW: IX_LOW, OPEN: IX_OPEN, CLOSE: IX_CLOSE, CHANGE: IX_CHANGE, EXCHANGE_TIME: IX_EXCHANGE_TIME } = Index;
const {
  LAST_QTY: Q_LAST_QTY, AVG_PRICE: Q_AVG_PRICE, VOLUME: Q_VOLUME, BUY_QTY: Q_BUY_QTY, SELL_QTY: Q_SELL_QTY,
  OPEN: Q_OPEN, HIGH: Q_HIGH, LOW: Q_LOW, CLOSE: Q_CLOSE,
} = Quote;
const {
  LAST_TRADE_TIME: FULL_LAST_TRADE_TIME, OI: FULL_OI, OI_HIGH: FULL_OI_HIGH, OI_LOW: FULL_OI_LOW,
  EXCHANGE_TIME: FULL_EXCHANGE_TIME, DEPTH: FULL_DEPTH,
} = Full;
const { QUANTITY: DE_QUANTITY, PRICE: DE_PRICE, ORDERS: DE_ORDERS, PAD: DE_PAD, BYTES: DE_BYTES } = DepthEntry;
const { COUNT: FRAME_COUNT, HEADER_BYTES: FRAME_HEADER_BYTES, LENGTH_BYTES: FRAME_LENGTH_BYTES } = Frame;
const { LTP: LEN_LTP, INDEX_QUOTE: LEN_INDEX_QUOTE, INDEX_FULL: LEN_INDEX_FULL, QUOTE: LEN_QUOTE, FULL: LEN_FULL } = PacketLength;
const WIRE_DEPTH_ENTRIES = DEPTH_ENTRIES;
const SLOT_DEPTH_ENTRY_WORDS = DEPTH_ENTRY_WORDS;

/** Why a frame or packet was skipped. Values index `DecodeStats.errors`. */
export const DecodeError = {
  /** A binary message of zero bytes. */
  EMPTY: 0,
  /** The frame ends inside a packet-length field or a packet body: the count lied or bytes were cut. */
  TRUNCATED: 1,
  /** A packet whose length is none of 8, 28, 32, 44, 184: skipped by its length. */
  UNKNOWN_LENGTH: 2,
  /** Bytes left over after the N packets the header announced. */
  TRAILING_BYTES: 3,
  /** The sink (ring) had no free slot: the packet was not recorded. */
  SINK_FULL: 4,
  /** A text message that is not JSON or not a known message type. */
  BAD_TEXT: 5,
} as const;
export const DECODE_ERROR_NAMES = ['empty', 'truncated', 'unknown_length', 'trailing_bytes', 'sink_full', 'bad_text'] as const;

export class DecodeStats {
  frames = 0;
  heartbeats = 0;
  packets = 0;
  bytes = 0;
  readonly errors = new Float64Array(DECODE_ERROR_NAMES.length);

  errorCounts(): Record<(typeof DECODE_ERROR_NAMES)[number], number> {
    const out = {} as Record<(typeof DECODE_ERROR_NAMES)[number], number>;
    for (let i = 0; i < DECODE_ERROR_NAMES.length; i++) out[DECODE_ERROR_NAMES[i]] = this.errors[i];
    return out;
  }

  totalErrors(): number {
    let n = 0;
    for (let i = 0; i < this.errors.length; i++) n += this.errors[i];
    return n;
  }
}

/** Stamp written into every record of a frame: when and on which connection it arrived. */
export interface FrameStamp {
  recvTimeUs: number;
  seq: number;
  conn: number;
}

/**
 * Decode one binary WebSocket message into `sink`. Returns the number of records committed.
 * A 1-byte message is Kite's heartbeat.
 */
export function decodeFrame(msg: Uint8Array, stamp: FrameStamp, sink: SlotSink, stats: DecodeStats): number {
  const len = msg.byteLength;
  stats.frames++;
  stats.bytes += len;
  if (len === 0) {
    stats.errors[DecodeError.EMPTY]++;
    return 0;
  }
  if (len === HEARTBEAT_BYTES) {
    stats.heartbeats++;
    return 0;
  }
  const dv = new DataView(msg.buffer, msg.byteOffset, len);
  const count = dv.getUint16(FRAME_COUNT);
  if (count === 0 && len === FRAME_HEADER_BYTES) {
    stats.heartbeats++;
    return 0;
  }
  let pos = FRAME_HEADER_BYTES;
  let written = 0;
  for (let n = 0; n < count; n++) {
    if (pos + FRAME_LENGTH_BYTES > len) {
      stats.errors[DecodeError.TRUNCATED]++;
      return written;
    }
    const plen = dv.getUint16(pos);
    pos += FRAME_LENGTH_BYTES;
    if (pos + plen > len) {
      stats.errors[DecodeError.TRUNCATED]++;
      return written;
    }
    const kind = kindOfLength(plen);
    if (kind === 0) {
      stats.errors[DecodeError.UNKNOWN_LENGTH]++;
      pos += plen;
      continue;
    }
    const base = sink.claim(dv.getUint32(pos + TOKEN));
    if (base < 0) {
      stats.errors[DecodeError.SINK_FULL]++;
      pos += plen;
      continue;
    }
    const { i32, u32, f64 } = sink.views;
    writePacket(dv, pos, kind, i32, u32, base);
    f64[(base >> 1) + F.RECV_TIME_US_F64] = stamp.recvTimeUs;
    u32[base + F.SEQ] = stamp.seq;
    u32[base + F.CONN] = stamp.conn;
    sink.commit();
    stats.packets++;
    written++;
    pos += plen;
  }
  if (pos !== len) stats.errors[DecodeError.TRAILING_BYTES]++;
  return written;
}

function kindOfLength(plen: number): KindCode | 0 {
  switch (plen) {
    case LEN_LTP: return Kind.LTP;
    case LEN_INDEX_QUOTE: return Kind.INDEX_QUOTE;
    case LEN_INDEX_FULL: return Kind.INDEX_FULL;
    case LEN_QUOTE: return Kind.QUOTE;
    case LEN_FULL: return Kind.FULL;
    default: return 0;
  }
}

/** Write one packet at `p` into the record at word `b`, zeroing what the kind does not carry. */
function writePacket(dv: DataView, p: number, kind: KindCode, i32: Int32Array, u32: Uint32Array, b: number): void {
  u32[b + F.TOKEN] = dv.getUint32(p + TOKEN);
  u32[b + F.KIND] = kind;
  i32[b + F.LAST_PRICE] = dv.getInt32(p + LAST_PRICE);
  if (kind === Kind.LTP) {
    u32.fill(0, b + F.LAST_QTY, b + F.DEPTH + DEPTH_LEVELS * 2 * DEPTH_ENTRY_WORDS);
    return;
  }
  if (kind === Kind.INDEX_QUOTE || kind === Kind.INDEX_FULL) {
    i32[b + F.HIGH] = dv.getInt32(p + IX_HIGH);
    i32[b + F.LOW] = dv.getInt32(p + IX_LOW);
    i32[b + F.OPEN] = dv.getInt32(p + IX_OPEN);
    i32[b + F.CLOSE] = dv.getInt32(p + IX_CLOSE);
    i32[b + F.CHANGE_RAW] = dv.getInt32(p + IX_CHANGE);
    i32[b + F.EXCHANGE_TIME] = kind === Kind.INDEX_FULL ? dv.getInt32(p + IX_EXCHANGE_TIME) : 0;
    u32[b + F.LAST_QTY] = 0;
    u32[b + F.AVG_PRICE] = 0;
    u32[b + F.VOLUME] = 0;
    u32[b + F.BUY_QTY] = 0;
    u32[b + F.SELL_QTY] = 0;
    u32.fill(0, b + F.LAST_TRADE_TIME, b + F.EXCHANGE_TIME);
    u32.fill(0, b + F.DEPTH, b + F.DEPTH + DEPTH_LEVELS * 2 * DEPTH_ENTRY_WORDS);
    return;
  }
  u32[b + F.LAST_QTY] = dv.getUint32(p + Q_LAST_QTY);
  i32[b + F.AVG_PRICE] = dv.getInt32(p + Q_AVG_PRICE);
  u32[b + F.VOLUME] = dv.getUint32(p + Q_VOLUME);
  u32[b + F.BUY_QTY] = dv.getUint32(p + Q_BUY_QTY);
  u32[b + F.SELL_QTY] = dv.getUint32(p + Q_SELL_QTY);
  i32[b + F.OPEN] = dv.getInt32(p + Q_OPEN);
  i32[b + F.HIGH] = dv.getInt32(p + Q_HIGH);
  i32[b + F.LOW] = dv.getInt32(p + Q_LOW);
  i32[b + F.CLOSE] = dv.getInt32(p + Q_CLOSE);
  u32[b + F.CHANGE_RAW] = 0;
  if (kind === Kind.QUOTE) {
    u32.fill(0, b + F.LAST_TRADE_TIME, b + F.DEPTH + DEPTH_LEVELS * 2 * DEPTH_ENTRY_WORDS);
    return;
  }
  i32[b + F.LAST_TRADE_TIME] = dv.getInt32(p + FULL_LAST_TRADE_TIME);
  u32[b + F.OI] = dv.getUint32(p + FULL_OI);
  u32[b + F.OI_HIGH] = dv.getUint32(p + FULL_OI_HIGH);
  u32[b + F.OI_LOW] = dv.getUint32(p + FULL_OI_LOW);
  i32[b + F.EXCHANGE_TIME] = dv.getInt32(p + FULL_EXCHANGE_TIME);
  let q = p + FULL_DEPTH;
  let w = b + F.DEPTH;
  for (let i = 0; i < WIRE_DEPTH_ENTRIES; i++) {
    u32[w] = dv.getUint32(q + DE_QUANTITY);
    i32[w + 1] = dv.getInt32(q + DE_PRICE);
    u32[w + 2] = dv.getUint16(q + DE_ORDERS);
    q += DE_BYTES;
    w += SLOT_DEPTH_ENTRY_WORDS;
  }
}

// ---------------------------------------------------------------------------------------------
// Plain-object side: for the simulator, tests and tools. Not for the hot path.

export interface DepthLevel {
  quantity: number;
  /** smallest price unit */
  price: number;
  orders: number;
}

/**
 * One packet as raw wire integers (prices in the smallest unit, times in epoch seconds).
 * Fields a kind does not carry are ignored by the encoder and decoded as 0.
 */
export interface WireTick {
  kind: KindCode;
  token: number;
  lastPrice: number;
  lastQty: number;
  avgPrice: number;
  volume: number;
  buyQty: number;
  sellQty: number;
  open: number;
  high: number;
  low: number;
  close: number;
  changeRaw: number;
  lastTradeTime: number;
  oi: number;
  oiHigh: number;
  oiLow: number;
  exchangeTime: number;
  /** 5 bids then 5 asks (full packets only). */
  depth: DepthLevel[];
}

export function emptyWireTick(kind: KindCode, token: number): WireTick {
  const depth: DepthLevel[] = [];
  for (let i = 0; i < DEPTH_ENTRIES; i++) depth.push({ quantity: 0, price: 0, orders: 0 });
  return {
    kind, token, lastPrice: 0, lastQty: 0, avgPrice: 0, volume: 0, buyQty: 0, sellQty: 0,
    open: 0, high: 0, low: 0, close: 0, changeRaw: 0, lastTradeTime: 0, oi: 0, oiHigh: 0, oiLow: 0,
    exchangeTime: 0, depth,
  };
}

/** Read the record at word `b` back into a plain WireTick. */
export function wireTickOf(v: SlotViews, b: number): WireTick {
  const kind = v.u32[b + F.KIND] as KindCode;
  const t = emptyWireTick(kind, v.u32[b + F.TOKEN]);
  t.lastPrice = v.i32[b + F.LAST_PRICE];
  t.lastQty = v.u32[b + F.LAST_QTY];
  t.avgPrice = v.i32[b + F.AVG_PRICE];
  t.volume = v.u32[b + F.VOLUME];
  t.buyQty = v.u32[b + F.BUY_QTY];
  t.sellQty = v.u32[b + F.SELL_QTY];
  t.open = v.i32[b + F.OPEN];
  t.high = v.i32[b + F.HIGH];
  t.low = v.i32[b + F.LOW];
  t.close = v.i32[b + F.CLOSE];
  t.changeRaw = v.i32[b + F.CHANGE_RAW];
  t.lastTradeTime = v.i32[b + F.LAST_TRADE_TIME];
  t.oi = v.u32[b + F.OI];
  t.oiHigh = v.u32[b + F.OI_HIGH];
  t.oiLow = v.u32[b + F.OI_LOW];
  t.exchangeTime = v.i32[b + F.EXCHANGE_TIME];
  for (let i = 0; i < DEPTH_LEVELS * 2; i++) {
    const w = b + F.DEPTH + i * DEPTH_ENTRY_WORDS;
    t.depth[i].quantity = v.u32[w];
    t.depth[i].price = v.i32[w + 1];
    t.depth[i].orders = v.u32[w + 2];
  }
  return t;
}

/** A sink that keeps every record, growing as needed: for tests and tools. */
export class CollectingSink implements SlotSink {
  views: SlotViews;
  count = 0;
  constructor(initial = 64) {
    this.views = viewsOfWords(initial * WORDS);
  }
  claim(): number {
    const base = this.count * WORDS;
    if (base + WORDS > this.views.u32.length) {
      const next = viewsOfWords(this.views.u32.length * 2);
      next.u32.set(this.views.u32);
      this.views = next;
    }
    return base;
  }
  commit(): void {
    this.count++;
  }
  tick(i: number): WireTick {
    return wireTickOf(this.views, i * WORDS);
  }
  ticks(): WireTick[] {
    const out: WireTick[] = [];
    for (let i = 0; i < this.count; i++) out.push(this.tick(i));
    return out;
  }
  recvTimeUs(i: number): number {
    return this.views.f64[((i * WORDS) >> 1) + F.RECV_TIME_US_F64];
  }
  clear(): void {
    this.count = 0;
  }
}

function viewsOfWords(words: number): SlotViews {
  return viewsOf(new ArrayBuffer(words * 4));
}

/** Decode a whole message into plain WireTicks (tests and tools). */
export function decodeToTicks(msg: Uint8Array, stats = new DecodeStats()): WireTick[] {
  const sink = new CollectingSink();
  decodeFrame(msg, { recvTimeUs: 0, seq: 0, conn: 0 }, sink, stats);
  return sink.ticks();
}

// ---------------------------------------------------------------------------------------------
// Encoder: byte-exact Kite frames.

export function frameLength(ticks: readonly WireTick[]): number {
  let n = FRAME_HEADER_BYTES;
  for (let i = 0; i < ticks.length; i++) n += FRAME_LENGTH_BYTES + KIND_LENGTH[ticks[i].kind];
  return n;
}

/**
 * Write `ticks` as one Kite frame into `out` at `offset`; returns the bytes written. `out` must
 * have `frameLength(ticks)` bytes free. encodeFrame uses it; the simulator writes packet by packet
 * (writeWirePacket, from sim/frames.ts).
 */
export function encodeFrameInto(ticks: readonly WireTick[], out: Uint8Array, offset = 0): number {
  const dv = new DataView(out.buffer, out.byteOffset, out.byteLength);
  dv.setUint16(offset + FRAME_COUNT, ticks.length);
  let p = offset + FRAME_HEADER_BYTES;
  for (let i = 0; i < ticks.length; i++) {
    const t = ticks[i];
    const plen = KIND_LENGTH[t.kind];
    dv.setUint16(p, plen);
    p += FRAME_LENGTH_BYTES;
    writeWirePacket(dv, p, t);
    p += plen;
  }
  return p - offset;
}

export function encodeFrame(ticks: readonly WireTick[]): Uint8Array {
  const out = new Uint8Array(frameLength(ticks));
  encodeFrameInto(ticks, out, 0);
  return out;
}

/** Kite's idle heartbeat: one byte. */
export const HEARTBEAT = new Uint8Array(HEARTBEAT_BYTES);

/** Write one packet (without its length prefix) at `p`: the encoder's unit, for callers that build frames themselves. */
export function writeWirePacket(dv: DataView, p: number, t: WireTick): void {
  dv.setUint32(p + TOKEN, t.token >>> 0);
  dv.setInt32(p + LAST_PRICE, t.lastPrice | 0);
  switch (t.kind) {
    case Kind.LTP:
      return;
    case Kind.INDEX_QUOTE:
    case Kind.INDEX_FULL:
      dv.setInt32(p + IX_HIGH, t.high | 0);
      dv.setInt32(p + IX_LOW, t.low | 0);
      dv.setInt32(p + IX_OPEN, t.open | 0);
      dv.setInt32(p + IX_CLOSE, t.close | 0);
      dv.setInt32(p + IX_CHANGE, t.changeRaw | 0);
      if (t.kind === Kind.INDEX_FULL) dv.setInt32(p + IX_EXCHANGE_TIME, t.exchangeTime | 0);
      return;
    default:
      break;
  }
  dv.setUint32(p + Q_LAST_QTY, t.lastQty >>> 0);
  dv.setInt32(p + Q_AVG_PRICE, t.avgPrice | 0);
  dv.setUint32(p + Q_VOLUME, t.volume >>> 0);
  dv.setUint32(p + Q_BUY_QTY, t.buyQty >>> 0);
  dv.setUint32(p + Q_SELL_QTY, t.sellQty >>> 0);
  dv.setInt32(p + Q_OPEN, t.open | 0);
  dv.setInt32(p + Q_HIGH, t.high | 0);
  dv.setInt32(p + Q_LOW, t.low | 0);
  dv.setInt32(p + Q_CLOSE, t.close | 0);
  if (t.kind === Kind.QUOTE) return;
  dv.setInt32(p + FULL_LAST_TRADE_TIME, t.lastTradeTime | 0);
  dv.setUint32(p + FULL_OI, t.oi >>> 0);
  dv.setUint32(p + FULL_OI_HIGH, t.oiHigh >>> 0);
  dv.setUint32(p + FULL_OI_LOW, t.oiLow >>> 0);
  dv.setInt32(p + FULL_EXCHANGE_TIME, t.exchangeTime | 0);
  let q = p + FULL_DEPTH;
  for (let i = 0; i < WIRE_DEPTH_ENTRIES; i++) {
    const d = t.depth[i];
    dv.setUint32(q + DE_QUANTITY, d.quantity >>> 0);
    dv.setInt32(q + DE_PRICE, d.price | 0);
    dv.setUint16(q + DE_ORDERS, d.orders & 0xffff);
    dv.setUint16(q + DE_PAD, 0);
    q += DE_BYTES;
  }
}

// ---------------------------------------------------------------------------------------------
// Text messages (server → client JSON).

export type KiteTextMessage =
  | { type: 'order'; data: Record<string, unknown> }
  | { type: 'error'; data: string }
  | { type: 'message'; data: string };

/** Parse a Kite text message; returns null (and counts BAD_TEXT) for anything else. */
export function parseTextMessage(text: string, stats?: DecodeStats): KiteTextMessage | null {
  let msg: unknown;
  try {
    msg = JSON.parse(text);
  } catch {
    if (stats) stats.errors[DecodeError.BAD_TEXT]++;
    return null;
  }
  if (msg !== null && typeof msg === 'object') {
    const m = msg as { type?: unknown; data?: unknown };
    if (m.type === 'order' && m.data !== null && typeof m.data === 'object') {
      return { type: 'order', data: m.data as Record<string, unknown> };
    }
    if ((m.type === 'error' || m.type === 'message') && typeof m.data === 'string') {
      return { type: m.type, data: m.data };
    }
  }
  if (stats) stats.errors[DecodeError.BAD_TEXT]++;
  return null;
}
