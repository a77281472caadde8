/**
 * Day statistics (workers/stages/day-stats.ts) through the real pipeline: what the shards stamp on
 * each tick and the option-chain figures summed across shards.
 */
import { describe, expect, it } from 'vitest';
import { N } from '../../src/core/tick.ts';
import { run, stream, universe } from './harness.ts';

describe('pipeline day stats', () => {
  it('computes each option chain’s put-call ratio across shards from the latest OI', async () => {
    const instruments = universe(3, 2);
    const r = await run({ workers: 2, instruments, frames: stream(instruments, 300, 5) });
    const byChain = new Map<string, { calls: number; puts: number }>();
    for (const i of instruments) {
      if (i.instrumentType !== 'CE' && i.instrumentType !== 'PE') continue;
      const ticks = r.store.ticks.get(i.instrumentToken);
      if (!ticks) continue;
      const key = `${i.name}:${i.expiry}`;
      const c = byChain.get(key) ?? { calls: 0, puts: 0 };
      const oi = ticks[ticks.length - 1][N.OI];
      if (i.instrumentType === 'CE') c.calls += oi;
      else c.puts += oi;
      byChain.set(key, c);
    }
    expect(byChain.size).toBe(2);
    for (const [key, c] of byChain) {
      const [name, expiry] = key.split(':');
      const got = r.stopped.pcr(name, expiry);
      expect(got.callOi).toBe(c.calls);
      expect(got.putOi).toBe(c.puts);
      expect(got.pcr).toBeCloseTo(c.puts / c.calls, 12);
    }
  });

  it('stamps each tick with its day VWAP', async () => {
    const instruments = universe();
    const r = await run({ workers: 1, instruments, frames: stream(instruments, 50, 9) });
    const eq = instruments.find((i) => i.instrumentType === 'EQ' && i.segment === 'NSE')!;
    for (const t of r.store.ticks.get(eq.instrumentToken)!) expect(t[N.DAY_VWAP]).toBe(t[N.AVG_PRICE]);
  });
});
