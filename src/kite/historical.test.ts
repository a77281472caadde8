/**
 * The historical API's limiter: one per process, Kite's 3 requests a second shared by every
 * caller, so the simulator (which counts as Kite does, per api_key, answering 429 past 3 a second)
 * never refuses requests that took their turns, however many callers ask at once.
 */
import { describe, expect, it } from 'vitest';
import { KITE_HISTORICAL_PER_SEC, KiteHistorical, RateLimiter, historicalLimiter } from './historical.ts';
import { startSimulator } from './sim/server.ts';

describe('RateLimiter', () => {
  it('starts at most 3 turns within any window, in the order asked, across callers', async () => {
    const limiter = new RateLimiter(3, 200);
    const starts: { caller: string; at: number }[] = [];
    const caller = async (name: string, n: number) => {
      for (let i = 0; i < n; i++) {
        // The limiter's own start of the turn: when the caller resumes after it is up to the event loop.
        starts.push({ caller: name, at: await limiter.take() });
      }
    };
    await Promise.all([caller('a', 4), caller('b', 4), caller('c', 4)]);
    expect(starts).toHaveLength(12);
    // Any 4 consecutive starts span at least the window: never 4 within it.
    for (let i = 3; i < starts.length; i++) expect(starts[i].at - starts[i - 3].at).toBeGreaterThanOrEqual(200);
    // Every caller got turns in the first window: nobody waits for another to finish.
    expect(new Set(starts.slice(0, 3).map((s) => s.caller))).toEqual(new Set(['a', 'b', 'c']));
    expect(limiter.stats.turns).toBe(12);
    expect(limiter.stats.waited).toBeGreaterThanOrEqual(3);
  });

  it('is one limiter of Kite\'s 3 a second for the whole process', () => {
    expect(historicalLimiter.perSec).toBe(KITE_HISTORICAL_PER_SEC);
    expect(KITE_HISTORICAL_PER_SEC).toBe(3);
    expect(() => new RateLimiter(0)).toThrow(RangeError);
  });

  it('keeps two clients on one api_key inside Kite\'s limit: the simulator refuses none of 9 requests', async () => {
    const T0 = Date.parse('2025-12-03T04:00:00Z');
    const sim = await startSimulator({ apiKey: 'k', accessToken: 't', rate: 0, clock: () => T0 });
    try {
      const limiter = new RateLimiter(3);
      const a = new KiteHistorical({ apiUrl: sim.apiUrl, apiKey: 'k', accessToken: 't', limiter });
      const b = new KiteHistorical({ apiUrl: sim.apiUrl, apiKey: 'k', accessToken: 't', limiter });
      const answers = await Promise.all([a, b, a, b, a, b, a, b, a].map((c) => c.minutes(408065, T0 - 600_000, T0).then(() => 'ok', (e) => String(e?.message))));
      expect(answers).toEqual(Array(9).fill('ok'));
    } finally {
      await sim.close();
    }
  });
});
