import { describe, expect, it } from 'vitest';
import { selectUniverse } from './kite/selection.ts';
import { buildNifty50Universe } from './kite/sim/universe.ts';
import { shardOf } from './front.ts';

describe('shardOf', () => {
  const today = new Date('2025-12-03T04:00:00Z');
  const tokens = selectUniverse(buildNifty50Universe({ today }), { strikes: 10, expiries: 2, indexLevel: 26_000, today });

  it('spreads the default universe over every shard, whatever the segment byte', () => {
    for (const shards of [2, 3, 4, 8]) {
      const counts = new Array<number>(shards).fill(0);
      for (const t of tokens) counts[shardOf(t, shards)]++;
      const fair = tokens.length / shards;
      for (const c of counts) {
        expect(c).toBeGreaterThan(fair * 0.6);
        expect(c).toBeLessThan(fair * 1.4);
      }
    }
  });

  it('maps a token to one shard in range, always the same', () => {
    for (const t of [0, 1, 256265, 0xffff_ffff, ...tokens]) {
      const s = shardOf(t, 3);
      expect(Number.isInteger(s) && s >= 0 && s < 3).toBe(true);
      expect(shardOf(t, 3)).toBe(s);
      expect(shardOf(t, 1)).toBe(0);
    }
  });
});
