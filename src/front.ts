/**
 * The front process's hot path: raw Kite messages in, packet slots into one ring per worker shard.
 *
 * A token always maps to the same shard (`shardOf`), so its ticks stay in order and its state
 * (bars, last volume) lives in exactly one worker.
 *
 * Overflow policy (lossless): before decoding a frame the front checks that every ring has room
 * for all the frame's packets. If one has not, the frame is copied to a pending queue and the
 * upstream sockets are paused, so TCP pushes back on Kite instead of us dropping ticks. The
 * queue drains, and the sockets resume, once every ring is below half full. Kite may cut a
 * connection it cannot write to for long; the ingest then reconnects and the gap is counted.
 * Records are only dropped (counted as ring drops and `sink_full`) if a single frame holds more
 * packets than a ring's capacity, which a sane ring size rules out.
 */
import { decodeFrame, DecodeStats, type FrameStamp } from './kite/codec.ts';
import type { SlotSink } from './core/packet-slot.ts';
import type { SlotViews } from './core/packet-slot.ts';
import { createRingBuffer, RingProducer } from './core/ring.ts';
import { nowMicros } from './core/clock.ts';

/**
 * Shard of a token. The low byte of a Kite token is its segment, so a modulus of the token would
 * split by segment. Fibonacci hashing: multiply by 2^32/φ and take the product's high bits, which
 * depend on every bit of the token. (Its low bits depend only on the token's low bits: `% shards`
 * of the product put every NFO token, segment 2, on shard 0 of 2 and left shards 0 and 3 of 4 empty.)
 */
export function shardOf(token: number, shards: number): number {
  return Math.floor(((Math.imul(token, 0x9e3779b1) >>> 0) * shards) / 4294967296);
}


export interface FrontOptions {
  shards: number;
  /** Slots per ring (power of two). */
  ringCapacity: number;
  /** Called with true when the front wants the upstream paused, false when it may resume. */
  onBackpressure?: (paused: boolean) => void;
}

export class Front implements SlotSink {
  readonly rings: SharedArrayBuffer[];
  readonly producers: RingProducer[];
  readonly stats = new DecodeStats();
  views: SlotViews;
  /** Frames held while a ring was too full to take them. */
  pendingFrames = 0;
  /** Times the front paused the upstream. */
  pauses = 0;
  private current: RingProducer;
  private readonly pending: { msg: Uint8Array; conn: number; seq: number; recv: number }[] = [];
  private readonly stamp: FrameStamp = { recvTimeUs: 0, seq: 0, conn: 0 };
  private retryTimer: NodeJS.Timeout | null = null;
  private closed = false;

  constructor(private readonly opts: FrontOptions) {
    this.rings = [];
    this.producers = [];
    for (let i = 0; i < opts.shards; i++) {
      const sab = createRingBuffer(opts.ringCapacity);
      this.rings.push(sab);
      this.producers.push(new RingProducer(sab));
    }
    this.current = this.producers[0];
    this.views = this.current.views;
  }

  claim(token: number): number {
    const p = this.producers[shardOf(token, this.producers.length)];
    this.current = p;
    this.views = p.views;
    return p.claim();
  }

  commit(): void {
    this.current.commit();
  }

  /** One binary WebSocket message from upstream connection `conn`. */
  onBinary(msg: Uint8Array, conn: number, seq: number, recvTimeUs = nowMicros()): void {
    if (this.closed) return;
    if (this.pending.length > 0 || !this.fits(msg)) {
      // Copy: the socket library reuses the message's memory once we return.
      this.pending.push({ msg: msg.slice(), conn, seq, recv: recvTimeUs });
      this.pendingFrames++;
      if (this.pending.length === 1) {
        this.pauses++;
        this.opts.onBackpressure?.(true);
        this.scheduleRetry();
      }
      return;
    }
    this.decode(msg, conn, seq, recvTimeUs);
  }

  /**
   * Publish nothing more; consumers drain and stop. Frames still pending are decoded first, as
   * room frees (the shards keep draining), so a shutdown loses nothing that had arrived.
   */
  async close(timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    this.flushPending();
    while (this.pending.length > 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 1));
      this.flushPending();
    }
    this.closed = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    for (const p of this.producers) p.close();
  }

  /** Frames waiting for ring room. */
  pendingCount(): number {
    return this.pending.length;
  }

  private decode(msg: Uint8Array, conn: number, seq: number, recv: number): void {
    const st = this.stamp;
    st.recvTimeUs = recv;
    st.seq = seq;
    st.conn = conn;
    decodeFrame(msg, st, this, this.stats);
    const ps = this.producers;
    for (let i = 0; i < ps.length; i++) ps[i].publish();
  }

  /** Every ring has room for all of the frame's packets (its header count, an upper bound). */
  private fits(msg: Uint8Array): boolean {
    if (msg.byteLength < 2) return true;
    const count = (msg[0] << 8) | msg[1];
    const ps = this.producers;
    for (let i = 0; i < ps.length; i++) {
      // A frame larger than a whole ring can never fit: take it once the ring is empty.
      if (ps[i].free() < Math.min(count, ps[i].capacity)) return false;
    }
    return true;
  }

  private roomy(): boolean {
    const ps = this.producers;
    for (let i = 0; i < ps.length; i++) if (ps[i].free() < ps[i].capacity / 2) return false;
    return true;
  }

  private flushPending(): void {
    while (this.pending.length > 0) {
      const f = this.pending[0];
      if (!this.fits(f.msg)) return;
      this.pending.shift();
      this.decode(f.msg, f.conn, f.seq, f.recv);
    }
  }

  private scheduleRetry(): void {
    // A 1 ms timer, only while overloaded: the consumers free slots continuously then.
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      this.flushPending();
      if (this.pending.length === 0 && this.roomy()) {
        this.opts.onBackpressure?.(false);
        return;
      }
      if (!this.closed) this.scheduleRetry();
    }, 1);
  }
}
