/**
 * Kite's market-feed wire layout: the one field table of it in the code. The decoder, the encoder
 * (simulator and tests) and /kite's re-encoder read and write packets only through these names;
 * docs/kite-protocol.md describes the same layout in prose.
 *
 * Every integer is big-endian. A field is 4 bytes unless its size says otherwise. Prices are in the
 * segment's smallest unit (`priceDivisor` in src/core/packet-slot.ts), times in epoch seconds.
 * "u" fields are counts, read unsigned (a day's volume passes 2^31); "i" fields are read signed, as
 * Kite's own client reads them, so a corrupt negative price stays visible.
 *
 * Frame (one binary WebSocket message; a message of 1 byte is a heartbeat):
 *
 * | off | size | field                                              |
 * |-----|------|----------------------------------------------------|
 * | 0   | 2    | packet count N (u16)                               |
 * | 2   | 2    | length L of packet 1 (u16), then its L bytes       |
 * | …   |      | N × (u16 length, packet); the kind is the length   |
 *
 * Packets. The kind is known only by its length: ltp 8, index quote 28, index full 32, quote 44,
 * full 184. Each shorter packet is the head of the longer one of its family.
 *
 * | off | ltp (8)     | index quote (28) / full (32)    | quote (44) / full (184)         |
 * |-----|-------------|---------------------------------|---------------------------------|
 * | 0   | token (u)   | token (u)                       | token (u)                       |
 * | 4   | last price  | last price                      | last price                      |
 * | 8   |             | high                            | last traded qty (u)             |
 * | 12  |             | low                             | average traded price            |
 * | 16  |             | open                            | volume today (u)                |
 * | 20  |             | close (previous day)            | total buy qty (u)               |
 * | 24  |             | change (raw, as sent)           | total sell qty (u)              |
 * | 28  |             | exchange time (index full only) | open                            |
 * | 32  |             |                                 | high                            |
 * | 36  |             |                                 | low                             |
 * | 40  |             |                                 | close (previous day)            |
 * | 44  |             |                                 | last trade time (full only →)   |
 * | 48  |             |                                 | open interest (u)               |
 * | 52  |             |                                 | OI day high (u)                 |
 * | 56  |             |                                 | OI day low (u)                  |
 * | 60  |             |                                 | exchange time                   |
 * | 64  |             |                                 | depth: 10 entries × 12 bytes    |
 *
 * Index packets order their prices high, low, open, close; quote and full order them open, high,
 * low, close. The depth holds 5 bids then 5 asks, best first, each entry:
 *
 * | off | size | field               |
 * |-----|------|---------------------|
 * | 0   | 4    | quantity (u)        |
 * | 4   | 4    | price (i)           |
 * | 8   | 2    | orders (u16)        |
 * | 10  | 2    | padding, sent as 0  |
 *
 * Offsets are relative to the packet's first byte (after its length) or, for DepthEntry, to the
 * entry's first byte. Code that runs per packet binds the offsets it uses to its own module-level
 * consts once (codec.ts says why): read through these imported objects at every use, they cost the
 * decoder a third of its speed.
 */

/** The frame header and the length prefix of each packet. */
export const Frame = {
  /** u16: how many packets follow. */
  COUNT: 0,
  /** Bytes before the first packet's length. */
  HEADER_BYTES: 2,
  /** Bytes of the u16 length before each packet. */
  LENGTH_BYTES: 2,
} as const;

/** A binary message this long is Kite's heartbeat (a 2-byte frame announcing 0 packets is read as one too). */
export const HEARTBEAT_BYTES = 1;

/** Packet length of each kind, which is how a reader tells the kinds apart. */
export const PacketLength = { LTP: 8, INDEX_QUOTE: 28, INDEX_FULL: 32, QUOTE: 44, FULL: 184 } as const;

/** ltp (8 bytes); every other kind starts with these two fields too. */
export const Ltp = {
  TOKEN: 0,
  LAST_PRICE: 4,
} as const;

/** index quote (28 bytes) and index full (32 bytes). */
export const Index = {
  ...Ltp,
  HIGH: 8,
  LOW: 12,
  OPEN: 16,
  CLOSE: 20,
  CHANGE: 24,
  /** index full only */
  EXCHANGE_TIME: 28,
} as const;

/** quote (44 bytes): the head of a full packet. */
export const Quote = {
  ...Ltp,
  LAST_QTY: 8,
  AVG_PRICE: 12,
  VOLUME: 16,
  BUY_QTY: 20,
  SELL_QTY: 24,
  OPEN: 28,
  HIGH: 32,
  LOW: 36,
  CLOSE: 40,
} as const;

/** full (184 bytes): a quote packet, then these. */
export const Full = {
  ...Quote,
  LAST_TRADE_TIME: 44,
  OI: 48,
  OI_HIGH: 52,
  OI_LOW: 56,
  EXCHANGE_TIME: 60,
  /** First of DEPTH_ENTRIES entries of DepthEntry.BYTES each. */
  DEPTH: 64,
} as const;

/** Depth entries in a full packet: DEPTH_SIDE bids, then DEPTH_SIDE asks. */
export const DEPTH_SIDE = 5;
export const DEPTH_ENTRIES = 2 * DEPTH_SIDE;

/** One depth entry, offsets from its first byte. */
export const DepthEntry = {
  QUANTITY: 0,
  PRICE: 4,
  /** u16 */
  ORDERS: 8,
  /** u16, sent as 0 */
  PAD: 10,
  BYTES: 12,
} as const;
