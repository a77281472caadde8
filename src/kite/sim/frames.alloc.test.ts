/**
 * The simulator's frame building allocates nothing per packet, counted in bytes V8 allocates
 * (test/support/alloc.ts). Per frame there is one subarray for `send`, spread over its packets.
 */
import { isMainThread } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { buildNifty50Universe } from './universe.ts';
import { FrameBuilder, type FrameSocket, type FrameTarget } from './frames.ts';
import { Market, ModeCode } from './market.ts';
import { Followers, Subscriptions } from './subscriptions.ts';
import { BOXED_DOUBLE_BYTES, boxOne, describeAllocation, measureInWorker, NOTHING_PER_TICK, type ScenarioFactory } from '../../../test/support/alloc.ts';

const T0 = Date.parse('2025-12-01T05:00:00Z');
const MODES = [ModeCode.LTP, ModeCode.QUOTE, ModeCode.FULL];

/** A socket that takes every frame and keeps only its size, as uWS copies and lets go. */
class CountingSocket implements FrameSocket {
  bytes = 0;
  getBufferedAmount(): number {
    return 0;
  }
  send(message: Uint8Array): number {
    this.bytes += message.byteLength;
    return 1;
  }
}

function stats() {
  return { frames: 0, packets: 0, bytes: 0, skippedFrames: 0, coalescedPackets: 0, droppedByUws: 0 };
}

export const scenarios: Record<string, ScenarioFactory> = {
  /**
   * FrameBuilder.emit to one connection following NIFTY's universe, rows in the three modes: a
   * round of all rows but the last 50, and 8 of those 50 owed a snapshot.
   */
  frames(box) {
    const market = new Market({ instruments: buildNifty50Universe({ today: new Date(T0), strikesEachSide: 100 }), seed: 4, clock: () => T0 });
    const size = market.size;
    const subs = new Subscriptions(size, size, new Followers(size));
    for (let r = 0; r < size; r++) {
      subs.add(r);
      subs.setMode(r, MODES[r % 3]);
    }
    const c: FrameTarget = { id: 1, ws: new CountingSocket(), subs, lastSendMs: 0 };
    const s = { frames: 0, packets: 0, bytes: 0, skippedFrames: 0, coalescedPackets: 0, droppedByUws: 0 };
    const builder = new FrameBuilder(market, s, { maxBuffered: 1 << 30 });
    const k = size - 50;
    const updated = new Int32Array(size);
    for (let j = 0; j < k; j++) updated[j] = k - 1 - j;
    let round = 0;
    return {
      run(packets) {
        for (let n = 0; n < packets; n += k + 8) {
          for (let j = 0; j < 8; j++) subs.owe(k + ((round * 8 + j) % 50));
          round++;
          builder.emit(c, updated, k);
          if (box) for (let j = 0; j < k + 8; j++) boxOne(j);
        }
      },
      facts: () => ({ packets: s.packets, frames: s.frames }),
    };
  },
};

// A worker thread imports this file for its scenarios alone (test/support/alloc.ts).
if (isMainThread) {
  describe('simulator allocation', () => {
    it('builds frames for 2M packets without allocating per packet', async () => {
      const [clean, boxed] = await measureInWorker(import.meta.url, 'frames', [{ ticks: 2_000_000 }, { ticks: 500_000, box: true }]);
      expect(clean.facts.packets).toBeGreaterThan(2_000_000);
      expect(clean.bytesPerTick, describeAllocation('FrameBuilder.emit', clean)).toBeLessThan(NOTHING_PER_TICK);
      // The bound would have caught a single boxed double per packet.
      expect(boxed.bytesPerTick, describeAllocation('FrameBuilder.emit + one boxed double a packet', boxed)).toBeGreaterThanOrEqual(BOXED_DOUBLE_BYTES);
    });
  });
}
