/**
 * The tick record encoder's promise that nothing is allocated per tick, held over millions of
 * ticks by counting the bytes V8 allocates (test/support/alloc.ts). The numbers written are those
 * a boxed double would come from: fractional prices, epoch ms and µs past 2^32, NaN.
 */
import { isMainThread } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { N, N_FIELDS } from '../core/tick.ts';
import { encodeSymbol, RecordWriter } from './msgpack-encoder.ts';
import { makeTick } from '../../test/support/canonical-fixtures.ts';
import { BOXED_DOUBLE_BYTES, boxOne, describeAllocation, measureInWorker, NOTHING_PER_TICK, type ScenarioFactory } from '../../test/support/alloc.ts';

/** Ticks per drain: the writer is reset and a frame header written once per drain, as the feed does. */
const DRAIN = 256;

export const scenarios: Record<string, ScenarioFactory> = {
  encode(box) {
    const f = new Float64Array(DRAIN * N_FIELDS);
    for (let i = 0; i < DRAIN; i++) {
      f.set(makeTick(408065 + i, 1520.05 + i * 0.35, i), i * N_FIELDS);
      f[i * N_FIELDS + N.RECV_TIME_US] += 0.7;
      if (i % 7 === 0) f[i * N_FIELDS + N.DAY_VWAP] = NaN; // no day VWAP yet: null
    }
    const symbols = ['INFY', 'NIFTY 50', 'NIFTY25DEC26000CE', 'M&M'].map(encodeSymbol);
    const w = new RecordWriter(1 << 18);
    let bytes = 0;
    let done = 0;
    return {
      run(ticks) {
        done += ticks;
        for (let i = 0; i < ticks; i++) {
          const k = i % DRAIN;
          if (k === 0) {
            bytes += w.pos;
            w.reset();
            w.ticksHeader(DRAIN, (i & DRAIN) === 0);
          }
          // Modes 0-2 as records, then as plain maps: the six encodings the feed serves.
          const e = i % 6;
          w.tick(f, k * N_FIELDS, e % 3, symbols[i & 3], e < 3);
          if (box) boxOne(i);
        }
      },
      facts: () => ({ ticks: done, bytes: bytes + w.pos }),
    };
  },
};

// A worker thread imports this file for its scenarios alone (test/support/alloc.ts).
if (isMainThread) {
  describe('tick record encoder allocation', () => {
    it('encodes 3M ticks in every mode, records and plain maps, without allocating per tick', async () => {
      const [clean, boxed] = await measureInWorker(import.meta.url, 'encode', [{ ticks: 3_000_000 }, { ticks: 1_000_000, box: true }]);

      // Full ticks are ~300 bytes, quote ones ~100, ltp ones ~40.
      expect(clean.facts.bytes / clean.facts.ticks).toBeGreaterThan(100);
      expect(clean.bytesPerTick, describeAllocation('RecordWriter.tick', clean)).toBeLessThan(NOTHING_PER_TICK);
      // The bound would have caught a single boxed double per tick.
      expect(boxed.bytesPerTick, describeAllocation('RecordWriter.tick + one boxed double a tick', boxed)).toBeGreaterThanOrEqual(BOXED_DOUBLE_BYTES);
    });
  });
}
