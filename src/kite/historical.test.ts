/**
 * The historical API's limiter: one per process, Kite's 3 requests a second shared by every
 * caller, so the simulator (which counts as Kite does, per api_key, answering 429 past 3 a second)
 * never refuses requests that took their turns, however many callers ask at once.
 */
import { describe, expect, it } from 'vitest';
import { KITE_HISTORICAL_PER_SEC, KiteHistorical, RateLimiter, historicalLimiter } from './historical.ts';
import { startSimulator } from './sim/server.ts';

describe('RateLimiter', () => {
  it('starts a turn only a window after the answer of the turn 3 back, in the order asked, across callers', async () => {
    const limiter = new RateLimiter(3, 200);
    const turns: { caller: string; at: number; end: number }[] = [];
    const caller = async (name: string, n: number) => {
      for (let i = 0; i < n; i++) {
        // The limiter's own start of the turn: when the caller resumes after it is up to the event loop.
        const turn = await limiter.take();
        const t = { caller: name, at: turn.at, end: 0 };
        turns.push(t);
        // An answer that takes a while: the window counts from it, not from the send.
        await new Promise((r) => setImmediate(r));
        t.end = performance.now();
        turn.done();
      }
    };
    await Promise.all([caller('a', 4), caller('b', 4), caller('c', 4)]);
    expect(turns).toHaveLength(12);
    // A request sent a window after the answer 3 turns back reaches the server a window after that one did.
    for (let i = 3; i < turns.length; i++) expect(turns[i].at - turns[i - 3].end).toBeGreaterThanOrEqual(200);
    // Every caller got turns in the first window: nobody waits for another to finish.
    expect(new Set(turns.slice(0, 3).map((s) => s.caller))).toEqual(new Set(['a', 'b', 'c']));
    expect(limiter.stats.turns).toBe(12);
    expect(limiter.stats.waited).toBeGreaterThanOrEqual(3);
  });

  it('holds the next turn while the turn 3 back has no answer yet', async () => {
    const clock = { t: 0 };
    const limiter = new RateLimiter(3, 50, () => clock.t);
    const first = await limiter.take();
    await limiter.take();
    await limiter.take();
    let fourth = false;
    const next = limiter.take().then((t) => { fourth = true; return t; });
    // Long past the window on the limiter's clock, the fourth still waits for the first's answer.
    clock.t = 1000;
    for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
    expect(fourth).toBe(false);
    first.done();
    // Its window starts at the answer: the fourth starts a window after it.
    clock.t = 1050;
    expect((await next).at).toBe(1050);
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
