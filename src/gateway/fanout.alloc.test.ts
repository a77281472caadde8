/**
 * The fan-out's promise that nothing is allocated per tick, held over millions of ticks by
 * counting the bytes V8 allocates (test/support/alloc.ts). Driven as the feed drives it
 * (feed.ts): each tick encoded once per encoding some set wants, into one arena, its span added
 * to every set holding the pair, and every set's frame published at the end of a drain.
 */
import { isMainThread } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { N_FIELDS } from '../core/tick.ts';
import { Fanout, FRAME_HEAD } from './fanout.ts';
import { encodeSymbol, PLAIN_FRAMES, RECORD_FRAMES, RecordWriter } from './msgpack-encoder.ts';
import { makeTick } from '../../test/support/canonical-fixtures.ts';
import { Rng } from '../../test/support/gen.ts';
import { BOXED_DOUBLE_BYTES, boxOne, describeAllocation, measureInWorker, NOTHING_PER_TICK, type ScenarioFactory } from '../../test/support/alloc.ts';

const ROWS = 64;
/** Encodings per row, as the feed has them: modes 0-2 as records, 3-5 as plain maps. */
const ENCODINGS = 6;
/** Ticks replayed in a loop, and cut into drains of 1-400 that add up to it, so every pass is alike. */
const INPUT = 1024;

export const scenarios: Record<string, ScenarioFactory> = {
  fanout(box) {
    const r = new Rng(0xfa17);
    const f = new Float64Array(INPUT * N_FIELDS);
    const rowOf = new Int32Array(INPUT);
    for (let i = 0; i < INPUT; i++) {
      rowOf[i] = r.int(0, ROWS - 1);
      f.set(makeTick(100_000 + rowOf[i], 100 + r.int(0, 20_000) * 0.05, i), i * N_FIELDS);
    }
    const drains: number[] = [];
    for (let left = INPUT; left > 0;) {
      const n = Math.min(left, r.int(1, 400));
      drains.push(n);
      left -= n;
    }
    const symbols = Array.from({ length: ROWS }, (_, row) => encodeSymbol(`SYM${row}`));

    let ticksIn = 0;
    let frames = 0;
    let published = 0;
    const fan = new Fanout({
      topicPrefix: '', rows: ROWS,
      encodings: ENCODINGS,
      publish(_topic, frame, items) {
        frames++;
        published += items;
        if (frame.length === 0) throw new Error('empty frame');
      },
    });
    const all = (e: number): number[] => Array.from({ length: ROWS }, (_, row) => fan.pair(row, e));
    fan.join('r', all(2), RECORD_FRAMES); // everyone on everything, full mode
    fan.join('r', all(1), RECORD_FRAMES); // everything in quote mode
    for (let s = 0; s < 8; s++) {
      // Disjoint slices, ltp mode as plain maps.
      fan.join('p', Array.from({ length: ROWS / 8 }, (_, k) => fan.pair(s * (ROWS / 8) + k, 3)), PLAIN_FRAMES);
    }
    fan.join('p', [0, 1, 2, 3, 4, 5].map((e) => fan.pair(7, e)), PLAIN_FRAMES); // one row in every encoding
    const arena = new RecordWriter(1 << 18, FRAME_HEAD);

    let t = 0;
    let d = 0;
    let inDrain = 0;
    return {
      run(ticks) {
        ticksIn += ticks;
        for (let i = 0; i < ticks; i++) {
          const row = rowOf[t];
          for (let e = 0; e < ENCODINGS; e++) {
            const pair = row * ENCODINGS + e;
            if (!fan.wants(pair)) continue;
            const start = arena.pos;
            arena.tick(f, t * N_FIELDS, e % 3, symbols[row], e < 3);
            fan.add(arena, pair, start, arena.pos);
          }
          if (box) boxOne(i);
          t = t + 1 === INPUT ? 0 : t + 1;
          if (++inDrain === drains[d]) {
            fan.flush(arena);
            arena.reset();
            inDrain = 0;
            d = d + 1 === drains.length ? 0 : d + 1;
          }
        }
      },
      facts: () => ({ ticks: ticksIn, frames, published }),
    };
  },
};

// A worker thread imports this file for its scenarios alone (test/support/alloc.ts).
if (isMainThread) {
  describe('fan-out allocation', () => {
    it('fans 2M ticks out to overlapping subscription sets without allocating per tick', async () => {
      const [clean, boxed] = await measureInWorker(import.meta.url, 'fanout', [{ ticks: 2_000_000 }, { ticks: 500_000, box: true }]);

      // Each tick reaches 2-3 sets; a frame per touched set per drain.
      expect(clean.facts.published / clean.facts.ticks).toBeGreaterThan(2);
      expect(clean.facts.frames).toBeGreaterThan(clean.facts.ticks / 100);
      expect(clean.bytesPerTick, describeAllocation('fan-out', clean)).toBeLessThan(NOTHING_PER_TICK);
      // The bound would have caught a single boxed double per tick.
      expect(boxed.bytesPerTick, describeAllocation('fan-out + one boxed double a tick', boxed)).toBeGreaterThanOrEqual(BOXED_DOUBLE_BYTES);
    });
  });
}
