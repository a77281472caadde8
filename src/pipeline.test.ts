import { describe, expect, it } from 'vitest';
import type { SlotViews } from './core/packet-slot.ts';
import { OutputPump, type PumpReader } from './pipeline.ts';

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
