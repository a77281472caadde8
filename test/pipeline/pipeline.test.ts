import { describe, expect, it } from 'vitest';
import { encodeFrame, decodeToTicks } from '../../src/kite/codec.ts';
import { N } from '../../src/core/tick.ts';
import { B, BarFlag } from '../../src/core/bar.ts';
import { QUARANTINE_REASON_NAMES, QuarantineReason } from '../../src/core/tick.ts';
import { run, stream, universe, type Collected } from './harness.ts';

function packets(frames: { bytes: Uint8Array }[]): number {
  return frames.reduce((n, f) => n + decodeToTicks(f.bytes).length, 0);
}

function sorted(c: Collected) {
  return {
    ticks: [...c.ticks.entries()].sort((a, b) => a[0] - b[0]),
    bars: [...c.bars.entries()].sort((a, b) => (a[0] < b[0] ? -1 : 1)),
    quarantined: c.quarantined.length,
  };
}

describe('pipeline', () => {
  const instruments = universe();
  const frames = stream(instruments, 1500, 11);
  const total = packets(frames);

  it('gives the same ticks and bars with 1, 2 and 4 workers', async () => {
    const one = await run({ workers: 1, instruments, frames });
    const two = await run({ workers: 2, instruments, frames });
    const four = await run({ workers: 4, instruments, frames });
    const ref = sorted(one.store);
    expect(ref.ticks.length).toBeGreaterThan(50);
    expect(ref.bars.length).toBeGreaterThan(100);
    expect(sorted(two.store)).toEqual(ref);
    expect(sorted(four.store)).toEqual(ref);
    // Every packet is accounted for: emitted, quarantined or a counted duplicate.
    for (const r of [one, two, four]) {
      expect(r.pipeline.ticksIn).toBe(total);
      expect(r.pipeline.ticksOut + r.pipeline.quarantined + r.pipeline.duplicates).toBe(total);
    }
  });

  it('loses nothing through tiny rings and a slow consumer: the front pauses instead', async () => {
    const small = frames.slice(0, 400);
    const n = packets(small);
    const r = await run({ workers: 2, instruments, frames: small, ringCapacity: 64, outCapacity: 64, slowFeedMs: 1 });
    const count = (c: Collected) => [...c.ticks.values()].reduce((a, t) => a + t.length, 0) + c.quarantined.length;
    expect(count(r.store)).toBe(n - r.pipeline.duplicates);
    expect(count(r.feed)).toBe(n - r.pipeline.duplicates);
    expect(sorted(r.feed)).toEqual(sorted(r.store));
    expect(r.front.pauses).toBeGreaterThan(0);
    expect(r.front.stats.errors.reduce((a, b) => a + b, 0)).toBe(0);
    for (const p of r.front.producers) expect(p.drops()).toBe(0);
  });

  it('flushes bars in progress at shutdown, marked partial', async () => {
    const r = await run({ workers: 2, instruments, frames: frames.slice(0, 50) });
    const lastBars = [...r.store.bars.values()].map((bars) => bars[bars.length - 1]);
    expect(lastBars.length).toBeGreaterThan(0);
    for (const bar of lastBars) expect(bar[B.FLAGS] & BarFlag.PARTIAL).toBe(BarFlag.PARTIAL);
  });

  it('drops exact duplicates and quarantines bad ticks with their reason', async () => {
    const base = frames.slice(0, 30);
    const ticks = decodeToTicks(base[29].bytes);
    const t = ticks[0];
    const bad = [
      { ...t, lastPrice: 0 },
      { ...t, token: 123_456_789 },
      { ...t, volume: 1 },
    ];
    const withBad = [...base, base[29], { bytes: encodeFrame(bad), recvUs: base[29].recvUs }];
    const r = await run({ workers: 2, instruments, frames: withBad });
    expect(r.pipeline.duplicates).toBeGreaterThanOrEqual(ticks.length);
    const reasons = r.store.quarantined.map((q) => QUARANTINE_REASON_NAMES[q[N.REASON]]).sort();
    expect(reasons).toEqual(['bad_price', 'unknown_token', 'volume_decreased']);
    expect(r.pipeline.quarantineByReason.bad_price).toBe(1);
    expect(r.store.quarantined.every((q) => q[N.REASON] !== QuarantineReason.PRICE_JUMP)).toBe(true);
  });

  it('emits canonical ticks in rupees with the instrument joined', async () => {
    const r = await run({ workers: 1, instruments, frames: frames.slice(0, 20) });
    const option = instruments.find((i) => i.instrumentType === 'CE')!;
    const equity = instruments.find((i) => i.instrumentType === 'EQ' && i.segment === 'NSE')!;
    const eq = r.store.ticks.get(equity.instrumentToken)![0];
    expect(eq[N.PRICE]).toBeGreaterThan(10);
    expect(Math.round(eq[N.PRICE] * 100) % 5).toBe(0);
    expect(eq[N.DEPTH_LEVELS]).toBe(5);
    expect(eq[N.DEPTH + 1]).toBeLessThan(eq[N.DEPTH + 16]); // best bid < best ask
    const opt = r.store.ticks.get(option.instrumentToken)?.[0];
    if (opt) {
      expect(opt[N.STRIKE]).toBe(option.strike);
      expect(opt[N.EXPIRY_MS]).toBe(Date.parse(`${option.expiry}T00:00:00+05:30`));
    }
  });
});
