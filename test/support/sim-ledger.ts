/**
 * What the Kite simulator sent, packet by packet, kept from its `onFrame` hook: what the service's
 * store must hold, computed from the bytes alone. A packet that repeats its token's previous packet
 * byte for byte (whatever connection either came on) is a duplicate the shards drop; every other
 * one is a tick that must be in market_data exactly once.
 *
 * Packets are read straight off the wire layout (src/kite/codec.ts): a u16 count, then per
 * packet a u16 length and the packet, whose first 8 bytes are the token and the last price in
 * every mode.
 */
export class SimLedger {
  frames = 0;
  packets = 0;
  /** Packets equal to their token's previous packet: the shards' duplicates. */
  repeats = 0;
  /** Per token, the last prices (rupees) of the packets that are not repeats, in the order sent. */
  readonly kept = new Map<number, number[]>();
  private readonly last = new Map<number, Buffer>();

  /** The simulator's `onFrame`. */
  readonly onFrame = (_conn: number, frame: Uint8Array): void => {
    this.frames++;
    const dv = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
    let p = 2;
    for (let n = dv.getUint16(0); n > 0; n--) {
      const len = dv.getUint16(p);
      const token = dv.getUint32(p + 2);
      const packet = frame.subarray(p, p + 2 + len);
      p += 2 + len;
      this.packets++;
      const prev = this.last.get(token);
      if (prev !== undefined && prev.equals(packet)) {
        this.repeats++;
        continue;
      }
      this.last.set(token, Buffer.from(packet)); // a copy: the simulator reuses its buffer
      let prices = this.kept.get(token);
      if (prices === undefined) this.kept.set(token, (prices = []));
      prices.push(dv.getInt32(p - len + 4) / 100);
    }
  };

  /** Ticks the store must hold: packets less repeats. */
  ticks(): number {
    return this.packets - this.repeats;
  }

  /** Kept ticks whose price equals the one before the previous and not the previous (A → B → A). */
  returns(): number {
    let n = 0;
    for (const p of this.kept.values()) for (let i = 2; i < p.length; i++) if (p[i] === p[i - 2] && p[i] !== p[i - 1]) n++;
    return n;
  }
}
