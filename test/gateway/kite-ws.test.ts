/**
 * The official KiteTicker, unchanged, against our /kite endpoint: one upstream feed, downstream
 * tickers that cannot tell us from Kite.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { decodeToTicks, encodeFrame } from '../../src/kite/codec.ts';
import { Market } from '../../src/kite/sim/market.ts';
import { N, N_FIELDS } from '../../src/core/tick.ts';
import { officialTicker, type OfficialTick } from '../support/kite-official.ts';
import { universe } from '../pipeline/harness.ts';
import { startStack, type Stack } from './stack.ts';

const KEY = 'secret-key-two-0123456789';
const instruments = universe(2, 1);
const tokens = instruments.map((i) => i.instrumentToken);
const INDEX = 256265;

async function until(cond: () => boolean, what: string, ms = 10_000) {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('Kite-compatible /kite endpoint', () => {
  let stack: Stack;
  let pump: NodeJS.Timeout;
  beforeAll(async () => {
    stack = await startStack(instruments);
    const market = new Market({ instruments, seed: 8 });
    pump = setInterval(() => stack.push(encodeFrame(market.nextTicks(30, tokens, 'full'))), 10);
    await until(() => stack.hub.ticks > 100, 'ticks through the pipeline');
  });
  afterAll(async () => {
    clearInterval(pump);
    await stack.close();
  });

  it('serves the official KiteTicker unchanged: subscribe, quote by default, full on request', async () => {
    const ticker = officialTicker({ api_key: KEY, access_token: 'anything', root: `ws://127.0.0.1:${stack.port}/kite`, reconnect: false });
    const got: OfficialTick[] = [];
    let messages = 0;
    ticker.on('ticks', (ticks) => got.push(...ticks));
    ticker.on('message', () => { messages++; });
    const connected = new Promise<void>((r) => ticker.on('connect', () => r()));
    ticker.connect();
    await connected;
    const eq = instruments.find((i) => i.instrumentType === 'EQ' && i.segment === 'NSE')!.instrumentToken;
    (ticker as any).subscribe([eq, INDEX]);
    await until(() => got.some((t) => t.instrument_token === eq) && got.some((t) => t.instrument_token === INDEX), 'quote ticks');
    const q = got.find((t) => t.instrument_token === eq)!;
    expect(q.mode).toBe('quote');
    expect(q.last_price).toBeGreaterThan(0);
    expect(q.ohlc!.close).toBeGreaterThan(0);
    expect(got.find((t) => t.instrument_token === INDEX)!.tradable).toBe(false);

    (ticker as any).setMode('full', [eq, INDEX]);
    got.length = 0;
    await until(() => got.some((t) => t.instrument_token === eq && t.mode === 'full'), 'full ticks');
    const f = got.filter((t) => t.instrument_token === eq && t.mode === 'full').pop()!;
    expect(f.depth!.buy).toHaveLength(5);
    expect(f.depth!.buy[0].price).toBeLessThan(f.depth!.sell[0].price);
    expect(f.exchange_timestamp).toBeInstanceOf(Date);
    // What it decoded matches our latest canonical tick for the token to the paisa.
    const row = stack.hub.rowOfToken.get(eq)!;
    await until(() => got.some((t) => t.instrument_token === eq && Math.abs(t.last_price - stack.hub.latestTicks[row * N_FIELDS + N.PRICE]) < 1e-9 && t.volume_traded === stack.hub.latestTicks[row * N_FIELDS + N.VOLUME]), 'a tick equal to the latest state');

    (ticker as any).unsubscribe([eq, INDEX]);
    await new Promise((r) => setTimeout(r, 200));
    got.length = 0;
    await new Promise((r) => setTimeout(r, 300));
    expect(got).toHaveLength(0);
    expect(messages).toBeGreaterThan(0);
    ticker.disconnect();
  });

  it('sends each subscriber packets in the length of its own mode, and heartbeats', async () => {
    const open = (mode: string) => new Promise<{ ws: WebSocket; lens: Set<number>; hb: number }>((resolve) => {
      const ws = new WebSocket(`ws://127.0.0.1:${stack.port}/kite?api_key=${KEY}&access_token=x`);
      const s = { ws, lens: new Set<number>(), hb: 0 };
      ws.on('message', (d: Buffer, bin: boolean) => {
        if (!bin) return;
        if (d.length === 1) { s.hb++; return; }
        const dv = new DataView(d.buffer, d.byteOffset, d.length);
        let p = 2;
        for (let i = 0; i < dv.getUint16(0); i++) { const l = dv.getUint16(p); s.lens.add(l); p += 2 + l; }
      });
      ws.on('open', () => {
        ws.send(JSON.stringify({ a: 'subscribe', v: [INDEX, tokens[1]] }));
        if (mode !== 'quote') ws.send(JSON.stringify({ a: 'mode', v: [mode, [INDEX, tokens[1]]] }));
        resolve(s);
      });
    });
    const [ltp, quote, full] = await Promise.all([open('ltp'), open('quote'), open('full')]);
    // Newly subscribed tokens start in quote mode (their snapshot is a quote packet); count from
    // after the mode change.
    await new Promise((r) => setTimeout(r, 200));
    for (const s of [ltp, quote, full]) s.lens.clear();
    await until(() => full.hb > 0 && full.lens.size >= 2 && ltp.lens.size >= 1 && quote.lens.size >= 2, 'frames and a heartbeat', 5000);
    expect([...ltp.lens]).toEqual([8]);
    expect([...quote.lens].sort()).toEqual([28, 44]);
    expect([...full.lens].sort()).toEqual([184, 32]);
    for (const s of [ltp, quote, full]) s.ws.close();
  });

  it('refuses unknown keys with 403 as Kite does, and answers bad JSON with an error message', async () => {
    const status = await new Promise<number>((resolve) => {
      const ws = new WebSocket(`ws://127.0.0.1:${stack.port}/kite?api_key=nope&access_token=nope`);
      ws.on('unexpected-response', (_q, res) => resolve(res.statusCode ?? 0));
      ws.on('open', () => resolve(101));
    });
    expect(status).toBe(403);
    const ws = new WebSocket(`ws://127.0.0.1:${stack.port}/kite?api_key=${KEY}&access_token=x`);
    await new Promise((r) => ws.on('open', r));
    const text = new Promise<string>((r) => ws.on('message', (d: Buffer, bin: boolean) => { if (!bin) r(d.toString()); }));
    ws.send('{oops');
    expect(JSON.parse(await text)).toEqual({ type: 'error', data: 'invalid JSON' });
    ws.close();
  });

  it('re-encodes byte-exact packets, several tokens a frame: decoding what /kite sends gives the canonical values', async () => {
    const ws = new WebSocket(`ws://127.0.0.1:${stack.port}/kite?api_key=${KEY}&access_token=x`);
    const frames: Buffer[] = [];
    ws.on('message', (d: Buffer, bin: boolean) => { if (bin && d.length > 1) frames.push(d); });
    await new Promise((r) => ws.on('open', r));
    ws.send(JSON.stringify({ a: 'subscribe', v: tokens }));
    ws.send(JSON.stringify({ a: 'mode', v: ['full', tokens] }));
    await until(() => frames.length > 20, 'frames');
    ws.close();
    // As from Kite: one frame carries every followed token that ticked, not one token per frame
    // (beyond the two snapshots, on subscribe and on the mode change).
    expect(frames.filter((f) => new Set(decodeToTicks(f).map((t) => t.token)).size > 1).length).toBeGreaterThan(2);
    for (const f of frames) {
      for (const t of decodeToTicks(f)) {
        expect(tokens).toContain(t.token);
        expect(t.lastPrice % 5).toBe(0); // on the 5-paise grid: no rounding drift
      }
    }
  });
});
