/**
 * The COPY encoder's promise that nothing is allocated per row, held over millions of rows by
 * counting the bytes V8 allocates (test/support/alloc.ts). The values written are those a boxed
 * double would come from: fractional prices, epoch µs past 2^32, counts past 2^31, NaN.
 */
import { isMainThread } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { N, N_FIELDS } from '../../src/core/tick.ts';
import { B, BAR_FIELDS, BarFlag } from '../../src/core/bar.ts';
import { CopyBuffer, TimeframeNames, writeBarRow, writeMarketRow } from './copy.ts';
import { makeBar, makeTick } from '../../test/support/canonical-fixtures.ts';
import { BOXED_DOUBLE_BYTES, boxOne, describeAllocation, measureInWorker, NOTHING_PER_TICK, type ScenarioFactory } from '../../test/support/alloc.ts';

/** Rows per batch: the buffer is reset once per batch, as the writer's batches are (WRITER_BATCH_ROWS). */
const BATCH = 5000;
const INPUT = 512;

export const scenarios: Record<string, ScenarioFactory> = {
  market(box) {
    const f = new Float64Array(INPUT * N_FIELDS);
    for (let i = 0; i < INPUT; i++) {
      const o = i * N_FIELDS;
      f.set(makeTick(12_073_986 + i, 24_000.05 + i * 0.35, i), o);
      f[o + N.RECV_TIME_US] += 0.7;
      f[o + N.SEQ] = 4_000_000_000 + i; // past 2^31
      if (i % 3 === 0) f[o + N.DEPTH_LEVELS] = 0; // quote packets: NULL depth
      if (i % 5 === 0) f[o + N.LAST_TRADE_MS] = 0; // NULL last trade time
    }
    const buf = new CopyBuffer();
    let written = 0;
    return {
      run(rows) {
        for (let i = 0; i < rows; i++) {
          if (i % BATCH === 0) {
            written += buf.length;
            buf.reset();
          }
          writeMarketRow(buf, f, (i % INPUT) * N_FIELDS);
          if (box) boxOne(i);
        }
      },
      facts: () => ({ bytes: written + buf.length }),
    };
  },

  bars(box) {
    const timeframes = [60_000, 180_000, 300_000, 900_000, 3_600_000, 86_400_000];
    const f = new Float64Array(INPUT * BAR_FIELDS);
    for (let i = 0; i < INPUT; i++) {
      const tf = timeframes[i % timeframes.length];
      const o = i * BAR_FIELDS;
      f.set(makeBar(12_073_986 + i, tf, 1_764_733_500_000 + i * tf, 24_000.05 + i * 0.35, BarFlag.CLOSED | (i % 4 === 0 ? BarFlag.PARTIAL : 0)), o);
      if (i % 7 === 0) f[o + B.VWAP] = NaN; // no volume: NULL VWAP
    }
    const names = new TimeframeNames();
    const buf = new CopyBuffer();
    let written = 0;
    return {
      run(rows) {
        for (let i = 0; i < rows; i++) {
          if (i % BATCH === 0) {
            written += buf.length;
            buf.reset();
          }
          writeBarRow(buf, f, (i % INPUT) * BAR_FIELDS, names);
          if (box) boxOne(i);
        }
      },
      facts: () => ({ bytes: written + buf.length }),
    };
  },
};

// A worker thread imports this file for its scenarios alone (test/support/alloc.ts).
if (isMainThread) {
  describe('COPY encoder allocation', () => {
    it('writes 3M market_data rows, with and without depth, without allocating per row', async () => {
      const [clean, boxed] = await measureInWorker(import.meta.url, 'market', [{ ticks: 3_000_000 }, { ticks: 1_000_000, box: true }]);

      expect(clean.facts.bytes).toBeGreaterThan(3_000_000 * 306); // a row without depth is 306 bytes
      expect(clean.bytesPerTick, describeAllocation('writeMarketRow', clean)).toBeLessThan(NOTHING_PER_TICK);
      // The bound would have caught a single boxed double per row.
      expect(boxed.bytesPerTick, describeAllocation('writeMarketRow + one boxed double a row', boxed)).toBeGreaterThanOrEqual(BOXED_DOUBLE_BYTES);
    });

    it('writes 3M bars rows over every timeframe without allocating per row', async () => {
      const [clean, boxed] = await measureInWorker(import.meta.url, 'bars', [{ ticks: 3_000_000 }, { ticks: 1_000_000, box: true }]);

      expect(clean.facts.bytes).toBeGreaterThan(3_000_000 * 100);
      expect(clean.bytesPerTick, describeAllocation('writeBarRow', clean)).toBeLessThan(NOTHING_PER_TICK);
      expect(boxed.bytesPerTick, describeAllocation('writeBarRow + one boxed double a row', boxed)).toBeGreaterThanOrEqual(BOXED_DOUBLE_BYTES);
    });
  });
}
