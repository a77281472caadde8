import { describe, expect, it } from 'vitest';
import { LATENCY_BUCKETS, latencyBucket, latencyQuantile, WC, WRITER_COUNTERS } from './writer-protocol.ts';

function record(c: Float64Array, ms: number, n: number): void {
  c[WC.LATENCY + latencyBucket(ms)] += n;
}

describe('latencyQuantile', () => {
  it('gives the bucket edge at the quantile of the whole histogram', () => {
    const c = new Float64Array(WRITER_COUNTERS);
    record(c, 3.5, 98);
    record(c, 250, 2);
    expect(latencyQuantile(c, 0.5)).toBe(4);
    expect(latencyQuantile(c, 0.99)).toBe(260);
  });

  it('is NaN for an empty histogram', () => {
    expect(latencyQuantile(new Float64Array(WRITER_COUNTERS), 0.99)).toBeNaN();
  });

  it('counts only what came after an earlier copy, so a slow start no longer holds up the p99', () => {
    const c = new Float64Array(WRITER_COUNTERS);
    record(c, 20_000, 1000); // start-up: rows queued while the database opened
    const before = c.slice(WC.LATENCY, WC.LATENCY + LATENCY_BUCKETS);
    record(c, 7.2, 500);
    expect(latencyQuantile(c, 0.99)).toBe(Infinity);
    expect(latencyQuantile(c, 0.99, before)).toBe(8);
    expect(latencyQuantile(new Float64Array(c), 0.5, c.slice(WC.LATENCY, WC.LATENCY + LATENCY_BUCKETS))).toBeNaN();
  });
});
