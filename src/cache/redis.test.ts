/**
 * What only the Redis cache does: coalesce writes, lay values out as documented, keep prefixes
 * and databases apart, and ride out Redis going away. Redis databases 12 and 13.
 */
import net from 'node:net';
import { Writable } from 'node:stream';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { N, N_FIELDS } from '../core/tick.ts';
import { createLogger } from '../log.ts';
import { CacheError } from './cache.ts';
import { RedisCache, type RedisCacheOptions } from './redis.ts';
import { makeBar, makeTick } from '../../test/support/canonical-fixtures.ts';

const DB_A = 'redis://127.0.0.1:6379/12';
const DB_B = 'redis://127.0.0.1:6379/13';
let adminA: Redis;
let adminB: Redis;
const open: RedisCache[] = [];

beforeAll(async () => {
  adminA = new Redis(DB_A);
  adminB = new Redis(DB_B);
  await Promise.all([adminA.flushdb(), adminB.flushdb()]);
});
afterEach(async () => {
  await Promise.all(open.splice(0).map((c) => c.close()));
});
afterAll(async () => {
  await Promise.all([adminA.flushdb(), adminB.flushdb()]);
  await Promise.all([adminA.quit(), adminB.quit()]);
});

async function cache(opts: Partial<RedisCacheOptions> & { url?: string }, ready = true): Promise<RedisCache> {
  const c = new RedisCache({ url: DB_A, flushMs: 10_000, ...opts });
  open.push(c);
  if (ready) expect(await c.waitReady()).toBe(true);
  return c;
}

function capture() {
  const lines: string[] = [];
  const stream = new Writable({ write(chunk, _enc, cb) { lines.push(String(chunk)); cb(); } });
  return { lines, log: createLogger('info', 'test', stream) };
}

/** A TCP relay to the real Redis that can be taken down and brought back on the same port. */
async function relay() {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(6379, '127.0.0.1');
    sockets.add(client).add(upstream);
    client.pipe(upstream).pipe(client);
    const end = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    for (const s of [client, upstream]) {
      s.on('error', end);
      s.on('close', end);
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  return {
    url: `redis://127.0.0.1:${port}/12`,
    async down() {
      await new Promise<void>((r) => {
        server.close(() => r());
        for (const s of sockets) s.destroy();
      });
    },
    async up() {
      await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
    },
    close: () => new Promise<void>((r) => {
      for (const s of sockets) s.destroy();
      if (server.listening) server.close(() => r());
      else r();
    }),
  };
}

describe('RedisCache', () => {
  it('coalesces: 1000 puts of one token between flushes are one write per flush', async () => {
    const c = await cache({ prefix: 'coalesce:' });
    const t = makeTick(7, 100);
    for (let round = 1; round <= 3; round++) {
      for (let i = 0; i < 1000; i++) {
        t[N.PRICE] = round * 1000 + i;
        c.putTick(t, 0);
      }
      expect(c.stats().pending).toBe(1);
      await c.flush();
      expect(c.stats()).toMatchObject({ puts: round * 1000, writes: round, flushes: round, pending: 0, errors: 0 });
    }
    const raw = await adminA.getBuffer('coalesce:q:7');
    expect(new Float64Array(new Uint8Array(raw!).buffer)[N.PRICE]).toBe(3999);
    await c.flush(); // nothing pending: no round
    expect(c.stats().flushes).toBe(3);
  });

  it('flushes on its own every flushMs, one round for all changed tokens and bars', async () => {
    const c = await cache({ prefix: 'timer:', flushMs: 20 });
    for (let tok = 1; tok <= 200; tok++) c.putTick(makeTick(tok, tok), 0);
    c.putBar(makeBar(1, 60_000, 0, 5), 0);
    await expect.poll(() => c.stats().pending, { timeout: 5000, interval: 10 }).toBe(0);
    expect(c.stats().writes).toBe(201);
    expect(c.stats().flushes).toBe(1);
    expect(await adminA.exists('timer:q:200', 'timer:b:1')).toBe(2);
  });

  it('writes a round of N values in a constant number of Redis commands', async () => {
    let seq = 0;
    const c = await cache({ prefix: 'round:', stamp: { key: 'round:stamp', value: () => `1:${++seq}` } });
    const addr = /addr=(\S+)/.exec(String(await c.redis.client('INFO')))![1];
    const monitor = await new Redis(DB_A).monitor();
    // The commands Redis ran for the writer's connection, in order; Lua's own calls apart.
    const seen: string[] = [];
    let scripted = 0;
    monitor.on('monitor', (_time: string, args: string[], source: string) => {
      if (source === addr) seen.push(args[0].toLowerCase());
      else if (source === 'lua') scripted++;
    });
    /** Commands of one flush: everything the writer sent up to a marker ECHO sent after it. */
    async function commandsOf(round: () => void): Promise<string[]> {
      seen.length = 0;
      scripted = 0;
      round();
      await c.flush();
      await c.redis.echo('end-of-round');
      await expect.poll(() => seen.at(-1), { timeout: 5000, interval: 5 }).toBe('echo');
      return seen.slice(0, -1);
    }
    try {
      const tfs = [1000, 60_000, 300_000, 900_000, 86_400_000];
      const put = (tokens: number, price: number) => {
        for (let tok = 1; tok <= tokens; tok++) {
          c.putTick(makeTick(tok, price + tok), 0);
          for (const tf of tfs) c.putBar(makeBar(tok, tf, 0, price + tok), 0);
        }
      };
      // The first round on a connection sends the script's text; later rounds only its SHA1.
      expect(await commandsOf(() => put(2, 1))).toEqual(['mset', 'eval', 'set']);
      expect(await commandsOf(() => put(2, 100))).toEqual(['mset', 'evalsha', 'set']);
      expect(scripted).toBe(10);
      // 500 values: 100 quotes, 400 bars.
      expect(await commandsOf(() => put(100, 1000))).toEqual(['mset', 'evalsha', 'set']);
      expect(scripted).toBe(500);
      expect(c.stats()).toMatchObject({ pending: 0, errors: 0 });

      for (let tok = 1; tok <= 100; tok++) {
        expect(await adminA.getBuffer(`round:q:${tok}`)).toEqual(Buffer.from(makeTick(tok, 1000 + tok).buffer));
        const hash = await adminA.hgetallBuffer(`round:b:${tok}`);
        expect(Object.keys(hash).sort()).toEqual(['15m', '1d', '1m', '1s', '5m']);
        expect(hash['5m']).toEqual(Buffer.from(makeBar(tok, 300_000, 0, 1000 + tok).buffer));
      }
      expect(await adminA.get('round:stamp')).toBe('1:3');
    } finally {
      monitor.disconnect();
    }
  });

  it('fails only the bar Redis refuses, keeps it to retry and holds the stamp back', async () => {
    const c = await cache({ prefix: 'wrongtype:', stamp: { key: 'wrongtype:stamp', value: () => '1:1' } });
    await adminA.set('wrongtype:b:2', 'not a hash');
    c.putTick(makeTick(1, 10), 0);
    c.putBar(makeBar(1, 60_000, 0, 10), 0);
    c.putBar(makeBar(2, 60_000, 0, 20), 0);
    c.putBar(makeBar(3, 60_000, 0, 30), 0);
    await c.flush();
    expect(c.stats()).toMatchObject({ writes: 3, pending: 1, errors: 1 });
    expect(await adminA.hgetBuffer('wrongtype:b:3', '1m')).toEqual(Buffer.from(makeBar(3, 60_000, 0, 30).buffer));
    expect(await adminA.exists('wrongtype:q:1', 'wrongtype:b:1', 'wrongtype:stamp')).toBe(2);

    await adminA.del('wrongtype:b:2');
    await c.flush();
    expect(c.stats()).toMatchObject({ writes: 4, pending: 0 });
    expect(await adminA.hgetBuffer('wrongtype:b:2', '1m')).toEqual(Buffer.from(makeBar(2, 60_000, 0, 20).buffer));
    expect(await adminA.get('wrongtype:stamp')).toBe('1:1');
  });

  it('stores the documented layout: raw little-endian f64, quotes as strings, bars in one hash per token', async () => {
    const c = await cache({ prefix: 'layout:' });
    const t = makeTick(256265, 26_012.35, 4);
    const b = makeBar(256265, 60_000, 1_767_000_000_000, 26_010.5);
    c.putTick(t, 0);
    c.putBar(b, 0);
    c.putBar(makeBar(256265, 86_400_000, 1_766_946_600_000, 26_000), 0);
    await c.flush();
    expect(await adminA.getBuffer('layout:q:256265')).toEqual(Buffer.from(t.buffer));
    expect((await adminA.hkeys('layout:b:256265')).sort()).toEqual(['1d', '1m']);
    expect(await adminA.hgetBuffer('layout:b:256265', '1m')).toEqual(Buffer.from(b.buffer));
    const raw = (await adminA.getBuffer('layout:q:256265'))!;
    expect(raw.length).toBe(N_FIELDS * 8);
    expect(raw.readDoubleLE(N.PRICE * 8)).toBe(26_012.35);
  });

  it('answers its own tokens from memory before the flush (read your writes)', async () => {
    const c = await cache({ prefix: 'ryw:' });
    c.putTick(makeTick(9, 42), 0);
    expect((await c.getQuotes([9]))[0]!.price).toBe(42);
    expect(await adminA.exists('ryw:q:9')).toBe(0);
  });

  it('reads a value of another layout length as absent', async () => {
    const c = await cache({ prefix: 'old:' });
    await adminA.set('old:q:5', Buffer.alloc(400));
    await adminA.hset('old:b:5', '1m', Buffer.alloc(64));
    expect(await c.getQuotes([5])).toEqual([null]);
    expect(await c.getBar(5, 60_000)).toBeNull();
    expect(await c.getBars(5)).toEqual([]);
  });

  it('keeps prefixes apart within a database and databases apart under one prefix', async () => {
    const a = await cache({ prefix: 'envA:' });
    a.putTick(makeTick(7, 70), 0);
    a.putBar(makeBar(7, 60_000, 0, 7), 0);
    await a.flush();
    const otherPrefix = await cache({ prefix: 'envB:' });
    const otherDb = await cache({ url: DB_B, prefix: 'envA:' });
    const samePlace = await cache({ prefix: 'envA:' });
    expect(await otherPrefix.getQuotes([7])).toEqual([null]);
    expect(await otherPrefix.getBars(7)).toEqual([]);
    expect(await otherDb.getQuotes([7])).toEqual([null]);
    expect(await adminB.dbsize()).toBe(0);
    expect((await samePlace.getQuotes([7]))[0]!.price).toBe(70);
    expect((await adminA.keys('env*')).sort()).toEqual(['envA:b:7', 'envA:q:7']);
  });

  it('writes what is pending on close', async () => {
    const c = await cache({ prefix: 'close:' });
    c.putTick(makeTick(3, 33), 0);
    c.putBar(makeBar(3, 60_000, 0, 3), 0);
    await c.close();
    const r = await cache({ prefix: 'close:' });
    expect((await r.getQuotes([3]))[0]!.price).toBe(33);
    expect((await r.getBar(3, 60_000))!.close).toBe(3);
  });

  it('survives an unreachable Redis: puts never throw, errors counted, latest values kept, reads of unknown tokens refused', async () => {
    const { lines, log } = capture();
    const c = await cache({ url: 'redis://127.0.0.1:1/0', prefix: 'down:', log, logEveryMs: 60_000, redis: { retryStrategy: () => 50 } }, false);
    const t = makeTick(7, 100);
    for (let i = 0; i < 100; i++) {
      t[N.PRICE] = 100 + i;
      expect(() => c.putTick(t, 0)).not.toThrow();
    }
    c.putBar(makeBar(7, 60_000, 0, 1), 0);
    for (let i = 0; i < 5; i++) await expect(c.flush()).resolves.toBeUndefined();
    const s = c.stats();
    expect(s.errors).toBeGreaterThanOrEqual(5);
    expect(s.pending).toBe(2);
    expect(s.writes).toBe(0);
    expect((await c.getQuotes([7]))[0]!.price).toBe(199);
    const err = await c.getQuotes([8]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CacheError);
    expect((err as CacheError).code).toBe('CACHE_UNAVAILABLE');
    expect(await c.ping()).toBe(false);
    // Bounded logging: one line for all those failures within logEveryMs.
    expect(lines.length).toBe(1);
    const started = Date.now();
    await c.close();
    expect(Date.now() - started).toBeLessThan(2000);
  });

  it('writes the latest values by itself once Redis is back, without a backlog', async () => {
    const r = await relay();
    try {
      const c = await cache({ url: r.url, prefix: 'back:', flushMs: 20, redis: { retryStrategy: () => 50 } });
      const t = makeTick(7, 100);
      c.putTick(t, 0);
      await c.flush();
      expect(c.stats().writes).toBe(1);

      await r.down();
      for (let i = 1; i <= 500; i++) {
        t[N.PRICE] = 100 + i;
        c.putTick(t, 0);
      }
      await c.flush();
      expect(c.stats().errors).toBeGreaterThan(0);
      expect(c.stats().pending).toBe(1);

      await r.up();
      // Nobody calls flush: reconnecting is enough. Wait for the cache's own account (Redis may
      // hold the value a moment before the writer has read Redis's reply).
      await expect.poll(() => c.stats().pending, { timeout: 10_000, interval: 25 }).toBe(0);
      expect((await adminA.getBuffer('back:q:7'))!.readDoubleLE(N.PRICE * 8)).toBe(600);
      // One value went out after the outage, not the 500 puts made during it.
      expect(c.stats().writes).toBe(2);
    } finally {
      await r.close();
    }
  });
});
