import { describe, expect, it } from 'vitest';
import { encodeFrame } from '../../src/kite/codec.ts';
import { Market } from '../../src/kite/sim/market.ts';
import { Front } from '../../src/front.ts';
import { OutputPump, Pipeline } from '../../src/pipeline.ts';
import { N, TickConsumer } from '../../src/core/tick.ts';
import { B, BarFlag } from '../../src/core/bar.ts';
import { run, stream, T0, universe } from './harness.ts';

describe('pipeline session stats', () => {
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

describe('pipeline bar clock', () => {
  it('closes a bar when its interval ends although no tick arrives', async () => {
    const instruments = universe(1, 1);
    const clockBuf = new SharedArrayBuffer(8);
    const clock = new Float64Array(clockBuf);
    clock[0] = T0;
    const front = new Front({ shards: 2, ringCapacity: 1024 });
    const pipeline = new Pipeline({
      rings: front.rings, instruments, mode: 'full', timeframesMs: [1000, 60_000], graceMs: 500,
      clock: clockBuf, clockIntervalMs: 20, onError: (s, e) => { throw e; },
    });
    const closed: number[][] = [];
    const store = new OutputPump(pipeline.reader(TickConsumer.STORE), {
      tick() {},
      bar(v, b) {
        const o = b >> 1;
        if ((v.f64[o + B.FLAGS] & BarFlag.CLOSED) !== 0) closed.push(Array.from(v.f64.subarray(o, o + 14)));
      },
    });
    const feed = new OutputPump(pipeline.reader(TickConsumer.FEED), { tick() {}, bar() {} });
    const market = new Market({ instruments, seed: 3, clock: () => T0 + 200 });
    const ticks = market.nextTicks(instruments.length, instruments.map((i) => i.instrumentToken), 'full');
    front.onBinary(encodeFrame(ticks), 0, 1, (T0 + 200) * 1000);
    const wait = async (cond: () => boolean) => {
      const t0 = Date.now();
      while (!cond()) {
        if (Date.now() - t0 > 10_000) throw new Error('timed out');
        await new Promise((r) => setTimeout(r, 10));
      }
    };
    await wait(() => pipeline.counters().ticksOut === ticks.length);
    expect(closed).toHaveLength(0);
    // 1 s bars end at T0+1000; with 500 ms grace they close at T0+1500, the minute bars not yet.
    clock[0] = T0 + 1499;
    pipeline.advance();
    await new Promise((r) => setTimeout(r, 100));
    expect(closed).toHaveLength(0);
    clock[0] = T0 + 1500;
    pipeline.advance();
    await wait(() => closed.length === ticks.length);
    expect(closed.every((b) => b[B.TF_MS] === 1000 && b[B.START_MS] === T0 && (b[B.FLAGS] & BarFlag.PARTIAL) === 0)).toBe(true);
    await front.close();
    await pipeline.stop();
    await Promise.all([store.done, feed.done]);
    // The minute bars leave at shutdown, partial.
    const minute = closed.filter((b) => b[B.TF_MS] === 60_000);
    expect(minute).toHaveLength(ticks.length);
    expect(minute.every((b) => (b[B.FLAGS] & BarFlag.PARTIAL) !== 0)).toBe(true);
  });
});
