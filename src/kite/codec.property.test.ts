/**
 * Property tests: decodeFrame against random and mutated frames (well over 100,000 in all).
 *
 * Every input is checked against an independent reference decoder (test/support/model.ts, written
 * from the protocol text with byte arithmetic): same records, same counters. On top of that:
 * - it never throws (a DataView read past the message would throw RangeError, so this also rules
 *   out reads past the end);
 * - it never writes more records than the bytes can hold (a packet is at least 2 + 8 bytes);
 * - packets + unknown + sink-full equals the announced count unless the frame was cut;
 * - a valid frame decodes to exactly the ticks encoded;
 * - decoding from a subarray of a larger buffer full of sentinel bytes gives the same records as
 *   decoding an exact copy, so nothing from outside the subarray reaches a record.
 *
 * Frames are built from a seed by test/support/gen.ts (fast, edge-heavy); fast-check drives seeds,
 * packet kinds and mutations, so a failure still shrinks to few packets and few mutations.
 */

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CollectingSink, DecodeError, DecodeStats, decodeFrame, decodeToTicks, encodeFrame, wireTickOf, type WireTick } from './codec.ts';
import { F, KIND_LENGTH, Kind, type KindCode, WORDS } from '../core/packet-slot.ts';
import { ALL_KINDS, Rng, genTick } from '../../test/support/gen.ts';
import { modelDecode } from '../../test/support/model.ts';
import { BoundedSink } from '../../test/support/sinks.ts';

/** Fixed so CI runs are reproducible; change it (or set FC_SEED) to explore further. */
const SEED = Number(process.env.FC_SEED ?? 0x5eed_2026);
let framesChecked = 0;
/** What the inputs exercised (frames showing each outcome), so a degenerate generator fails loudly. */
const seen = { records: 0, heartbeat: 0, empty: 0, truncated: 0, unknown: 0, trailing: 0, sinkFull: 0 };

const kindArb = fc.constantFrom<KindCode>(...ALL_KINDS);

interface Built {
  ticks: WireTick[];
  frame: Uint8Array;
  /** Offsets of each packet's length field. */
  lengthAt: number[];
}

function build(seed: number, kinds: KindCode[]): Built {
  const r = new Rng(seed);
  const ticks = kinds.map((k) => genTick(r, k));
  const frame = encodeFrame(ticks);
  const lengthAt: number[] = [];
  let o = 2;
  for (const t of ticks) {
    lengthAt.push(o);
    o += 2 + KIND_LENGTH[t.kind];
  }
  return { ticks, frame, lengthAt };
}

const validFrameArb = fc
  .record({ seed: fc.integer(), kinds: fc.array(kindArb, { minLength: 1, maxLength: 24 }) })
  .map(({ seed, kinds }) => build(seed, kinds));

type Mutation =
  | { op: 'flip'; at: number; bit: number }
  | { op: 'truncate'; at: number }
  | { op: 'insert'; at: number; bytes: Uint8Array }
  | { op: 'delete'; at: number; n: number }
  | { op: 'count'; value: number }
  | { op: 'length'; which: number; value: number }
  | { op: 'append'; bytes: Uint8Array };

/** Positions are fractions of the frame length so a mutation stays meaningful after shrinking. */
const fracArb = fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true });
const plausibleLength = fc.oneof(
  fc.constantFrom(0, 1, 7, 8, 9, 27, 28, 29, 31, 32, 33, 43, 44, 45, 183, 184, 185, 0xffff),
  fc.integer({ min: 0, max: 0xffff }),
);
const mutationArb: fc.Arbitrary<{ kind: Mutation['op']; frac: number; a: number; bytes: Uint8Array }> = fc.record({
  kind: fc.constantFrom<Mutation['op']>('flip', 'truncate', 'insert', 'delete', 'count', 'length', 'append'),
  frac: fracArb,
  a: fc.integer({ min: 0, max: 0xffff }),
  bytes: fc.uint8Array({ minLength: 1, maxLength: 12 }),
});
const mutatedFrameArb = fc
  .tuple(validFrameArb, fc.array(mutationArb, { minLength: 1, maxLength: 4 }), plausibleLength)
  .map(([b, muts, plen]) => ({ built: b, muts, bytes: mutate(b, muts, plen) }));

function mutate(b: Built, muts: { kind: Mutation['op']; frac: number; a: number; bytes: Uint8Array }[], plen: number): Uint8Array {
  let f = Uint8Array.from(b.frame);
  for (const m of muts) {
    const at = Math.floor(m.frac * (f.length + 1));
    switch (m.kind) {
      case 'flip':
        if (f.length > 0) f[Math.min(at, f.length - 1)] ^= 1 << (m.a & 7);
        break;
      case 'truncate':
        f = f.slice(0, at);
        break;
      case 'insert': {
        const g = new Uint8Array(f.length + m.bytes.length);
        g.set(f.subarray(0, at));
        g.set(m.bytes, at);
        g.set(f.subarray(at), at + m.bytes.length);
        f = g;
        break;
      }
      case 'delete': {
        const n = 1 + (m.a % 16);
        f = Uint8Array.from([...f.subarray(0, at), ...f.subarray(at + n)]);
        break;
      }
      case 'count':
        // Lie about the count: near the truth most of the time, anything sometimes.
        if (f.length >= 2) {
          const truth = b.ticks.length;
          const v = m.a % 3 === 0 ? m.a : Math.max(0, truth + ((m.a % 7) - 3));
          f[0] = (v >> 8) & 0xff;
          f[1] = v & 0xff;
        }
        break;
      case 'length': {
        // Lie about one packet's length (the original offsets; may be stale after other edits).
        const o = b.lengthAt[m.a % b.lengthAt.length];
        if (o + 1 < f.length) {
          f[o] = (plen >> 8) & 0xff;
          f[o + 1] = plen & 0xff;
        }
        break;
      }
      case 'append': {
        const g = new Uint8Array(f.length + m.bytes.length);
        g.set(f);
        g.set(m.bytes, f.length);
        f = g;
        break;
      }
    }
  }
  return f;
}

/** Random bytes behind a header that announces a plausible number of packets, to get past byte 2. */
const headedBytesArb = fc
  .tuple(fc.integer({ min: 0, max: 40 }), fc.array(fc.tuple(plausibleLength, fc.integer({ min: -3, max: 3 })), { maxLength: 8 }), fc.integer())
  .map(([count, packets, seed]) => {
    // Packets of plausible lengths with random bodies; the body is sometimes a little short or long.
    const r = new Rng(seed);
    const parts: number[] = [(count >> 8) & 0xff, count & 0xff];
    for (const [plen, skew] of packets) {
      parts.push((plen >> 8) & 0xff, plen & 0xff);
      const bodyLen = Math.max(0, Math.min(plen, 400) + skew);
      for (let i = 0; i < bodyLen; i++) parts.push(r.u32() & 0xff);
    }
    return Uint8Array.from(parts);
  });

/** Field-by-field equality; far cheaper than toEqual, which only runs to print a diff on failure. */
function sameTick(a: WireTick, b: WireTick): boolean {
  if (
    a.kind !== b.kind || a.token !== b.token || a.lastPrice !== b.lastPrice || a.lastQty !== b.lastQty ||
    a.avgPrice !== b.avgPrice || a.volume !== b.volume || a.buyQty !== b.buyQty || a.sellQty !== b.sellQty ||
    a.open !== b.open || a.high !== b.high || a.low !== b.low || a.close !== b.close || a.changeRaw !== b.changeRaw ||
    a.lastTradeTime !== b.lastTradeTime || a.oi !== b.oi || a.oiHigh !== b.oiHigh || a.oiLow !== b.oiLow ||
    a.exchangeTime !== b.exchangeTime || a.depth.length !== b.depth.length
  ) return false;
  for (let i = 0; i < a.depth.length; i++) {
    const x = a.depth[i];
    const y = b.depth[i];
    if (x.quantity !== y.quantity || x.price !== y.price || x.orders !== y.orders) return false;
  }
  return true;
}

function expectSameTicks(got: WireTick[], want: WireTick[]): void {
  if (got.length === want.length && got.every((t, i) => sameTick(t, want[i]))) return;
  expect(got).toEqual(want); // fails, with a readable diff
}

function expectSameNumbers(got: ArrayLike<number>, want: ArrayLike<number>, what: string): void {
  let same = got.length === want.length;
  for (let i = 0; same && i < got.length; i++) same = got[i] === want[i];
  if (!same) expect(Array.from(got), what).toEqual(Array.from(want));
}

/** Throw with the input in hex (to replay it) when an invariant fails. */
function ensure(ok: boolean, msg: Uint8Array, what: string): void {
  if (!ok) throw new Error(`${what}; input ${Buffer.from(msg).toString('hex')}`);
}

/** Decode `msg` with a CollectingSink and check it against the model and the invariants. */
function checkAgainstModel(msg: Uint8Array): void {
  framesChecked++;
  const sink = new CollectingSink(4);
  const stats = new DecodeStats();
  let written: number;
  try {
    written = decodeFrame(msg, { recvTimeUs: 1, seq: 2, conn: 3 }, sink, stats);
  } catch (e) {
    throw new Error(`decodeFrame threw on ${Buffer.from(msg).toString('hex')}: ${String(e)}`);
  }
  const len = msg.byteLength;
  // Never more records than the bytes allow: a packet costs at least 2 + 8 bytes.
  ensure(written <= (len >= 2 ? Math.floor((len - 2) / 10) : 0), msg, `wrote ${written} records from ${len} bytes`);
  ensure(sink.count === written && stats.packets === written, msg, `returned ${written}, committed ${sink.count}, counted ${stats.packets}`);
  ensure(stats.frames === 1 && stats.bytes === len, msg, 'frames/bytes counters');

  const m = modelDecode(msg);
  if (written > 0) seen.records++;
  if (stats.heartbeats > 0) seen.heartbeat++;
  if (stats.errors[DecodeError.EMPTY] > 0) seen.empty++;
  if (stats.errors[DecodeError.TRUNCATED] > 0) seen.truncated++;
  if (stats.errors[DecodeError.UNKNOWN_LENGTH] > 0) seen.unknown++;
  if (stats.errors[DecodeError.TRAILING_BYTES] > 0) seen.trailing++;
  ensure(stats.heartbeats === (m.heartbeat ? 1 : 0), msg, 'heartbeat');
  expectSameNumbers(stats.errors, m.errors, 'error counters vs reference decoder');
  expectSameTicks(sink.ticks(), m.ticks);

  // Accounting: every packet slot walked is a record, an unknown length or a sink-full skip; the
  // walk covers the whole announced count unless the frame was cut.
  const e = stats.errors;
  const accounted = written + e[DecodeError.UNKNOWN_LENGTH] + e[DecodeError.SINK_FULL];
  ensure(accounted === m.walked, msg, 'records + unknown + sink-full = packets walked');
  if (e[DecodeError.TRUNCATED] === 0 && len >= 2 && !m.heartbeat) ensure(accounted === m.announced, msg, 'uncut frame: accounted = announced');
  if (e[DecodeError.TRUNCATED] === 1) ensure(accounted < m.announced, msg, 'cut frame: accounted < announced');
  // One frame ends one way: at most one of truncated / trailing, and empty only when empty.
  ensure(e[DecodeError.TRUNCATED] + e[DecodeError.TRAILING_BYTES] <= 1, msg, 'both truncated and trailing');
  ensure(e[DecodeError.EMPTY] === (len === 0 ? 1 : 0), msg, 'empty');
  for (let i = 0; i < sink.count; i++) {
    const b = i * WORDS;
    ensure(sink.recvTimeUs(i) === 1 && sink.views.u32[b + F.SEQ] === 2 && sink.views.u32[b + F.CONN] === 3, msg, `stamp of record ${i}`);
  }
}

describe('decodeFrame on random and mutated frames', () => {
  it('random bytes (40,000): never throws, matches the reference decoder', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 600 }), (msg) => checkAgainstModel(msg)), { numRuns: 40_000, seed: SEED });
  });

  it('random bytes behind a plausible header (30,000): matches the reference decoder', () => {
    fc.assert(fc.property(headedBytesArb, (msg) => checkAgainstModel(msg)), { numRuns: 30_000, seed: SEED + 1 });
  });

  it('valid frames (10,000): decode to exactly the encoded ticks, no errors', () => {
    fc.assert(
      fc.property(validFrameArb, ({ ticks, frame }) => {
        const sink = new CollectingSink(4);
        const stats = new DecodeStats();
        const n = decodeFrame(frame, { recvTimeUs: 0, seq: 0, conn: 0 }, sink, stats);
        ensure(n === ticks.length && stats.packets === n && stats.totalErrors() === 0, frame, `valid frame: ${n} of ${ticks.length}, ${stats.totalErrors()} errors`);
        expectSameTicks(sink.ticks(), ticks);
        checkAgainstModel(frame);
      }),
      { numRuns: 10_000, seed: SEED + 2 },
    );
  });

  it('mutated valid frames (80,000: bit flips, truncation, inserted/deleted bytes, lying counts and lengths)', () => {
    fc.assert(
      fc.property(mutatedFrameArb, ({ built, bytes }) => {
        checkAgainstModel(bytes);
        // Edits that cancel out (e.g. a count set to its true value) must leave the ticks intact.
        if (bytes.length === built.frame.length && bytes.every((x, i) => x === built.frame[i])) {
          expectSameTicks(decodeToTicks(bytes), built.ticks);
        }
      }),
      { numRuns: 80_000, seed: SEED + 3 },
    );
  });

  it('subarray of a sentinel-filled buffer (20,000): records hold nothing from outside the subarray', () => {
    const frameArb = fc.oneof(
      mutatedFrameArb.map((x) => x.bytes),
      validFrameArb.map((x) => x.frame),
      fc.uint8Array({ maxLength: 300 }),
    );
    fc.assert(
      fc.property(frameArb, fc.integer({ min: 0, max: 64 }), fc.integer({ min: 0, max: 255 }), (bytes, pad, sentinel) => {
        framesChecked++;
        const big = new Uint8Array(pad + bytes.length + 256).fill(sentinel);
        big.set(bytes, pad);
        const inside = big.subarray(pad, pad + bytes.length);
        const copy = Uint8Array.from(bytes); // its own ArrayBuffer: any overread would throw here

        const a = new CollectingSink(2);
        const b = new CollectingSink(2);
        const sa = new DecodeStats();
        const sb = new DecodeStats();
        const stamp = { recvTimeUs: 5, seq: 6, conn: 7 };
        const na = decodeFrame(inside, stamp, a, sa);
        const nb = decodeFrame(copy, stamp, b, sb);
        ensure(na === nb, bytes, `subarray decoded ${na} records, copy ${nb}`);
        // Whole records, word by word (stamp included), not just the WireTick projection.
        expectSameNumbers(a.views.u32.subarray(0, a.count * WORDS), b.views.u32.subarray(0, b.count * WORDS), 'records');
        expectSameNumbers(sa.errors, sb.errors, 'error counters');
        expectSameNumbers([sa.packets, sa.heartbeats, sa.bytes], [sb.packets, sb.heartbeats, sb.bytes], 'counters');
        // The buffer is untouched around and inside the subarray (the decoder never writes its input).
        for (let i = 0; i < pad; i++) ensure(big[i] === sentinel, bytes, 'sentinel before');
        for (let i = pad + bytes.length; i < big.length; i++) ensure(big[i] === sentinel, bytes, 'sentinel after');
        for (let i = 0; i < bytes.length; i++) ensure(inside[i] === bytes[i], bytes, 'input modified');
      }),
      { numRuns: 20_000, seed: SEED + 4 },
    );
  });

  it('bounded sinks (10,000): records up to capacity, the rest counted SINK_FULL', () => {
    fc.assert(
      fc.property(fc.oneof(validFrameArb.map((x) => x.frame), mutatedFrameArb.map((x) => x.bytes)), fc.integer({ min: 0, max: 30 }), (bytes, capacity) => {
        framesChecked++;
        const sink = new BoundedSink(capacity);
        const stats = new DecodeStats();
        const written = decodeFrame(bytes, { recvTimeUs: 0, seq: 0, conn: 0 }, sink, stats);
        if (stats.errors[DecodeError.SINK_FULL] > 0) seen.sinkFull++;
        const m = modelDecode(bytes, capacity);
        ensure(written === m.ticks.length && written <= capacity && sink.count === written, bytes, `capacity ${capacity}: wrote ${written}`);
        expectSameNumbers(stats.errors, m.errors, 'error counters vs reference decoder');
        const got: WireTick[] = [];
        for (let i = 0; i < sink.count; i++) got.push(wireTickOf(sink.views, i * WORDS));
        expectSameTicks(got, m.ticks);
      }),
      { numRuns: 10_000, seed: SEED + 5 },
    );
  });

  it('checked at least 100,000 frames in all, reaching every outcome', () => {
    // Runs after the properties above (vitest runs a file's tests in order).
    expect(framesChecked).toBeGreaterThanOrEqual(100_000);
    const share = Object.fromEntries(Object.entries(seen).map(([k, v]) => [k, v / framesChecked]));
    console.log(`frames checked: ${framesChecked}; share of frames showing each outcome:`, share);
    for (const k of ['records', 'truncated', 'unknown', 'trailing'] as const) expect(share[k], k).toBeGreaterThan(0.02);
    for (const k of ['heartbeat', 'empty', 'sinkFull'] as const) expect(seen[k], k).toBeGreaterThan(0);
  });
});

describe('the reference decoder agrees with the hand-written cases', () => {
  it('a valid mixed frame', () => {
    const r = new Rng(1);
    const ticks = ALL_KINDS.map((k) => genTick(r, k));
    expect(modelDecode(encodeFrame(ticks)).ticks).toEqual(ticks);
  });
  it('a heartbeat and an empty message', () => {
    expect(modelDecode(new Uint8Array([0])).heartbeat).toBe(true);
    expect(modelDecode(new Uint8Array(0)).errors[DecodeError.EMPTY]).toBe(1);
  });
  it('index order is high, low, open, close', () => {
    const t = genTick(new Rng(2), Kind.INDEX_QUOTE);
    const [back] = modelDecode(encodeFrame([t])).ticks;
    expect([back.high, back.low, back.open, back.close]).toEqual([t.high, t.low, t.open, t.close]);
  });
});
