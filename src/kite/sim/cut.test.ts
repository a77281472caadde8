/**
 * The simulator's cut mode: Kite unreachable while its market trades on. Connections are dropped
 * and new ones closed unanswered; the rows they followed keep trading, so the historical API holds
 * the trades the feed missed.
 */
import { once } from 'node:events';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { startSimulator, type Simulator } from './server.ts';
import { until } from '../../../test/support/until.ts';

const INFY = 408065;
const T0 = Date.parse('2025-12-03T04:00:00Z');
let now = T0;
let sim: Simulator;

beforeAll(async () => {
  sim = await startSimulator({ apiKey: 'k', accessToken: 't', rate: 400, seed: 5, clock: () => now });
});
afterAll(async () => {
  await sim?.close();
});

async function connect(): Promise<WebSocket> {
  const ws = new WebSocket(`${sim.wsUrl}?api_key=k&access_token=t`);
  await once(ws, 'open');
  ws.send(JSON.stringify({ a: 'subscribe', v: [INFY] }));
  return ws;
}

const historyTrades = async () => {
  const r = await fetch(`${sim.apiUrl}/instruments/historical/${INFY}/minute?from=2025-12-03 09:00:00&to=2025-12-03 10:00:00`, { headers: { Authorization: 'token k:t' } });
  const body = (await r.json()) as { data: { candles: unknown[][] } };
  return body.data.candles.reduce((n, c) => n + (c[5] as number), 0);
};

describe('simulator cut mode', () => {
  it('drops the feed, refuses reconnects without an answer, and keeps trading what the feed followed', async () => {
    const ws = await connect();
    await until('INFY to trade', () => sim.stats.trades > 0);
    const closed = once(ws, 'close');
    sim.cutFeed();
    await closed;
    expect(sim.connections()).toBe(0);
    expect(sim.feedCut()).toBe(true);

    // A new connection gets no HTTP answer at all: an unreachable host, not a refusal.
    const refused = new WebSocket(`${sim.wsUrl}?api_key=k&access_token=t`);
    const statuses: number[] = [];
    refused.on('unexpected-response', (_req, res) => statuses.push(res.statusCode ?? 0));
    const [err] = (await once(refused, 'error')) as [Error];
    expect(err.message).toMatch(/socket hang up|ECONNRESET/);
    expect(statuses).toEqual([]);
    expect(sim.stats.refusedCut).toBe(1);

    // The market keeps trading INFY with nobody connected (it trades only followed rows), and the
    // historical API has those trades. Polled by the trade count: the API allows 3 requests a second.
    now = T0 + 60_000;
    const before = await historyTrades();
    const trades = sim.stats.trades;
    await until('INFY to trade during the cut', () => sim.stats.trades > trades + 20);
    expect(await historyTrades()).toBeGreaterThan(before);

    const state = (await (await fetch(`${sim.apiUrl}/sim/feed?state=up`, { method: 'POST' })).json()) as { data: { cut: boolean } };
    expect(state.data.cut).toBe(false);
    const again = await connect();
    const frame = await once(again, 'message');
    expect(Buffer.isBuffer(frame[0])).toBe(true);
    again.close();
  });

  it('answers a bad control request with Kite\'s error shape', async () => {
    const r = await fetch(`${sim.apiUrl}/sim/feed?state=sideways`, { method: 'POST' });
    expect(r.status).toBe(400);
    expect(((await r.json()) as { error_type: string }).error_type).toBe('InputException');
  });
});
