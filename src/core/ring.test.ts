import { describe, expect, it } from 'vitest';
import { F, WORDS } from './packet-slot.ts';
import {
  createRingBuffer, DEFAULT_SPIN_US, formatWaitPolicy, MAX_SPIN_US, PARK, parseWaitPolicy, RingConsumer, RingProducer, ringWait,
  setRingWait, SpinBudget,
} from './ring.ts';

function push(p: RingProducer, token: number): boolean {
  const b = p.claim();
  if (b < 0) return false;
  p.views.u32[b + F.TOKEN] = token;
  p.commit();
  return true;
}

describe('ring', () => {
  it('keeps order across many wrap-arounds', () => {
    const sab = createRingBuffer(8);
    const p = new RingProducer(sab);
    const c = new RingConsumer(sab);
    const seen: number[] = [];
    let next = 0;
    for (let round = 0; round < 1000; round++) {
      const k = (round % 7) + 1;
      for (let i = 0; i < k; i++) expect(push(p, next++)).toBe(true);
      p.publish();
      c.drain((v, b) => seen.push(v.u32[b + F.TOKEN]));
    }
    expect(seen).toEqual(Array.from({ length: next }, (_, i) => i));
    expect(p.drops()).toBe(0);
  });

  it('refuses and counts records when full, losing none it accepted', () => {
    const sab = createRingBuffer(4);
    const p = new RingProducer(sab);
    const c = new RingConsumer(sab);
    for (let i = 0; i < 4; i++) expect(push(p, i)).toBe(true);
    expect(p.free()).toBe(0);
    expect(push(p, 99)).toBe(false);
    expect(p.drops()).toBe(1);
    p.publish();
    expect(p.highWater()).toBe(4);
    const seen: number[] = [];
    c.drain((v, b) => seen.push(v.u32[b + F.TOKEN]));
    expect(seen).toEqual([0, 1, 2, 3]);
    expect(p.free()).toBe(4);
  });

  it('hides claimed records until publish', () => {
    const sab = createRingBuffer(4);
    const p = new RingProducer(sab);
    const c = new RingConsumer(sab);
    push(p, 1);
    expect(c.available()).toBe(0);
    p.publish();
    expect(c.available()).toBe(1);
  });

  it('wakes a sleeping consumer on publish and on close', async () => {
    const sab = createRingBuffer(4);
    const p = new RingProducer(sab);
    const c = new RingConsumer(sab);
    const waiting = c.waitForData(5000);
    setTimeout(() => { push(p, 7); p.publish(); }, 20);
    const t0 = Date.now();
    await waiting;
    expect(Date.now() - t0).toBeLessThan(2000);
    expect(c.available()).toBe(1);
    c.drain(() => {});
    const closing = c.waitForData(5000);
    setTimeout(() => p.close(), 20);
    await closing;
    expect(c.closed()).toBe(true);
  });

  it('rejects capacities that are not powers of two', () => {
    expect(() => createRingBuffer(10)).toThrow(/power of two/);
  });

  it('slots are 8-byte aligned so the f64 receive time reads back', () => {
    const sab = createRingBuffer(4);
    const p = new RingProducer(sab);
    const b = p.claim();
    expect(b % 2).toBe(0);
    expect(WORDS % 2).toBe(0);
    p.views.f64[(b >> 1) + F.RECV_TIME_US_F64] = 1.5e15;
    p.commit();
    p.publish();
    new RingConsumer(sab).drain((v, base) => expect(v.f64[(base >> 1) + F.RECV_TIME_US_F64]).toBe(1.5e15));
  });
});

describe('ring with several consumers', () => {
  it('reuses a slot only when every consumer has passed it', () => {
    const sab = createRingBuffer(4, WORDS, 2);
    const p = new RingProducer(sab);
    const fast = new RingConsumer(sab, 0);
    const slow = new RingConsumer(sab, 1);
    for (let i = 0; i < 4; i++) expect(push(p, i)).toBe(true);
    p.publish();
    fast.drain(() => {});
    expect(p.free()).toBe(0);
    expect(push(p, 4)).toBe(false);
    const got: number[] = [];
    slow.drain((v, b) => got.push(v.u32[b + F.TOKEN]));
    expect(got).toEqual([0, 1, 2, 3]);
    expect(p.free()).toBe(4);
  });

  it('gives each consumer every record, in order, at its own pace', () => {
    const sab = createRingBuffer(16, 4, 3);
    const p = new RingProducer(sab);
    const cs = [0, 1, 2].map((k) => new RingConsumer(sab, k));
    const got: number[][] = [[], [], []];
    let next = 0;
    for (let round = 0; round < 500; round++) {
      const room = p.free();
      for (let i = 0; i < Math.min(room, (round % 5) + 1); i++) {
        const b = p.claim();
        p.views.u32[b] = next++;
        p.commit();
      }
      p.publish();
      cs.forEach((c, k) => {
        if (round % (k + 1) === 0) c.drain((v, b) => got[k].push(v.u32[b]));
      });
    }
    cs.forEach((c, k) => c.drain((v, b) => got[k].push(v.u32[b])));
    for (const g of got) expect(g).toEqual(Array.from({ length: next }, (_, i) => i));
    expect(p.drops()).toBe(0);
  });

  it('wakes a producer waiting for space when the slowest consumer releases', async () => {
    const sab = createRingBuffer(4, WORDS, 2);
    const p = new RingProducer(sab);
    const a = new RingConsumer(sab, 0);
    const b = new RingConsumer(sab, 1);
    for (let i = 0; i < 4; i++) push(p, i);
    p.publish();
    a.drain(() => {});
    const waiting = p.waitForSpace(2, 5000);
    setTimeout(() => b.drain(() => {}), 20);
    const t0 = Date.now();
    await waiting;
    expect(Date.now() - t0).toBeLessThan(2000);
    expect(p.free()).toBe(4);
  });

  it('hasRoom says what free() > 0 says, without counting a drop', () => {
    const sab = createRingBuffer(4, WORDS, 2);
    const p = new RingProducer(sab);
    const a = new RingConsumer(sab, 0);
    const b = new RingConsumer(sab, 1);
    for (let round = 0; round < 20; round++) {
      while (p.hasRoom()) push(p, round);
      expect(p.free()).toBe(0);
      p.publish();
      a.drain(() => {});
      expect(p.hasRoom()).toBe(false); // the slower consumer still holds every slot
      if (round % 2 === 0) b.drain(() => {}, 1);
      else b.drain(() => {});
      expect(p.hasRoom()).toBe(p.free() > 0);
      expect(p.hasRoom()).toBe(true);
    }
    expect(p.drops()).toBe(0);
  });

  it('refuses a consumer index the ring was not made for', () => {
    expect(() => new RingConsumer(createRingBuffer(4, WORDS, 2), 2)).toThrow(/consumer 2/);
  });
});

describe('peek and release', () => {
  it('keeps peeked records in place until released, and a new consumer resumes at the release', () => {
    const sab = createRingBuffer(8);
    const p = new RingProducer(sab);
    for (let i = 0; i < 6; i++) push(p, i);
    p.publish();
    const c = new RingConsumer(sab);
    const got: number[] = [];
    expect(c.peek((v, b) => got.push(v.u32[b + F.TOKEN]), 4)).toBe(4);
    expect(c.peek((v, b) => got.push(v.u32[b + F.TOKEN]))).toBe(2);
    expect(got).toEqual([0, 1, 2, 3, 4, 5]);
    expect(c.unreleased()).toBe(6);
    expect(p.free()).toBe(2);
    c.release(3);
    expect(p.free()).toBe(5);
    expect(c.position()).toBe(3);
    // The consumer's thread dies: a new one starts at the last release and sees 3..5 again.
    const again: number[] = [];
    new RingConsumer(sab).peek((v, b) => again.push(v.u32[b + F.TOKEN]));
    expect(again).toEqual([3, 4, 5]);
    expect(() => c.release(4)).toThrow(/exceeds/);
  });
});

describe('waiting', () => {
  it('reads PIPELINE_WAIT policies and refuses the rest', () => {
    expect(parseWaitPolicy('park')).toEqual({ strategy: 'park', spinUs: 0 });
    expect(parseWaitPolicy('spin-park:50')).toEqual({ strategy: 'spin-park', spinUs: 50 });
    expect(parseWaitPolicy('adaptive')).toEqual({ strategy: 'adaptive', spinUs: DEFAULT_SPIN_US });
    for (const bad of ['park:5', 'spin-park:0', `spin-park:${MAX_SPIN_US + 1}`, 'spin', 'spin-park:-1', 'adaptive:1e3', '']) {
      expect(parseWaitPolicy(bad), bad).toBeNull();
    }
    for (const s of ['park', 'spin-park:7', 'adaptive:500']) expect(formatWaitPolicy(parseWaitPolicy(s)!)).toBe(s);
  });

  it('carries its wait policy in the ring header, park unless told', () => {
    const sab = createRingBuffer(4);
    expect(ringWait(sab)).toEqual(PARK);
    setRingWait(sab, { strategy: 'adaptive', spinUs: 300 });
    expect(ringWait(sab)).toEqual({ strategy: 'adaptive', spinUs: 300 });
  });

  it('adaptive spins after a short wait and parks at once after a long one', () => {
    const b = new SpinBudget({ strategy: 'adaptive', spinUs: 100 });
    expect(b.next()).toBe(0); // nothing known yet
    b.waited(40);
    expect(b.next()).toBe(100);
    b.waited(5000);
    expect(b.next()).toBe(0);
    expect(new SpinBudget({ strategy: 'spin-park', spinUs: 100 }).next()).toBe(100);
    expect(new SpinBudget(PARK).next()).toBe(0);
  });

  for (const policy of [{ strategy: 'spin-park', spinUs: 200 }, { strategy: 'adaptive', spinUs: 200 }] as const) {
    it(`${formatWaitPolicy(policy)}: returns at once with records there, and wakes on publish and on close after its spin`, async () => {
      const sab = createRingBuffer(4);
      setRingWait(sab, policy);
      const p = new RingProducer(sab);
      const c = new RingConsumer(sab);
      push(p, 1);
      p.publish();
      await c.waitForData(5000);
      expect(c.drain(() => {})).toBe(1);
      for (let i = 0; i < 3; i++) {
        // Published 20 ms on: past any spin, so the consumer has parked and the notify wakes it.
        const waiting = c.waitForData(5000);
        setTimeout(() => { push(p, 7); p.publish(); }, 20);
        const t0 = Date.now();
        await waiting;
        expect(Date.now() - t0).toBeLessThan(2000);
        expect(c.drain(() => {})).toBe(1);
      }
      const closing = c.waitForData(5000);
      setTimeout(() => p.close(), 20);
      await closing;
      expect(c.closed()).toBe(true);
    });
  }
});
