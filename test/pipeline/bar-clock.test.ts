/**
 * The shards' bar clock through the real pipeline: bars close when their interval and grace have
 * passed on the clock, whether or not a tick arrives.
 */
import { describe, expect, it } from 'vitest';
import { encodeFrame } from '../../src/kite/codec.ts';
import { Market } from '../../src/kite/sim/market.ts';
import { Front } from '../../src/front.ts';
import { OutputPump, Pipeline } from '../../src/pipeline.ts';
import { TickConsumer } from '../../src/core/tick.ts';
import { B, BarFlag } from '../../src/core/bar.ts';
import { until } from '../support/until.ts';
import { T0, universe } from './harness.ts';

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
    const storeReader = pipeline.reader(TickConsumer.STORE);
    const store = new OutputPump(storeReader, {
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
    // A shard reads its host's messages between batches, in order, and answers a memory request:
    // the answer follows the batches and the advance before it, and whatever they published (bar
    // closes included) is then in its rings. Once the store pump has read them all, such a close
    // is in `closed`.
    const shardsCaughtUp = async () => {
      await pipeline.memory();
      await until('the store pump to read all the shards published', () => [...storeReader.ticks, ...storeReader.bars].every((r) => r.available() === 0));
    };
    await until('the ticks through the shards', () => pipeline.counters().ticksOut === ticks.length);
    await shardsCaughtUp();
    expect(closed).toHaveLength(0);
    // 1 s bars end at T0+1000; with 500 ms grace they close at T0+1500, the minute bars not yet.
    clock[0] = T0 + 1499;
    pipeline.advance();
    await shardsCaughtUp();
    expect(closed).toHaveLength(0);
    clock[0] = T0 + 1500;
    pipeline.advance();
    await until('the 1 s bars to close', () => closed.length === ticks.length);
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
