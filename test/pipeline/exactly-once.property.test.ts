/**
 * "Every non-repeated packet exactly once, in order per token", through the real pipeline (front →
 * rings → shard worker threads → output rings), on random price walks in each Kite mode.
 *
 * A walk mixes what real feeds carry: steps of a few ticks (0 included, which in ltp mode repeats
 * the previous 8 bytes), returns to the price before the previous one (A → B → A), book changes
 * with no trade (a new packet in quote and full mode, a repeat in ltp mode), the previous packet
 * again on the same connection or on another one (one packet arriving twice during a
 * resubscribe), and reconnects, after which every token's last packet comes again (Kite's
 * snapshot on subscribe). The expectation is computed from the bytes alone: a packet is dropped
 * exactly when it equals, byte for byte, the previous packet of its token; everything else comes
 * out of both the STORE and the FEED slot, once, in arrival order, none quarantined.
 */
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { emptyWireTick, encodeFrame, type WireTick } from '../../src/kite/codec.ts';
import type { Instrument, TickMode } from '../../src/core/instrument.ts';
import { Kind } from '../../src/core/packet-slot.ts';
import { Front, shardOf } from '../../src/front.ts';
import { OutputPump, Pipeline } from '../../src/pipeline.ts';
import { N, NType, TickConsumer } from '../../src/core/tick.ts';
import { T0, universe } from './harness.ts';

const ALL = universe(1, 1);
/** One of each kind of instrument: the index, a stock, a future, a call and a put. */
const PICKED: Instrument[] = [
  ALL.find((i) => i.segment === 'INDICES')!,
  ALL.find((i) => i.segment === 'NSE')!,
  ALL.find((i) => i.instrumentType === 'FUT')!,
  ALL.find((i) => i.instrumentType === 'CE')!,
  ALL.find((i) => i.instrumentType === 'PE')!,
];
const MODES: readonly TickMode[] = ['ltp', 'quote', 'full'];
const CONNECTIONS = 3;
const FRAME_GAP_US = 100_000;

type Op =
  | { op: 'move'; tok: number; step: number; qty: number }
  | { op: 'back'; tok: number; qty: number }
  | { op: 'book'; tok: number; qty: number }
  | { op: 'again'; tok: number }
  | { op: 'echo'; tok: number }
  | { op: 'cut' }
  | { op: 'reconnect' };

const tokArb = fc.integer({ min: 0, max: PICKED.length - 1 });
const qtyArb = fc.integer({ min: 1, max: 500 });
const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 10, arbitrary: fc.record({ op: fc.constant('move' as const), tok: tokArb, step: fc.integer({ min: -3, max: 3 }), qty: qtyArb }) },
  { weight: 5, arbitrary: fc.record({ op: fc.constant('back' as const), tok: tokArb, qty: qtyArb }) },
  { weight: 4, arbitrary: fc.record({ op: fc.constant('book' as const), tok: tokArb, qty: qtyArb }) },
  { weight: 3, arbitrary: fc.record({ op: fc.constant('again' as const), tok: tokArb }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('echo' as const), tok: tokArb }) },
  { weight: 4, arbitrary: fc.constant({ op: 'cut' as const }) },
  { weight: 1, arbitrary: fc.constant({ op: 'reconnect' as const }) },
);

/** One token's market state, from which its packet in any mode is built. */
interface State {
  readonly ins: Instrument;
  readonly index: boolean;
  readonly tick: number;
  /** Last traded prices, newest last (the one before the previous is what 'back' returns to). */
  prices: number[];
  close: number;
  open: number;
  high: number;
  low: number;
  volume: number;
  lastQty: number;
  turnover: number;
  buyQty: number;
  sellQty: number;
  oi: number;
  oiHigh: number;
  lastTradeS: number;
  exchangeS: number;
  book: number;
  /** The packet last sent for the token, if any. */
  last: WireTick | null;
}

function initialState(ins: Instrument): State {
  const index = ins.segment === 'INDICES';
  const rupees = ins.lastPrice > 0 ? ins.lastPrice : index ? 26_000 : ins.instrumentType === 'CE' || ins.instrumentType === 'PE' ? 150 : 1500;
  const p = Math.round(rupees * 20) * 5;
  return {
    ins, index, tick: 5, prices: [p], close: p, open: p, high: p, low: p, volume: index ? 0 : 10_000, lastQty: 0,
    turnover: index ? 0 : p * 10_000, buyQty: 1000, sellQty: 1000, oi: ins.segment.startsWith('NFO') ? 50_000 : 0,
    oiHigh: ins.segment.startsWith('NFO') ? 50_000 : 0, lastTradeS: 0, exchangeS: 0, book: 1, last: null,
  };
}

function packetOf(s: State, mode: TickMode): WireTick {
  const price = s.prices[s.prices.length - 1];
  if (mode === 'ltp') {
    const t = emptyWireTick(Kind.LTP, s.ins.instrumentToken);
    t.lastPrice = price;
    return t;
  }
  const full = mode === 'full';
  const t = emptyWireTick(s.index ? (full ? Kind.INDEX_FULL : Kind.INDEX_QUOTE) : full ? Kind.FULL : Kind.QUOTE, s.ins.instrumentToken);
  t.lastPrice = price;
  t.open = s.open;
  t.high = s.high;
  t.low = s.low;
  t.close = s.close;
  if (s.index) {
    t.changeRaw = price - s.close;
    t.exchangeTime = full ? s.exchangeS : 0;
    return t;
  }
  t.lastQty = s.lastQty;
  t.avgPrice = Math.round(s.turnover / s.volume);
  t.volume = s.volume;
  t.buyQty = s.buyQty;
  t.sellQty = s.sellQty;
  if (!full) return t;
  t.lastTradeTime = s.lastTradeS;
  t.exchangeTime = s.exchangeS;
  t.oi = s.oi;
  t.oiHigh = s.oiHigh;
  t.oiLow = s.oi > 0 ? 50_000 : 0;
  for (let k = 0; k < 5; k++) {
    t.depth[k] = { price: price - (k + 1) * s.tick, quantity: s.book + k, orders: 1 };
    t.depth[5 + k] = { price: price + (k + 1) * s.tick, quantity: s.book + 2 * k, orders: 1 };
  }
  return t;
}

function trade(s: State, price: number, qty: number, nowS: number): void {
  s.prices.push(price);
  if (price > s.high) s.high = price;
  if (price < s.low) s.low = price;
  s.exchangeS = nowS;
  if (s.index) return;
  s.volume += qty;
  s.turnover += price * qty;
  s.lastQty = qty;
  s.lastTradeS = nowS;
  if (s.oi > 0 && qty % 3 === 0) s.oiHigh = s.oi = s.oi + qty;
}

interface Sent {
  bytes: Uint8Array;
  conn: number;
  seq: number;
  recvUs: number;
}

interface Walk {
  frames: Sent[];
  /** Per token, the packets the pipeline must emit, in order, as Out records them. */
  expected: Map<number, number[][]>;
  packets: number;
  repeats: number;
}

/** Turns ops into frames, and computes what must come out: every packet that is not its token's previous one again. */
function build(mode: TickMode, group: readonly Instrument[], ops: readonly Op[]): Walk {
  const states = group.map(initialState);
  const frames: Sent[] = [];
  const expected = new Map<number, number[][]>();
  const lastBytes = new Map<number, string>();
  let conn = 0;
  let seq = 0;
  let packets = 0;
  let repeats = 0;
  let open: WireTick[] = [];
  const nowUs = () => T0 * 1000 + (seq + 1) * FRAME_GAP_US;
  const nowS = () => Math.floor(nowUs() / 1e6);

  const send = (ticks: WireTick[], onConn: number) => {
    if (ticks.length === 0) return;
    seq++;
    const recvUs = T0 * 1000 + seq * FRAME_GAP_US;
    frames.push({ bytes: encodeFrame(ticks), conn: onConn, seq, recvUs });
    for (const t of ticks) {
      packets++;
      const key = Buffer.from(encodeFrame([t])).toString('hex');
      if (lastBytes.get(t.token) === key) {
        repeats++;
        continue;
      }
      lastBytes.set(t.token, key);
      if (!expected.has(t.token)) expected.set(t.token, []);
      expected.get(t.token)!.push([NType.TICK, seq, onConn, t.lastPrice / 100, t.volume, t.buyQty, t.depth[0].quantity]);
    }
  };
  const flush = () => {
    send(open, conn);
    open = [];
  };
  const emit = (s: State) => {
    s.last = packetOf(s, mode);
    open.push(s.last);
  };

  for (const o of ops) {
    if (o.op === 'cut') {
      flush();
      continue;
    }
    if (o.op === 'reconnect') {
      flush();
      conn = (conn + 1) % CONNECTIONS;
      send(states.filter((s) => s.last !== null).map((s) => s.last!), conn);
      continue;
    }
    const s = states[o.tok];
    const price = s.prices[s.prices.length - 1];
    if (o.op === 'move') {
      trade(s, Math.max(s.tick, price + o.step * s.tick), o.qty, nowS());
      emit(s);
    } else if (o.op === 'back') {
      trade(s, s.prices.length >= 2 ? s.prices[s.prices.length - 2] : price + s.tick, o.qty, nowS());
      emit(s);
    } else if (o.op === 'book') {
      s.book = o.qty;
      s.buyQty += o.qty;
      s.sellQty += 1;
      s.exchangeS = nowS();
      emit(s);
    } else if (o.op === 'again') {
      if (s.last !== null) open.push(s.last);
    } else if (s.last !== null) {
      // 'echo': the same packet on another connection, in a frame of its own.
      flush();
      send([s.last], (conn + 1) % CONNECTIONS);
    }
  }
  flush();
  return { frames, expected, packets, repeats };
}

/**
 * One long-lived pipeline in one mode. Worker threads take about half a second to start, so runs
 * share it: each run takes a fresh group of tokens (copies of PICKED under new token numbers), so
 * no run meets another's dedupe or validation state. A new pipeline replaces a used-up one.
 *
 * A run ends with a marker: one new tick for a marker token on each shard. A shard keeps its
 * tokens in order, so once both markers are out of both slots, everything the run sent before
 * them has been counted and read.
 */
class Lane {
  private pipeline: Pipeline | null = null;
  private front: Front | null = null;
  private pumps: Promise<void>[] = [];
  private groups: Instrument[][] = [];
  private markers: State[] = [];
  private used = 0;
  private seq = 0;
  private generation = 0;
  private readonly store = new Map<number, number[][]>();
  private readonly feed = new Map<number, number[][]>();
  /** Marker ticks still to come out, per slot; `markersOut` resolves when none are left. */
  private markersDue = 0;
  private markersOut: () => void = () => {};

  constructor(readonly mode: TickMode, private readonly groupsPerPipeline = 64) {}

  /** A fresh group of instruments, in PICKED's order. */
  take(): Instrument[] {
    if (this.pipeline === null || this.used === this.groups.length) this.restart();
    return this.groups[this.used++];
  }

  private restart(): void {
    void this.close();
    const g0 = this.generation++ * this.groupsPerPipeline;
    const renumber = (ins: Instrument, id: number): Instrument => ({ ...ins, instrumentToken: ((id << 8) | (ins.instrumentToken & 0xff)) >>> 0 });
    this.groups = Array.from({ length: this.groupsPerPipeline }, (_, g) => PICKED.map((ins, k) => renumber(ins, (g0 + g) * PICKED.length + k + 1)));
    // Marker tokens: stocks numbered past every group, one hashed to each shard.
    const markerIns: Instrument[] = [];
    for (let id = 0xf00000; markerIns.length < 2; id++) {
      const m = renumber(PICKED[1], id);
      if (shardOf(m.instrumentToken, 2) === markerIns.length) markerIns.push(m);
    }
    this.markers = markerIns.map(initialState);
    this.used = 0;
    this.front = new Front({ shards: 2, ringCapacity: 1 << 12 });
    this.pipeline = new Pipeline({
      rings: this.front.rings, instruments: [...this.groups.flat(), ...markerIns], mode: this.mode, timeframesMs: [60_000],
      outCapacity: 1 << 12, clock: new SharedArrayBuffer(8), onError: (shard, err) => { throw new Error(`shard ${shard}: ${err.message}`); },
    });
    const markerTokens = new Set(markerIns.map((i) => i.instrumentToken));
    const collect = (into: Map<number, number[][]>) => ({
      tick: (v: { f64: Float64Array }, b: number) => {
        const f = v.f64;
        const x = b >> 1;
        const token = f[x + N.TOKEN];
        if (markerTokens.has(token)) {
          if (--this.markersDue === 0) this.markersOut();
          return;
        }
        if (!into.has(token)) into.set(token, []);
        into.get(token)!.push([f[x + N.TYPE], f[x + N.SEQ], f[x + N.CONN], f[x + N.PRICE], f[x + N.VOLUME], f[x + N.BUY_QTY], f[x + N.DEPTH]]);
      },
      bar() {},
    });
    this.pumps = [
      new OutputPump(this.pipeline.reader(TickConsumer.STORE), collect(this.store)).done,
      new OutputPump(this.pipeline.reader(TickConsumer.FEED), collect(this.feed)).done,
    ];
  }

  /** Feed a walk's frames and the markers; resolve once both markers are out of both slots. */
  async run(walk: Walk, group: Instrument[]): Promise<Out> {
    const pipeline = this.pipeline!;
    const front = this.front!;
    const before = pipeline.counters();
    const base = this.seq;
    for (const f of walk.frames) front.onBinary(f.bytes, f.conn, base + f.seq, f.recvUs);
    const recvUs = T0 * 1000 + (walk.frames.length + 1) * FRAME_GAP_US;
    const out = new Promise<void>((resolve) => {
      this.markersDue = 2 * this.markers.length;
      this.markersOut = resolve;
    });
    // A new price each time (up, then down, ...), so no marker is ever its own duplicate.
    for (const m of this.markers) trade(m, m.prices[m.prices.length - 1] + (m.prices.length % 2 === 1 ? m.tick : -m.tick), 1, Math.floor(recvUs / 1e6));
    front.onBinary(encodeFrame(this.markers.map((m) => packetOf(m, this.mode))), 0, base + walk.frames.length + 1, recvUs);
    this.seq += walk.frames.length + 1;
    await out;
    const after = pipeline.counters();
    const pick = (m: Map<number, number[][]>) => {
      const o = new Map<number, number[][]>();
      for (const ins of group) {
        const recs = m.get(ins.instrumentToken);
        if (recs) o.set(ins.instrumentToken, recs.map(([type, seq, ...rest]) => [type, seq - base, ...rest]));
      }
      return o;
    };
    const markers = this.markers.length;
    return {
      store: pick(this.store),
      feed: pick(this.feed),
      ticksIn: after.ticksIn - before.ticksIn - markers,
      ticksOut: after.ticksOut - before.ticksOut - markers,
      duplicates: after.duplicates - before.duplicates,
      quarantined: after.quarantined - before.quarantined,
    };
  }

  async close(): Promise<void> {
    const front = this.front;
    const pipeline = this.pipeline;
    const pumps = this.pumps;
    this.front = null;
    this.pipeline = null;
    if (front === null || pipeline === null) return;
    await front.close(30_000);
    await pipeline.stop(30_000);
    await Promise.all(pumps);
  }
}

interface Out {
  /** Per token: [type, seq, conn, price, volume, buy qty, best bid qty], in order. */
  store: Map<number, number[][]>;
  feed: Map<number, number[][]>;
  ticksIn: number;
  ticksOut: number;
  duplicates: number;
  quarantined: number;
}

const sorted = (m: Map<number, number[][]>) => [...m.entries()].sort((a, b) => a[0] - b[0]);

describe('pipeline: every tick exactly once', () => {
  const lanes = MODES.map((mode) => new Lane(mode));
  afterAll(async () => {
    await Promise.all(lanes.map((l) => l.close()));
  });

  it('emits every packet that is not its token\'s previous one again, once and in order, in every mode', async () => {
    let returns = 0;
    let repeats = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(opArb, { minLength: 1, maxLength: 300, size: 'max' }), async (ops) => {
        for (const lane of lanes) {
          const group = lane.take();
          const walk = build(lane.mode, group, ops);
          const out = await lane.run(walk, group);
          const mode = lane.mode;
          expect(out.quarantined, mode).toBe(0);
          expect(sorted(out.store), mode).toEqual(sorted(walk.expected));
          expect(sorted(out.feed), mode).toEqual(sorted(walk.expected));
          expect(out.ticksIn, mode).toBe(walk.packets);
          expect(out.duplicates, mode).toBe(walk.repeats);
          expect(out.ticksOut, mode).toBe(walk.packets - walk.repeats);
          repeats += walk.repeats;
          for (const ticks of walk.expected.values()) {
            for (let i = 2; i < ticks.length; i++) if (ticks[i][3] === ticks[i - 2][3] && ticks[i][3] !== ticks[i - 1][3]) returns++;
          }
        }
      }),
      { numRuns: 60 },
    );
    // The walks did exercise both sides: returns kept, repeats dropped.
    expect(returns).toBeGreaterThan(0);
    expect(repeats).toBeGreaterThan(0);
  }, 120_000);
});
