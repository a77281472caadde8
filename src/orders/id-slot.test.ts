/**
 * Order ids unique across gateways: slots leased in Redis (database 9, a prefix per test) and ids
 * made in them never meet, even at the same microsecond; a lost lease is taken again.
 */
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { until } from '../../test/support/until.ts';
import { IdSlotLease } from './id-slot.ts';
import { IdSource } from './model.ts';

const URL = 'redis://127.0.0.1:6379/9';
let redis: Redis;
const prefixes: string[] = [];
const prefix = () => {
  const p = `test:ids:${process.pid}:${randomBytes(4).toString('hex')}:`;
  prefixes.push(p);
  return p;
};

beforeAll(() => {
  redis = new Redis(URL);
});
afterAll(async () => {
  for (const p of prefixes) {
    const keys = await redis.keys(`${p}*`);
    if (keys.length > 0) await redis.del(...keys);
  }
  await redis.quit();
});

describe('IdSource with a slot', () => {
  it('makes ids two processes on one clock never share, each still increasing', () => {
    const frozen = () => 1_767_225_600_000; // both in the same microsecond, every time
    const a = new IdSource(null, frozen, { slot: 3, slots: 1000 });
    const b = new IdSource(null, frozen, { slot: 4, slots: 1000 });
    const ia = Array.from({ length: 500 }, () => a.next());
    const ib = Array.from({ length: 500 }, () => b.next());
    expect(new Set([...ia, ...ib]).size).toBe(1000);
    for (const ids of [ia, ib]) for (let i = 1; i < ids.length; i++) expect(BigInt(ids[i]) > BigInt(ids[i - 1])).toBe(true);
    // Without a slot, the same clock gives the same ids: what the slots are for.
    const c = new IdSource(null, frozen);
    const d = new IdSource(null, frozen);
    expect(c.next()).toBe(d.next());
  });

  it('continues past stored ids, with or without slots', () => {
    const s = new IdSource(null, () => 1000, { slot: 7, slots: 1000 });
    s.observe('5000000007');
    expect(s.next()).toBe('5000001007');
    const plain = new IdSource(null, () => 1000);
    plain.observe('5000000007'); // a slotted id read by a single process: it goes on above it
    expect(plain.next()).toBe('5000000008');
  });
});

describe('IdSlotLease', () => {
  it('gives gateways different slots, refuses one too many, and frees a slot at close', async () => {
    const p = prefix();
    const a = await IdSlotLease.acquire({ redis, prefix: p, slots: 2 });
    const b = await IdSlotLease.acquire({ redis, prefix: p, slots: 2 });
    expect(new Set([a.slot, b.slot])).toEqual(new Set([0, 1]));
    await expect(IdSlotLease.acquire({ redis, prefix: p, slots: 2 })).rejects.toMatchObject({ code: 'ORDER_ID_SLOTS_FULL' });
    await a.close();
    const c = await IdSlotLease.acquire({ redis, prefix: p, slots: 2 });
    expect(c.slot).toBe(a.slot);
    await Promise.all([b.close(), c.close()]);
  });

  it('takes a slot again when its lease was lost, and keeps it renewed', async () => {
    const p = prefix();
    const lease = await IdSlotLease.acquire({ redis, prefix: p, slots: 4, ttlMs: 300 });
    const key = (n: number) => `${p}{orders}:ids:slot:${n}`;
    const mine = await redis.get(key(lease.slot));
    expect(mine).not.toBeNull();
    await redis.del(key(lease.slot)); // as a Redis that lost its data
    await until('the lease to be taken again', async () => (await redis.get(key(lease.slot))) === mine);
    // Held with a TTL, as every lease is, and renewed from then on.
    const ttl = await redis.pttl(key(lease.slot));
    expect(ttl).toBeGreaterThan(0);
    await lease.close();
    expect(await redis.exists(key(lease.slot))).toBe(0);
  });
});

describe('IdSlotLease adopt', () => {
  it('gives each working order to one gateway: its placer while alive, then one adopter', async () => {
    const p = prefix();
    const a = await IdSlotLease.acquire({ redis, prefix: p, slots: 1000 });
    const b = await IdSlotLease.acquire({ redis, prefix: p, slots: 1000 });
    const c = await IdSlotLease.acquire({ redis, prefix: p, slots: 1000 });
    const clock = () => 1_767_225_600_000;
    const ofA = new IdSource(null, clock, a).next();
    const ofB = new IdSource(null, clock, b).next();
    // Both alive: each works its own, nobody else's.
    expect([...(await a.adopt([ofA, ofB]))]).toEqual([ofA]);
    expect([...(await b.adopt([ofA, ofB]))]).toEqual([ofB]);
    expect([...(await c.adopt([ofA, ofB]))]).toEqual([]);
    // A gone: its order goes to exactly one of the others, and stays with it.
    await a.close();
    const byB = await b.adopt([ofA]);
    const byC = await c.adopt([ofA]);
    expect(byB.size + byC.size).toBe(1);
    const adopter = byB.size === 1 ? b : c;
    const other = adopter === b ? c : b;
    expect((await adopter.adopt([ofA])).has(ofA)).toBe(true);
    // The adopter gone too: the last one takes it over.
    await adopter.close();
    expect((await other.adopt([ofA])).has(ofA)).toBe(true);
    await other.close();
  });
});
