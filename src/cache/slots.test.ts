import { PerformanceObserver, constants } from 'node:perf_hooks';
import { describe, expect, it } from 'vitest';
import { N, N_FIELDS, NType } from '../core/tick.ts';
import { B, BAR_FIELDS } from '../core/bar.ts';
import { LatestSlots, MAX_TIMEFRAMES } from './slots.ts';
import { makeBar, makeTick } from '../../test/support/canonical-fixtures.ts';

describe('LatestSlots', () => {
  it('keeps one dirty entry per token however often it is put, holding the latest', () => {
    const s = new LatestSlots();
    const t = makeTick(7, 100);
    for (let i = 0; i < 1000; i++) {
      t[N.PRICE] = 100 + i;
      s.putTick(t, 0);
    }
    expect(s.puts).toBe(1000);
    expect(s.ticks.dirtyCount).toBe(1);
    const out = new Int32Array(s.ticks.capacity);
    expect(s.ticks.takeDirty(out)).toBe(1);
    expect(s.ticks.values[out[0] * N_FIELDS + N.PRICE]).toBe(1099);
    expect(s.ticks.dirtyCount).toBe(0);
    s.putTick(t, 0);
    expect(s.ticks.dirtyCount).toBe(1);
  });

  it('grows past its initial capacity without losing a value or a dirty mark', () => {
    const s = new LatestSlots();
    for (let tok = 1; tok <= 3000; tok++) s.putTick(makeTick(tok, tok / 4), 0);
    expect(s.ticks.dirtyCount).toBe(3000);
    for (const tok of [1, 256, 257, 2999, 3000]) {
      expect(s.ticks.values[s.tickSlot(tok) * N_FIELDS + N.PRICE]).toBe(tok / 4);
    }
    const out = new Int32Array(s.ticks.capacity);
    expect(new Set(out.subarray(0, s.ticks.takeDirty(out))).size).toBe(3000);
  });

  it('skips quarantined ticks: they are not the instrument quote', () => {
    const s = new LatestSlots();
    expect(s.putTick(makeTick(7, 100, 1, { TYPE: NType.QUARANTINE }), 0)).toBe(false);
    expect(s.tickSlot(7)).toBe(-1);
    expect(s.skipped).toBe(1);
  });

  it('replaces a bar by the same or a later bucket and skips an earlier one', () => {
    const s = new LatestSlots();
    s.putBar(makeBar(7, 60_000, 120_000, 100), 0);
    s.putBar(makeBar(7, 60_000, 120_000, 101, 1), 0); // same bucket, now closed
    expect(s.bars.values[s.barSlot(7, 60_000) * BAR_FIELDS + B.CLOSE]).toBe(101);
    expect(s.putBar(makeBar(7, 60_000, 60_000, 99), 0)).toBe(false);
    expect(s.bars.values[s.barSlot(7, 60_000) * BAR_FIELDS + B.CLOSE]).toBe(101);
    s.putBar(makeBar(7, 60_000, 180_000, 102), 0);
    expect(s.bars.values[s.barSlot(7, 60_000) * BAR_FIELDS + B.START_MS]).toBe(180_000);
    expect(s.barSlots(7)).toHaveLength(1);
    expect(s.skipped).toBe(1);
  });

  it('keeps timeframes of one token apart and counts those past MAX_TIMEFRAMES as skipped', () => {
    const s = new LatestSlots();
    for (let k = 1; k <= MAX_TIMEFRAMES + 1; k++) s.putBar(makeBar(7, k * 1000, 0, k), 0);
    expect(s.barSlots(7)).toHaveLength(MAX_TIMEFRAMES);
    expect(s.bars.values[s.barSlot(7, 5000) * BAR_FIELDS + B.CLOSE]).toBe(5);
    expect(s.barSlot(7, (MAX_TIMEFRAMES + 1) * 1000)).toBe(-1);
    expect(s.skipped).toBe(1);
  });

  it('allocates nothing per put once a token is known', async () => {
    const s = new LatestSlots();
    const ticks = Array.from({ length: 64 }, (_, i) => makeTick(1000 + i, 100 + i));
    const bar = makeBar(1000, 60_000, 0, 100);
    const put = (n: number) => {
      for (let i = 0; i < n; i++) {
        s.putTick(ticks[i & 63], 0);
        s.putBar(bar, 0);
      }
    };
    put(200_000); // warm up: known tokens, optimised code
    // Garbage shows as young-generation collections: 2M puts allocating even a 48-byte view each
    // is ~100 MB, measured 26 scavenges. A few are allowed for the test runner's own work.
    let gcs = 0;
    const obs = new PerformanceObserver((list) => {
      for (const e of list.getEntries()) if ((e as { detail?: { kind?: number } }).detail?.kind === constants.NODE_PERFORMANCE_GC_MINOR) gcs++;
    });
    obs.observe({ entryTypes: ['gc'] });
    put(1_000_000);
    await new Promise((r) => setTimeout(r, 50));
    obs.disconnect();
    expect(gcs).toBeLessThanOrEqual(3);
  });
});
