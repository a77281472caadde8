/**
 * The official KiteTicker, unchanged, against our /kite endpoint: one upstream feed, downstream
 * tickers that cannot tell us from Kite.
 */
import { createRequire } from 'node:module';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { decodeToTicks, encodeFrame } from '../../src/kite/codec.ts';
import { Market } from '../../src/kite/sim/market.ts';
import { N, N_FIELDS } from '../../src/core/tick.ts';
import { officialTicker, type OfficialTick, type OfficialTicker, type OfficialTickerParams } from '../support/kite-official.ts';
import { orderRow } from '../support/order-row.ts';
import { universe } from '../pipeline/harness.ts';
import { until } from '../support/until.ts';
import { startStack, type Stack } from './stack.ts';

const KEY = 'secret-key-two-0123456789';
/** Another key (its name is 'alice'; KEY's is 'bob'). */
const OTHER_KEY = 'secret-key-one-0123456789';
const instruments = universe(2, 1);
const tokens = instruments.map((i) => i.instrumentToken);
const INDEX = 256265;

/** Packet lengths of each mode: equity and index (ltp is one length for both). */
const MODE_LENGTHS: Record<string, number[]> = { ltp: [8], quote: [28, 44], full: [32, 184] };

/**
 * A second official KiteTicker, from a module instance of its own: the package keeps its socket and
 * handlers in module-level variables, so two tickers of one instance would share (and fight over)
 * them. The cached module is put back, so other importers keep the first instance.
 */
function isolatedTicker(params: OfficialTickerParams): OfficialTicker {
  const require = createRequire(import.meta.url);
  const path = require.resolve('kiteconnect/dist/lib/ticker.js');
  const cached = require.cache[path];
  delete require.cache[path];
  try {
    const { KiteTicker } = require(path) as { KiteTicker: new (p: OfficialTickerParams) => OfficialTicker };
    return new KiteTicker(params);
  } finally {
    if (cached) require.cache[path] = cached;
  }
}

describe('Kite-compatible /kite endpoint', () => {
  let stack: Stack;
  let pump: NodeJS.Timeout;
  beforeAll(async () => {
    stack = await startStack(instruments);
    const market = new Market({ instruments, seed: 8 });
    pump = setInterval(() => stack.push(encodeFrame(market.nextTicks(30, tokens, 'full'))), 10);
    await until('ticks through the pipeline', () => stack.hub.ticks > 100);
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
    await until('quote ticks', () => got.some((t) => t.instrument_token === eq) && got.some((t) => t.instrument_token === INDEX));
    const q = got.find((t) => t.instrument_token === eq)!;
    expect(q.mode).toBe('quote');
    expect(q.last_price).toBeGreaterThan(0);
    expect(q.ohlc!.close).toBeGreaterThan(0);
    expect(got.find((t) => t.instrument_token === INDEX)!.tradable).toBe(false);

    (ticker as any).setMode('full', [eq, INDEX]);
    got.length = 0;
    await until('full ticks', () => got.some((t) => t.instrument_token === eq && t.mode === 'full'));
    const f = got.filter((t) => t.instrument_token === eq && t.mode === 'full').pop()!;
    expect(f.depth!.buy).toHaveLength(5);
    expect(f.depth!.buy[0].price).toBeLessThan(f.depth!.sell[0].price);
    expect(f.exchange_timestamp).toBeInstanceOf(Date);
    // What it decoded matches our latest canonical tick for the token to the paisa.
    const row = stack.hub.rowOfToken.get(eq)!;
    await until('a tick equal to the latest state', () => got.some((t) => t.instrument_token === eq && Math.abs(t.last_price - stack.hub.latestTicks[row * N_FIELDS + N.PRICE]) < 1e-9 && t.volume_traded === stack.hub.latestTicks[row * N_FIELDS + N.VOLUME]));

    (ticker as any).unsubscribe([eq, INDEX]);
    // The server handles a socket's messages in order and answers a subscribe with a snapshot of
    // the new token: that snapshot, and every tick after it, left after the unsubscribe.
    const marker = tokens.find((t) => t !== eq && t !== INDEX)!;
    const after: OfficialTick[] = [];
    ticker.on('ticks', (ticks) => { if (after.length > 0 || ticks.some((t) => t.instrument_token === marker)) after.push(...ticks); });
    (ticker as any).subscribe([marker]);
    await until('the new token\'s snapshot', () => after.length > 0);
    // eq and INDEX tick again: were they still followed, the drain would publish them to this ticker.
    const recvOf = (token: number) => stack.hub.latestTicks[stack.hub.rowOfToken.get(token)! * N_FIELDS + N.RECV_TIME_US];
    const was = [eq, INDEX].map(recvOf);
    await until('eq and INDEX to tick again in the pipeline', () => [eq, INDEX].every((t, i) => recvOf(t) !== was[i]));
    // A mode change is answered with a snapshot in the new mode, sent after every frame published before it.
    (ticker as any).setMode('ltp', [marker]);
    await until('the ltp snapshot', () => after.some((t) => t.mode === 'ltp'));
    expect(after.filter((t) => t.instrument_token !== marker)).toEqual([]);
    expect(messages).toBeGreaterThan(0);
    ticker.disconnect();
  });

  it('sends each subscriber packets in the length of its own mode, and heartbeats', async () => {
    const open = (mode: string) => new Promise<{ ws: WebSocket; lens: Set<number>; hb: number }>((resolve) => {
      const ws = new WebSocket(`ws://127.0.0.1:${stack.port}/kite?api_key=${KEY}&access_token=x`);
      const s = { ws, lens: new Set<number>(), hb: 0 };
      // Newly subscribed tokens start in quote mode (their snapshot is a quote packet). The mode
      // change's snapshot is the first packet in the new mode's length, and every frame after it
      // left after the change: count from that frame on.
      let counting = mode === 'quote';
      ws.on('message', (d: Buffer, bin: boolean) => {
        if (!bin) return;
        if (d.length === 1) { s.hb++; return; }
        const dv = new DataView(d.buffer, d.byteOffset, d.length);
        const lens: number[] = [];
        let p = 2;
        for (let i = 0; i < dv.getUint16(0); i++) { const l = dv.getUint16(p); lens.push(l); p += 2 + l; }
        counting ||= lens.some((l) => MODE_LENGTHS[mode].includes(l));
        if (counting) for (const l of lens) s.lens.add(l);
      });
      ws.on('open', () => {
        ws.send(JSON.stringify({ a: 'subscribe', v: [INDEX, tokens[1]] }));
        if (mode !== 'quote') ws.send(JSON.stringify({ a: 'mode', v: [mode, [INDEX, tokens[1]]] }));
        resolve(s);
      });
    });
    const [ltp, quote, full] = await Promise.all([open('ltp'), open('quote'), open('full')]);
    await until('frames and a heartbeat', () => full.hb > 0 && full.lens.size >= 2 && ltp.lens.size >= 1 && quote.lens.size >= 2);
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
    await until('frames', () => frames.length > 20);
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

  it('sends a key\'s order updates to its own tickers only, as Kite\'s order postback the official KiteTicker emits', async () => {
    const root = `ws://127.0.0.1:${stack.port}/kite`;
    const bob = officialTicker({ api_key: KEY, access_token: 'anything', root, reconnect: false });
    const alice = isolatedTicker({ api_key: OTHER_KEY, access_token: 'anything', root, reconnect: false });
    const bobOrders: Record<string, unknown>[] = [];
    const aliceOrders: Record<string, unknown>[] = [];
    bob.on('order_update', (o) => bobOrders.push(o));
    alice.on('order_update', (o) => aliceOrders.push(o));
    const connected = [bob, alice].map((t) => new Promise<void>((r) => t.on('connect', () => r())));
    bob.connect();
    alice.connect();
    await Promise.all(connected);
    // A plain socket of bob's too: the text on the wire is Kite's, byte for byte.
    const raw = new WebSocket(`${root}?api_key=${KEY}&access_token=x`);
    const texts: string[] = [];
    raw.on('message', (d: Buffer, bin: boolean) => { if (!bin) texts.push(d.toString()); });
    await new Promise((r) => raw.on('open', r));
    try {
      const placed = orderRow('bob', '250616000000001', 'OPEN');
      expect(stack.kite.orderUpdate('bob', placed)).toBe(2);
      await until('bob\'s ticker to get its order', () => bobOrders.length === 1);
      expect(bobOrders[0]).toEqual(placed);
      await until('bob\'s plain socket to get its order', () => texts.length === 1);
      expect(texts[0]).toBe(JSON.stringify({ type: 'order', data: placed }));

      // Had alice's socket been sent bob's order, it would have arrived before her own.
      const hers = orderRow('alice', '250616000000002', 'COMPLETE');
      expect(stack.kite.orderUpdate('alice', hers)).toBe(1);
      await until('alice\'s ticker to get her order', () => aliceOrders.length === 1);
      expect(aliceOrders).toEqual([hers]);
      // And the same for bob: his next update arrives right after his first.
      const filled = orderRow('bob', '250616000000001', 'COMPLETE');
      expect(stack.kite.orderUpdate('bob', filled)).toBe(2);
      await until('bob\'s ticker to get the fill', () => bobOrders.length === 2);
      expect(bobOrders).toEqual([placed, filled]);
      expect(stack.kite.orderUpdate('nobody', filled)).toBe(0);
    } finally {
      bob.disconnect();
      alice.disconnect();
    }
    raw.close();
    await until('the tickers\' sockets to close', () => stack.kite.stats.clients === 0);
    expect(stack.kite.orderUpdate('bob', orderRow('bob', '250616000000003', 'OPEN'))).toBe(0);
    expect(stack.kite.orderUpdate('alice', orderRow('alice', '250616000000004', 'OPEN'))).toBe(0);
  });
});

describe('/kite and /ws side by side', () => {
  it('gives a /ws client and a /kite ticker following at once only frames of their own protocol', async () => {
    const stack = await startStack(instruments);
    const market = new Market({ instruments, seed: 9 });
    const pump = setInterval(() => stack.push(encodeFrame(market.nextTicks(30, tokens, 'full'))), 10);
    try {
      // Each endpoint's first subscription set: the two must not share a uWS topic.
      const feedFrames: Buffer[] = [];
      const feedWs = new WebSocket(`ws://127.0.0.1:${stack.port}/ws?key=${KEY}`);
      feedWs.on('message', (d: Buffer) => feedFrames.push(d));
      await new Promise((r) => feedWs.on('open', r));
      feedWs.send(JSON.stringify({ op: 'subscribe', instruments: [tokens[0]], mode: 'ltp' }));
      const kiteFrames: Buffer[] = [];
      const kiteWs = new WebSocket(`ws://127.0.0.1:${stack.port}/kite?api_key=${KEY}&access_token=x`);
      kiteWs.on('message', (d: Buffer, bin: boolean) => { if (bin && d.length > 1) kiteFrames.push(d); });
      await new Promise((r) => kiteWs.on('open', r));
      kiteWs.send(JSON.stringify({ a: 'subscribe', v: [tokens[1]] }));
      await until('frames on both', () => feedFrames.length > 20 && kiteFrames.length > 20);
      feedWs.close();
      kiteWs.close();
      for (const f of kiteFrames) for (const t of decodeToTicks(f)) expect(t.token).toBe(tokens[1]);
      const unpackr = (await import('../../src/gateway/messages.ts')).createUnpackr();
      for (const f of feedFrames) expect(() => unpackr.unpack(f)).not.toThrow();
    } finally {
      clearInterval(pump);
      await stack.close();
    }
  });
});

describe('slow /kite tickers', () => {
  /** A ticker on /kite following every token in full mode; `frames` counts its binary frames. */
  async function ticker(port: number): Promise<{ ws: WebSocket; frames: () => number; closed: Promise<number> }> {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/kite?api_key=${KEY}&access_token=x`);
    let frames = 0;
    ws.on('message', (d: Buffer, bin: boolean) => { if (bin && d.length > 1) frames++; });
    const closed = new Promise<number>((r) => ws.on('close', (code) => r(code)));
    await new Promise((r) => ws.on('open', r));
    ws.send(JSON.stringify({ a: 'subscribe', v: tokens }));
    ws.send(JSON.stringify({ a: 'mode', v: ['full', tokens] }));
    await until('the ticker\'s first frames', () => frames > 0);
    return { ws, frames: () => frames, closed };
  }

  /**
   * A ticker that stops reading while another reads, with these limits; resolves once `closedBy`
   * counts the paused one closed and the reader has had frames after that.
   */
  async function pausedTicker(limits: { conflateBytes: number; closeBytes: number; stallCloseMs: number }, closedBy: (s: Stack) => boolean) {
    const stack = await startStack(instruments, limits);
    const market = new Market({ instruments, seed: 10 });
    // About 40k full packets/s offered: a paused ticker's queue grows by megabytes a second.
    const pump = setInterval(() => {
      for (let i = 0; i < 2; i++) stack.push(encodeFrame(market.nextTicks(100, tokens, 'full')));
    }, 5);
    try {
      const reader = await ticker(stack.port);
      const paused = await ticker(stack.port);
      (paused.ws as any)._socket.pause();
      // A paused ticker sees no close event: wait on the server's counters. Bounded for a loaded CI core.
      await until('the paused ticker to pass conflateBytes', () => stack.kite.stats.maxUnsentBytes > limits.conflateBytes, 60_000);
      await until('the paused ticker to be closed', () => closedBy(stack), limits.stallCloseMs + 10_000);
      const atClose = reader.frames();
      await until('the reading ticker to get frames after the close', () => reader.frames() > atClose + 10);
      clearInterval(pump);
      (paused.ws as any)._socket.resume();
      // The 4008 close frame queues behind the unread bytes: a paused ticker may see the TCP close (1006).
      expect([4008, 1006]).toContain(await paused.closed);
      expect(reader.ws.readyState).toBe(WebSocket.OPEN);
      reader.ws.close();
      return { ...stack.kite.stats };
    } finally {
      clearInterval(pump);
      await stack.close();
    }
  }

  it('closes a ticker that stops reading by the stall rule after stallCloseMs, while others keep up', async () => {
    // closeBytes far off (a paused ticker gets every packet, as /kite does not conflate): the stall rule closes it.
    const stats = await pausedTicker({ conflateBytes: 64 * 1024, closeBytes: 256 << 20, stallCloseMs: 1000 }, (s) => s.kite.stats.stallCloses > 0);
    expect(stats.stallCloses).toBe(1);
    expect(stats.slowCloses).toBe(0);
  }, 120_000);

  it('closes a ticker whose unsent bytes pass closeBytes before the stall rule would', async () => {
    const stats = await pausedTicker({ conflateBytes: 64 * 1024, closeBytes: 1 << 20, stallCloseMs: 60_000 }, (s) => s.kite.stats.slowCloses > 0);
    expect(stats.slowCloses).toBe(1);
    expect(stats.stallCloses).toBe(0);
  }, 120_000);
});
