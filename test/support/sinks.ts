/**
 * TickSinks for tests and benches. None allocates per packet.
 *
 * - RingSink: a power-of-two ring of preallocated records that wraps (overwrites), like the
 *   pipeline's ring without a consumer; what the bench decodes into.
 * - ScratchSink: one record, reused for every packet: shows that a slot never leaks a previous tick.
 * - BoundedSink: room for `capacity` records, then claim() returns -1 (SINK_FULL).
 */

import type { SlotSink } from '../../src/core/packet-slot.ts';
import { type SlotViews, WORDS, scratchSlot, viewsOf } from '../../src/core/packet-slot.ts';

export class RingSink implements SlotSink {
  readonly views: SlotViews;
  private readonly mask: number;
  /** Records committed so far (only grows). */
  seq = 0;
  constructor(slotsPow2 = 1024) {
    if ((slotsPow2 & (slotsPow2 - 1)) !== 0) throw new RangeError(`slotsPow2 must be a power of two, got ${slotsPow2}`);
    this.mask = slotsPow2 - 1;
    this.views = viewsOf(new ArrayBuffer(slotsPow2 * WORDS * 4));
  }
  claim(): number {
    return (this.seq & this.mask) * WORDS;
  }
  commit(): void {
    this.seq++;
  }
}

export class ScratchSink implements SlotSink {
  readonly views: SlotViews = scratchSlot();
  commits = 0;
  claim(): number {
    return 0;
  }
  commit(): void {
    this.commits++;
  }
}

export class BoundedSink implements SlotSink {
  readonly views: SlotViews;
  count = 0;
  claims = 0;
  constructor(readonly capacity: number) {
    this.views = viewsOf(new ArrayBuffer(Math.max(1, capacity) * WORDS * 4));
  }
  claim(): number {
    this.claims++;
    return this.count < this.capacity ? this.count * WORDS : -1;
  }
  commit(): void {
    this.count++;
  }
}
