/**
 * The simulator's historical API, read with the official client (KiteConnect.getHistoricalData):
 * its minute candles are the market's own trades, as the ticker sent them, aggregated by exchange
 * minute; Kite's limit of 3 requests a second per api_key answers 429 past it.
 */
import { KiteConnect } from 'kiteconnect';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { CollectingSink, decodeFrame, DecodeStats } from '../codec.ts';
import { Kind } from '../../core/packet-slot.ts';
import { startSimulator, type Simulator } from './server.ts';
import { candleTime } from './history.ts';
import { until } from '../../../test/support/until.ts';

const API_KEY = 'histkey';
const ACCESS_TOKEN = 'histtoken';
const INFY = 408065;
/** 09:30 IST on a Wednesday: the simulator's clock, moved by the test. */
const T0 = Date.parse('2025-12-03T04:00:00Z');

let now = T0 + 5_000;
let sim: Simulator;
const sink = new CollectingSink();
const stats = new DecodeStats();
let ws: WebSocket;

beforeAll(async () => {
  sim = await startSimulator({
    apiKey: API_KEY, accessToken: ACCESS_TOKEN, rate: 300, seed: 21, clock: () => now,
    onFrame: (_conn, frame) => { decodeFrame(frame, { recvTimeUs: 0, seq: 0, conn: 0 }, sink, stats); },
  });
  ws = new WebSocket(`${sim.wsUrl}?api_key=${API_KEY}&access_token=${ACCESS_TOKEN}`);
  await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); });
  ws.send(JSON.stringify({ a: 'subscribe', v: [INFY] }));
  ws.send(JSON.stringify({ a: 'mode', v: ['full', [INFY]] }));
});
afterAll(async () => {
  ws?.close();
  await sim?.close();
});

/** The trades the ticker sent for INFY (full packets whose volume grew), by exchange minute. */
function candlesFromTicks(): unknown[][] {
  const byMinute = new Map<number, number[]>();
  let prevVolume = -1;
  for (let i = 0; i < sink.count; i++) {
    const t = sink.tick(i);
    if (t.token !== INFY || t.kind !== Kind.FULL) continue;
    if (prevVolume >= 0 && t.volume > prevVolume) {
      const minute = Math.floor(t.exchangeTime / 60) * 60_000;
      const c = byMinute.get(minute);
      const qty = t.volume - prevVolume;
      if (c === undefined) byMinute.set(minute, [t.lastPrice, t.lastPrice, t.lastPrice, t.lastPrice, qty, t.oi]);
      else {
        c[1] = Math.max(c[1], t.lastPrice);
        c[2] = Math.min(c[2], t.lastPrice);
        c[3] = t.lastPrice;
        c[4] += qty;
      }
    }
    prevVolume = t.volume;
  }
  return [...byMinute].sort((a, b) => a[0] - b[0]).map(([m, c]) => [candleTime(m), c[0] / 100, c[1] / 100, c[2] / 100, c[3] / 100, c[4]]);
}

describe('the simulator\'s historical API through KiteConnect.getHistoricalData', () => {
  it('serves minute candles equal to the trades its ticker sent', async () => {
    const infyTicks = () => { let n = 0; for (let i = 0; i < sink.count; i++) if (sink.tick(i).token === INFY) n++; return n; };
    await until('trades in the first minute', () => infyTicks() > 60);
    const first = infyTicks();
    now = T0 + 65_000; // the next minute
    await until('trades in the second minute', () => infyTicks() > first + 60);
    sim.setRate(0);
    // Rate 0 sends nothing more: the ticker's last trade is the market's last.
    const settled = sink.count;
    await until('the last frame to be decoded', () => sink.count === settled);

    const kc = new KiteConnect({ api_key: API_KEY, root: sim.apiUrl });
    kc.setAccessToken(ACCESS_TOKEN);
    const got = (await kc.getHistoricalData(INFY, 'minute', '2025-12-03 09:30:00', '2025-12-03 09:35:00')) as unknown as { date: Date; open: number; high: number; low: number; close: number; volume: number }[];
    const rows = (Array.isArray(got) ? got : (got as { data: typeof got }).data);
    const want = candlesFromTicks();
    const have = rows.map((c) => [candleTime(c.date.getTime()), c.open, c.high, c.low, c.close, c.volume]);
    expect(want.length).toBe(2);
    expect(have.map((c) => c[0])).toEqual(want.map((c) => c[0]));
    // The second minute was seen whole by the ticker: equal in every field.
    expect(have[1]).toEqual(want[1]);
    // The first began before the subscription's snapshot (a trade the snapshot already holds): it
    // ends the same and traded at least what the ticker saw.
    expect(have[0][4]).toBe(want[0][4]);
    expect(have[0][5] as number).toBeGreaterThanOrEqual(want[0][5] as number);
  });

  it('refuses a fourth request within a second, as Kite does', async () => {
    const kc = new KiteConnect({ api_key: API_KEY, root: sim.apiUrl });
    kc.setAccessToken(ACCESS_TOKEN);
    const ask = () => kc.getHistoricalData(INFY, '5minute', '2025-12-03 09:15:00', '2025-12-03 10:00:00').then(() => 'ok', (e: { error_type?: string }) => e.error_type ?? 'error');
    const answers = await Promise.all([ask(), ask(), ask(), ask(), ask()]);
    expect(answers.filter((a) => a === 'ok').length).toBeLessThanOrEqual(3);
    expect(answers).toContain('NetworkException');
  });
});
