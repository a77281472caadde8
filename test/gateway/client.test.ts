import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeFrame } from '../../src/kite/codec.ts';
import { Market } from '../../src/kite/sim/market.ts';
import WebSocket from 'ws';
import { FeedClient, type FeedBar, type FeedTick, type Welcome } from '../../src/client/index.ts';
import { universe } from '../pipeline/harness.ts';
import { until } from '../support/until.ts';
import { startStack, type Stack } from './stack.ts';

const instruments = universe(1, 1);
const tokens = instruments.map((i) => i.instrumentToken);

describe('typed feed client', () => {
  let stack: Stack;
  let pump: NodeJS.Timeout;
  beforeAll(async () => {
    stack = await startStack(instruments);
    const market = new Market({ instruments, seed: 2 });
    pump = setInterval(() => stack.push(encodeFrame(market.nextTicks(20, tokens, 'full'))), 10);
  });
  afterAll(async () => {
    clearInterval(pump);
    await stack.close();
  });

  it('subscribes by symbol, resolves the ack and delivers typed ticks', async () => {
    const client = new FeedClient({ url: `ws://127.0.0.1:${stack.port}/ws`, key: 'secret-key-one-0123456789', reconnect: false });
    await client.connect();
    const got: FeedTick[] = [];
    client.on('ticks', (t) => got.push(...t));
    const ack = await client.subscribe(['NIFTY 50', 'NOT_A_SYMBOL'], { mode: 'full' });
    expect(ack.instruments).toEqual([256265]);
    expect(ack.rejected).toHaveLength(1);
    await until('ticks', () => got.length > 0);
    expect(got[0].t).toBe(256265);
    expect(got[0].s).toBe('NIFTY 50');
    client.close();
  });

  it('rejects connect with a message naming the key when it is refused', async () => {
    const client = new FeedClient({ url: `ws://127.0.0.1:${stack.port}/ws`, key: 'wrong', reconnect: false });
    await expect(client.connect()).rejects.toThrow(/HTTP 401.*API key/);
  });

  it('puts the key in the URL query where the runtime has its own WebSocket (browsers) and reports the key\'s mode', async () => {
    const g = globalThis as { WebSocket?: unknown };
    const before = g.WebSocket;
    // ws's class has the browser's onopen/onmessage/onclose interface and ignores headers not given.
    g.WebSocket = WebSocket;
    try {
      const client = new FeedClient({ url: `ws://127.0.0.1:${stack.port}/ws`, key: 'secret-key-two-0123456789', reconnect: false });
      const welcomed: Welcome[] = [];
      client.on('welcome', (w) => welcomed.push(w));
      await client.connect();
      await until('the welcome frame', () => welcomed.length > 0);
      expect(welcomed[0].key).toBe('bob');
      expect(welcomed[0].mode).toBe('live');
      const ack = await client.subscribe(['NIFTY 50']);
      expect(ack.instruments).toEqual([256265]);
      client.close();
    } finally {
      g.WebSocket = before;
    }
  });

  it('after a drop, follows again what it followed last: the latest mode, the bars kept, nothing it left', async () => {
    const client = new FeedClient({ url: `ws://127.0.0.1:${stack.port}/ws`, key: 'secret-key-one-0123456789' });
    let opens = 0;
    client.on('open', () => opens++);
    await client.connect();
    const other = instruments.find((i) => i.instrumentToken !== 256265)!.instrumentToken;
    await client.subscribe(['NIFTY 50'], { mode: 'quote', bars: ['1m'] });
    await client.subscribe(['NIFTY 50'], { mode: 'full', bars: ['1s'] });
    await client.unsubscribe(['NIFTY 50'], { bars: ['1m'] });
    await client.subscribe([other]);
    await client.unsubscribe([other]);
    expect(client.following().instruments).toEqual([{ instrument: 'NIFTY 50', mode: 'full', bars: ['1s'] }]);

    const ticks: FeedTick[] = [];
    const bars: FeedBar[] = [];
    (client as unknown as { ws: WebSocket }).ws.close();
    await until('the client to reconnect', () => opens === 2);
    client.on('ticks', (t) => ticks.push(...t));
    client.on('bars', (b) => bars.push(...b));
    await until('a full tick and a 1s bar of NIFTY 50 after the reconnect', () => ticks.some((t) => 'bid' in t) && bars.some((b) => b.tf === '1s'));
    expect(bars.every((b) => b.tf === '1s' && b.t === 256265)).toBe(true);
    expect(ticks.every((t) => t.t === 256265)).toBe(true);
    client.close();
  });
});
