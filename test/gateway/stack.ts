/**
 * The live side of the service without the Kite socket: front → pipeline → hub → feed on a real
 * uWebSockets.js app on loopback. Tests push encoded Kite frames into the front.
 */
import { Front } from '../../src/front.ts';
import { OutputPump, Pipeline } from '../../src/pipeline.ts';
import { startGateway, type Gateway } from '../../src/gateway/server.ts';
import { FeedHub, type HubListener } from '../../src/gateway/hub.ts';
import { Feed, type FeedOptions } from '../../src/gateway/feed.ts';
import { KiteWs, LIVE_KITE_MOUNT } from '../../src/gateway/kite-ws.ts';
import { TickConsumer } from '../../src/core/tick.ts';
import { silentLogger } from '../../src/log.ts';
import type { Instrument } from '../../src/core/instrument.ts';
import { nowMicros } from '../../src/core/clock.ts';

export const TEST_KEYS: Record<string, string> = { 'secret-key-one-0123456789': 'alice', 'secret-key-two-0123456789': 'bob' };
export const auth = {
  verify: (s: string) => (TEST_KEYS[s] ? { name: TEST_KEYS[s] } : null),
  /** alice trades on paper, bob live. */
  modeOf: (name: string): 'paper' | 'live' => (name === 'bob' ? 'live' : 'paper'),
};

export interface Stack {
  port: number;
  front: Front;
  pipeline: Pipeline;
  hub: FeedHub;
  feed: Feed;
  kite: KiteWs;
  gateway: Gateway;
  push(bytes: Uint8Array): void;
  close(): Promise<void>;
}

/** `listeners`: more hub listeners (after the feed and the Kite endpoint), e.g. to record what the hub handed out. */
export async function startStack(instruments: Instrument[], feedOpts: Partial<FeedOptions> = {}, workers = 1, listeners: HubListener[] = []): Promise<Stack> {
  const front = new Front({ shards: workers, ringCapacity: 1 << 14 });
  const pipeline = new Pipeline({
    rings: front.rings, instruments, mode: 'full', timeframesMs: [1000, 60_000], onError: (s, e) => { throw e; },
  });
  const store = new OutputPump(pipeline.reader(TickConsumer.STORE), { tick() {}, bar() {} });
  const hub = new FeedHub(instruments, [1000, 60_000]);
  let feed!: Feed;
  let kite!: KiteWs;
  const gateway = await startGateway({
    host: '127.0.0.1', port: 0, health: () => ({}),
    routes: (app) => {
      feed = new Feed(app, { hub, auth, log: silentLogger, ...feedOpts });
      // The same slow-client limits on both endpoints, as the service gives them (src/config.ts WS_*).
      const { conflateBytes, closeBytes, stallCloseMs } = feedOpts;
      kite = new KiteWs(app, hub, auth, silentLogger, LIVE_KITE_MOUNT, {
        ...(conflateBytes !== undefined ? { conflateBytes } : {}),
        ...(closeBytes !== undefined ? { closeBytes } : {}),
        ...(stallCloseMs !== undefined ? { stallCloseMs } : {}),
      });
    },
  });
  hub.add(feed);
  hub.add(kite);
  for (const l of listeners) hub.add(l);
  hub.start(pipeline);
  let seq = 0;
  return {
    port: gateway.port, front, pipeline, hub, feed, kite, gateway,
    push: (bytes) => front.onBinary(bytes, 0, ++seq, nowMicros()),
    async close() {
      feed.close();
      kite.close();
      gateway.close();
      await front.close();
      await pipeline.stop();
      await Promise.all([store.done, hub.done()]);
    },
  };
}
