import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { AppError } from '../core/errors.ts';
import { istDayStart } from '../core/ist.ts';
import { formatWait, OrderRateLimiter, type OrderRateConfig, type RateDecision } from './rate-limit.ts';

const KITE: OrderRateConfig = { ratePerSec: 10, ratePerMin: 400, ratePerDay: 5000, rateActiveMs: 60_000 };
/** Monday 2025-01-06 09:30 IST. */
const T0 = Date.parse('2025-01-06T04:00:00Z');

function clocked(cfg: OrderRateConfig = KITE, start = T0) {
  const c = { t: start, now: () => c.t };
  return { clock: c, lim: new OrderRateLimiter(cfg, c.now) };
}

/** Takes one at a time until refused; returns how many were accepted and the refusal. */
function burst(lim: OrderRateLimiter, key: string, count: number): { accepted: number; refusal: RateDecision | null } {
  let accepted = 0;
  for (let i = 0; i < count; i++) {
    const d = lim.take(key);
    if (!d.ok) return { accepted, refusal: d };
    accepted++;
  }
  return { accepted, refusal: null };
}

function refused(d: RateDecision): Extract<RateDecision, { ok: false }> {
  if (d.ok) throw new Error('expected a refusal, got ok');
  return d;
}

/** Most timestamps (sorted) inside any half-open interval [a, a + span). */
function maxInAnyInterval(sorted: number[], span: number): number {
  let best = 0;
  let j = 0;
  for (let i = 0; i < sorted.length; i++) {
    while (j < sorted.length && sorted[j] < sorted[i] + span) j++;
    best = Math.max(best, j - i);
  }
  return best;
}

/**
 * The rule as written in the module header, computed from scratch from the full history: whether
 * `key` may take `n` at `t`, given every accepted request and every key's last request before t.
 */
class Reference {
  readonly accepted: { key: string; ts: number }[] = [];
  readonly lastSeen = new Map<string, number>();
  constructor(readonly cfg: OrderRateConfig) {}

  allows(key: string, n: number, t: number): boolean {
    const { ratePerSec, ratePerMin, ratePerDay, rateActiveMs } = this.cfg;
    let active = 1;
    for (const [k, seen] of this.lastSeen) if (k !== key && t - seen < rateActiveMs) active++;
    const day = istDayStart(t);
    const windows: [number, (ts: number) => boolean][] = [
      [ratePerSec, (ts) => t - ts < 1000],
      [ratePerMin, (ts) => t - ts < 60_000],
      [ratePerDay, (ts) => istDayStart(ts) === day],
    ];
    for (const [limit, inWindow] of windows) {
      const all = this.accepted.filter((a) => inWindow(a.ts));
      if (all.length + n > limit) return false;
      if (all.filter((a) => a.key === key).length + n > Math.ceil(limit / active)) return false;
    }
    return true;
  }

  /** Earliest time ≥ t at which allows() holds, if no one requests meanwhile, by trying every instant a condition can change. */
  earliest(key: string, n: number, t: number): number {
    const candidates = [t, istDayStart(t) + 86_400_000];
    for (const a of this.accepted) candidates.push(a.ts + 1000, a.ts + 60_000);
    for (const seen of this.lastSeen.values()) candidates.push(seen + this.cfg.rateActiveMs);
    candidates.sort((x, y) => x - y);
    for (const c of candidates) if (c >= t && this.allows(key, n, c)) return c;
    return Infinity;
  }

  record(key: string, n: number, t: number, ok: boolean): void {
    if (ok) for (let i = 0; i < n; i++) this.accepted.push({ key, ts: t });
    this.lastSeen.set(key, t);
  }
}

describe('OrderRateLimiter', () => {
  it('never lets more than ratePerSec orders into any 1000 ms interval, nor ratePerMin into any minute, whatever the bursts', () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ gap: fc.oneof(fc.integer({ min: 0, max: 30 }), fc.integer({ min: 0, max: 1500 })), n: fc.integer({ min: 1, max: 5 }), key: fc.constantFrom('a', 'b', 'c') }), {
          minLength: 1,
          maxLength: 600,
        }),
        (events) => {
          const { clock, lim } = clocked({ ...KITE, ratePerMin: 40 });
          const accepted: number[] = [];
          for (const e of events) {
            clock.t += e.gap;
            if (lim.take(e.key, e.n).ok) for (let i = 0; i < e.n; i++) accepted.push(clock.t);
          }
          expect(maxInAnyInterval(accepted, 1000)).toBeLessThanOrEqual(10);
          expect(maxInAnyInterval(accepted, 60_000)).toBeLessThanOrEqual(40);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('decides every take as the written rule does, and retryAfterMs is the first instant the rule would allow it', () => {
    // 10 s before IST midnight, so runs cross into the next IST day.
    const start = Date.parse('2025-01-06T18:29:50Z');
    const config = fc.record({
      ratePerSec: fc.integer({ min: 1, max: 6 }),
      ratePerMin: fc.integer({ min: 1, max: 15 }),
      ratePerDay: fc.integer({ min: 1, max: 30 }),
      rateActiveMs: fc.integer({ min: 1, max: 3000 }),
    });
    const event = fc.record({ gap: fc.integer({ min: 0, max: 700 }), n: fc.integer({ min: 1, max: 5 }), key: fc.constantFrom('a', 'b', 'c') });
    fc.assert(
      fc.property(config, fc.array(event, { minLength: 1, maxLength: 80 }), (cfg, events) => {
        const { clock, lim } = clocked(cfg, start);
        const ref = new Reference(cfg);
        const maxN = Math.min(cfg.ratePerSec, cfg.ratePerMin, cfg.ratePerDay);
        for (const e of events) {
          clock.t += e.gap;
          const n = Math.min(e.n, maxN);
          const d = lim.take(e.key, n);
          expect(d.ok).toBe(ref.allows(e.key, n, clock.t));
          ref.record(e.key, n, clock.t, d.ok);
          if (!d.ok) expect(clock.t + d.retryAfterMs).toBe(ref.earliest(e.key, n, clock.t));
        }
      }),
      { numRuns: 500 },
    );
  });

  it('refuses the 11th order in a second, whatever the alignment, and lets it through when the oldest leaves', () => {
    const { clock, lim } = clocked();
    for (let i = 0; i < 10; i++) {
      clock.t = T0 + 500 + i * 50; // 10 orders between .500 and .950
      expect(lim.take('a').ok).toBe(true);
    }
    clock.t = T0 + 1499;
    const d = refused(lim.take('a'));
    expect(d.window).toBe('second');
    expect(d.retryAfterMs).toBe(1);
    expect(d.message).toBe("Too many orders: the account's limit of 10 orders per second is used up; retry after 1 ms");
    clock.t = T0 + 1500;
    expect(lim.take('a').ok).toBe(true);
    expect(refused(lim.take('a')).retryAfterMs).toBe(50); // the .550 order leaves at 1.550
  });

  it('caps a sliding minute at ratePerMin and says when the oldest order leaves it', () => {
    const { clock, lim } = clocked();
    for (let s = 0; s < 40; s++) {
      clock.t = T0 + s * 1000;
      expect(burst(lim, 'a', 10).accepted).toBe(10);
    }
    clock.t = T0 + 40_000;
    const d = refused(lim.take('a'));
    expect(d.window).toBe('minute');
    expect(d.retryAfterMs).toBe(20_000);
    expect(d.message).toBe("Too many orders: the account's limit of 400 orders per minute is used up; retry after 20 s");
    expect(lim.stats()).toEqual({ second: 0, minute: 400, day: 400, activeKeys: 1 });
    clock.t = T0 + 59_999;
    expect(refused(lim.take('a')).retryAfterMs).toBe(1);
    clock.t = T0 + 60_000;
    expect(burst(lim, 'a', 11).accepted).toBe(10);
  });

  it('caps the IST day at ratePerDay and opens again at IST midnight (18:30 UTC)', () => {
    const cfg = { ...KITE, ratePerDay: 20 };
    const evening = Date.parse('2025-01-06T18:00:00Z'); // 23:30 IST
    const { clock, lim } = clocked(cfg, evening);
    expect(burst(lim, 'a', 10).accepted).toBe(10);
    clock.t += 1000;
    expect(burst(lim, 'a', 10).accepted).toBe(10);
    clock.t += 1000;
    const d = refused(lim.take('a'));
    expect(d.window).toBe('day');
    expect(d.retryAfterMs).toBe(Date.parse('2025-01-06T18:30:00Z') - clock.t);
    expect(d.message).toBe("Too many orders: the account's limit of 20 orders per day (IST) is used up; retry after midnight IST, in 29 min 58 s");
    clock.t = Date.parse('2025-01-06T18:29:59.999Z');
    expect(refused(lim.take('a')).window).toBe('day');
    clock.t = Date.parse('2025-01-06T18:30:00Z');
    expect(lim.take('a').ok).toBe(true);
    expect(lim.stats().day).toBe(1);
  });

  it('keeps the day closed across UTC midnight, which falls at 05:30 IST', () => {
    const cfg = { ...KITE, ratePerDay: 10 };
    const { clock, lim } = clocked(cfg, Date.parse('2025-01-06T23:50:00Z')); // 05:20 IST on the 7th
    expect(burst(lim, 'a', 10).accepted).toBe(10);
    clock.t = Date.parse('2025-01-07T00:00:00Z');
    const d = refused(lim.take('a'));
    expect(d.window).toBe('day');
    expect(d.retryAfterMs).toBe(Date.parse('2025-01-07T18:30:00Z') - clock.t);
    expect(d.message).toContain('retry after midnight IST, in 18 h 30 min');
  });

  it('grants n slots all at once or none', () => {
    const { clock, lim } = clocked();
    for (let i = 0; i < 7; i++) {
      clock.t = T0 + i * 100;
      expect(lim.take('a').ok).toBe(true);
    }
    clock.t = T0 + 650;
    const d = refused(lim.take('a', 5));
    expect(d.window).toBe('second');
    expect(d.retryAfterMs).toBe(450); // two must leave: the second oldest (at 100) leaves at 1100
    expect(d.message).toBe("Too many orders: the account's limit of 10 orders per second is used up for an order needing 5; retry after 450 ms");
    expect(lim.stats().second).toBe(7);
    expect(lim.take('a', 3).ok).toBe(true);
    expect(lim.stats().second).toBe(10);
    clock.t = T0 + 1100;
    expect(lim.take('a', 2).ok).toBe(true);
  });

  it('throws for an n that no wait could grant, and for an n that is not a count', () => {
    const { lim } = clocked();
    expect(() => lim.take('a', 11)).toThrow(AppError);
    try {
      lim.take('a', 11);
    } catch (e) {
      expect((e as AppError).code).toBe('ORDER_RATE_BATCH_TOO_LARGE');
      expect((e as AppError).message).toBe(
        "An order needing 11 order requests at once can never pass Kite's limit of 10 orders per second: split it into parts of at most 10.",
      );
    }
    expect(() => lim.take('a', 0)).toThrow(/n must be a whole number of at least 1, got 0/);
    expect(() => lim.take('a', 1.5)).toThrow(/got 1.5/);
    expect(lim.stats()).toEqual({ second: 0, minute: 0, day: 0, activeKeys: 0 });
  });

  it('gives a key alone the whole budget', () => {
    const { lim } = clocked();
    const b = burst(lim, 'a', 11);
    expect(b.accepted).toBe(10);
    expect(refused(b.refusal!).window).toBe('second');
  });

  it('holds each of two active keys to half of each window while both fire bursts', () => {
    const { clock, lim } = clocked();
    expect(lim.take('a').ok).toBe(true);
    expect(lim.take('b').ok).toBe(true);
    clock.t += 10;
    const a = burst(lim, 'a', 10);
    expect(a.accepted).toBe(4);
    const d = refused(a.refusal!);
    expect(d.window).toBe('share');
    expect(d.retryAfterMs).toBe(990);
    expect(d.message).toBe(
      "Too many orders: this API key has used its share of the account's limit of 10 orders per second (5 of 5 while 2 keys place orders); retry after 990 ms",
    );
    expect(burst(lim, 'b', 10).accepted).toBe(4);
    expect(lim.stats()).toEqual({ second: 10, minute: 10, day: 10, activeKeys: 2 });

    // Each second the same: neither key can crowd the other out.
    for (let s = 1; s <= 5; s++) {
      clock.t = T0 + s * 1000 + 10;
      expect(burst(lim, 'a', 10).accepted).toBe(5);
      expect(burst(lim, 'b', 10).accepted).toBe(5);
    }
  });

  it('shares by ceil(limit / active keys), counting the requester', () => {
    const { lim } = clocked({ ...KITE, ratePerSec: 10 });
    lim.take('a');
    lim.take('b');
    const c = burst(lim, 'c', 10);
    expect(c.accepted).toBe(4); // ceil(10 / 3)
    expect(refused(c.refusal!).message).toContain('(4 of 4 while 3 keys place orders)');
  });

  it('keeps a refused key active: asking is what holds a share', () => {
    const { clock, lim } = clocked({ ...KITE, rateActiveMs: 5000 });
    expect(burst(lim, 'a', 10).accepted).toBe(10);
    expect(lim.take('b').ok).toBe(false); // b is refused, yet now active
    clock.t = T0 + 1000;
    expect(burst(lim, 'a', 10).accepted).toBe(5);
    expect(lim.stats().activeKeys).toBe(2);
  });

  it('stops counting a key that stays idle for rateActiveMs', () => {
    const { clock, lim } = clocked({ ...KITE, rateActiveMs: 5000 });
    lim.take('a');
    lim.take('b');
    clock.t = T0 + 4999;
    expect(lim.stats().activeKeys).toBe(2);
    expect(burst(lim, 'a', 10).accepted).toBe(5); // b still holds its share
    clock.t = T0 + 5000;
    expect(lim.stats().activeKeys).toBe(1);
    expect(burst(lim, 'a', 10).accepted).toBe(5); // the rest of the account's second, b's half included
    expect(lim.stats().second).toBe(10);
  });

  it('retries a share refusal exactly when its own oldest order leaves the window', () => {
    const run = (probe: number) => {
      const { clock, lim } = clocked();
      lim.take('b');
      for (let i = 0; i < 5; i++) {
        clock.t = T0 + i * 100;
        expect(lim.take('a').ok).toBe(true);
      }
      clock.t = T0 + 450;
      const d = refused(lim.take('a'));
      clock.t = T0 + probe;
      return { d, then: lim.take('a') };
    };
    const { d } = run(999);
    expect(d.window).toBe('share');
    expect(d.retryAfterMs).toBe(550);
    expect(run(999).then.ok).toBe(false);
    expect(run(1000).then.ok).toBe(true);
  });

  it('retries an order larger than a share when the other keys have gone idle', () => {
    const run = (probe: number) => {
      const { clock, lim } = clocked({ ...KITE, rateActiveMs: 5000 });
      lim.take('a');
      lim.take('b');
      clock.t = T0 + 3000;
      const d = refused(lim.take('a', 6)); // an iceberg of 6 legs; a's share is 5 while b is active
      clock.t = T0 + probe;
      return { d, then: lim.take('a', 6) };
    };
    const { d } = run(0);
    expect(d.window).toBe('share');
    expect(d.retryAfterMs).toBe(2000); // b's last request was at 0: idle from 5000
    expect(d.message).toContain('(0 of 5 while 2 keys place orders; this order needs 6)');
    expect(run(4999).then.ok).toBe(false);
    expect(run(5000).then.ok).toBe(true);
  });

  it('names the limit with the longest wait when several refuse', () => {
    const { clock, lim } = clocked({ ...KITE, ratePerMin: 15 });
    expect(burst(lim, 'a', 10).accepted).toBe(10);
    clock.t = T0 + 1000;
    expect(burst(lim, 'a', 5).accepted).toBe(5);
    clock.t = T0 + 1001;
    const d = refused(lim.take('a', 10));
    // second: the 5 at 1000 plus 10 more exceed 10 until 2000; minute: 10 must leave, at 60000.
    expect(d.window).toBe('minute');
    expect(d.retryAfterMs).toBe(60_000 - 1001);
  });

  it('does not reopen a window when the clock steps back', () => {
    const { clock, lim } = clocked();
    clock.t = T0 + 1000;
    expect(burst(lim, 'a', 10).accepted).toBe(10);
    clock.t = T0 - 5000;
    const d = refused(lim.take('a'));
    expect(d.window).toBe('second');
    expect(d.retryAfterMs).toBe(1000);
  });

  it('rejects a limit that is not a positive whole number, naming it', () => {
    expect(() => new OrderRateLimiter({ ...KITE, ratePerSec: 0 })).toThrow('OrderRateLimiter: ratePerSec must be a whole number of at least 1, got 0');
    expect(() => new OrderRateLimiter({ ...KITE, rateActiveMs: 1.5 })).toThrow(/rateActiveMs/);
  });

  it('formats waits as a person reads them, rounded up', () => {
    expect(formatWait(1)).toBe('1 ms');
    expect(formatWait(999)).toBe('999 ms');
    expect(formatWait(1000)).toBe('1 s');
    expect(formatWait(1001)).toBe('2 s');
    expect(formatWait(60_000)).toBe('1 min');
    expect(formatWait(125_000)).toBe('2 min 5 s');
    expect(formatWait(3 * 3600_000)).toBe('3 h');
    expect(formatWait(5 * 3600_000 + 11 * 60_000 + 1)).toBe('5 h 12 min');
  });
});
