import { describe, expect, it } from 'vitest';
import { createPackr, createUnpackr, FEED_MODES, STRUCTURES, tickFor } from '../../src/gateway/messages.ts';
import { N, N_FIELDS } from '../../src/core/tick.ts';

describe('feed messages', () => {
  const f = new Float64Array(N_FIELDS).map((_, i) => i + 0.5);
  f[N.DAY_VWAP] = NaN;

  it('projects each mode with its record structure keys, in order, so records stay one byte of id', () => {
    FEED_MODES.forEach((mode, m) => {
      expect(Object.keys(tickFor(f, 0, mode, 'INFY'))).toEqual(STRUCTURES[m]);
    });
  });

  it('round-trips a full tick through the shared structures', () => {
    const t = tickFor(f, 0, 'full', 'INFY');
    const back = createUnpackr().unpack(createPackr(true).pack({ type: 'ticks', d: [t] }));
    expect(back.d[0]).toEqual(t);
    expect(back.d[0].dvw).toBeNull();
    expect(back.d[0].bid).toEqual([0, 1, 2, 3, 4].map((i) => [f[N.DEPTH + 3 * i + 1], f[N.DEPTH + 3 * i], f[N.DEPTH + 3 * i + 2]]));
  });
});
