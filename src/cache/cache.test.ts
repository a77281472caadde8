/**
 * One suite, both caches: whatever the in-process cache answers, the Redis one answers the same
 * (read back by a second instance, so values really went through Redis). Redis database 11.
 */
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { N, N_FIELDS, NType } from '../core/tick.ts';
import { BAR_FIELDS, barToObject } from '../core/bar.ts';
import type { QuoteCache } from './cache.ts';
import { createCache } from './index.ts';
import { silentLogger } from '../log.ts';
import { MemoryCache } from './memory.ts';
import { quoteFromTick } from './quote.ts';
import { RedisCache } from './redis.ts';
import { BarFlag, makeBar, makeTick } from '../../test/support/canonical-fixtures.ts';

const REDIS_URL = 'redis://127.0.0.1:6379/11';
let admin: Redis;

beforeAll(async () => {
  admin = new Redis(REDIS_URL);
  await admin.flushdb();
});
afterAll(async () => {
  await admin.flushdb();
  await admin.quit();
});

interface Pair {
  /** Takes the puts. */
  writer: QuoteCache;
  /** Answers the reads: the writer itself in memory, a second process's view for Redis. */
  reader: QuoteCache;
}

let prefixSeq = 0;
const open: QuoteCache[] = [];

const kinds: [string, () => Promise<Pair>][] = [
  ['memory', async () => {
    const c = new MemoryCache();
    open.push(c);
    return { writer: c, reader: c };
  }],
  ['redis', async () => {
    // A fresh prefix per test keeps tests apart within the file's database.
    const prefix = `t${++prefixSeq}:`;
    const writer = new RedisCache({ url: REDIS_URL, prefix, flushMs: 10_000 });
    const reader = new RedisCache({ url: REDIS_URL, prefix, flushMs: 10_000 });
    open.push(writer, reader);
    expect(await writer.waitReady()).toBe(true);
    expect(await reader.waitReady()).toBe(true);
    return { writer, reader };
  }],
];

afterEach(async () => {
  await Promise.all(open.splice(0).map((c) => c.close()));
});

describe.each(kinds)('%s cache', (_kind, make) => {
  it('round-trips every tick field exactly, NaN included, at any ring offset', async () => {
    const { writer, reader } = await make();
    const ring = new Float64Array(N_FIELDS * 4);
    const t = makeTick(12345, 117.35, 9, { DAY_VWAP: NaN });
    ring.set(t, N_FIELDS * 3);
    writer.putTick(ring, N_FIELDS * 3);
    await writer.flush();
    const [q] = await reader.getQuotes([12345]);
    expect(q).toEqual(quoteFromTick(t, 0));
    expect(q!.dayVwap).toBeNull();
    expect(q!.volume).toBe(3_000_000_009);
  });

  it('keeps the latest analytics per key as JSON, for another process to read', async () => {
    const { writer, reader } = await make();
    const utf8 = new TextEncoder();
    writer.putAnalytics('NIFTY:2026-12-08', utf8.encode(JSON.stringify({ seq: 1, atmIv: 0.12 })));
    writer.putAnalytics('NIFTY:2026-12-08', utf8.encode(JSON.stringify({ seq: 2, atmIv: 0.13 })));
    writer.putAnalytics('breadth', utf8.encode('{"advances":30}').subarray(0));
    await writer.flush();
    expect(JSON.parse((await reader.getAnalytics('NIFTY:2026-12-08'))!)).toEqual({ seq: 2, atmIv: 0.13 });
    expect(JSON.parse((await reader.getAnalytics('breadth'))!)).toEqual({ advances: 30 });
    expect(await reader.getAnalytics('NIFTY:2001-01-01')).toBeNull();
  });

  it('answers null for tokens never seen, in the order asked', async () => {
    const { writer, reader } = await make();
    writer.putTick(makeTick(2, 20), 0);
    writer.putTick(makeTick(4, 40), 0);
    await writer.flush();
    const qs = await reader.getQuotes([1, 2, 3, 4, 5]);
    expect(qs.map((q) => q?.price ?? null)).toEqual([null, 20, null, 40, null]);
    expect(await reader.getQuotes([])).toEqual([]);
  });

  it('keeps the latest tick per token', async () => {
    const { writer, reader } = await make();
    const t = makeTick(7, 100);
    for (let i = 1; i <= 1000; i++) {
      t[N.PRICE] = 100 + i / 20;
      t[N.SEQ] = i;
      writer.putTick(t, 0);
    }
    await writer.flush();
    const [q] = await reader.getQuotes([7]);
    expect(q!.price).toBe(150);
    expect(writer.stats().puts).toBe(1000);
  });

  it('skips quarantined ticks', async () => {
    const { writer, reader } = await make();
    writer.putTick(makeTick(7, 100), 0);
    writer.putTick(makeTick(7, 999, 2, { TYPE: NType.QUARANTINE }), 0);
    await writer.flush();
    expect((await reader.getQuotes([7]))[0]!.price).toBe(100);
    expect(writer.stats().skipped).toBe(1);
  });

  it('keeps the latest bar per token and timeframe, closed or in progress, and lists them shortest first', async () => {
    const { writer, reader } = await make();
    const day = 86_400_000;
    const m1 = makeBar(7, 60_000, 1_767_000_000_000, 100);
    const m5 = makeBar(7, 300_000, 1_767_000_000_000, 101, BarFlag.CLOSED);
    const d1 = makeBar(7, day, 1_766_946_600_000, 102);
    d1[9] = NaN; // VWAP of a bar without volume
    for (const b of [d1, m5, m1]) writer.putBar(b, 0);
    const m1later = makeBar(7, 60_000, 1_767_000_060_000, 103, BarFlag.CLOSED | BarFlag.LATE);
    writer.putBar(m1later, 0);
    writer.putBar(makeBar(7, 60_000, 1_766_999_940_000, 1), 0); // older: skipped
    writer.putBar(makeBar(8, 60_000, 1_767_000_000_000, 200), 0);
    await writer.flush();

    expect(await reader.getBar(7, 60_000)).toEqual(barToObject(m1later, 0));
    expect(await reader.getBar(7, 300_000)).toEqual(barToObject(m5, 0));
    expect((await reader.getBar(7, day))!.vwap).toBeNull();
    expect(await reader.getBar(7, 900_000)).toBeNull();
    expect(await reader.getBar(9, 60_000)).toBeNull();
    const bars = await reader.getBars(7);
    expect(bars.map((b) => [b.tfMs, b.close])).toEqual([[60_000, 103], [300_000, 101], [day, 102]]);
    expect(await reader.getBars(9)).toEqual([]);
    expect(writer.stats().skipped).toBe(1);
  });

  it('reads a bar record at any offset of the aggregator state array', async () => {
    const { writer, reader } = await make();
    const state = new Float64Array((BAR_FIELDS + 2) * 3);
    const b = makeBar(11, 60_000, 1_767_000_000_000, 55.5);
    state.set(b, (BAR_FIELDS + 2) * 2);
    writer.putBar(state, (BAR_FIELDS + 2) * 2);
    await writer.flush();
    expect(await reader.getBar(11, 60_000)).toEqual(barToObject(b, 0));
  });

  it('pings, closes idempotently, and skips puts after close', async () => {
    const { writer } = await make();
    expect(await writer.ping()).toBe(true);
    await writer.close();
    await writer.close();
    writer.putTick(makeTick(1, 1), 0);
    expect(writer.stats().skipped).toBe(1);
    expect(writer.stats().puts).toBe(0);
  });
});

describe('createCache', () => {
  it('picks Redis when REDIS_URL is set and in-process otherwise', async () => {
    const base = { redisPrefix: 'n50:', cacheFlushMs: 50 };
    const mem = createCache({ ...base, redisUrl: null }, silentLogger);
    const red = createCache({ ...base, redisUrl: REDIS_URL }, silentLogger);
    open.push(mem, red);
    expect(mem.kind).toBe('memory');
    expect(red.kind).toBe('redis');
    expect(red).toBeInstanceOf(RedisCache);
  });
});
