/**
 * Reference aggregation, for tests only: the rules of aggregate.ts restated in the plainest code,
 * with plain objects, one loop over the events and no shared helpers, so that a bug in the fast
 * module is unlikely to be repeated here.
 *
 * Buckets are found differently from ist.ts: for each IST day the list of every bucket
 * boundary is written out (grid points stepped one timeframe at a time from 09:15 backwards to
 * midnight and forwards to 15:30, then from 15:30 forwards to midnight, plus 00:00, 15:30 and
 * 24:00), and the bucket of t is the pair of neighbouring boundaries around it.
 */

import type { CanonicalBar } from '../../src/core/bar.ts';

export type RefEvent =
  | { kind: 'tick'; token: number; exchTimeMs: number; price: number; volumeDelta: number; oi: number; nowMs: number }
  | { kind: 'advance'; nowMs: number };

const DAY = 24 * 60 * 60 * 1000;
const IST = (5 * 60 + 30) * 60 * 1000;
const OPEN_AT = (9 * 60 + 15) * 60 * 1000;
const CLOSE_AT = (15 * 60 + 30) * 60 * 1000;

// Flag bits, restated from bar.ts on purpose.
const CLOSED = 1;
const PARTIAL = 2;
const LATE = 4;
const CARRIED = 8;

function mod(x: number, m: number): number {
  return ((x % m) + m) % m;
}

/** 00:00 IST of the IST day of t: subtract the time elapsed since IST midnight. */
function istMidnight(t: number): number {
  return t - mod(t + IST, DAY);
}

const boundaryCache = new Map<string, number[]>();

/** Every bucket boundary of the IST day starting at `day`, ascending, 00:00 and 24:00 included. */
function boundaries(day: number, tf: number): number[] {
  const key = `${day}:${tf}`;
  const cached = boundaryCache.get(key);
  if (cached) return cached;
  const set = new Set<number>([day, day + DAY]);
  if (tf !== DAY) {
    set.add(day + CLOSE_AT);
    for (let p = day + OPEN_AT; p > day; p -= tf) set.add(p);
    for (let p = day + OPEN_AT; p < day + CLOSE_AT; p += tf) set.add(p);
    for (let p = day + CLOSE_AT; p < day + DAY; p += tf) set.add(p);
  }
  const list = [...set].sort((x, y) => x - y);
  if (boundaryCache.size > 2000) boundaryCache.clear();
  boundaryCache.set(key, list);
  return list;
}

/** [start, end) of the tf bucket that contains t. */
export function refBucket(t: number, tf: number): [number, number] {
  const list = boundaries(istMidnight(t), tf);
  // Binary search for the last boundary <= t.
  let lo = 0;
  let hi = list.length - 1;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (list[mid] <= t) lo = mid;
    else hi = mid;
  }
  return [list[lo], list[lo + 1]];
}

interface RefSlot {
  open: (CanonicalBar & { sumPV: number }) | null;
  lastClosed: CanonicalBar | null;
}

/**
 * Run the events through the rules; returns every closed bar (after a final flush), in emission
 * order, and how many (tick, timeframe) pairs were late.
 */
export function referenceAggregate(
  events: readonly RefEvent[],
  timeframesMs: readonly number[],
  graceMs: number,
): { bars: CanonicalBar[]; late: number } {
  const slots = new Map<string, RefSlot>();
  const out: CanonicalBar[] = [];
  let late = 0;
  let clock = -Infinity;

  const closeBar = (slot: RefSlot, flags: number) => {
    const { sumPV: _unused, ...bar } = slot.open!;
    bar.flags |= flags;
    out.push(bar);
    slot.lastClosed = bar;
    slot.open = null;
  };

  const runClock = (now: number) => {
    clock = Math.max(clock, now);
    for (const slot of slots.values()) {
      if (slot.open && slot.open.endMs + graceMs <= now) closeBar(slot, CLOSED);
    }
  };

  for (const ev of events) {
    runClock(ev.nowMs);
    if (ev.kind === 'advance') continue;
    for (const tf of timeframesMs) {
      const key = `${ev.token}:${tf}`;
      let slot = slots.get(key);
      if (!slot) {
        slot = { open: null, lastClosed: null };
        slots.set(key, slot);
      }
      const [start, end] = refBucket(ev.exchTimeMs, tf);
      const bar = slot.open;
      const isLate = bar ? start < bar.startMs : slot.lastClosed !== null && start <= slot.lastClosed.startMs;

      if (isLate) {
        late++;
        let target = bar;
        if (!target) {
          const prev = slot.lastClosed!;
          const [nextStart, nextEnd] = refBucket(prev.endMs, tf);
          target = {
            token: ev.token, tfMs: tf, startMs: nextStart, endMs: nextEnd,
            open: prev.close, high: prev.close, low: prev.close, close: prev.close,
            volume: 0, vwap: null, trades: 0, oi: prev.oi, ticks: 0, flags: CARRIED, sumPV: 0,
          };
          slot.open = target;
        }
        target.flags |= LATE;
        target.volume += ev.volumeDelta;
        target.sumPV += ev.price * ev.volumeDelta;
        target.trades += ev.volumeDelta > 0 ? 1 : 0;
        target.ticks += 1;
        target.vwap = target.volume === 0 ? null : target.sumPV / target.volume;
        continue;
      }

      if (bar && start > bar.startMs) closeBar(slot, CLOSED);

      if (slot.open) {
        const b = slot.open;
        if (b.flags & CARRIED) {
          b.flags &= ~CARRIED;
          b.open = ev.price;
          b.high = ev.price;
          b.low = ev.price;
        }
        b.high = Math.max(b.high, ev.price);
        b.low = Math.min(b.low, ev.price);
        b.close = ev.price;
        b.oi = ev.oi;
        b.volume += ev.volumeDelta;
        b.sumPV += ev.price * ev.volumeDelta;
        b.trades += ev.volumeDelta > 0 ? 1 : 0;
        b.ticks += 1;
        b.vwap = b.volume === 0 ? null : b.sumPV / b.volume;
      } else {
        slot.open = {
          token: ev.token, tfMs: tf, startMs: start, endMs: end,
          open: ev.price, high: ev.price, low: ev.price, close: ev.price,
          volume: ev.volumeDelta, vwap: ev.volumeDelta === 0 ? null : (ev.price * ev.volumeDelta) / ev.volumeDelta,
          trades: ev.volumeDelta > 0 ? 1 : 0, oi: ev.oi, ticks: 1, flags: 0, sumPV: ev.price * ev.volumeDelta,
        };
      }
    }
  }

  // Flush.
  for (const slot of slots.values()) {
    if (slot.open) closeBar(slot, slot.open.endMs > clock ? CLOSED | PARTIAL : CLOSED);
  }
  return { bars: out, late };
}
