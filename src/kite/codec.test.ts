import { describe, expect, it } from 'vitest';
import {
  CollectingSink,
  DecodeError,
  DecodeStats,
  HEARTBEAT,
  PacketLength,
  decodeFrame,
  decodeToTicks,
  emptyWireTick,
  encodeFrame,
  encodeFrameInto,
  frameLength,
  parseTextMessage,
  type WireTick,
  wireTickOf,
} from './codec.ts';
import { F, KIND_LENGTH, Kind, type KindCode, WORDS, modeOfKind, priceDivisor } from '../core/packet-slot.ts';
import { ALL_KINDS, I32_MAX, I32_MIN, Rng, U32_MAX, distinctTick, genTick } from '../../test/support/gen.ts';
import { BoundedSink, ScratchSink } from '../../test/support/sinks.ts';

const NSE_CM_TOKEN = 738561; // RELIANCE, segment 1
const NIFTY_TOKEN = 256265; // NIFTY 50, segment 9

/** Hand-built frame: [count][len][bytes][len][bytes]... from raw packet bodies. */
function rawFrame(count: number, packets: Uint8Array[]): Uint8Array {
  let n = 2;
  for (const p of packets) n += 2 + p.length;
  const out = new Uint8Array(n);
  const dv = new DataView(out.buffer);
  dv.setUint16(0, count);
  let o = 2;
  for (const p of packets) {
    dv.setUint16(o, p.length);
    out.set(p, o + 2);
    o += 2 + p.length;
  }
  return out;
}

/** The bytes of one encoded packet (without its length prefix). */
function packetBytes(t: WireTick): Uint8Array {
  return encodeFrame([t]).subarray(4);
}

function decodeWithStats(msg: Uint8Array): { ticks: WireTick[]; stats: DecodeStats } {
  const stats = new DecodeStats();
  return { ticks: decodeToTicks(msg, stats), stats };
}

describe('round trip: encode → decode is exact for every packet kind', () => {
  const cases: [string, KindCode, number][] = [
    ['LTP (8 bytes)', Kind.LTP, 8],
    ['index quote (28 bytes)', Kind.INDEX_QUOTE, 28],
    ['index full (32 bytes)', Kind.INDEX_FULL, 32],
    ['quote (44 bytes)', Kind.QUOTE, 44],
    ['full (184 bytes)', Kind.FULL, 184],
  ];
  for (const [name, kind, len] of cases) {
    it(`${name}: packet length on the wire is ${len} and every field comes back`, () => {
      const token = kind === Kind.INDEX_QUOTE || kind === Kind.INDEX_FULL ? NIFTY_TOKEN : NSE_CM_TOKEN;
      const t = distinctTick(kind, token);
      const frame = encodeFrame([t]);
      expect(frame.length).toBe(2 + 2 + len);
      expect(new DataView(frame.buffer).getUint16(2)).toBe(len);
      const { ticks, stats } = decodeWithStats(frame);
      expect(ticks).toEqual([t]);
      expect(stats.packets).toBe(1);
      expect(stats.totalErrors()).toBe(0);
    });

    it(`${name}: 200 random ticks with edge values round-trip`, () => {
      const r = new Rng(0xc0dec + kind);
      const ticks: WireTick[] = [];
      for (let i = 0; i < 200; i++) ticks.push(genTick(r, kind));
      const { ticks: back, stats } = decodeWithStats(encodeFrame(ticks));
      expect(back).toEqual(ticks);
      expect(stats.packets).toBe(200);
      expect(stats.totalErrors()).toBe(0);
    });
  }

  it('PacketLength and KIND_LENGTH agree with the protocol', () => {
    expect(PacketLength).toEqual({ LTP: 8, INDEX_QUOTE: 28, INDEX_FULL: 32, QUOTE: 44, FULL: 184 });
    expect(ALL_KINDS.map((k) => KIND_LENGTH[k])).toEqual([8, 28, 32, 44, 184]);
  });

  it('a frame mixing all five kinds decodes in order', () => {
    const ticks = ALL_KINDS.map((k) => distinctTick(k, k <= Kind.INDEX_FULL && k !== Kind.LTP ? NIFTY_TOKEN : NSE_CM_TOKEN));
    expect(decodeToTicks(encodeFrame(ticks))).toEqual(ticks);
  });

  it('modes: ltp, quote (index quote and quote), full (index full and full)', () => {
    expect([Kind.LTP, Kind.INDEX_QUOTE, Kind.INDEX_FULL, Kind.QUOTE, Kind.FULL].map(modeOfKind))
      .toEqual(['ltp', 'quote', 'full', 'quote', 'full']);
  });

  it('the encoder lays packets out byte for byte as the protocol table says (zero padding)', () => {
    // Expected bytes written by hand from the offsets in docs/kite-protocol.md, not through the
    // encoder or packet-layout.ts, so a wrong entry in the shared table shows here.
    const expectBytes = (t: WireTick, fields: [number, number, 'u32' | 'i32' | 'u16'][]): void => {
      const want = new Uint8Array(KIND_LENGTH[t.kind]);
      const dv = new DataView(want.buffer);
      for (const [off, v, ty] of fields) {
        if (ty === 'u16') dv.setUint16(off, v);
        else if (ty === 'u32') dv.setUint32(off, v);
        else dv.setInt32(off, v);
      }
      expect(packetBytes(t), `kind ${t.kind}`).toEqual(want);
    };
    const ltp = distinctTick(Kind.LTP, NSE_CM_TOKEN);
    expectBytes(ltp, [[0, ltp.token, 'u32'], [4, ltp.lastPrice, 'i32']]);
    for (const kind of [Kind.INDEX_QUOTE, Kind.INDEX_FULL] as const) {
      const t = distinctTick(kind, NIFTY_TOKEN);
      const f: [number, number, 'u32' | 'i32' | 'u16'][] = [
        [0, t.token, 'u32'], [4, t.lastPrice, 'i32'], [8, t.high, 'i32'], [12, t.low, 'i32'],
        [16, t.open, 'i32'], [20, t.close, 'i32'], [24, t.changeRaw, 'i32'],
      ];
      if (kind === Kind.INDEX_FULL) f.push([28, t.exchangeTime, 'i32']);
      expectBytes(t, f);
    }
    for (const kind of [Kind.QUOTE, Kind.FULL] as const) {
      const t = distinctTick(kind, NSE_CM_TOKEN);
      t.volume = 3_000_000_000;
      const f: [number, number, 'u32' | 'i32' | 'u16'][] = [
        [0, t.token, 'u32'], [4, t.lastPrice, 'i32'], [8, t.lastQty, 'u32'], [12, t.avgPrice, 'i32'],
        [16, t.volume, 'u32'], [20, t.buyQty, 'u32'], [24, t.sellQty, 'u32'], [28, t.open, 'i32'],
        [32, t.high, 'i32'], [36, t.low, 'i32'], [40, t.close, 'i32'],
      ];
      if (kind === Kind.FULL) {
        f.push([44, t.lastTradeTime, 'i32'], [48, t.oi, 'u32'], [52, t.oiHigh, 'u32'], [56, t.oiLow, 'u32'], [60, t.exchangeTime, 'i32']);
        t.depth.forEach((d, i) => f.push([64 + i * 12, d.quantity, 'u32'], [68 + i * 12, d.price, 'i32'], [72 + i * 12, d.orders, 'u16']));
      }
      expectBytes(t, f);
    }
  });

  it('encodeFrameInto writes at an offset and returns frameLength', () => {
    const ticks = [distinctTick(Kind.FULL, NSE_CM_TOKEN), distinctTick(Kind.LTP, NSE_CM_TOKEN)];
    const out = new Uint8Array(7 + frameLength(ticks) + 5).fill(0xee);
    expect(encodeFrameInto(ticks, out, 7)).toBe(frameLength(ticks));
    expect(out.subarray(7, 7 + frameLength(ticks))).toEqual(encodeFrame(ticks));
    expect(out[6]).toBe(0xee);
    expect(out[7 + frameLength(ticks)]).toBe(0xee);
  });
});

describe('field layout', () => {
  it('index packets are high, low, open, close on the wire (not open, high, low, close)', () => {
    const body = new Uint8Array(28);
    const dv = new DataView(body.buffer);
    dv.setUint32(0, NIFTY_TOKEN);
    dv.setInt32(4, 2_340_000); // last
    dv.setInt32(8, 2_350_000); // high
    dv.setInt32(12, 2_320_000); // low
    dv.setInt32(16, 2_330_000); // open
    dv.setInt32(20, 2_326_485); // close
    dv.setInt32(24, -1234); // change
    const [t] = decodeToTicks(rawFrame(1, [body]));
    expect(t.kind).toBe(Kind.INDEX_QUOTE);
    expect({ high: t.high, low: t.low, open: t.open, close: t.close, changeRaw: t.changeRaw })
      .toEqual({ high: 2_350_000, low: 2_320_000, open: 2_330_000, close: 2_326_485, changeRaw: -1234 });
    expect(t.exchangeTime).toBe(0);
  });

  it('index full carries the exchange timestamp at offset 28', () => {
    const body = new Uint8Array(32);
    const dv = new DataView(body.buffer);
    dv.setUint32(0, NIFTY_TOKEN);
    dv.setInt32(28, 1_718_177_769);
    const [t] = decodeToTicks(rawFrame(1, [body]));
    expect(t.kind).toBe(Kind.INDEX_FULL);
    expect(t.exchangeTime).toBe(1_718_177_769);
  });

  it('tradable packets are open, high, low, close at offsets 28..40', () => {
    const body = new Uint8Array(44);
    const dv = new DataView(body.buffer);
    dv.setUint32(0, NSE_CM_TOKEN);
    dv.setInt32(28, 291_500); // open
    dv.setInt32(32, 294_900); // high
    dv.setInt32(36, 291_035); // low
    dv.setInt32(40, 291_335); // close
    const [t] = decodeToTicks(rawFrame(1, [body]));
    expect([t.open, t.high, t.low, t.close]).toEqual([291_500, 294_900, 291_035, 291_335]);
  });

  it('full packet depth: 5 bids then 5 asks, 12 bytes each, orders is 2 bytes, padding ignored', () => {
    const body = new Uint8Array(184);
    const dv = new DataView(body.buffer);
    dv.setUint32(0, NSE_CM_TOKEN);
    for (let i = 0; i < 10; i++) {
      const q = 64 + i * 12;
      dv.setUint32(q, 100 + i);
      dv.setInt32(q + 4, 290_000 + i);
      dv.setUint16(q + 8, 65_535 - i);
      dv.setUint16(q + 10, 0xffff); // padding: must not leak into orders
    }
    const [t] = decodeToTicks(rawFrame(1, [body]));
    for (let i = 0; i < 10; i++) expect(t.depth[i]).toEqual({ quantity: 100 + i, price: 290_000 + i, orders: 65_535 - i });
  });

  it('reads volume past 2^31 as positive', () => {
    const t = distinctTick(Kind.FULL, NSE_CM_TOKEN);
    t.volume = 3_000_000_000;
    t.lastQty = 0x8000_0000;
    t.buyQty = U32_MAX;
    t.sellQty = 2_147_483_648;
    t.oi = 4_000_000_000;
    t.oiHigh = U32_MAX;
    t.oiLow = 0x8000_0001;
    t.depth[0].quantity = 3_500_000_000;
    const [back] = decodeToTicks(encodeFrame([t]));
    expect(back.volume).toBe(3_000_000_000);
    expect(back.lastQty).toBe(2_147_483_648);
    expect(back.buyQty).toBe(4_294_967_295);
    expect(back.sellQty).toBe(2_147_483_648);
    expect(back.oi).toBe(4_000_000_000);
    expect(back.oiHigh).toBe(4_294_967_295);
    expect(back.oiLow).toBe(2_147_483_649);
    expect(back.depth[0].quantity).toBe(3_500_000_000);
  });

  it('reads volume past 2^31 as positive in quote packets too', () => {
    const t = distinctTick(Kind.QUOTE, NSE_CM_TOKEN);
    t.volume = 2_500_000_000;
    expect(decodeToTicks(encodeFrame([t]))[0].volume).toBe(2_500_000_000);
  });

  it('reads prices signed: a negative price stays negative, i32 extremes survive', () => {
    const t = distinctTick(Kind.FULL, NSE_CM_TOKEN);
    t.lastPrice = -1;
    t.avgPrice = I32_MIN;
    t.open = I32_MAX;
    t.close = -250_000;
    t.depth[9].price = -5;
    const [back] = decodeToTicks(encodeFrame([t]));
    expect([back.lastPrice, back.avgPrice, back.open, back.close, back.depth[9].price]).toEqual([-1, I32_MIN, I32_MAX, -250_000, -5]);
  });

  it('reads tokens unsigned', () => {
    const token = ((0xff_ffff << 8) | 2) >>> 0;
    expect(decodeToTicks(encodeFrame([distinctTick(Kind.LTP, token)]))[0].token).toBe(4_294_967_042);
  });
});

describe('price divisor per segment (token & 0xff)', () => {
  it('NSE CDS (3) is 1e7, BSE CDS (6) is 1e4, every other segment 100', () => {
    const want: Record<number, number> = { 1: 100, 2: 100, 3: 10_000_000, 4: 100, 5: 100, 6: 10_000, 7: 100, 8: 100, 9: 100 };
    for (let seg = 1; seg <= 9; seg++) {
      expect(priceDivisor((12345 << 8) | seg), `segment ${seg}`).toBe(want[seg]);
    }
  });

  it('decoded prices stay integers in the smallest unit; the divisor gives rupees', () => {
    const usdinr = (1234 << 8) | 3; // NSE CDS
    const bsecd = (1234 << 8) | 6; // BSE CDS
    const frame = encodeFrame([
      { ...emptyWireTick(Kind.LTP, usdinr), lastPrice: 831_234_567 },
      { ...emptyWireTick(Kind.LTP, bsecd), lastPrice: 831_234 },
      { ...emptyWireTick(Kind.LTP, NSE_CM_TOKEN), lastPrice: 294_070 },
      { ...emptyWireTick(Kind.LTP, NIFTY_TOKEN), lastPrice: 2_340_685 },
    ]);
    const rupees = decodeToTicks(frame).map((t) => t.lastPrice / priceDivisor(t.token));
    expect(rupees).toEqual([83.1234567, 83.1234, 2940.7, 23406.85]);
  });
});

describe('frame edges are counted, never thrown', () => {
  it('a 1-byte message is a heartbeat: counted, not an error, nothing written', () => {
    const sink = new CollectingSink();
    const stats = new DecodeStats();
    expect(decodeFrame(HEARTBEAT, { recvTimeUs: 1, seq: 1, conn: 0 }, sink, stats)).toBe(0);
    expect(sink.count).toBe(0);
    expect(stats.heartbeats).toBe(1);
    expect(stats.frames).toBe(1);
    expect(stats.bytes).toBe(1);
    expect(stats.totalErrors()).toBe(0);
  });

  it('a 2-byte frame announcing 0 packets is also a heartbeat', () => {
    const { ticks, stats } = decodeWithStats(new Uint8Array([0, 0]));
    expect(ticks).toEqual([]);
    expect(stats.heartbeats).toBe(1);
    expect(stats.totalErrors()).toBe(0);
  });

  it('a zero-length message is counted EMPTY', () => {
    const { ticks, stats } = decodeWithStats(new Uint8Array(0));
    expect(ticks).toEqual([]);
    expect(stats.errors[DecodeError.EMPTY]).toBe(1);
    expect(stats.totalErrors()).toBe(1);
    expect(stats.heartbeats).toBe(0);
    expect(stats.errorCounts().empty).toBe(1);
  });

  it('truncated: the count promises more packets than the bytes hold; earlier packets are kept', () => {
    const a = distinctTick(Kind.QUOTE, NSE_CM_TOKEN);
    const b = distinctTick(Kind.LTP, NIFTY_TOKEN);
    const frame = encodeFrame([a, b]);
    new DataView(frame.buffer).setUint16(0, 3); // lies: 3 packets
    const { ticks, stats } = decodeWithStats(frame);
    expect(ticks).toEqual([a, b]);
    expect(stats.packets).toBe(2);
    expect(stats.errors[DecodeError.TRUNCATED]).toBe(1);
    expect(stats.errors[DecodeError.TRAILING_BYTES]).toBe(0);
    expect(stats.totalErrors()).toBe(1);
  });

  it('truncated: cut inside a packet-length field', () => {
    const a = distinctTick(Kind.LTP, NSE_CM_TOKEN);
    const full = encodeFrame([a, distinctTick(Kind.FULL, NSE_CM_TOKEN)]);
    const cut = full.subarray(0, 2 + 2 + 8 + 1); // one byte of the second length field
    const { ticks, stats } = decodeWithStats(cut);
    expect(ticks).toEqual([a]);
    expect(stats.errors[DecodeError.TRUNCATED]).toBe(1);
    expect(stats.totalErrors()).toBe(1);
  });

  it('truncated: cut inside a packet body', () => {
    const a = distinctTick(Kind.INDEX_FULL, NIFTY_TOKEN);
    const full = encodeFrame([a, distinctTick(Kind.FULL, NSE_CM_TOKEN)]);
    for (const cutAt of [2 + 2 + 32 + 2, 2 + 2 + 32 + 2 + 100, full.length - 1]) {
      const { ticks, stats } = decodeWithStats(full.subarray(0, cutAt));
      expect(ticks, `cut at ${cutAt}`).toEqual([a]);
      expect(stats.errors[DecodeError.TRUNCATED]).toBe(1);
      expect(stats.totalErrors()).toBe(1);
    }
  });

  it('truncated: a length field that runs past the end', () => {
    const frame = rawFrame(1, [new Uint8Array(8)]);
    new DataView(frame.buffer).setUint16(2, 0xffff);
    const { ticks, stats } = decodeWithStats(frame);
    expect(ticks).toEqual([]);
    expect(stats.errors[DecodeError.TRUNCATED]).toBe(1);
  });

  it('unknown lengths are skipped by their length and counted; later packets still decode', () => {
    const a = distinctTick(Kind.LTP, NSE_CM_TOKEN);
    const c = distinctTick(Kind.FULL, NSE_CM_TOKEN);
    const odd1 = new Uint8Array(12).fill(0x7f);
    const odd2 = new Uint8Array(0);
    const odd3 = new Uint8Array(183).fill(1);
    const frame = rawFrame(5, [packetBytes(a), odd1, odd2, odd3, packetBytes(c)]);
    const { ticks, stats } = decodeWithStats(frame);
    expect(ticks).toEqual([a, c]);
    expect(stats.packets).toBe(2);
    expect(stats.errors[DecodeError.UNKNOWN_LENGTH]).toBe(3);
    expect(stats.totalErrors()).toBe(3);
  });

  it('trailing bytes after the announced packets are counted', () => {
    const a = distinctTick(Kind.QUOTE, NSE_CM_TOKEN);
    const enc = encodeFrame([a]);
    const frame = new Uint8Array(enc.length + 3);
    frame.set(enc);
    const { ticks, stats } = decodeWithStats(frame);
    expect(ticks).toEqual([a]);
    expect(stats.errors[DecodeError.TRAILING_BYTES]).toBe(1);
    expect(stats.totalErrors()).toBe(1);
  });

  it('a count of 0 followed by bytes is trailing bytes, not a heartbeat', () => {
    const { stats } = decodeWithStats(new Uint8Array([0, 0, 1, 2, 3]));
    expect(stats.heartbeats).toBe(0);
    expect(stats.errors[DecodeError.TRAILING_BYTES]).toBe(1);
  });

  it('sink full: a sink whose claim returns -1 is counted SINK_FULL per packet and nothing is committed', () => {
    const ticks = [distinctTick(Kind.FULL, NSE_CM_TOKEN), distinctTick(Kind.LTP, NSE_CM_TOKEN), distinctTick(Kind.QUOTE, NSE_CM_TOKEN)];
    const full = new BoundedSink(0);
    const stats = new DecodeStats();
    expect(decodeFrame(encodeFrame(ticks), { recvTimeUs: 0, seq: 0, conn: 0 }, full, stats)).toBe(0);
    expect(full.count).toBe(0);
    expect(full.claims).toBe(3);
    expect(stats.packets).toBe(0);
    expect(stats.errors[DecodeError.SINK_FULL]).toBe(3);
    expect(stats.errors[DecodeError.TRAILING_BYTES]).toBe(0); // skipped by length, frame still parsed to its end
  });

  it('sink full part-way: records before the ring filled are kept, the rest counted', () => {
    const r = new Rng(7);
    const ticks = [genTick(r, Kind.FULL), genTick(r, Kind.QUOTE), genTick(r, Kind.LTP), genTick(r, Kind.INDEX_FULL)];
    const sink = new BoundedSink(2);
    const stats = new DecodeStats();
    expect(decodeFrame(encodeFrame(ticks), { recvTimeUs: 0, seq: 0, conn: 0 }, sink, stats)).toBe(2);
    expect([wireTickOf(sink.views, 0), wireTickOf(sink.views, WORDS)]).toEqual(ticks.slice(0, 2));
    expect(stats.packets).toBe(2);
    expect(stats.errors[DecodeError.SINK_FULL]).toBe(2);
  });

  it('never reads outside a subarray: a frame in the middle of a larger buffer decodes the same', () => {
    const ticks = [distinctTick(Kind.FULL, NSE_CM_TOKEN), distinctTick(Kind.INDEX_QUOTE, NIFTY_TOKEN)];
    const enc = encodeFrame(ticks);
    const big = new Uint8Array(enc.length + 64).fill(0xa5);
    big.set(enc, 32);
    // Lie about the count so the decoder would walk into the sentinels if it ignored byteLength.
    const msg = big.subarray(32, 32 + enc.length);
    new DataView(msg.buffer, msg.byteOffset).setUint16(0, 9);
    const { ticks: back, stats } = decodeWithStats(msg);
    expect(back).toEqual(ticks);
    expect(stats.errors[DecodeError.TRUNCATED]).toBe(1);
  });
});

describe('records', () => {
  it('fields not carried by a kind are zero even when the slot held a full tick', () => {
    const sink = new ScratchSink();
    const stats = new DecodeStats();
    const stamp = { recvTimeUs: 0, seq: 0, conn: 0 };
    const full = distinctTick(Kind.FULL, NSE_CM_TOKEN);
    full.volume = U32_MAX;
    for (const kind of [Kind.LTP, Kind.INDEX_QUOTE, Kind.INDEX_FULL, Kind.QUOTE, Kind.FULL] as const) {
      // Dirty the slot with a full tick first, then all-ones in every word, then decode `kind`.
      decodeFrame(encodeFrame([full]), stamp, sink, stats);
      expect(wireTickOf(sink.views, 0)).toEqual(full);
      sink.views.u32.fill(U32_MAX, 0, F.DEPTH + 30);
      const t = distinctTick(kind, kind === Kind.INDEX_QUOTE || kind === Kind.INDEX_FULL ? NIFTY_TOKEN : NSE_CM_TOKEN);
      decodeFrame(encodeFrame([t]), stamp, sink, stats);
      expect(wireTickOf(sink.views, 0), `kind ${kind}`).toEqual(t);
    }
    expect(sink.commits).toBe(10);
    expect(stats.totalErrors()).toBe(0);
  });

  it('non-carried words are exactly 0 for each kind (checked word by word)', () => {
    const carried: Record<KindCode, number[]> = {
      [Kind.LTP]: [F.TOKEN, F.KIND, F.LAST_PRICE],
      [Kind.INDEX_QUOTE]: [F.TOKEN, F.KIND, F.LAST_PRICE, F.HIGH, F.LOW, F.OPEN, F.CLOSE, F.CHANGE_RAW],
      [Kind.INDEX_FULL]: [F.TOKEN, F.KIND, F.LAST_PRICE, F.HIGH, F.LOW, F.OPEN, F.CLOSE, F.CHANGE_RAW, F.EXCHANGE_TIME],
      [Kind.QUOTE]: [F.TOKEN, F.KIND, F.LAST_PRICE, F.LAST_QTY, F.AVG_PRICE, F.VOLUME, F.BUY_QTY, F.SELL_QTY, F.OPEN, F.HIGH, F.LOW, F.CLOSE],
      [Kind.FULL]: [],
    };
    const sink = new ScratchSink();
    const stats = new DecodeStats();
    for (const kind of [Kind.LTP, Kind.INDEX_QUOTE, Kind.INDEX_FULL, Kind.QUOTE] as const) {
      sink.views.u32.fill(0xdead_beef);
      decodeFrame(encodeFrame([distinctTick(kind, NSE_CM_TOKEN)]), { recvTimeUs: 0, seq: 0, conn: 0 }, sink, stats);
      for (let w = 0; w < F.DEPTH + 30; w++) {
        if (carried[kind].includes(w)) expect(sink.views.u32[w], `kind ${kind} word ${w}`).not.toBe(0);
        else expect(sink.views.u32[w], `kind ${kind} word ${w}`).toBe(0);
      }
    }
  });

  it('writes the kind code and token', () => {
    const sink = new ScratchSink();
    decodeFrame(encodeFrame([distinctTick(Kind.INDEX_FULL, NIFTY_TOKEN)]), { recvTimeUs: 0, seq: 0, conn: 0 }, sink, new DecodeStats());
    expect(sink.views.u32[F.KIND]).toBe(Kind.INDEX_FULL);
    expect(sink.views.u32[F.TOKEN]).toBe(NIFTY_TOKEN);
  });

  it('stamps receive time, frame sequence and connection on every record of the frame', () => {
    const sink = new CollectingSink(1); // forces the sink to grow mid-frame
    const stats = new DecodeStats();
    const r = new Rng(11);
    const f1 = encodeFrame([genTick(r), genTick(r), genTick(r)]);
    const f2 = encodeFrame([genTick(r), genTick(r)]);
    decodeFrame(f1, { recvTimeUs: 1_718_177_769_123_456, seq: 41, conn: 2 }, sink, stats);
    decodeFrame(f2, { recvTimeUs: 1_718_177_769_999_999.5, seq: U32_MAX, conn: 0 }, sink, stats);
    expect(sink.count).toBe(5);
    const got = [];
    for (let i = 0; i < sink.count; i++) {
      got.push([sink.recvTimeUs(i), sink.views.u32[i * WORDS + F.SEQ], sink.views.u32[i * WORDS + F.CONN]]);
    }
    expect(got).toEqual([
      [1_718_177_769_123_456, 41, 2],
      [1_718_177_769_123_456, 41, 2],
      [1_718_177_769_123_456, 41, 2],
      [1_718_177_769_999_999.5, U32_MAX, 0],
      [1_718_177_769_999_999.5, U32_MAX, 0],
    ]);
    expect(stats.frames).toBe(2);
    expect(stats.packets).toBe(5);
    expect(stats.bytes).toBe(f1.length + f2.length);
  });

  it('returns the number of records committed', () => {
    const r = new Rng(3);
    const sink = new CollectingSink();
    const n = decodeFrame(encodeFrame([genTick(r), genTick(r)]), { recvTimeUs: 0, seq: 0, conn: 0 }, sink, new DecodeStats());
    expect(n).toBe(2);
    expect(sink.count).toBe(2);
    sink.clear();
    expect(sink.count).toBe(0);
  });
});

describe('parseTextMessage', () => {
  it('order postback', () => {
    const stats = new DecodeStats();
    const m = parseTextMessage('{"type":"order","data":{"order_id":"151220000000000","status":"COMPLETE"}}', stats);
    expect(m).toEqual({ type: 'order', data: { order_id: '151220000000000', status: 'COMPLETE' } });
    expect(stats.totalErrors()).toBe(0);
  });

  it('error and message carry a string', () => {
    expect(parseTextMessage('{"type":"error","data":"Invalid token"}')).toEqual({ type: 'error', data: 'Invalid token' });
    expect(parseTextMessage('{"type":"message","data":"hello"}')).toEqual({ type: 'message', data: 'hello' });
  });

  it('garbage, unknown types and wrong data shapes are null and counted BAD_TEXT', () => {
    const stats = new DecodeStats();
    const bad = [
      'not json',
      '',
      '{"type":"order"',
      'null',
      '42',
      '"order"',
      '[]',
      '{"type":"tick","data":{}}',
      '{"type":"order","data":"x"}',
      '{"type":"order","data":null}',
      '{"type":"error","data":{"x":1}}',
      '{"type":"message"}',
      '{"data":"x"}',
    ];
    for (const text of bad) expect(parseTextMessage(text, stats), text).toBeNull();
    expect(stats.errors[DecodeError.BAD_TEXT]).toBe(bad.length);
    expect(stats.errorCounts().bad_text).toBe(bad.length);
  });

  it('works without stats', () => {
    expect(parseTextMessage('garbage')).toBeNull();
  });
});
