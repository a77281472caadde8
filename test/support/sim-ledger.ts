/**
 * What the Kite simulator sent, packet by packet, kept from its `onFrame` hook: what the service's
 * store must hold, computed from the bytes alone. A packet that repeats its token's previous packet
 * (whatever connection either came on) is a duplicate the shards drop; every other one is a tick
 * that must be in market_data exactly once.
 *
 * A repeat is the previous packet byte for byte, or, for a packet of another mode, the same bytes
 * as far as the shorter of the two goes: on the wire each shorter packet is the head of the longer
 * one of its family (ltp 8 heads all, index quote 28 heads index full 32, quote 44 heads full 184),
 * so a quote packet and a full one of the same trade (Kite's answer to a subscribe, then to the
 * switch to full mode, in either order) are one tick. The longer of the two stays the previous
 * packet. This is the rule of workers/stages/filter.ts, restated from the bytes on purpose.
 *
 * Packets are read straight off the wire layout (src/kite/codec.ts): a u16 count, then per
 * packet a u16 length and the packet, whose first 8 bytes are the token and the last price in
 * every mode.
 */

/** The two lengths are of related kinds: the shorter one is the head of the longer one. */
function related(a: number, b: number): boolean {
  const lo = Math.min(a, b);
  const hi = Math.max(a, b);
  return lo === hi || lo === 8 || (lo === 28 && hi === 32) || (lo === 44 && hi === 184);
}

/**
 * The packet `body` (without its u16 length) repeats `prev`, its token's previous packet: equal, or
 * of related kinds and equal as far as the shorter goes (see the header).
 */
export function repeatsPacket(prev: Uint8Array, body: Uint8Array): boolean {
  if (!related(prev.length, body.length)) return false;
  const n = Math.min(prev.length, body.length);
  return Buffer.from(prev.buffer, prev.byteOffset, n).equals(Buffer.from(body.buffer, body.byteOffset, n));
}

export class SimLedger {
  frames = 0;
  packets = 0;
  /** Packets equal to their token's previous packet: the shards' duplicates. */
  repeats = 0;
  /** Of the repeats, those of another mode than the previous packet (a quote and a full packet of one trade). */
  crossModeRepeats = 0;
  /** Kept packets of quote mode (44 bytes, 28 for an index). */
  quoteTicks = 0;
  /** Per token, the last prices (rupees) of the packets that are not repeats, in the order sent. */
  readonly kept = new Map<number, number[]>();
  private readonly last = new Map<number, Buffer>();
  /** Per token, the length of the last packet sent, repeat or not. */
  private readonly lastLength = new Map<number, number>();

  /** The simulator's `onFrame`. */
  readonly onFrame = (_conn: number, frame: Uint8Array): void => {
    this.frames++;
    const dv = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
    let p = 2;
    for (let n = dv.getUint16(0); n > 0; n--) {
      const len = dv.getUint16(p);
      const token = dv.getUint32(p + 2);
      const body = frame.subarray(p + 2, p + 2 + len);
      p += 2 + len;
      this.packets++;
      this.lastLength.set(token, len);
      const prev = this.last.get(token);
      if (prev !== undefined && repeatsPacket(prev, body)) {
        this.repeats++;
        if (prev.length !== len) this.crossModeRepeats++;
        if (len > prev.length) this.last.set(token, Buffer.from(body));
        continue;
      }
      this.last.set(token, Buffer.from(body)); // a copy: the simulator reuses its buffer
      if (len === 44 || len === 28) this.quoteTicks++;
      let prices = this.kept.get(token);
      if (prices === undefined) this.kept.set(token, (prices = []));
      prices.push(dv.getInt32(p - len + 4) / 100);
    }
  };

  /** Ticks the store must hold: packets less repeats. */
  ticks(): number {
    return this.packets - this.repeats;
  }

  /** True when the last packet sent for every one of `tokens` has one of `lengths` (184 and 32: full mode in effect). */
  lastSentAll(tokens: readonly number[], lengths: readonly number[]): boolean {
    return tokens.every((t) => lengths.includes(this.lastLength.get(t) ?? -1));
  }

  /** Kept ticks whose price equals the one before the previous and not the previous (A → B → A). */
  returns(): number {
    let n = 0;
    for (const p of this.kept.values()) for (let i = 2; i < p.length; i++) if (p[i] === p[i - 2] && p[i] !== p[i - 1]) n++;
    return n;
  }
}
