/**
 * The decoder's promise that nothing is allocated per packet (one DataView per frame is all), held
 * over millions of packets by counting the bytes V8 allocates (test/support/alloc.ts).
 */
import { isMainThread } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { DecodeStats, decodeFrame, encodeFrame, type FrameStamp } from './codec.ts';
import type { SlotSink } from '../core/packet-slot.ts';
import { ALL_KINDS, Rng, genTick } from '../../test/support/gen.ts';
import { RingSink } from '../../test/support/sinks.ts';
import { BOXED_DOUBLE_BYTES, boxOne, describeAllocation, measureInWorker, NOTHING_PER_TICK, type ScenarioFactory } from '../../test/support/alloc.ts';

/** Busy Kite frames, as the decode bench uses: 50-200 packets each, every packet kind mixed. */
function frames(count: number, seed: number): Uint8Array[] {
  const r = new Rng(seed);
  const out: Uint8Array[] = [];
  for (let f = 0; f < count; f++) {
    const ticks = [];
    const n = r.int(50, 200);
    for (let i = 0; i < n; i++) ticks.push(genTick(r, r.pick(ALL_KINDS), r.int(1, 9)));
    out.push(encodeFrame(ticks));
  }
  return out;
}

/** A ring sink that also boxes one double per packet: the accident the test must catch. */
class BoxingSink extends RingSink {
  override commit(): void {
    super.commit();
    boxOne(this.seq);
  }
}

export const scenarios: Record<string, ScenarioFactory> = {
  decode(box) {
    const set = frames(64, 0xa110c);
    const stamp: FrameStamp = { recvTimeUs: 1_764_662_400_123_456, seq: 0, conn: 1 };
    const stats = new DecodeStats();
    const sink: SlotSink = box ? new BoxingSink(1024) : new RingSink(1024);
    let f = 0;
    return {
      run(packets) {
        for (let n = 0; n < packets; f = f + 1 === set.length ? 0 : f + 1) {
          stamp.seq++;
          n += decodeFrame(set[f], stamp, sink, stats);
        }
      },
      facts: () => ({ packets: stats.packets, errors: stats.totalErrors() }),
    };
  },
};

// A worker thread imports this file for its scenarios alone (test/support/alloc.ts).
if (isMainThread) {
  describe('decodeFrame allocation', () => {
    it('decodes 3M packets into a reused ring without allocating per packet', async () => {
      const [clean, boxed] = await measureInWorker(import.meta.url, 'decode', [{ ticks: 3_000_000 }, { ticks: 1_000_000, box: true }]);

      expect(clean.facts.errors).toBe(0);
      expect(clean.bytesPerTick, describeAllocation('decodeFrame', clean)).toBeLessThan(NOTHING_PER_TICK);
      // The bound would have caught a single boxed double per packet.
      expect(boxed.bytesPerTick, describeAllocation('decodeFrame + one boxed double a packet', boxed)).toBeGreaterThanOrEqual(BOXED_DOUBLE_BYTES);
    });
  });
}
