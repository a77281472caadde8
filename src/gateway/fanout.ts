/**
 * Fan-out by subscription set: every distinct set of (instrument, encoding) pairs that clients
 * follow is one uWebSockets.js topic; clients following the same set share it. After each drain of
 * the pipeline, each set that gathered ticks gets ONE frame holding all of them, in arrival order,
 * published once; uWS copies it to every subscriber.
 *
 * Why sets and not one topic per instrument: with a topic per instrument a client following 376
 * instruments got up to 376 frames per drain, ~3 ticks each, and paid a WebSocket message (parse,
 * event, decode setup) per frame; the clients, not the server, were the bound (bench/feed.bench.ts, case 1).
 * With a set topic it gets one frame per drain, however many instruments ticked.
 *
 * Each tick is still encoded once per encoding (not per set, never per client): the caller writes
 * the record into one arena (msgpack-encoder.ts) and hands the span here; every set containing the pair gets
 * the span appended to its chain, and a frame is the header plus its spans copied (within the
 * arena's buffer: no object per copy, and none per frame but a view per frame length). Spans that
 * follow each other in the arena are merged as they are appended, so a set that wants every tick of
 * the drain (everyone following everything) is one header and one copy. The cost per drain is
 * Σ over ticks of the sets containing the tick: the same as one topic per instrument when sets
 * are disjoint (each client its own slice), one when they coincide, and at worst one span append per
 * client, which is the per-subscriber copy uWS made anyway.
 *
 * Frames are bounded (maxFrameBytes, maxFrameItems): a set that would pass either is published
 * at once and starts a new frame, so a burst never makes a many-megabyte message.
 */

/**
 * Where the caller encodes a drain's items, and where frames are put together: one buffer, so a
 * span is copied into its frame with `copyWithin` (native, no object made). Items go from
 * FRAME_HEAD on; frames up to FRAME_HEAD bytes are built at offset 0 (and published through a view
 * made once per length), larger ones past the items. `ensure(n)` makes room for n bytes past `pos`,
 * keeping every byte below it at its offset.
 */
export interface Arena {
  buf: Uint8Array;
  pos: number;
  ensure(n: number): void;
}

/** Bytes at the start of an arena kept for building frames. */
export const FRAME_HEAD = 64 * 1024;

/** How a family of sets frames its items. */
export interface FrameFormat {
  /** Bytes the header takes for `count` items. */
  headerBytes(count: number): number;
  /** Write the header for `count` items at `pos`; returns the position after it. */
  writeHeader(out: Uint8Array, pos: number, count: number): number;
}

export interface SubscriptionSet {
  readonly id: number;
  readonly key: string;
  readonly topic: string;
  readonly format: FrameFormat;
  /** Clients that belong to it (whether subscribed to its topic right now or not: conflated). */
  refs: number;
  /** Pairs (row × encodings + encoding) it contains. */
  readonly pairs: readonly number[];
  /** This drain: chain of spans, items and bytes gathered. */
  head: number;
  tail: number;
  count: number;
  bytes: number;
  touched: boolean;
}

export interface FanoutOptions {
  /**
   * Starts every topic this fanout names. uWS topics are global to the app: two fanouts on one app
   * (the msgpack feed's, the Kite endpoint's, a replay's) with the same prefix would publish into
   * each other's sets, and a client would get frames of the other protocol.
   */
  topicPrefix: string;
  rows: number;
  /** Encodings per row (e.g. 3 modes × records/plain = 6). */
  encodings: number;
  /** Publish a finished frame (the bytes are only valid during the call). */
  publish(topic: string, frame: Uint8Array, items: number): void;
  maxFrameBytes?: number;
  maxFrameItems?: number;
}

export class Fanout {
  private readonly sets = new Map<string, SubscriptionSet>();
  /** Sets containing each pair. */
  private readonly setsOf: SubscriptionSet[][];
  /** Span chain links: arena start, end, next link (-1 ends). */
  private linkStart = new Int32Array(1024);
  private linkEnd = new Int32Array(1024);
  private linkNext = new Int32Array(1024);
  private links = 0;
  /** Sets that gathered spans this drain: the first `nTouched` entries (reused, never shrunk). */
  private readonly touched: SubscriptionSet[] = [];
  private nTouched = 0;
  /**
   * Views of the arena's frame head by length, made once each (per arena buffer): publish needs a
   * view of exactly the frame's bytes, and a subarray per frame was most of the feed's garbage.
   */
  private frameViews: (Uint8Array | undefined)[] = [];
  private viewsOf: Uint8Array | null = null;
  private nextId = 1;
  private readonly maxFrameBytes: number;
  private readonly maxFrameItems: number;
  /** The arena the spans of this drain point into (set by add, read by flush). */
  private arena: Arena | null = null;

  constructor(private readonly opts: FanoutOptions) {
    this.setsOf = Array.from({ length: opts.rows * opts.encodings }, () => []);
    this.maxFrameBytes = opts.maxFrameBytes ?? 256 * 1024;
    this.maxFrameItems = opts.maxFrameItems ?? 4096;
  }

  get size(): number {
    return this.sets.size;
  }

  /** Pair index of (row, encoding). */
  pair(row: number, encoding: number): number {
    return row * this.opts.encodings + encoding;
  }

  /** Whether any set contains the pair: if not, the caller need not encode the tick. */
  wants(pair: number): boolean {
    return this.setsOf[pair].length > 0;
  }

  /**
   * The set for these pairs (sorted or not; duplicates ignored) in this format, made if new;
   * one more reference to it. `family` tells formats apart (the same pairs in another family is
   * another set).
   */
  join(family: string, pairs: readonly number[], format: FrameFormat): SubscriptionSet {
    const sorted = [...new Set(pairs)].sort((a, b) => a - b);
    const key = `${family}:${sorted.join(',')}`;
    let set = this.sets.get(key);
    if (!set) {
      const id = this.nextId++;
      set = { id, key, topic: `${this.opts.topicPrefix}s${id}`, format, refs: 0, pairs: sorted, head: -1, tail: -1, count: 0, bytes: 0, touched: false };
      this.sets.set(key, set);
      for (const p of sorted) this.setsOf[p].push(set);
    }
    set.refs++;
    return set;
  }

  /**
   * A client that belonged to `from` (or to none) now follows `pairs`: the set it belongs to after,
   * null when it follows nothing. `from` when the pairs are still its pairs (references unchanged);
   * otherwise it holds a reference to the new set and none to `from`. The caller moves its socket
   * from one topic to the other when the two differ.
   */
  move(from: SubscriptionSet | null, family: string, pairs: readonly number[], format: FrameFormat): SubscriptionSet | null {
    const next = pairs.length > 0 ? this.join(family, pairs, format) : null;
    if (next === from) {
      if (next) this.leave(next); // the same set: drop the reference join just took
      return from;
    }
    if (from) this.leave(from);
    return next;
  }

  /** One reference fewer; the set goes when none is left (its pending frame is published first). */
  leave(set: SubscriptionSet): void {
    if (--set.refs > 0) return;
    if (set.count > 0) this.emit(set);
    this.sets.delete(set.key);
    for (const p of set.pairs) {
      const list = this.setsOf[p];
      const i = list.indexOf(set);
      if (i >= 0) list.splice(i, 1);
    }
  }

  /**
   * The record for `pair` is at [start, end) of `arena.buf` (start ≥ FRAME_HEAD): append it to
   * every set containing the pair. The arena keeps it until flush.
   */
  add(arena: Arena, pair: number, start: number, end: number): void {
    this.arena = arena;
    const list = this.setsOf[pair];
    for (let i = 0; i < list.length; i++) {
      const set = list[i];
      if (set.count > 0 && (set.count >= this.maxFrameItems || set.bytes + end - start > this.maxFrameBytes)) this.emit(set);
      if (set.count > 0 && this.linkEnd[set.tail] === start) {
        this.linkEnd[set.tail] = end; // follows the previous span: one copy for both
      } else {
        const l = this.link(start, end);
        if (set.count === 0) set.head = l;
        else this.linkNext[set.tail] = l;
        set.tail = l;
      }
      set.count++;
      set.bytes += end - start;
      if (!set.touched) {
        set.touched = true;
        this.touched[this.nTouched++] = set;
      }
    }
  }

  /** Publish every set's gathered frame; the arena may be reused after this. */
  flush(arena: Arena): void {
    this.arena = arena;
    const t = this.touched;
    for (let i = 0; i < this.nTouched; i++) {
      const set = t[i];
      set.touched = false;
      if (set.count > 0) this.emit(set);
    }
    this.nTouched = 0;
    this.links = 0;
  }

  private emit(set: SubscriptionSet): void {
    const arena = this.arena!;
    const size = set.format.headerBytes(set.count) + set.bytes;
    const head = size <= FRAME_HEAD;
    if (!head) arena.ensure(size);
    const buf = arena.buf;
    const start = head ? 0 : arena.pos;
    let pos = set.format.writeHeader(buf, start, set.count);
    for (let l = set.head; l !== -1; l = this.linkNext[l]) {
      const a = this.linkStart[l];
      const b = this.linkEnd[l];
      buf.copyWithin(pos, a, b);
      pos += b - a;
    }
    const items = set.count;
    set.count = 0;
    set.bytes = 0;
    set.head = set.tail = -1;
    let view: Uint8Array | undefined;
    if (head) {
      if (this.viewsOf !== buf) {
        this.viewsOf = buf;
        this.frameViews = [];
      }
      view = this.frameViews[size];
      if (view === undefined) this.frameViews[size] = view = buf.subarray(0, size);
    } else {
      view = buf.subarray(start, start + size);
    }
    this.opts.publish(set.topic, view, items);
  }

  private link(start: number, end: number): number {
    if (this.links === this.linkStart.length) {
      const grow = (a: Int32Array<ArrayBuffer>): Int32Array<ArrayBuffer> => {
        const b = new Int32Array(a.length * 2);
        b.set(a);
        return b;
      };
      this.linkStart = grow(this.linkStart);
      this.linkEnd = grow(this.linkEnd);
      this.linkNext = grow(this.linkNext);
    }
    const l = this.links++;
    this.linkStart[l] = start;
    this.linkEnd[l] = end;
    this.linkNext[l] = -1;
    return l;
  }
}
