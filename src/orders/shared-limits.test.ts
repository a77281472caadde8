/**
 * The account's order budget in Redis (Redis database 9, a unique key prefix per test): decided as
 * the in-memory limiter decides, to the message and the millisecond, whichever client asks; never
 * more than the limit across clients taking at once; refused, not passed, when Redis is away.
 */
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import fc from 'fast-check';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SharedStateUnavailable } from './errors.ts';
import { OrderRateLimiter, type OrderRateConfig } from './rate-limit.ts';
import { RedisRateLimiter } from './shared-limits.ts';

const URL = 'redis://127.0.0.1:6379/9';
const KITE: OrderRateConfig = { ratePerSec: 10, ratePerMin: 400, ratePerDay: 5000, rateActiveMs: 60_000 };
const prefixes: string[] = [];
let a: Redis;
let b: Redis;

const prefix = (): string => {
  const p = `test:rl:${process.pid}:${randomBytes(4).toString('hex')}:`;
  prefixes.push(p);
  return p;
};

beforeAll(() => {
  a = new Redis(URL, { connectionName: 'rl-test-a' });
  b = new Redis(URL, { connectionName: 'rl-test-b' });
});

afterAll(async () => {
  for (const p of prefixes) {
    const keys = await a.keys(`${p}*`);
    if (keys.length > 0) await a.del(...keys);
  }
  await Promise.all([a.quit(), b.quit()]);
});

describe('RedisRateLimiter', () => {
  it('decides every take as the in-memory limiter does, with the same retryAfterMs and message, across an IST midnight', async () => {
    // 10 s before IST midnight, so runs cross into the next IST day.
    const start = Date.parse('2025-01-06T18:29:50Z');
    const config = fc.record({
      ratePerSec: fc.integer({ min: 1, max: 6 }),
      ratePerMin: fc.integer({ min: 1, max: 15 }),
      ratePerDay: fc.integer({ min: 1, max: 30 }),
      rateActiveMs: fc.integer({ min: 1, max: 3000 }),
    });
    const event = fc.record({ gap: fc.integer({ min: 0, max: 700 }), n: fc.integer({ min: 1, max: 5 }), key: fc.constantFrom('a', 'b', 'c') });
    await fc.assert(
      fc.asyncProperty(config, fc.array(event, { minLength: 1, maxLength: 60 }), async (cfg, events) => {
        const clock = { t: start };
        const mem = new OrderRateLimiter(cfg, () => clock.t);
        const p = prefix();
        // Two clients on one prefix: two gateways.
        const gw = [a, b].map((redis) => new RedisRateLimiter({ redis, config: cfg, prefix: p, clock: () => clock.t }));
        let i = 0;
        for (const e of events) {
          clock.t += e.gap;
          const maxN = Math.min(cfg.ratePerSec, cfg.ratePerMin, cfg.ratePerDay);
          if (e.n > maxN) {
            await expect(gw[i % 2].take(e.key, e.n)).rejects.toMatchObject({ code: 'ORDER_RATE_BATCH_TOO_LARGE' });
            continue;
          }
          const want = mem.take(e.key, e.n);
          const got = await gw[i++ % 2].take(e.key, e.n);
          expect(got).toEqual(want);
        }
        expect(await gw[0].stats()).toEqual(mem.stats());
      }),
      { numRuns: 200 },
    );
  });

  it('lets no more than the account limit through when two gateways take at the same instant on Redis time', async () => {
    const p = prefix();
    const gw = [a, b].map((redis) => new RedisRateLimiter({ redis, config: KITE, prefix: p }));
    // 40 requests from 4 keys, half through each client, all sent before any answer.
    const keys = ['k1', 'k2', 'k3', 'k4'];
    const decisions = await Promise.all(Array.from({ length: 40 }, (_, i) => gw[i % 2].take(keys[i % 4])));
    const ok = decisions.filter((d) => d.ok).length;
    const s = await gw[0].stats();
    // Within one second (the burst) at most 10; and exactly what stats() counts.
    expect(ok).toBeLessThanOrEqual(10);
    expect(s.second).toBe(ok);
    expect(s.activeKeys).toBe(4);
    const refused = decisions.find((d) => !d.ok);
    expect(refused).toMatchObject({ ok: false });
    if (refused !== undefined && !refused.ok) {
      expect(['second', 'share']).toContain(refused.window);
      expect(refused.retryAfterMs).toBeGreaterThan(0);
      expect(refused.retryAfterMs).toBeLessThanOrEqual(1000);
      expect(refused.message).toMatch(/retry after (\d+ ms|1 s)$/); // 1000 ms reads as 1 s
    }
  });

  it('shares the budget fairly between keys whose requests arrive at different gateways', async () => {
    const p = prefix();
    const clock = { t: Date.parse('2025-01-06T04:00:00Z') };
    const [ga, gb] = [a, b].map((redis) => new RedisRateLimiter({ redis, config: KITE, prefix: p, clock: () => clock.t }));
    // Alice alone takes what she likes; once Bob is active (on the other gateway) she is held to ceil(10 / 2).
    expect(await ga.take('alice', 4)).toEqual({ ok: true });
    expect(await gb.take('bob', 1)).toEqual({ ok: true });
    expect(await ga.take('alice', 1)).toEqual({ ok: true });
    const d = await ga.take('alice', 1);
    expect(d).toMatchObject({ ok: false, window: 'share', retryAfterMs: 1000 });
    if (!d.ok) expect(d.message).toContain('(5 of 5 while 2 keys place orders)');
    // Bob still has his half.
    expect(await gb.take('bob', 4)).toEqual({ ok: true });
  });

  it('keeps time monotonic: a clock stepped back cannot reopen the second', async () => {
    const p = prefix();
    const clock = { t: Date.parse('2025-01-06T04:00:00Z') };
    const lim = new RedisRateLimiter({ redis: a, config: { ...KITE, ratePerSec: 2 }, prefix: p, clock: () => clock.t });
    expect(await lim.take('k', 2)).toEqual({ ok: true });
    clock.t -= 5000;
    expect(await lim.take('k')).toMatchObject({ ok: false, window: 'second', retryAfterMs: 1000 });
  });

  it('refuses with SharedStateUnavailable, naming what to check, when Redis cannot be reached', async () => {
    // A port that refuses connections: listen, note it, close.
    const port = await new Promise<number>((resolve) => {
      const s = net.createServer().listen(0, '127.0.0.1', () => {
        const p = (s.address() as net.AddressInfo).port;
        s.close(() => resolve(p));
      });
    });
    const dead = new Redis({ port, host: '127.0.0.1', lazyConnect: true, enableOfflineQueue: false, maxRetriesPerRequest: 0, retryStrategy: () => null });
    dead.on('error', () => {});
    const lim = new RedisRateLimiter({ redis: dead, config: KITE, prefix: prefix() });
    const err = await lim.take('k').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SharedStateUnavailable);
    expect((err as Error).message).toMatch(/no order was sent.*REDIS_URL/);
    dead.disconnect();
  });
});
