/**
 * Single-producer ring of fixed-size records in a SharedArrayBuffer, read by one to four consumers.
 *
 * The front process (producer) decodes Kite packets straight into slots of an input ring; one
 * worker shard (its one consumer) reads them in place. Each shard writes its outputs (normalized
 * ticks, bars) into output rings that several consumers read (the batch writer, the broadcaster),
 * each at its own pace: a record is written once and read in place by all, and a slot is reused
 * only when every consumer has passed it (the LMAX disruptor's gating rule).
 *
 * Capacity is a power of two; slot = sequence & mask. Sequences are int32 counters that only grow
 * and wrap modulo 2^32: depth is `(write - read) | 0`, exact while capacity < 2^31.
 *
 *   SharedArrayBuffer
 *   ┌──────────── header: HEADER_WORDS int32 ───────────┬──── slots: capacity × slotWords int32 ────┐
 *   │ WRITE │pad│ READ0 │pad│ READ1 │…│ meta │ WAITING…   │ slot 0 │ slot 1 │ …  │ slot cap-1          │
 *   └───────────────────────────────────────────────────┴───────────────────────────────────────────┘
 *
 * | header word | name             | written by | meaning                                          |
 * |-------------|------------------|------------|--------------------------------------------------|
 * | 0           | WRITE            | producer   | records published (wrapping)                     |
 * | 16 + 16k    | READ[k]          | consumer k | records consumer k has released (wrapping)       |
 * | 80          | DROPS            | producer   | records refused because the ring was full         |
 * | 81          | HIGH_WATER       | producer   | deepest the ring has been                        |
 * | 82          | CAPACITY         | creator    | slots                                            |
 * | 83          | CLOSED           | producer   | 1 once the producer will publish no more          |
 * | 84          | SLOT_WORDS       | creator    | 32-bit words per slot (even: f64 views align)    |
 * | 85          | CONSUMERS        | creator    | consumers, 1..4                                  |
 * | 86          | WAIT_STRATEGY    | creator    | how consumers wait: 0 park, 1 spin-park, 2 adaptive |
 * | 87          | WAIT_SPIN_US     | creator    | µs a consumer spins before parking                 |
 * | 96 + 8k     | WAITING[k]       | consumer k | 1 while consumer k sleeps on WRITE               |
 * | 127         | PRODUCER_WAITING | producer   | 1 while the producer sleeps for a free slot      |
 *
 * WRITE and each READ sit 64 bytes apart so producer and consumers do not share a cache line.
 *
 * The producer claims and fills slots privately, then `publish()`es a batch with one
 * `Atomics.store`; it calls `Atomics.notify` only when a consumer has said it sleeps, so a busy
 * consumer costs the producer no syscall. A consumer takes everything published as one batch.
 *
 * Full ring: `claim()` returns -1 and the record is counted in DROPS. Producers avoid reaching it
 * (the front checks `free()` before decoding a frame and pauses the upstream sockets; a shard
 * waits with `waitForSpace` before draining its input), so DROPS counts only what that policy
 * failed to prevent.
 */
import { WORDS, type SlotViews } from './packet-slot.ts';
import type { SlotSink } from './packet-slot.ts';

export const HEADER_WORDS = 128;
export const MAX_CONSUMERS = 4;
const H = {
  WRITE: 0,
  READ0: 16,
  DROPS: 80,
  HIGH_WATER: 81,
  CAPACITY: 82,
  CLOSED: 83,
  SLOT_WORDS: 84,
  CONSUMERS: 85,
  WAIT_STRATEGY: 86,
  WAIT_SPIN_US: 87,
  WAITING0: 96,
  PRODUCER_WAITING: 127,
} as const;
const readIndex = (k: number): number => H.READ0 + 16 * k;
const STRATEGY_CODE: Record<WaitStrategy, number> = { park: 0, 'spin-park': 1, adaptive: 2 };
const STRATEGY_OF: readonly WaitStrategy[] = ['park', 'spin-park', 'adaptive'];

// ---------------------------------------------------------------------------------------------
// Waiting. A consumer with nothing to read (a shard on its input ring, the main thread's pumps on
// the output doorbells) can park at once or spin a little first. Parking costs no CPU but a
// wake-up: the producer's notify, the kernel putting the thread back on a core, and (waitAsync)
// a task posted to the sleeper's event loop. Spinning catches data that comes within the spin at
// the price of a core for that long: on a 2-core machine that core is the front's or the
// clients', so the choice is measured, not assumed (bench/wait.bench.ts, PIPELINE_WAIT).

/**
 * - `park`: sleep on the futex at once (Atomics.waitAsync).
 * - `spin-park`: watch the ring for `spinUs`, then park.
 * - `adaptive`: spin only when the previous wait ended within `spinUs` (data comes in bursts
 *   then, and a spin would catch the next record); after a longer wait, park at once.
 */
export type WaitStrategy = 'park' | 'spin-park' | 'adaptive';
export const WAIT_STRATEGIES: readonly WaitStrategy[] = STRATEGY_OF;

export interface WaitPolicy {
  readonly strategy: WaitStrategy;
  /** µs of spinning before parking (0 for `park`). */
  readonly spinUs: number;
}

export const PARK: WaitPolicy = Object.freeze({ strategy: 'park', spinUs: 0 });
/** Longest spin accepted: past a millisecond a spin is a busy core, not a wait. */
export const MAX_SPIN_US = 1000;

/** `park`, `spin-park:50`, `adaptive:50` (µs, 1..MAX_SPIN_US); null when it is none of those. */
export function parseWaitPolicy(s: string): WaitPolicy | null {
  const m = /^(park|spin-park|adaptive)(?::(\d{1,4}))?$/.exec(s.trim());
  if (m === null) return null;
  const strategy = m[1] as WaitStrategy;
  if (strategy === 'park') return m[2] === undefined ? PARK : null;
  const spinUs = m[2] === undefined ? DEFAULT_SPIN_US : Number(m[2]);
  if (spinUs < 1 || spinUs > MAX_SPIN_US) return null;
  return Object.freeze({ strategy, spinUs });
}

export function formatWaitPolicy(p: WaitPolicy): string {
  return p.strategy === 'park' ? 'park' : `${p.strategy}:${p.spinUs}`;
}

/**
 * The service's default (config PIPELINE_WAIT): park. Chosen from bench/wait.bench.ts on the
 * 2-core machine with it otherwise idle (2026-12-06, load average about 2, 1 shard, 100 clients;
 * `npm run bench -- wait`), which overturned an earlier pick of adaptive:500 made while other work
 * held the load at 4-11 (the floor's own p99 then swung 2.5-195 ms between rounds):
 * - Saturated throughput, four rounds each: park 1.24M ticks/s; adaptive:500 878k (71 %),
 *   adaptive:1000 875k (71 %), spin-park:50 854k (69 %), spin-park:500 826k (67 %). Spinning
 *   takes a core the other threads need on two: every spinning strategy breaks the 10 % bound.
 * - Tick → client p99 minus the bare-uWS floor at 1k / 10k / 100k ticks/s: park 3.7 / 3.3 /
 *   -4.4 ms; adaptive:500 3.8 / 8.4 / -3.0; spin-park:50 3.4 / 1.0 / -0.9; the floor's own p99
 *   moved 1.7-19.7 ms at 10k between rounds, so no strategy is told apart at low rates.
 * No strategy reaches the floor + 1 ms at 1k ticks/s here: the remaining ~3.5 ms is two
 * hand-offs woken from sleep, which only a different hand-off could remove.
 */
export const DEFAULT_PIPELINE_WAIT: WaitPolicy = PARK;

/** Spin length when PIPELINE_WAIT names a spinning strategy without one, µs: the default's. */
export const DEFAULT_SPIN_US = 500;

/** Tell every consumer of this ring how to wait (the shard reads it from its input ring). */
export function setRingWait(sab: SharedArrayBuffer, p: WaitPolicy): void {
  const h = new Int32Array(sab, 0, HEADER_WORDS);
  Atomics.store(h, H.WAIT_STRATEGY, STRATEGY_CODE[p.strategy]);
  Atomics.store(h, H.WAIT_SPIN_US, p.spinUs);
}

export function ringWait(sab: SharedArrayBuffer): WaitPolicy {
  const h = new Int32Array(sab, 0, HEADER_WORDS);
  const strategy = STRATEGY_OF[Atomics.load(h, H.WAIT_STRATEGY)] ?? 'park';
  return strategy === 'park' ? PARK : { strategy, spinUs: Atomics.load(h, H.WAIT_SPIN_US) };
}

/**
 * How long the next wait spins before it parks, by policy and by how the last waits went. One
 * per waiting consumer; `waited(us)` after each wait that found data (or timed out).
 */
export class SpinBudget {
  private lastWaitUs = Infinity;

  constructor(private policy: WaitPolicy) {}

  set(policy: WaitPolicy): void {
    this.policy = policy;
  }

  /** From a ring header's words, allocating only when they changed. */
  setFrom(code: number, spinUs: number): void {
    const p = this.policy;
    if (STRATEGY_CODE[p.strategy] === code && (code === 0 || p.spinUs === spinUs)) return;
    const strategy = STRATEGY_OF[code] ?? 'park';
    this.policy = strategy === 'park' ? PARK : { strategy, spinUs };
  }

  /** µs to spin before parking this time. */
  next(): number {
    const p = this.policy;
    if (p.strategy === 'spin-park') return p.spinUs;
    if (p.strategy === 'adaptive') return this.lastWaitUs <= p.spinUs ? p.spinUs : 0;
    return 0;
  }

  waited(us: number): void {
    this.lastWaitUs = us;
  }
}
const waitingIndex = (k: number): number => H.WAITING0 + 8 * k;

export function ringBytes(capacity: number, slotWords = WORDS): number {
  return (HEADER_WORDS + capacity * slotWords) * 4;
}

export function createRingBuffer(capacity: number, slotWords = WORDS, consumers = 1): SharedArrayBuffer {
  if (!Number.isInteger(capacity) || capacity < 2 || capacity > 2 ** 24 || (capacity & (capacity - 1)) !== 0) {
    throw new RangeError(`ring capacity must be a power of two between 2 and 2^24, got ${capacity}`);
  }
  if (!Number.isInteger(slotWords) || slotWords < 2 || slotWords % 2 !== 0) {
    throw new RangeError(`ring slotWords must be an even whole number >= 2, got ${slotWords}`);
  }
  if (!Number.isInteger(consumers) || consumers < 1 || consumers > MAX_CONSUMERS) {
    throw new RangeError(`ring consumers must be 1..${MAX_CONSUMERS}, got ${consumers}`);
  }
  const sab = new SharedArrayBuffer(ringBytes(capacity, slotWords));
  const h = new Int32Array(sab, 0, HEADER_WORDS);
  h[H.CAPACITY] = capacity;
  h[H.SLOT_WORDS] = slotWords;
  h[H.CONSUMERS] = consumers;
  return sab;
}

abstract class RingEnd {
  readonly header: Int32Array;
  readonly views: SlotViews;
  readonly capacity: number;
  readonly slotWords: number;
  readonly consumers: number;
  protected readonly mask: number;

  constructor(readonly sab: SharedArrayBuffer) {
    this.header = new Int32Array(sab, 0, HEADER_WORDS);
    this.capacity = this.header[H.CAPACITY];
    this.slotWords = this.header[H.SLOT_WORDS];
    this.consumers = this.header[H.CONSUMERS];
    this.mask = this.capacity - 1;
    // Views over the whole buffer: a slot's word offset includes the header.
    this.views = { i32: new Int32Array(sab), u32: new Uint32Array(sab), f64: new Float64Array(sab) };
  }

  protected slotBase(seq: number): number {
    return HEADER_WORDS + (seq & this.mask) * this.slotWords;
  }

  /** The slowest consumer's released count. */
  protected minRead(): number {
    const h = this.header;
    const w = Atomics.load(h, H.WRITE);
    let min = Atomics.load(h, readIndex(0));
    for (let k = 1; k < this.consumers; k++) {
      const r = Atomics.load(h, readIndex(k));
      if (((w - r) | 0) > ((w - min) | 0)) min = r;
    }
    return min;
  }

  /** Published and not yet released by the slowest consumer. */
  depth(): number {
    return (Atomics.load(this.header, H.WRITE) - this.minRead()) | 0;
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

export class RingProducer extends RingEnd implements SlotSink {
  /** Next sequence to claim (claimed records are published by `publish()`). */
  private write: number;
  private cachedRead: number;
  private claimed = false;

  constructor(sab: SharedArrayBuffer) {
    super(sab);
    this.write = Atomics.load(this.header, H.WRITE);
    this.cachedRead = this.minRead();
  }

  /** Slots that can be claimed now without overwriting records a consumer has not released. */
  free(): number {
    this.cachedRead = this.minRead();
    return this.capacity - ((this.write - this.cachedRead) | 0);
  }

  /**
   * Whether one more slot can be claimed now, like `free() > 0` but from the cached consumer
   * position, re-reading the consumers' cursors (shared cache lines) only when that says full.
   * For a producer that checks before every claim (the shard's bar writes).
   */
  hasRoom(): boolean {
    if (((this.write - this.cachedRead) | 0) < this.capacity) return true;
    this.cachedRead = this.minRead();
    return ((this.write - this.cachedRead) | 0) < this.capacity;
  }

  /** SlotSink: word offset of the next free slot, or -1 (counted as a drop) when full. */
  claim(): number {
    if (((this.write - this.cachedRead) | 0) >= this.capacity) {
      this.cachedRead = this.minRead();
      if (((this.write - this.cachedRead) | 0) >= this.capacity) {
        Atomics.add(this.header, H.DROPS, 1);
        this.claimed = false;
        return -1;
      }
    }
    this.claimed = true;
    return this.slotBase(this.write);
  }

  /** SlotSink: the claimed record is complete (visible to consumers after `publish()`). */
  commit(): void {
    if (this.claimed) this.write = (this.write + 1) | 0;
    this.claimed = false;
  }

  /** Make every committed record visible and wake any sleeping consumer. */
  publish(): void {
    const h = this.header;
    if (Atomics.load(h, H.WRITE) === this.write) return;
    Atomics.store(h, H.WRITE, this.write);
    const depth = (this.write - this.cachedRead) | 0;
    if (depth > h[H.HIGH_WATER]) Atomics.store(h, H.HIGH_WATER, depth);
    for (let k = 0; k < this.consumers; k++) {
      if (Atomics.load(h, waitingIndex(k)) === 1) {
        Atomics.notify(h, H.WRITE);
        break;
      }
    }
  }

  /**
   * Resolve when at least `n` slots are free, the ring is closed, or `timeoutMs` passes. A
   * consumer that releases slots wakes us (it checks PRODUCER_WAITING).
   */
  async waitForSpace(n: number, timeoutMs: number): Promise<void> {
    const h = this.header;
    const need = Math.min(n, this.capacity);
    if (this.free() >= need) return;
    Atomics.store(h, H.PRODUCER_WAITING, 1);
    // Wait on the slowest consumer's cursor; re-check after raising the flag (see waitForData).
    this.cachedRead = this.minRead();
    if (this.free() >= need) {
      Atomics.store(h, H.PRODUCER_WAITING, 0);
      return;
    }
    const slowest = this.slowestConsumer();
    const seen = Atomics.load(h, readIndex(slowest));
    if (this.capacity - ((this.write - seen) | 0) >= need) {
      Atomics.store(h, H.PRODUCER_WAITING, 0);
      return;
    }
    const r = Atomics.waitAsync(h, readIndex(slowest), seen, timeoutMs);
    if (r.async) await r.value;
    Atomics.store(h, H.PRODUCER_WAITING, 0);
  }

  private slowestConsumer(): number {
    const h = this.header;
    let slowest = 0;
    let maxDepth = (this.write - Atomics.load(h, readIndex(0))) | 0;
    for (let k = 1; k < this.consumers; k++) {
      const d = (this.write - Atomics.load(h, readIndex(k))) | 0;
      if (d > maxDepth) {
        maxDepth = d;
        slowest = k;
      }
    }
    return slowest;
  }

  /** No more records will come; consumers drain what is there and stop. */
  close(): void {
    this.publish();
    Atomics.store(this.header, H.CLOSED, 1);
    Atomics.notify(this.header, H.WRITE);
  }
}

export class RingConsumer extends RingEnd {
  /** Released up to here (what the producer may reuse). */
  private read: number;
  /** Handed out by `peek` up to here; `read` ≤ `peeked` (wrapping). */
  private peeked: number;
  private readonly readAt: number;
  private readonly waitingAt: number;
  private readonly spin = new SpinBudget(PARK);

  constructor(sab: SharedArrayBuffer, readonly consumer = 0) {
    super(sab);
    if (consumer < 0 || consumer >= this.consumers) {
      throw new RangeError(`ring has ${this.consumers} consumer(s); consumer ${consumer} does not exist`);
    }
    this.readAt = readIndex(consumer);
    this.waitingAt = waitingIndex(consumer);
    this.read = Atomics.load(this.header, this.readAt);
    this.peeked = this.read;
  }

  /** Records published and not yet consumed by this consumer, as seen now. */
  available(): number {
    return (Atomics.load(this.header, H.WRITE) - this.peeked) | 0;
  }

  /**
   * Hand every available record (at most `max`) to `fn(views, base)` in order, then release
   * their slots. Returns how many were consumed. (Not to be mixed with `peek` on one consumer.)
   */
  drain(fn: (views: SlotViews, base: number) => void, max = this.capacity): number {
    let n = (Atomics.load(this.header, H.WRITE) - this.read) | 0;
    if (n > max) n = max;
    const views = this.views;
    let seq = this.read;
    for (let i = 0; i < n; i++) {
      fn(views, this.slotBase(seq));
      seq = (seq + 1) | 0;
    }
    if (n > 0) this.releaseTo(seq);
    this.peeked = this.read;
    return n;
  }

  /**
   * Hand out records after those already peeked (at most `max`) without releasing them: the
   * slots stay untouched until `release`. For a consumer that may only let go of a record once
   * it is safe elsewhere (the batch writer: committed or spilled). If this consumer's thread
   * dies, a new RingConsumer on the same buffer starts again at the last release.
   */
  peek(fn: (views: SlotViews, base: number) => void, max = this.capacity): number {
    let n = (Atomics.load(this.header, H.WRITE) - this.peeked) | 0;
    if (n > max) n = max;
    let seq = this.peeked;
    for (let i = 0; i < n; i++) {
      fn(this.views, this.slotBase(seq));
      seq = (seq + 1) | 0;
    }
    this.peeked = seq;
    return n;
  }

  /** Records peeked and not yet released. */
  unreleased(): number {
    return (this.peeked - this.read) | 0;
  }

  /** Release the `n` oldest peeked records. */
  release(n: number): void {
    if (n <= 0) return;
    if (n > this.unreleased()) throw new RangeError(`release(${n}) exceeds the ${this.unreleased()} peeked records`);
    this.releaseTo((this.read + n) | 0);
  }

  /** Sequence number of the next record to release (stable across a consumer restart). */
  position(): number {
    return this.read >>> 0;
  }

  private releaseTo(seq: number): void {
    const h = this.header;
    this.read = seq;
    Atomics.store(h, this.readAt, seq);
    if (Atomics.load(h, H.PRODUCER_WAITING) === 1) Atomics.notify(h, this.readAt);
  }

  /**
   * Resolve when records are available, the ring is closed, or `timeoutMs` passes. Uses
   * Atomics.waitAsync so the thread's event loop (timers, messages) keeps running while it sleeps.
   * First, as the ring's wait policy says (setRingWait), it may spin: watch WRITE with plain loads
   * for up to the policy's µs, holding this thread's event loop that long (a spin is for a
   * worker thread: on the main thread it would hold up the very sockets that bring data).
   */
  async waitForData(timeoutMs: number): Promise<void> {
    const h = this.header;
    const seen = Atomics.load(h, H.WRITE);
    if (((seen - this.peeked) | 0) !== 0 || this.closed()) return;
    const spin = this.spin;
    spin.setFrom(h[H.WAIT_STRATEGY], h[H.WAIT_SPIN_US]);
    const spinUs = spin.next();
    const t0 = performance.now();
    if (spinUs > 0) {
      const until = t0 + spinUs / 1000;
      for (let i = 1; ; i++) {
        if (Atomics.load(h, H.WRITE) !== seen || Atomics.load(h, H.CLOSED) === 1) {
          spin.waited((performance.now() - t0) * 1000);
          return;
        }
        // The clock every 16 loads: a load is ~1 ns, performance.now() ~40 ns.
        if ((i & 15) === 0 && performance.now() >= until) break;
      }
    }
    Atomics.store(h, this.waitingAt, 1);
    // Re-check after raising the flag: a publish between the load above and the store would
    // otherwise not notify us, and we would sleep with data waiting.
    if (Atomics.load(h, H.WRITE) !== seen || this.closed()) {
      Atomics.store(h, this.waitingAt, 0);
      spin.waited((performance.now() - t0) * 1000);
      return;
    }
    const r = Atomics.waitAsync(h, H.WRITE, seen, timeoutMs);
    if (r.async) await r.value;
    Atomics.store(h, this.waitingAt, 0);
    spin.waited((performance.now() - t0) * 1000);
  }
}
