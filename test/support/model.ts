/**
 * A reference decoder written straight from docs/kite-protocol.md, for property tests: byte
 * arithmetic, no DataView, no sinks, allocates freely. It shares no code with src/kite/codec.ts
 * beyond the WireTick shape, so agreement between the two is evidence, not tautology.
 *
 * Its offsets and lengths are literals copied from the doc's tables on purpose: it must not import
 * src/kite/packet-layout.ts, the table the codec reads, or a wrong entry there would be wrong here
 * too and the property tests would agree with it.
 */

import { DecodeError, DECODE_ERROR_NAMES, emptyWireTick, type WireTick } from '../../src/kite/codec.ts';
import { Kind, type KindCode } from '../../src/core/packet-slot.ts';

export interface ModelResult {
  ticks: WireTick[];
  heartbeat: boolean;
  /** Indexed by DecodeError. */
  errors: number[];
  /** Packets the header announced (0 when there is no header). */
  announced: number;
  /** Packet slots walked before the frame ended or was cut. */
  walked: number;
}

const KIND_BY_LENGTH = new Map<number, KindCode>([
  [8, Kind.LTP],
  [28, Kind.INDEX_QUOTE],
  [32, Kind.INDEX_FULL],
  [44, Kind.QUOTE],
  [184, Kind.FULL],
]);

/** Decode like Kite's spec says; `capacity` models a sink that fills after that many records. */
export function modelDecode(b: Uint8Array, capacity = Number.POSITIVE_INFINITY): ModelResult {
  const res: ModelResult = { ticks: [], heartbeat: false, errors: DECODE_ERROR_NAMES.map(() => 0), announced: 0, walked: 0 };
  const len = b.length;
  if (len === 0) {
    res.errors[DecodeError.EMPTY]++;
    return res;
  }
  if (len === 1) {
    res.heartbeat = true;
    return res;
  }
  const u16 = (o: number): number => b[o] * 256 + b[o + 1];
  const count = u16(0);
  res.announced = count;
  if (count === 0 && len === 2) {
    res.heartbeat = true;
    return res;
  }
  let pos = 2;
  for (let n = 0; n < count; n++) {
    if (len - pos < 2) {
      res.errors[DecodeError.TRUNCATED]++;
      return res;
    }
    const plen = u16(pos);
    pos += 2;
    if (len - pos < plen) {
      res.errors[DecodeError.TRUNCATED]++;
      return res;
    }
    res.walked++;
    const kind = KIND_BY_LENGTH.get(plen);
    if (kind === undefined) res.errors[DecodeError.UNKNOWN_LENGTH]++;
    else if (res.ticks.length >= capacity) res.errors[DecodeError.SINK_FULL]++;
    else res.ticks.push(parsePacket(b, pos, kind));
    pos += plen;
  }
  if (pos !== len) res.errors[DecodeError.TRAILING_BYTES]++;
  return res;
}

function parsePacket(b: Uint8Array, p: number, kind: KindCode): WireTick {
  const u32 = (o: number): number => b[p + o] * 0x100_0000 + b[p + o + 1] * 0x1_0000 + b[p + o + 2] * 0x100 + b[p + o + 3];
  const i32 = (o: number): number => u32(o) | 0;
  const u16 = (o: number): number => b[p + o] * 256 + b[p + o + 1];
  const t = emptyWireTick(kind, u32(0));
  t.lastPrice = i32(4);
  switch (kind) {
    case Kind.LTP:
      return t;
    case Kind.INDEX_QUOTE:
    case Kind.INDEX_FULL:
      t.high = i32(8);
      t.low = i32(12);
      t.open = i32(16);
      t.close = i32(20);
      t.changeRaw = i32(24);
      if (kind === Kind.INDEX_FULL) t.exchangeTime = i32(28);
      return t;
    default:
      break;
  }
  t.lastQty = u32(8);
  t.avgPrice = i32(12);
  t.volume = u32(16);
  t.buyQty = u32(20);
  t.sellQty = u32(24);
  t.open = i32(28);
  t.high = i32(32);
  t.low = i32(36);
  t.close = i32(40);
  if (kind === Kind.QUOTE) return t;
  t.lastTradeTime = i32(44);
  t.oi = u32(48);
  t.oiHigh = u32(52);
  t.oiLow = u32(56);
  t.exchangeTime = i32(60);
  for (let i = 0; i < 10; i++) {
    const q = 64 + i * 12;
    t.depth[i] = { quantity: u32(q), price: i32(q + 4), orders: u16(q + 8) };
  }
  return t;
}
