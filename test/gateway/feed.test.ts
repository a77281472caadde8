import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { unpack } from 'msgpackr';
import { encodeFrame } from '../../src/kite/codec.ts';
import { Market } from '../../src/kite/sim/market.ts';
import { createUnpackr } from '../../src/gateway/messages.ts';
import type { HubListener } from '../../src/gateway/hub.ts';
import { N } from '../../src/core/tick.ts';
import { orderRow } from '../support/order-row.ts';
import { universe } from '../pipeline/harness.ts';
import { until } from '../support/until.ts';
import { startStack, type Stack } from './stack.ts';

const KEY = 'secret-key-one-0123456789';
/** Another key (its name is 'bob'; KEY's is 'alice'). */
const OTHER_KEY = 'secret-key-two-0123456789';
const instruments = universe(2, 1);
const tokens = instruments.map((i) => i.instrumentToken);
const unpackr = createUnpackr();

interface Conn { ws: WebSocket; msgs: any[]; next(pred: (m: any) => boolean, what: string, ms?: number): Promise<any> }

function connect(port: number, query = `key=${KEY}`, headers: Record<string, string> = {}, records = true): Promise<Conn> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/ws?${query}`, { headers });
    const msgs: any[] = [];
    const waiters: { pred: (m: any) => boolean; resolve: (m: any) => void }[] = [];
    ws.on('message', (data: Buffer) => {
      const m = records ? unpackr.unpack(data) : unpack(data);
      msgs.push(m);
      for (const w of [...waiters]) if (w.pred(m)) { waiters.splice(waiters.indexOf(w), 1); w.resolve(m); }
    });
    ws.on('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
    ws.on('error', reject);
    ws.on('open', () => resolve({
      ws, msgs,
      next(pred, what, ms = 10_000) {
        const found = msgs.find(pred);
        if (found) return Promise.resolve(found);
        return new Promise((res, rej) => {
          const t = setTimeout(() => rej(new Error(`timed out waiting for ${what}`)), ms);
          waiters.push({ pred, resolve: (m) => { clearTimeout(t); res(m); } });
        });
      },
    }));
  });
}

/** Position rows as Kite's positions show them (rupees as JSON numbers). */
function positionRows(symbol: string, quantity: number): object[] {
  return [
    { tradingsymbol: symbol, exchange: 'NSE', instrument_token: 408065, product: 'CNC', quantity, average_price: 1500.05, pnl: 12.5 },
    { tradingsymbol: 'NIFTY25JUN24000CE', exchange: 'NFO', instrument_token: 12345, product: 'NRML', quantity: -75, average_price: 101.2, pnl: -3.75 },
  ];
}

/** A ping's pong follows, on its socket, every frame the server published before it read the ping. */
async function pingPong(c: Conn, id: string): Promise<void> {
  c.ws.send(JSON.stringify({ op: 'ping', id }));
  await c.next((m) => m.type === 'pong' && m.id === id, `pong ${id}`);
}

describe('msgpack feed /ws', () => {
  let stack: Stack;
  let market: Market;
  let pump: NodeJS.Timeout;
  beforeAll(async () => {
    stack = await startStack(instruments);
    market = new Market({ instruments, seed: 4 });
    pump = setInterval(() => stack.push(encodeFrame(market.nextTicks(40, tokens, 'full'))), 10);
  });
  afterAll(async () => {
    clearInterval(pump);
    await stack.close();
  });

  it('refuses an upgrade without a valid key with 401', async () => {
    await expect(connect(stack.port, '')).rejects.toThrow(/401/);
    await expect(connect(stack.port, 'key=nope')).rejects.toThrow(/401/);
    expect(stack.feed.stats.refusedUpgrades).toBeGreaterThanOrEqual(2);
  });

  it('accepts the key as a Bearer header and welcomes the client, saying whether the key trades on paper or live', async () => {
    const c = await connect(stack.port, '', { Authorization: `Bearer ${KEY}` });
    const w = await c.next((m) => m.type === 'welcome', 'welcome');
    expect(w).toMatchObject({ key: 'alice', mode: 'paper' });
    c.ws.close();
    const live = await connect(stack.port, `key=${OTHER_KEY}`);
    expect(await live.next((m) => m.type === 'welcome', 'welcome')).toMatchObject({ key: 'bob', mode: 'live' });
    live.ws.close();
  });

  it('subscribes by symbol and token, snapshots, then streams ticks in the chosen mode', async () => {
    const c = await connect(stack.port);
    const eq = instruments.find((i) => i.instrumentType === 'EQ' && i.segment === 'NSE')!;
    const opt = instruments.find((i) => i.instrumentType === 'CE')!;
    // Ticks for both first, so the snapshot is not blank.
    const rows = [eq, opt].map((i) => stack.hub.rowOfToken.get(i.instrumentToken)!);
    await until('ticks for both', () => rows.every((r) => stack.hub.hasTick[r] === 1));
    c.ws.send(JSON.stringify({ op: 'subscribe', id: 1, instruments: [`NSE:${eq.tradingsymbol}`, opt.instrumentToken, 'NOPE'], mode: 'full', bars: ['1m'] }));
    const ack = await c.next((m) => m.type === 'ack', 'ack');
    expect(ack.id).toBe(1);
    expect(ack.instruments).toEqual([eq.instrumentToken, opt.instrumentToken]);
    expect(ack.rejected).toEqual([{ instrument: 'NOPE', reason: 'not an instrument this service follows' }]);
    const snap = await c.next((m) => m.type === 'snapshot', 'snapshot');
    expect(snap.ticks.length).toBe(2);
    expect(snap.bars.length).toBeGreaterThan(0);
    const ticks = await c.next((m) => m.type === 'ticks', 'ticks');
    const t = ticks.d[0];
    expect([eq.instrumentToken, opt.instrumentToken]).toContain(t.t);
    expect(t.bid).toHaveLength(5);
    expect(t.bid[0][0]).toBeLessThan(t.ask[0][0]);
    await c.next((m) => m.type === 'bars', 'bars');
    await c.next((m) => m.type === 'hb', 'heartbeat', 3000);
    c.ws.send(JSON.stringify({ op: 'subscribe', id: 2, instruments: [eq.instrumentToken], mode: 'ltp' }));
    await c.next((m) => m.type === 'ack' && m.id === 2, 'ack 2');
    c.msgs.length = 0;
    const ltp = await c.next((m) => m.type === 'ticks' && m.d[0].t === eq.instrumentToken, 'ltp ticks');
    expect(Object.keys(ltp.d[0]).sort()).toEqual(['p', 's', 't', 'ts']);
    c.ws.close();
  });

  it('answers bad control messages with an error and keeps the connection', async () => {
    const c = await connect(stack.port);
    c.ws.send('not json');
    await c.next((m) => m.type === 'error', 'error');
    c.ws.send(JSON.stringify({ op: 'subscribe', instruments: [], mode: 'full' }));
    await c.next((m) => m.type === 'error' && /instruments/.test(m.message), 'instruments error');
    c.ws.send(JSON.stringify({ op: 'subscribe', instruments: [tokens[0]], mode: 'fast' }));
    await c.next((m) => m.type === 'error' && /mode/.test(m.message), 'mode error');
    c.ws.send(JSON.stringify({ op: 'ping', id: 'p' }));
    await c.next((m) => m.type === 'pong' && m.id === 'p', 'pong');
    c.ws.close();
  });

  it('sends a key\'s order and position updates to its own sockets only, as records or plain maps', async () => {
    const alice = await connect(stack.port);
    const alicePlain = await connect(stack.port, `key=${KEY}&records=0`, {}, false);
    const bob = await connect(stack.port, `key=${OTHER_KEY}`);
    const own = (c: Conn) => c.msgs.filter((m) => m.type === 'order' || m.type === 'position');
    try {
      const placed = orderRow('alice', '250616000000001', 'OPEN');
      expect(stack.feed.orderUpdate('alice', placed)).toBe(2);
      const positions = positionRows('INFY', 10);
      expect(stack.feed.positionUpdate('alice', positions)).toBe(2);
      for (const c of [alice, alicePlain]) {
        await c.next((m) => m.type === 'position', 'alice\'s positions');
        // Objects with the row's own keys, on both encodings (not Maps, not shared records).
        expect(own(c)).toEqual([{ type: 'order', d: placed }, { type: 'position', d: positions }]);
      }

      // Had bob's socket been sent alice's, they would have arrived before his own.
      const his = orderRow('bob', '250616000000002', 'COMPLETE');
      expect(stack.feed.orderUpdate('bob', his)).toBe(1);
      expect(stack.feed.positionUpdate('bob', [])).toBe(1);
      await bob.next((m) => m.type === 'position', 'bob\'s positions');
      expect(own(bob)).toEqual([{ type: 'order', d: his }, { type: 'position', d: [] }]);
      // And the same for alice: her next update arrives right after her first two.
      const filled = orderRow('alice', '250616000000001', 'COMPLETE');
      expect(stack.feed.orderUpdate('alice', filled)).toBe(2);
      for (const c of [alice, alicePlain]) {
        await c.next((m) => m.type === 'order' && m.d.status === 'COMPLETE', 'alice\'s fill');
        expect(own(c)).toEqual([{ type: 'order', d: placed }, { type: 'position', d: positions }, { type: 'order', d: filled }]);
      }
      expect(stack.feed.orderUpdate('nobody', filled)).toBe(0);
    } finally {
      for (const c of [alice, alicePlain, bob]) c.ws.close();
    }
    // A closed socket leaves the key's index: uWS runs the close handler before its close frame goes out.
    await new Promise((r) => (bob.ws.readyState === WebSocket.CLOSED ? r(null) : bob.ws.on('close', r)));
    expect(stack.feed.positionUpdate('bob', [])).toBe(0);
  });

  it('serves plain msgpack maps to clients without msgpackr records', async () => {
    const c = await connect(stack.port, `key=${KEY}&records=0`, {}, false);
    c.ws.send(JSON.stringify({ op: 'subscribe', instruments: [tokens[1]], mode: 'quote' }));
    const t = await c.next((m) => m.type === 'ticks', 'plain ticks');
    expect(t.d[0].t).toBe(tokens[1]);
    expect(typeof t.d[0].v).toBe('number');
    c.ws.close();
  });
});

describe('slow feed clients', () => {
  /**
   * Small limits, so that a paused client passes them in a second or two, and a short stall: the
   * stall rule, not the kernel's socket buffer sizes, decides how soon a client that stopped
   * reading is closed.
   */
  const LIMITS = { conflateBytes: 64 * 1024, closeBytes: 1 << 20, conflateIntervalMs: 10, stallCloseMs: 1000 };

  it('conflates a client that stops reading, then closes it by the stall rule after stallCloseMs, while others keep up', async () => {
    const stack = await startStack(instruments, LIMITS);
    const market = new Market({ instruments, seed: 5 });
    try {
      const fast = await connect(stack.port);
      const slow = await connect(stack.port);
      for (const c of [fast, slow]) c.ws.send(JSON.stringify({ op: 'subscribe', instruments: tokens, mode: 'full' }));
      await fast.next((m) => m.type === 'ack', 'ack');
      await slow.next((m) => m.type === 'ack', 'ack');
      // The slow client stops reading its socket: the kernel buffers fill, then uWS's queue.
      (slow.ws as any)._socket.pause();
      const closed = new Promise<number>((r) => slow.ws.on('close', (code) => r(code)));
      let fastTicks = 0;
      fast.ws.on('message', () => { fastTicks++; });
      // About 40k ticks/s offered: enough to fill a paused client's buffers in a second or two,
      // little enough that the reading client keeps up on a loaded CI core.
      const pump = setInterval(() => {
        for (let i = 0; i < 2; i++) stack.push(encodeFrame(market.nextTicks(100, tokens, 'full')));
      }, 5);
      try {
        // Bounds for a loaded CI core: the kernel's socket buffers fill before uWS's queue grows.
        await until('the paused client to be conflated', () => stack.feed.stats.conflations > 0 && stack.feed.stats.maxUnsentBytes > LIMITS.conflateBytes, 60_000);
        // A paused client sees no close event: wait on the server's counter. The stall clock starts
        // at the check that conflates it (to the millisecond: slow-clients.test.ts); the bound is
        // for a loaded CI core.
        await until('the stall rule to close the paused client', () => stack.feed.stats.stallCloses > 0, LIMITS.stallCloseMs + 10_000);
        const atClose = fastTicks;
        await until('the reading client to get ticks after the close', () => fastTicks > atClose + 10);
      } finally {
        clearInterval(pump);
      }
      (slow.ws as any)._socket.resume();
      expect(stack.feed.stats.conflations).toBe(1);
      expect(stack.feed.stats.stallCloses).toBe(1);
      expect(stack.feed.stats.slowCloses).toBe(0);
      // The 4008 close frame queues behind the bytes the client never read, so a client that
      // stays paused sees the TCP close (1006); one that reads again gets 4008.
      expect([4008, 1006]).toContain(await closed);
      // The fast client was served throughout.
      expect(fast.ws.readyState).toBe(WebSocket.OPEN);
      fast.ws.close();
    } finally {
      await stack.close();
    }
  }, 120_000);

  it('never stall-closes a conflated client that still reads, however slowly', async () => {
    // Conflated frames every 100 ms: a client reading a little twice a stall period keeps up with
    // them, so it stays conflated (slow) without nearing closeBytes.
    const stack = await startStack(instruments, { ...LIMITS, conflateIntervalMs: 100 });
    const market = new Market({ instruments, seed: 6 });
    let reads: NodeJS.Timeout | undefined;
    const pump = setInterval(() => {
      for (let i = 0; i < 2; i++) stack.push(encodeFrame(market.nextTicks(100, tokens, 'full')));
    }, 5);
    try {
      const slow = await connect(stack.port);
      slow.ws.send(JSON.stringify({ op: 'subscribe', instruments: tokens, mode: 'full' }));
      await slow.next((m) => m.type === 'ack', 'ack');
      const socket = (slow.ws as any)._socket;
      socket.pause();
      await until('the paused client to be conflated', () => stack.feed.stats.conflations > 0, 60_000);
      // From now on it reads for 20 ms twice a stall period: each read lets uWS drain some.
      const from = Date.now();
      let lastAt = 0;
      // Conflated frames only: it is still slow (conflated) when the last one it waits for left.
      slow.ws.on('message', (data: Buffer) => { if (unpackr.unpack(data).conflated === true) lastAt = Date.now(); });
      reads = setInterval(() => {
        socket.resume();
        setTimeout(() => socket.pause(), 20);
      }, LIMITS.stallCloseMs / 2);
      await until('the slow reader to get conflated frames over three stall periods', () => lastAt - from > 3 * LIMITS.stallCloseMs, 60_000);
      expect(stack.feed.stats.stallCloses).toBe(0);
      expect(stack.feed.stats.slowCloses).toBe(0);
      expect(slow.ws.readyState).toBe(WebSocket.OPEN);
      clearInterval(reads);
      socket.resume();
      slow.ws.close();
    } finally {
      clearInterval(reads);
      clearInterval(pump);
      await stack.close();
    }
  }, 150_000);
});

describe('fan-out by subscription set', () => {
  it('gives every client each tick it follows exactly once, in order, clients following the same set sharing its frames', async () => {
    // What the hub handed out per instrument (volumes, in order): the pipeline quarantines some of
    // the market model's option ticks (price jumps), so this, not what was pushed, is what is owed.
    const emitted = new Map<number, number[]>(tokens.map((t) => [t, []]));
    const record: HubListener = { tick: (f, o) => { emitted.get(f[o + N.TOKEN])!.push(f[o + N.VOLUME]); } };
    const stack = await startStack(instruments, {}, 1, [record]);
    const market = new Market({ instruments, seed: 6 });
    try {
      const half = Math.floor(tokens.length / 2);
      const mine = tokens.slice(0, half);
      const theirs = tokens.slice(half);
      const a = await connect(stack.port);
      const b = await connect(stack.port);
      const plain = await connect(stack.port, `key=${KEY}&records=0`, {}, false);
      const other = await connect(stack.port);
      const subs: [Conn, number[], string][] = [[a, mine, 'full'], [b, [...mine].reverse(), 'full'], [plain, mine, 'full'], [other, theirs, 'quote']];
      for (const [c, list, mode] of subs) {
        c.ws.send(JSON.stringify({ op: 'subscribe', id: 1, instruments: list, mode }));
        await c.next((m) => m.type === 'snapshot', 'snapshot');
      }
      // a and b follow the same set; the plain client the same pairs in another encoding; other its own.
      expect(stack.feed.stats.subscriptionSets).toBe(3);
      for (const [c] of subs) c.msgs.length = 0;
      for (const v of emitted.values()) v.length = 0;

      for (let i = 0; i < 30; i++) {
        stack.push(encodeFrame(market.nextTicks(60, tokens, 'full')));
        await new Promise((r) => setTimeout(r, 2));
      }
      const expected = (list: number[]) => list.reduce((n, t) => n + emitted.get(t)!.length, 0);
      const ticksOf = (c: Conn, from = 0) => c.msgs.slice(from).filter((m) => m.type === 'ticks').flatMap((m) => m.d);
      // Every tick pushed has come out of the pipeline and through the hub, which publishes the
      // frames before its drain returns: they are sent by the time the test sees this.
      const settled = (pushed: number) => {
        const k = stack.pipeline.counters();
        return k.ticksIn === pushed && k.ticksOut + k.quarantined + k.duplicates === k.ticksIn && stack.hub.ticks >= k.ticksOut;
      };
      await until('the pipeline to hand out every tick', () => settled(30 * 60));
      for (const [c] of subs) await pingPong(c, 'settled');
      expect(stack.pipeline.counters().ticksOut).toBeGreaterThan(1000);
      for (const [c, list, mode] of subs) {
        const got = ticksOf(c);
        expect(got.length).toBe(expected(list));
        // Per instrument: exactly the ticks the hub handed out, in order.
        for (const t of list) expect(got.filter((x) => x.t === t).map((x) => x.v)).toEqual(emitted.get(t));
        expect(Object.keys(got[0]).length).toBe(mode === 'full' ? 23 : 15);
      }
      // One frame per drain holds several instruments; the two clients of one set got the same frames.
      const framesOf = (c: Conn) => c.msgs.filter((m) => m.type === 'ticks');
      expect(framesOf(a).length).toBeLessThan(ticksOf(a).length);
      expect(framesOf(a).some((f) => new Set(f.d.map((x: { t: number }) => x.t)).size > 1)).toBe(true);
      expect(framesOf(b)).toEqual(framesOf(a));
      expect(ticksOf(plain)).toEqual(ticksOf(a));

      // Moving to another set: b now follows one instrument, and gets only it.
      b.ws.send(JSON.stringify({ op: 'unsubscribe', id: 2, instruments: mine.slice(1) }));
      const ack = await b.next((m) => m.type === 'ack' && m.id === 2, 'unsubscribe ack');
      expect(stack.feed.stats.subscriptionSets).toBe(4);
      // The ack left after the unsubscribe took effect; what follows it on the socket came later.
      const afterAck = b.msgs.indexOf(ack) + 1;
      stack.push(encodeFrame(market.nextTicks(60, tokens, 'full')));
      await until('the pipeline to hand out the next frame', () => settled(31 * 60));
      await pingPong(b, 'after the next frame');
      expect(new Set(ticksOf(b, afterAck).map((x) => x.t))).toEqual(new Set([mine[0]]));
      for (const [c] of subs) c.ws.close();
      await until('every subscription set to be gone', () => stack.feed.stats.subscriptionSets === 0);
    } finally {
      await stack.close();
    }
  });
});
