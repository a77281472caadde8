/**
 * Every packet the Kite simulator put on the wire, kept from its `onFrame` hook for the soak: the
 * ticks market_data must hold, and the events a reference aggregation is run over.
 *
 * A packet equal byte for byte to its token's previous packet is a repeat the shards drop (Kite's
 * snapshot on subscribe, a book change in ltp mode), and so is one of another mode that agrees on
 * the bytes both carry (a quote and a full packet of one trade: test/support/sim-ledger.ts
 * repeatsPacket, the rule of workers/stages/filter.ts); the longer of the two stays the previous
 * packet. Every other packet is a tick, recorded with the moment it was sent and the fields that
 * identify its row in market_data:
 *
 * | field      | full (184)  | index full (32) | quote (44) | index quote (28) | ltp (8) |
 * |------------|-------------|-----------------|------------|------------------|---------|
 * | price      | i32 @4      | i32 @4          | i32 @4     | i32 @4           | i32 @4  |
 * | high, low  | i32 @32, 36 | i32 @8, 12      | i32 @32,36 | i32 @8, 12       | —       |
 * | volume     | u32 @16     | —               | u32 @16    | —                | —       |
 * | oi         | u32 @48     | —               | —          | —                | —       |
 * | exch. time | u32 @60     | u32 @28         | —          | —                | —       |
 *
 * (Offsets after the packet's u16 length; restated from src/kite/packet-layout.ts on purpose, so
 * a layout slip in the codec is not repeated here.) Storage is columnar and grows by half, so a
 * 10-minute soak at a few thousand ticks a second costs tens of MB, not an object per tick.
 */

import { repeatsPacket } from '../support/sim-ledger.ts';

/** The identity of a tick as market_data stores it: prices in paise, times in whole seconds. */
export function tickKey(token: number, exchS: number, pricePaise: number, volume: number, oi: number, highPaise: number, lowPaise: number): string {
  return `${token}|${exchS}|${pricePaise}|${volume}|${oi}|${highPaise}|${lowPaise}`;
}

function grow<T extends Float64Array | Int32Array>(a: T, n: number): T {
  if (n < a.length) return a;
  const b = new (a.constructor as new (n: number) => T)(Math.ceil(a.length * 1.5) + 1024);
  b.set(a);
  return b;
}

export class SoakLedger {
  packets = 0;
  repeats = 0;
  /** Kept ticks (packets less repeats). */
  n = 0;
  token = new Int32Array(1 << 16);
  sentMs = new Float64Array(1 << 16);
  exchMs = new Float64Array(1 << 16);
  price = new Float64Array(1 << 16);
  volume = new Float64Array(1 << 16);
  oi = new Float64Array(1 << 16);
  /** Per kept tick, its key (tickKey). */
  readonly keys: string[] = [];
  private readonly last = new Map<number, Buffer>();

  readonly onFrame = (_conn: number, frame: Uint8Array): void => {
    const now = Date.now();
    const dv = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
    let p = 2;
    for (let count = dv.getUint16(0); count > 0; count--) {
      const len = dv.getUint16(p);
      const o = p + 2;
      const packet = frame.subarray(o, o + len);
      p = o + len;
      this.packets++;
      const tok = dv.getUint32(o);
      const prev = this.last.get(tok);
      if (prev !== undefined && repeatsPacket(prev, packet)) {
        this.repeats++;
        if (len > prev.length) this.last.set(tok, Buffer.from(packet));
        continue;
      }
      this.last.set(tok, Buffer.from(packet));
      const pricePaise = dv.getInt32(o + 4);
      const stock = len >= 44;
      const index = len === 28 || len === 32;
      const high = stock ? dv.getInt32(o + 32) : index ? dv.getInt32(o + 8) : 0;
      const low = stock ? dv.getInt32(o + 36) : index ? dv.getInt32(o + 12) : 0;
      const vol = stock ? dv.getUint32(o + 16) : 0;
      const oi = len === 184 ? dv.getUint32(o + 48) : 0;
      const exchS = len === 184 ? dv.getUint32(o + 60) : len === 32 ? dv.getUint32(o + 28) : 0;
      const i = this.n++;
      this.token = grow(this.token, i);
      this.sentMs = grow(this.sentMs, i);
      this.exchMs = grow(this.exchMs, i);
      this.price = grow(this.price, i);
      this.volume = grow(this.volume, i);
      this.oi = grow(this.oi, i);
      this.token[i] = tok;
      this.sentMs[i] = now;
      this.exchMs[i] = exchS === 0 ? now : exchS * 1000;
      this.price[i] = pricePaise / 100;
      this.volume[i] = vol;
      this.oi[i] = oi;
      this.keys.push(tickKey(tok, exchS, pricePaise, vol, oi, high, low));
    }
  };

  /** Index of the first kept tick sent at or after `ms` (binary search: sentMs only grows). */
  indexAt(ms: number): number {
    let lo = 0;
    let hi = this.n;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.sentMs[mid] < ms) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}
