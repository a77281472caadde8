/**
 * Single-producer / single-consumer ring of tick records in a SharedArrayBuffer.
 *
 * The front process (producer) decodes Kite packets straight into slots; one worker shard
 * (consumer) reads them in place. Capacity is a power of two; slot = sequence & mask. Sequences are
 * int32 counters that only grow and wrap modulo 2^32: depth is `(write - read) | 0`, exact while
 * capacity < 2^31.
 *
 *   SharedArrayBuffer
 *   ┌──────────── header: HEADER_WORDS int32 ───────────┬──── slots: capacity × WORDS int32 ────┐
 *   │ WRITE │pad…│ READ │pad…│ stats │pad…│ WAITING …   │ slot 0 │ slot 1 │ …  │ slot cap-1      │
 *   └───────────────────────────────────────────────────┴───────────────────────────────────────┘
 *
 * | header word | name        | written by | meaning                                              |
 * |-------------|-------------|------------|------------------------------------------------------|
 * | 0           | WRITE       | producer   | records published (wrapping)                         |
 * | 16          | READ        | consumer   | records consumed (wrapping)                          |
 * | 32          | DROPS       | producer   | records refused because the ring was full             |
 * | 33          | HIGH_WATER  | producer   | deepest the ring has been                            |
 * | 34          | CAPACITY    | creator    | slots                                                |
 * | 35          | CLOSED      | producer   | 1 once the producer will publish no more              |
 * | 48          | WAITING     | consumer   | 1 while the consumer sleeps on WRITE                 |
 *
 * WRITE, READ and WAITING sit 64 bytes apart so the two threads do not share a cache line.
 *
 * The producer claims and fills slots privately, then `publish()`es a whole frame's worth with one
 * `Atomics.store`; it calls `Atomics.notify` only when the consumer has said it sleeps, so a busy
 * consumer costs the producer no syscall. The consumer takes everything published as one batch.
 *
 * Full ring: `claim()` returns -1 and the record is counted in DROPS. The front avoids reaching it
 * (see src/front.ts: it checks `free()` before decoding a frame and pauses the upstream sockets
 * above a high-water mark), so DROPS counts only what that policy failed to prevent.
 */
import { WORDS, type RecordViews } from '../kite/record.ts';
import type { TickSink } from '../kite/codec.ts';

export const HEADER_WORDS = 64;
const H = { WRITE: 0, READ: 16, DROPS: 32, HIGH_WATER: 33, CAPACITY: 34, CLOSED: 35, WAITING: 48 } as const;

export function ringBytes(capacity: number): number {
  return (HEADER_WORDS + capacity * WORDS) * 4;
}

export function createRingBuffer(capacity: number): SharedArrayBuffer {
  if (!Number.isInteger(capacity) || capacity < 2 || capacity > 2 ** 24 || (capacity & (capacity - 1)) !== 0) {
    throw new RangeError(`ring capacity must be a power of two between 2 and 2^24, got ${capacity}`);
  }
  const sab = new SharedArrayBuffer(ringBytes(capacity));
  new Int32Array(sab)[H.CAPACITY] = capacity;
  return sab;
}

abstract class RingEnd {
  readonly header: Int32Array;
  readonly views: RecordViews;
  readonly capacity: number;
  protected readonly mask: number;

  constructor(readonly sab: SharedArrayBuffer) {
    this.header = new Int32Array(sab, 0, HEADER_WORDS);
    this.capacity = this.header[H.CAPACITY];
    this.mask = this.capacity - 1;
    // Views over the whole buffer: a slot's word offset includes the header.
    this.views = { i32: new Int32Array(sab), u32: new Uint32Array(sab), f64: new Float64Array(sab) };
  }

  protected slotBase(seq: number): number {
    return HEADER_WORDS + (seq & this.mask) * WORDS;
  }

  /** Published, not yet consumed. */
  depth(): number {
    return (Atomics.load(this.header, H.WRITE) - Atomics.load(this.header, H.READ)) | 0;
  }

  drops(): number {
    return Atomics.load(this.header, H.DROPS) >>> 0;
  }

  highWater(): number {
    return Atomics.load(this.header, H.HIGH_WATER);
  }

  closed(): boolean {
    return Atomics.load(this.header, H.CLOSED) === 1;
  }
}

export class RingProducer extends RingEnd implements TickSink {
  /** Next sequence to claim (claimed records are published by `publish()`). */
  private write: number;
  private cachedRead: number;
  private claimed = false;

  constructor(sab: SharedArrayBuffer) {
    super(sab);
    this.write = Atomics.load(this.header, H.WRITE);
    this.cachedRead = Atomics.load(this.header, H.READ);
  }

  /** Slots that can be claimed now without overwriting unread records. */
  free(): number {
    let free = this.capacity - ((this.write - this.cachedRead) | 0);
    if (free <= 0) {
      this.cachedRead = Atomics.load(this.header, H.READ);
      free = this.capacity - ((this.write - this.cachedRead) | 0);
    }
    return free;
  }

  /** TickSink: word offset of the next free slot, or -1 (counted as a drop) when full. */
  claim(): number {
    if (((this.write - this.cachedRead) | 0) >= this.capacity) {
      this.cachedRead = Atomics.load(this.header, H.READ);
      if (((this.write - this.cachedRead) | 0) >= this.capacity) {
        Atomics.add(this.header, H.DROPS, 1);
        this.claimed = false;
        return -1;
      }
    }
    this.claimed = true;
    return this.slotBase(this.write);
  }

  /** TickSink: the claimed record is complete (visible to the consumer after `publish()`). */
  commit(): void {
    if (this.claimed) this.write = (this.write + 1) | 0;
    this.claimed = false;
  }

  /** Make every committed record visible and wake the consumer if it sleeps. */
  publish(): void {
    const h = this.header;
    if (Atomics.load(h, H.WRITE) === this.write) return;
    Atomics.store(h, H.WRITE, this.write);
    const depth = (this.write - this.cachedRead) | 0;
    if (depth > h[H.HIGH_WATER]) Atomics.store(h, H.HIGH_WATER, depth);
    if (Atomics.load(h, H.WAITING) === 1) Atomics.notify(h, H.WRITE);
  }

  /** No more records will come; the consumer drains what is there and stops. */
  close(): void {
    this.publish();
    Atomics.store(this.header, H.CLOSED, 1);
    Atomics.notify(this.header, H.WRITE);
  }
}

export class RingConsumer extends RingEnd {
  private read: number;

  constructor(sab: SharedArrayBuffer) {
    super(sab);
    this.read = Atomics.load(this.header, H.READ);
  }

  /** Records published and not yet consumed, as seen now. */
  available(): number {
    return (Atomics.load(this.header, H.WRITE) - this.read) | 0;
  }

  /**
   * Hand every available record (at most `max`) to `fn(views, base)` in order, then release
   * their slots. Returns how many were consumed.
   */
  drain(fn: (views: RecordViews, base: number) => void, max = this.capacity): number {
    let n = this.available();
    if (n > max) n = max;
    const views = this.views;
    let seq = this.read;
    for (let i = 0; i < n; i++) {
      fn(views, this.slotBase(seq));
      seq = (seq + 1) | 0;
    }
    if (n > 0) {
      this.read = seq;
      Atomics.store(this.header, H.READ, seq);
    }
    return n;
  }

  /**
   * Resolve when records are available, the ring is closed, or `timeoutMs` passes. Uses
   * Atomics.waitAsync so the worker's event loop (timers, messages) keeps running while it sleeps.
   */
  async waitForData(timeoutMs: number): Promise<void> {
    const h = this.header;
    const seen = Atomics.load(h, H.WRITE);
    if (((seen - this.read) | 0) !== 0 || this.closed()) return;
    Atomics.store(h, H.WAITING, 1);
    // Re-check after raising the flag: a publish between the load above and the store would
    // otherwise not notify us, and we would sleep with data waiting.
    if (Atomics.load(h, H.WRITE) !== seen || this.closed()) {
      Atomics.store(h, H.WAITING, 0);
      return;
    }
    const r = Atomics.waitAsync(h, H.WRITE, seen, timeoutMs);
    if (r.async) await r.value;
    Atomics.store(h, H.WAITING, 0);
  }
}
