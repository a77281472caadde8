import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeFrame } from '../../src/kite/codec.ts';
import { Market } from '../../src/kite/sim/market.ts';
import { FeedClient, type FeedTick } from '../../src/client/index.ts';
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
});
