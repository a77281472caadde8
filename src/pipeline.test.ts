import { describe, expect, it } from 'vitest';
import type { SlotViews } from './core/packet-slot.ts';
import { OutputPump, OutputReader, type PumpReader } from './pipeline.ts';
import { createRingBuffer, PARK, RingProducer, type WaitPolicy } from './core/ring.ts';
import { N_SLOT_WORDS, TICK_CONSUMERS, TickConsumer } from './core/tick.ts';
import { BAR_SLOT_WORDS, DOORBELL_STRIDE } from './core/shard-protocol.ts';

/** A reader holding `backlog` records that are all there at once, as after a consumer stalled. */
function backlogReader(backlog: number): PumpReader {
  let left = backlog;
  const views = {} as SlotViews;
  return {
    drain(onTick, _onBar, max = Infinity) {
      const n = Math.min(left, max);
      for (let i = 0; i < n; i++) onTick(views, 0);
      left -= n;
      return n;
    },
    done: () => left === 0,
    waitForData: () => Promise.resolve(),
  };
}

/** Records handed out between batch ends, for a backlog of `backlog` records. */
async function batchesOf(backlog: number, maxPerDrain?: number): Promise<{ batches: number[]; records: number }> {
  const batches: number[] = [];
  let inBatch = 0;
  const pump = new OutputPump(backlogReader(backlog), {
    tick: () => { inBatch++; },
    bar: () => {},
    batchEnd: () => { batches.push(inBatch); inBatch = 0; },
  }, { maxPerDrain });
  await pump.done;
  return { batches, records: pump.records };
}

describe('output pump', () => {
  it('ends a batch at most every maxPerDrain records, and hands out every record', async () => {
    expect(await batchesOf(10_000, 4096)).toEqual({ batches: [4096, 4096, 1808], records: 10_000 });
  });

  it('takes everything available in one batch without a bound', async () => {
    expect(await batchesOf(10_000)).toEqual({ batches: [10_000], records: 10_000 });
  });
});

describe('output reader waiting', () => {
  /** One shard's output rings, a producer on its tick ring, and a reader waiting as `wait` says. */
  function rig(wait: WaitPolicy) {
    const ticksOut = createRingBuffer(4, N_SLOT_WORDS, TICK_CONSUMERS);
    const barsOut = createRingBuffer(4, BAR_SLOT_WORDS, TICK_CONSUMERS);
    const bells = new SharedArrayBuffer(TICK_CONSUMERS * DOORBELL_STRIDE * 4);
    const reader = new OutputReader([{ ticksOut, barsOut }], TickConsumer.FEED, bells, wait);
    const producer = new RingProducer(ticksOut);
    /** A record and a doorbell bump, with no notify: only a reader that looks sees it before its timeout. */
    const quietPublish = (): void => {
      producer.claim();
      producer.commit();
      producer.publish();
      Atomics.add(new Int32Array(bells), TickConsumer.FEED * DOORBELL_STRIDE, 1);
    };
    return { reader, quietPublish };
  }

  it('spinning, it keeps the event loop turning and sees a record published meanwhile', async () => {
    const { reader, quietPublish } = rig({ strategy: 'spin-park', spinUs: 1000 });
    setImmediate(quietPublish); // runs only if the spin lets the event loop turn
    const t0 = performance.now();
    await reader.waitForData(2000);
    expect(performance.now() - t0).toBeLessThan(1000);
    expect(reader.drain(() => {}, () => {})).toBe(1);
  });

  it('parked, it sleeps until a notify or its timeout', async () => {
    const { reader, quietPublish } = rig(PARK);
    setImmediate(quietPublish);
    const t0 = performance.now();
    await reader.waitForData(150);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(140);
    expect(reader.drain(() => {}, () => {})).toBe(1);
  });
});
