/**
 * `/ws` chain and breadth subscriptions against the real gateway, with analytics frames handed to
 * the feed as the analytics service hands them (already encoded both ways).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { unpack } from 'msgpackr';
import { createPackr, createUnpackr } from '../../src/gateway/messages.ts';
import { universe } from '../pipeline/harness.ts';
import { until } from '../support/until.ts';
import { startStack, type Stack } from './stack.ts';

const KEY = 'secret-key-one-0123456789';
const CHAIN = 'NIFTY:2026-12-08';
const records = createPackr(true);
const plain = createPackr(false);
const frame = (type: string, d: object) => ({ records: records.pack({ type, d }).slice(), plain: plain.pack({ type, d }).slice() });
const latest = new Map<string, { records: Uint8Array; plain: Uint8Array }>([
  [CHAIN, frame('chain', { key: CHAIN, seq: 1, atmIv: 0.12 })],
  ['breadth', frame('breadth', { seq: 1, advances: 30 })],
]);

let stack: Stack;
let off: Stack;
beforeAll(async () => {
  stack = await startStack(universe(2, 1), { analytics: { latest: (k) => latest.get(k) ?? null, keys: () => [CHAIN] } });
  off = await startStack(universe(2, 1));
});
afterAll(async () => {
  await stack?.close();
  await off?.close();
});

async function connect(port: number, rec: boolean): Promise<{ ws: WebSocket; msgs: any[] }> {
  const unpackr = createUnpackr();
  const ws = new WebSocket(`ws://127.0.0.1:${port}/ws?key=${KEY}${rec ? '' : '&records=0'}`);
  const msgs: any[] = [];
  ws.on('message', (d: Buffer) => msgs.push(rec ? unpackr.unpack(d) : unpack(d)));
  await new Promise((r) => ws.once('open', r));
  return { ws, msgs };
}

describe('/ws chain analytics and breadth', () => {
  it('acknowledges a chain by expiry or key, sends the latest at once, then each refresh, on both encodings', async () => {
    for (const rec of [true, false]) {
      const c = await connect(stack.port, rec);
      c.ws.send(JSON.stringify({ op: 'subscribe', id: 'a', chain: '2026-12-08', breadth: true }));
      const ack = await until('the ack', () => c.msgs.find((m) => m.type === 'ack'));
      expect(ack).toMatchObject({ op: 'subscribe', id: 'a', analytics: [CHAIN, 'breadth'], rejected: [] });
      await until('the latest chain and breadth', () => c.msgs.some((m) => m.type === 'chain') && c.msgs.some((m) => m.type === 'breadth'));
      expect(c.msgs.find((m) => m.type === 'chain').d).toEqual({ key: CHAIN, seq: 1, atmIv: 0.12 });
      const next = frame('chain', { key: CHAIN, seq: 2, atmIv: 0.13 });
      stack.feed.publishAnalytics(CHAIN, next.records, next.plain);
      const pushed = await until('the next refresh', () => c.msgs.find((m) => m.type === 'chain' && m.d.seq === 2));
      expect(pushed.d.atmIv).toBe(0.13);
      c.ws.close();
    }
  });

  it('stops a chain on unsubscribe: a later refresh does not come, the next pong does', async () => {
    const c = await connect(stack.port, true);
    c.ws.send(JSON.stringify({ op: 'subscribe', id: 1, chain: `${CHAIN}` }));
    await until('the latest chain', () => c.msgs.find((m) => m.type === 'chain'));
    c.ws.send(JSON.stringify({ op: 'unsubscribe', id: 2, chain: CHAIN }));
    await until('the unsubscribe ack', () => c.msgs.find((m) => m.type === 'ack' && m.op === 'unsubscribe'));
    const later = frame('chain', { key: CHAIN, seq: 99 });
    stack.feed.publishAnalytics(CHAIN, later.records, later.plain);
    c.ws.send(JSON.stringify({ op: 'ping', id: 'p' }));
    await until('the pong', () => c.msgs.find((m) => m.type === 'pong'));
    expect(c.msgs.some((m) => m.type === 'chain' && m.d.seq === 99)).toBe(false);
    c.ws.close();
  });

  it('rejects a chain the service does not follow, naming the followed ones', async () => {
    const c = await connect(stack.port, true);
    c.ws.send(JSON.stringify({ op: 'subscribe', id: 3, chain: ['2001-01-01'] }));
    const ack = await until('the ack', () => c.msgs.find((m) => m.type === 'ack'));
    expect(ack.analytics).toEqual([]);
    expect(ack.rejected).toEqual([{ chain: '2001-01-01', reason: `not a followed chain; followed: ${CHAIN}` }]);
    c.ws.close();
  });

  it('says analytics are off when the service runs without them', async () => {
    const c = await connect(off.port, true);
    c.ws.send(JSON.stringify({ op: 'subscribe', id: 4, breadth: true }));
    const ack = await until('the ack', () => c.msgs.find((m) => m.type === 'ack'));
    expect(ack.rejected).toEqual([{ chain: 'breadth', reason: 'analytics are off (ANALYTICS_REFRESH_MS=0)' }]);
    c.ws.close();
  });
});
