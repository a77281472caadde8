import { describe, expect, it } from 'vitest';
import { N, N_FIELDS } from '../core/tick.ts';
import { SNAP, SNAP_HEADER, rowBase, snapshotLength } from '../core/chain-snapshot.ts';
import { SnapshotBuilder } from './snapshot.ts';

const T0 = Date.UTC(2026, 11, 4, 4, 0, 0); // 09:30 IST

/** Hub state of `rows` rows; `tick(row, fields)` writes a canonical tick. */
function hub(rows: number) {
  const ticks = new Float64Array(rows * N_FIELDS);
  const has = new Uint8Array(rows);
  return {
    ticks, has,
    tick(row: number, f: Partial<Record<keyof typeof N, number>>) {
      has[row] = 1;
      for (const [k, v] of Object.entries(f)) ticks[row * N_FIELDS + N[k as keyof typeof N]] = v;
    },
  };
}

describe('analytics snapshots', () => {
  it('copies price, best bid and ask, OI and the day\'s prices of each mapped hub row', () => {
    const h = hub(3);
    h.tick(2, { PRICE: 101.5, EXCH_TIME_MS: T0 - 5, OI: 7500, VOLUME: 900, OPEN: 100, HIGH: 103, LOW: 99, CLOSE: 98, DEPTH_LEVELS: 5 });
    const d = 2 * N_FIELDS + N.DEPTH;
    h.ticks.set([25, 101, 3], d); // best bid: qty, price, orders
    h.ticks.set([75, 102, 4], d + 15); // best ask
    const b = new SnapshotBuilder(Int32Array.from([2, 0]), 300_000, 1000);
    const s = new Float64Array(snapshotLength(2));
    b.fill(s, h.ticks, h.has, T0, 1);
    const r = rowBase(0);
    expect([s[r + SNAP.HAS], s[r + SNAP.PRICE], s[r + SNAP.BID], s[r + SNAP.BID_QTY], s[r + SNAP.ASK], s[r + SNAP.ASK_QTY]]).toEqual([1, 101.5, 101, 25, 102, 75]);
    expect([s[r + SNAP.OI], s[r + SNAP.VOLUME], s[r + SNAP.OPEN], s[r + SNAP.HIGH], s[r + SNAP.LOW], s[r + SNAP.CLOSE]]).toEqual([7500, 900, 100, 103, 99, 98]);
    expect(s[rowBase(1) + SNAP.HAS]).toBe(0);
    expect([s[SNAP_HEADER.NOW_MS], s[SNAP_HEADER.SEQ], s[SNAP_HEADER.NEWEST_MS]]).toEqual([T0, 1, T0 - 5]);
  });

  it('has no bid or ask for a tick without depth', () => {
    const h = hub(1);
    h.tick(0, { PRICE: 50, EXCH_TIME_MS: T0 });
    const b = new SnapshotBuilder(Int32Array.from([0]), 300_000, 1000);
    const s = new Float64Array(snapshotLength(1));
    b.fill(s, h.ticks, h.has, T0, 1);
    expect([s[rowBase(0) + SNAP.BID], s[rowBase(0) + SNAP.ASK]]).toEqual([0, 0]);
  });

  it('keeps the day\'s first OI, and the OI one interval ago once it has followed that long', () => {
    const h = hub(1);
    const b = new SnapshotBuilder(Int32Array.from([0]), 3000, 1000);
    const s = new Float64Array(snapshotLength(1));
    const at = (k: number) => {
      h.tick(0, { PRICE: 10, EXCH_TIME_MS: T0 + k * 1000, OI: 1000 + k });
      b.fill(s, h.ticks, h.has, T0 + k * 1000, k + 1);
      return [s[rowBase(0) + SNAP.OI_OPEN], s[rowBase(0) + SNAP.OI_AGO]];
    };
    expect(at(0)).toEqual([1000, NaN]);
    expect(at(1)).toEqual([1000, NaN]);
    expect(at(2)).toEqual([1000, NaN]);
    expect(at(3)).toEqual([1000, 1000]); // 3 s after the first sample
    expect(at(4)).toEqual([1000, 1001]);
    for (let k = 5; k < 12; k++) expect(at(k)).toEqual([1000, 1000 + k - 3]); // the ring wraps
  });

  it('starts a new day\'s opening OI at IST midnight', () => {
    const h = hub(1);
    const b = new SnapshotBuilder(Int32Array.from([0]), 300_000, 1000);
    const s = new Float64Array(snapshotLength(1));
    h.tick(0, { PRICE: 10, EXCH_TIME_MS: T0, OI: 500 });
    b.fill(s, h.ticks, h.has, T0, 1);
    const nextDay = T0 + 86_400_000;
    h.tick(0, { PRICE: 10, EXCH_TIME_MS: nextDay, OI: 800 });
    b.fill(s, h.ticks, h.has, nextDay, 2);
    expect(s[rowBase(0) + SNAP.OI_OPEN]).toBe(800);
  });
});
