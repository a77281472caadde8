/**
 * Random Kite ticks for tests and benches: a seeded PRNG (so a failing seed replays) and WireTick
 * generators that lean on edge values (0, ±1, 2^31-1, -2^31, counts past 2^31, u16 max orders).
 *
 * Generated ticks carry only the fields their kind puts on the wire; everything else is 0, which is
 * what the decoder writes for them, so `decode(encode(ticks))` can be compared with `toEqual`.
 */

import { emptyWireTick, type WireTick } from '../../src/kite/codec.ts';
import { Kind, type KindCode } from '../../src/core/packet-slot.ts';

export const ALL_KINDS: readonly KindCode[] = [Kind.LTP, Kind.INDEX_QUOTE, Kind.INDEX_FULL, Kind.QUOTE, Kind.FULL];
export const ALL_SEGMENTS: readonly number[] = [1, 2, 3, 4, 5, 6, 7, 8, 9];

export const I32_MAX = 0x7fff_ffff;
export const I32_MIN = -0x8000_0000;
export const U32_MAX = 0xffff_ffff;

/** A small, fast, seedable PRNG (mulberry32). Returns uint32. */
export class Rng {
  private s: number;
  constructor(seed: number) {
    this.s = seed >>> 0;
  }
  u32(): number {
    let t = (this.s = (this.s + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }
  /** Integer in [lo, hi] (inclusive), for spans up to 2^32. */
  int(lo: number, hi: number): number {
    return lo + Math.floor((this.u32() / 0x1_0000_0000) * (hi - lo + 1));
  }
  chance(p: number): boolean {
    return this.u32() / 0x1_0000_0000 < p;
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.u32() % xs.length];
  }
}

const PRICE_EDGES = [0, 1, -1, I32_MAX, I32_MIN, -250_000, 2_345_675];
const COUNT_EDGES = [0, 1, I32_MAX, 0x8000_0000, 0x8000_0001, U32_MAX, 3_000_000_000];
const TIME_EDGES = [0, 1, -1, I32_MAX, I32_MIN, 1_718_177_769];
const ORDER_EDGES = [0, 1, 0x7fff, 0x8000, 0xffff];

/** A signed 32-bit price: mostly realistic, sometimes any i32, sometimes an edge. */
export function genPrice(r: Rng): number {
  const roll = r.u32() % 10;
  if (roll === 0) return r.pick(PRICE_EDGES);
  if (roll === 1) return r.u32() | 0;
  return r.int(1, 5_000_000);
}

/** An unsigned 32-bit count (quantity, volume, OI). */
export function genCount(r: Rng): number {
  const roll = r.u32() % 10;
  if (roll === 0) return r.pick(COUNT_EDGES);
  if (roll === 1) return r.u32();
  return r.int(0, 50_000_000);
}

/** Epoch seconds as Kite sends them (signed 32-bit on the wire). */
export function genTime(r: Rng): number {
  const roll = r.u32() % 10;
  if (roll === 0) return r.pick(TIME_EDGES);
  if (roll === 1) return r.u32() | 0;
  return r.int(1_700_000_000, 1_800_000_000);
}

export function genOrders(r: Rng): number {
  return r.chance(0.1) ? r.pick(ORDER_EDGES) : r.int(0, 500);
}

/** A token of the given segment; sometimes at the top of the range (≥ 2^31) or the bottom. */
export function genToken(r: Rng, segment: number): number {
  const roll = r.u32() % 20;
  const high = roll === 0 ? 0 : roll === 1 ? 0xff_ffff : roll === 2 ? 0x7f_ffff : r.int(1, 0x3f_ffff);
  return ((high << 8) | segment) >>> 0;
}

/** One random tick of `kind` on `segment`, fields not carried by the kind left 0. */
export function genTick(r: Rng, kind: KindCode = r.pick(ALL_KINDS), segment: number = r.pick(ALL_SEGMENTS)): WireTick {
  const t = emptyWireTick(kind, genToken(r, segment));
  t.lastPrice = genPrice(r);
  if (kind === Kind.LTP) return t;
  t.open = genPrice(r);
  t.high = genPrice(r);
  t.low = genPrice(r);
  t.close = r.chance(0.1) ? 0 : genPrice(r);
  if (kind === Kind.INDEX_QUOTE || kind === Kind.INDEX_FULL) {
    t.changeRaw = genPrice(r);
    if (kind === Kind.INDEX_FULL) t.exchangeTime = genTime(r);
    return t;
  }
  t.lastQty = genCount(r);
  t.avgPrice = genPrice(r);
  t.volume = genCount(r);
  t.buyQty = genCount(r);
  t.sellQty = genCount(r);
  if (kind === Kind.QUOTE) return t;
  t.lastTradeTime = genTime(r);
  t.oi = genCount(r);
  t.oiHigh = genCount(r);
  t.oiLow = genCount(r);
  t.exchangeTime = genTime(r);
  for (let i = 0; i < 10; i++) {
    t.depth[i].quantity = genCount(r);
    t.depth[i].price = genPrice(r);
    t.depth[i].orders = genOrders(r);
  }
  return t;
}

/** `n` ticks of one kind (or mixed when kind is undefined). */
export function genTicks(r: Rng, n: number, kind?: KindCode): WireTick[] {
  const out: WireTick[] = [];
  for (let i = 0; i < n; i++) out.push(genTick(r, kind ?? r.pick(ALL_KINDS)));
  return out;
}

/**
 * A tick with every carried field non-zero and distinct, so a test can see which word went where.
 * Values stay well inside i32/u32/u16 so they encode as given.
 */
export function distinctTick(kind: KindCode, token: number): WireTick {
  const t = emptyWireTick(kind, token);
  let v = 1001;
  const next = (): number => (v += 7);
  t.lastPrice = next();
  if (kind === Kind.LTP) return t;
  t.open = next();
  t.high = next();
  t.low = next();
  t.close = next();
  if (kind === Kind.INDEX_QUOTE || kind === Kind.INDEX_FULL) {
    t.changeRaw = next();
    if (kind === Kind.INDEX_FULL) t.exchangeTime = 1_718_177_769;
    return t;
  }
  t.lastQty = next();
  t.avgPrice = next();
  t.volume = next();
  t.buyQty = next();
  t.sellQty = next();
  if (kind === Kind.QUOTE) return t;
  t.lastTradeTime = 1_718_177_768;
  t.oi = next();
  t.oiHigh = next();
  t.oiLow = next();
  t.exchangeTime = 1_718_177_769;
  for (let i = 0; i < 10; i++) {
    t.depth[i].quantity = next();
    t.depth[i].price = next();
    t.depth[i].orders = next();
  }
  return t;
}
