/**
 * A bar output ring with an overflow: what a shard (shard.ts) and a replay session's thread
 * (replay/replayer.ts) write their bars through. A bar is copied into the ring when it has room;
 * when it has none (a burst of closes at a bucket's end), the bar is kept here, in order, and
 * written before any later one once the consumer makes room: bars are never dropped and never
 * overtake each other. A bar written straight into the ring allocates nothing; only an overflowed
 * one is copied out (a Float64Array of BAR_FIELDS).
 */
import { BAR_FIELDS } from '../src/core/bar.ts';
import type { RingProducer } from '../src/core/ring.ts';

export class BarOut {
  private readonly overflow: Float64Array[] = [];

  constructor(readonly ring: RingProducer) {}

  /** Bars waiting for room in the ring. */
  get pending(): number {
    return this.overflow.length;
  }

  /** The bar at `base` in `view` (bar.ts layout), into the ring or, when full, the overflow. */
  write(view: Float64Array, base: number): void {
    const ring = this.ring;
    if (this.overflow.length > 0 || !ring.hasRoom()) {
      this.overflow.push(view.slice(base, base + BAR_FIELDS));
      return;
    }
    const o = ring.claim();
    const out = ring.views.f64;
    const fo = o >> 1;
    for (let i = 0; i < BAR_FIELDS; i++) out[fo + i] = view[base + i];
    ring.commit();
  }

  /** Write overflowed bars while there is room; true when none are left. */
  writeOverflow(): boolean {
    const overflow = this.overflow;
    const ring = this.ring;
    let i = 0;
    while (i < overflow.length && ring.hasRoom()) {
      const o = ring.claim();
      ring.views.f64.set(overflow[i++], o >> 1);
      ring.commit();
    }
    if (i > 0) overflow.splice(0, i);
    return overflow.length === 0;
  }

  /** Write every overflowed bar, publishing (`publish`) and waiting for room as often as needed. */
  async drain(publish: () => void): Promise<void> {
    while (!this.writeOverflow()) {
      publish();
      await this.ring.waitForSpace(1, 100);
    }
  }

  /** Forget the overflow (a replay that seeks: its bars before the seek are void). */
  clear(): void {
    this.overflow.length = 0;
  }
}
