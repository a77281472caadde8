import { describe, expect, it } from 'vitest';
import { Shard } from './shard.ts';
import { FieldGroup } from './stages/filter.ts';
import { createRingBuffer, RingConsumer, RingProducer } from '../src/core/ring.ts';
import { Kind } from '../src/core/packet-slot.ts';
import { N, N_FIELDS, N_SLOT_WORDS, NType, QUARANTINE_REASON_NAMES, TICK_CONSUMERS, TickConsumer } from '../src/core/tick.ts';
import { B, BAR_FIELDS, BarFlag } from '../src/core/bar.ts';
import { BAR_SLOT_WORDS, chainStatsBytes, DOORBELL_STRIDE, SC, SHARD_COUNTERS, type ShardData } from '../src/core/shard-protocol.ts';
import type { Instrument } from '../src/core/instrument.ts';
import { decodeFrame, DecodeStats, emptyWireTick, encodeFrame, type WireTick } from '../src/kite/codec.ts';

const T0 = Date.parse('2025-12-03T03:45:00Z'); // 09:15 IST, a Wednesday
const MINUTE = 60_000;
const INFY = 408065;
const TCS = 2953217;

function equity(token: number, symbol: string): Instrument {
  return {
    instrumentToken: token, exchangeToken: token >> 8, tradingsymbol: symbol, name: symbol, lastPrice: 0, expiry: '',
    strike: 0, tickSize: 0.05, lotSize: 1, instrumentType: 'EQ', segment: 'NSE', exchange: 'NSE',
  };
}

const INSTRUMENTS = [equity(INFY, 'INFY'), equity(TCS, 'TCS')];

/** A full packet: price in paise (also the previous close), cumulative volume, exchange time `atMs`. */
function full(token: number, atMs: number, price: number, volume: number): WireTick {
  const t = emptyWireTick(Kind.FULL, token);
  t.lastPrice = price;
  t.close = price;
  t.volume = volume;
  t.exchangeTime = Math.floor(atMs / 1000);
  return t;
}

interface Rig {
  shard: Shard;
  input: RingProducer;
  counters: Float64Array;
  clock: Float64Array;
  /** Push one Kite frame into the input ring, received at `recvMs`, and publish it. */
  push(ticks: WireTick[], recvMs: number): void;
  /** Everything the STORE consumer can read now; the FEED consumer reads the same, checked. */
  read(): { ticks: Float64Array[]; bars: Float64Array[] };
  outputsClosed(): boolean;
}

function rig(opts: { timeframesMs?: number[]; outCapacity?: number; shard?: number } = {}): Rig {
  const outCapacity = opts.outCapacity ?? 1024;
  const shardNo = opts.shard ?? 0;
  const clockBuf = new SharedArrayBuffer(8);
  const data: ShardData = {
    shard: shardNo,
    ring: createRingBuffer(256),
    ticksOut: createRingBuffer(outCapacity, N_SLOT_WORDS, TICK_CONSUMERS),
    barsOut: createRingBuffer(outCapacity, BAR_SLOT_WORDS, TICK_CONSUMERS),
    counters: new SharedArrayBuffer(SHARD_COUNTERS * 8),
    doorbells: new SharedArrayBuffer(TICK_CONSUMERS * DOORBELL_STRIDE * 4),
    chainStats: new SharedArrayBuffer(chainStatsBytes(shardNo + 1, 0)),
    instruments: INSTRUMENTS,
    tokens: INSTRUMENTS.map((i) => i.instrumentToken),
    mode: 'full',
    timeframesMs: opts.timeframesMs ?? [MINUTE],
    graceMs: 500,
    maxBatch: 1024,
    clockIntervalMs: 100,
    clock: clockBuf,
  };
  const shard = new Shard(data);
  const input = new RingProducer(data.ring);
  const stats = new DecodeStats();
  let seq = 0;
  const consumers = [TickConsumer.STORE, TickConsumer.FEED].map((k) => ({
    ticks: new RingConsumer(data.ticksOut, k),
    bars: new RingConsumer(data.barsOut, k),
  }));
  const copy = (n: number) => (out: Float64Array[]) => (v: { f64: Float64Array }, b: number) => {
    out.push(v.f64.slice(b >> 1, (b >> 1) + n));
  };
  return {
    shard,
    input,
    counters: new Float64Array(data.counters),
    clock: new Float64Array(clockBuf),
    push(ticks, recvMs) {
      decodeFrame(encodeFrame(ticks), { recvTimeUs: recvMs * 1000, seq: seq++, conn: 0 }, input, stats);
      input.publish();
    },
    read() {
      const [store, feed] = consumers.map((c) => {
        const ticks: Float64Array[] = [];
        const bars: Float64Array[] = [];
        c.ticks.drain(copy(N_FIELDS)(ticks));
        c.bars.drain(copy(BAR_FIELDS)(bars));
        return { ticks, bars };
      });
      expect(feed).toEqual(store);
      return store;
    },
    outputsClosed: () => consumers.every((c) => c.ticks.closed() && c.bars.closed()),
  };
}

describe('shard', () => {
  it('emits a canonical tick in rupees for every accepted record, stamped with its shard and batch time', () => {
    const r = rig({ shard: 3 });
    r.push([full(INFY, T0 + 1000, 150_000, 100), full(TCS, T0 + 1000, 400_025, 50)], T0 + 1000);
    r.push([full(INFY, T0 + 2000, 150_150, 130)], T0 + 2000);
    const before = Date.now() * 1000;
    expect(r.shard.batch()).toBe(3);
    const { ticks } = r.read();
    expect(ticks.map((t) => [t[N.TYPE], t[N.TOKEN], t[N.INSTR], t[N.PRICE], t[N.VOLUME], t[N.VOLUME_DELTA], t[N.EXCH_TIME_MS], t[N.SHARD]])).toEqual([
      [NType.TICK, INFY, 0, 1500, 100, 0, T0 + 1000, 3],
      [NType.TICK, TCS, 1, 4000.25, 50, 0, T0 + 1000, 3],
      [NType.TICK, INFY, 0, 1501.5, 130, 30, T0 + 2000, 3],
    ]);
    for (const t of ticks) {
      expect(t[N.RECV_TIME_US]).toBe(t[N.EXCH_TIME_MS] * 1000);
      expect(t[N.PROC_TIME_US]).toBe(ticks[0][N.PROC_TIME_US]); // one stamp per batch
      expect(t[N.PROC_TIME_US]).toBeGreaterThanOrEqual(before - 1000);
    }
    expect(r.counters[SC.TICKS_IN]).toBe(3);
    expect(r.counters[SC.TICKS_OUT]).toBe(3);
    expect(r.counters[SC.BATCHES]).toBe(1);
    expect(r.counters[SC.LAST_RECV_US]).toBe((T0 + 2000) * 1000);
  });

  it('drops an exact repeat of the previous packet and quarantines a bad tick with its reason', () => {
    const r = rig();
    const t = full(INFY, T0 + 1000, 150_000, 100);
    r.push([t, t, { ...t, lastPrice: 0 }, { ...t, token: 123_456_789 }, { ...t, volume: 1 }], T0 + 1000);
    expect(r.shard.batch()).toBe(5);
    const { ticks } = r.read();
    expect(ticks.map((q) => [q[N.TYPE], q[N.TOKEN], QUARANTINE_REASON_NAMES[q[N.REASON]]])).toEqual([
      [NType.TICK, INFY, 'none'],
      [NType.QUARANTINE, INFY, 'bad_price'],
      [NType.QUARANTINE, 123_456_789, 'unknown_token'],
      [NType.QUARANTINE, INFY, 'volume_decreased'],
    ]);
    expect(ticks[2][N.INSTR]).toBe(-1);
    expect(r.counters[SC.DUPLICATES]).toBe(1);
    expect(r.counters[SC.QUARANTINED]).toBe(3);
    expect(r.counters[SC.TICKS_OUT]).toBe(1);
  });

  it('sends one bar update per token and timeframe per batch, and closes the bar when the next bucket starts', () => {
    const r = rig();
    r.push([full(INFY, T0 + 5000, 150_000, 100), full(INFY, T0 + 30_000, 151_000, 150)], T0 + 30_000);
    r.push([full(INFY, T0 + 50_000, 149_000, 190)], T0 + 50_000);
    expect(r.shard.batch()).toBe(3);
    const first = r.read().bars;
    expect(first).toHaveLength(1);
    expect(first[0][B.FLAGS] & BarFlag.CLOSED).toBe(0);
    expect([first[0][B.TICKS], first[0][B.CLOSE]]).toEqual([3, 1490]);

    r.push([full(INFY, T0 + MINUTE + 10_000, 149_500, 200)], T0 + MINUTE + 10_000);
    expect(r.shard.batch()).toBe(1);
    const bars = r.read().bars;
    const closed = bars.filter((b) => b[B.FLAGS] & BarFlag.CLOSED);
    const open = bars.filter((b) => !(b[B.FLAGS] & BarFlag.CLOSED));
    expect(closed.map((b) => [b[B.TOKEN], b[B.START_MS], b[B.OPEN], b[B.HIGH], b[B.LOW], b[B.CLOSE], b[B.VOLUME], b[B.TICKS]])).toEqual([
      [INFY, T0, 1500, 1510, 1490, 1490, 90, 3],
    ]);
    expect(open.map((b) => [b[B.START_MS], b[B.OPEN], b[B.VOLUME]])).toEqual([[T0 + MINUTE, 1495, 10]]);
    expect(r.counters[SC.BARS_CLOSED]).toBe(1);
    expect(r.counters[SC.BAR_UPDATES]).toBe(2);
  });

  it('closes a bar on the clock once its end and the grace period have passed', () => {
    const r = rig();
    r.push([full(TCS, T0 + 5000, 400_000, 10)], T0 + 5000);
    r.shard.batch();
    r.read();
    r.clock[0] = T0 + MINUTE + 499;
    r.shard.control({ type: 'advance' });
    expect(r.read().bars).toEqual([]);
    r.clock[0] = T0 + MINUTE + 500;
    r.shard.control({ type: 'advance' });
    const bars = r.read().bars;
    expect(bars.map((b) => [b[B.TOKEN], b[B.START_MS], b[B.FLAGS]])).toEqual([[TCS, T0, BarFlag.CLOSED]]);
  });

  it('marks ticks for a consumer filter installed by a control message', () => {
    const r = rig();
    r.shard.control({ type: 'filter', k: 2, tokens: [INFY], filter: { fields: FieldGroup.ALL, changedOnly: false } });
    r.push([full(INFY, T0 + 1000, 150_000, 100), full(TCS, T0 + 1000, 400_000, 10)], T0 + 1000);
    r.shard.batch();
    expect(r.read().ticks.map((t) => t[N.CONSUMERS])).toEqual([0b101, 0b001]);
  });

  it('takes no more than the output rings have room for, and waits for the readers rather than drop', async () => {
    const r = rig({ outCapacity: 4 });
    for (let i = 0; i < 10; i++) r.push([full(INFY, T0 + i * 1000, 150_000 + i * 5, 100 + i)], T0 + i * 1000);
    let taken = 0;
    let n: number;
    while ((n = r.shard.batch()) > 0) taken += n;
    expect(n).toBe(-1);
    expect(taken).toBeGreaterThan(0);
    expect(taken).toBeLessThanOrEqual(4);
    expect(r.counters[SC.OUT_WAITS]).toBe(1);
    const room = r.shard.waitForRoom();
    const seen = r.read().ticks; // the readers release their slots
    expect(seen).toHaveLength(taken);
    await room;
    while (seen.length < 10) {
      expect(r.shard.batch()).toBeGreaterThan(0);
      seen.push(...r.read().ticks);
    }
    expect(seen.map((t) => t[N.VOLUME])).toEqual([100, 101, 102, 103, 104, 105, 106, 107, 108, 109]);
    expect(r.counters[SC.TICKS_IN]).toBe(10);
  });

  it('runs until the input ring closes, then flushes open bars as partial and closes its outputs', async () => {
    const r = rig({ timeframesMs: [MINUTE, 5 * MINUTE] });
    const running = r.shard.run();
    r.push([full(INFY, T0 + 1000, 150_000, 100), full(TCS, T0 + 1000, 400_000, 10)], T0 + 1000);
    r.push([full(INFY, T0 + MINUTE + 1000, 150_500, 120)], T0 + MINUTE + 1000);
    r.input.close();
    await running;
    expect(r.outputsClosed()).toBe(false);
    await r.shard.shutdown();
    expect(r.outputsClosed()).toBe(true);
    const { ticks, bars } = r.read();
    expect(ticks).toHaveLength(3);
    const closed = bars.filter((b) => b[B.FLAGS] & BarFlag.CLOSED).map((b) => [b[B.TOKEN], b[B.TF_MS], b[B.START_MS], b[B.FLAGS]]);
    expect(closed).toEqual(expect.arrayContaining([
      [INFY, MINUTE, T0, BarFlag.CLOSED],
      [INFY, MINUTE, T0 + MINUTE, BarFlag.CLOSED | BarFlag.PARTIAL],
      [INFY, 5 * MINUTE, T0, BarFlag.CLOSED | BarFlag.PARTIAL],
      [TCS, MINUTE, T0, BarFlag.CLOSED | BarFlag.PARTIAL],
      [TCS, 5 * MINUTE, T0, BarFlag.CLOSED | BarFlag.PARTIAL],
    ]));
    expect(closed).toHaveLength(5);
  });
});
