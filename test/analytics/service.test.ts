/**
 * The analytics service on its own: a hub's latest ticks in, the pool's answers out through
 * `publish`, without the rest of the service.
 */
import { describe, expect, it } from 'vitest';
import { FeedHub } from '../../src/gateway/hub.ts';
import { AnalyticsService, type AnalyticsBytes } from '../../src/analytics/service.ts';
import { silentLogger } from '../../src/log.ts';
import { createUnpackr } from '../../src/gateway/messages.ts';
import { fillTicks, followed, tickSpecs, TODAY } from '../gateway/rest-fixture.ts';

function start(regionBytes?: number) {
  const hub = new FeedHub(followed, [60_000]);
  fillTicks(hub, tickSpecs());
  const published: Map<string, AnalyticsBytes>[] = [];
  let current = new Map<string, AnalyticsBytes>();
  const svc = new AnalyticsService({
    settings: { refreshMs: 1000, threads: 1, rate: 0.065, staleMs: 3_600_000, oiIntervalMs: 300_000 },
    instruments: followed, latestTicks: hub.latestTicks, hasTick: hub.hasTick, log: silentLogger,
    now: () => TODAY.getTime(), regionBytes,
    publish: (key, bytes) => {
      current.set(key, bytes);
      if (key === 'breadth') {
        published.push(current);
        current = new Map();
      }
    },
  });
  return { svc, published };
}

const text = (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('utf8');

describe('the analytics service', () => {
  it('publishes each chain and breadth three ways per refresh, the frames decoding to the JSON', async () => {
    const { svc, published } = start();
    try {
      await svc.refresh();
      const [first] = published;
      expect([...first.keys()]).toEqual([...svc.keys(), 'breadth']);
      for (const [key, b] of first) {
        const json = JSON.parse(text(b.json));
        const frame = createUnpackr().unpack(b.records) as { type: string; d: unknown };
        expect(frame.type).toBe(key === 'breadth' ? 'breadth' : 'chain');
        expect(frame.d).toEqual(json);
      }
      expect(svc.latest(svc.keys()[0])).toBe(first.get(svc.keys()[0]));
    } finally {
      await svc.close();
    }
  });

  it('publishes an answer that outgrows the shared regions from its own buffer, then grows them', async () => {
    const { svc, published } = start(256);
    try {
      await svc.refresh();
      await svc.refresh();
      await svc.refresh();
      const key = svc.keys()[0];
      const [a, b, c] = published.map((m) => JSON.parse(text(m.get(key)!.json)) as { seq: number; options: unknown[] });
      expect([a.seq, b.seq, c.seq]).toEqual([1, 2, 3]);
      expect(b.options).toEqual(a.options);
      // The second answer fitted the grown regions: its bytes are a view of a shared buffer.
      expect(published[1].get(key)!.json.buffer).toBeInstanceOf(SharedArrayBuffer);
      expect(published[0].get(key)!.json.buffer).not.toBeInstanceOf(SharedArrayBuffer);
    } finally {
      await svc.close();
    }
  });

  it('never writes over the bytes it last published: each refresh writes the other region', async () => {
    const { svc, published } = start();
    try {
      await svc.refresh();
      const first = published[0].get('breadth')!;
      const before = text(first.json);
      await svc.refresh();
      expect(text(first.json)).toBe(before); // the refresh after it wrote elsewhere
      expect(published[1].get('breadth')!.json.buffer).not.toBe(first.json.buffer);
    } finally {
      await svc.close();
    }
  });
});
