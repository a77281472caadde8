/**
 * The simulator's protocol, spoken by a raw `ws` client over real sockets on 127.0.0.1. The
 * official kiteconnect client has its own file (official-client.test.ts): KiteTicker keeps its
 * state in module globals, one ticker per process.
 */
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { decodeToTicks, DecodeStats, type WireTick } from '../codec.ts';
import { parseCsv } from '../instrument-csv.ts';
import { buildNifty50Universe } from './universe.ts';
import { NIFTY_INDEX_TOKEN } from '../nifty50.ts';
import { FRAME_CAP_BYTES, startSimulator, type Simulator, type SimulatorOptions } from './server.ts';
import { until } from '../../../test/support/until.ts';

const INFY = 408065;
const RELIANCE = 738561;
const TCS = 2953217;

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

async function sim(opts: SimulatorOptions = {}): Promise<Simulator> {
  const s = await startSimulator({ seed: 3, batchMs: 20, ...opts });
  cleanups.push(() => s.close());
  return s;
}

/** A raw client that keeps everything it receives. */
class Client {
  readonly frames: Uint8Array[] = [];
  readonly texts: string[] = [];
  heartbeats = 0;
  closeCode = -1;
  readonly stats = new DecodeStats();

  constructor(readonly ws: WebSocket) {
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      if (!isBinary) this.texts.push(data.toString('utf8'));
      else if (data.length === 1) this.heartbeats++;
      else this.frames.push(new Uint8Array(data));
    });
    ws.on('close', (code) => {
      this.closeCode = code;
    });
  }

  send(msg: unknown): void {
    this.ws.send(typeof msg === 'string' ? msg : JSON.stringify(msg));
  }

  ticks(): WireTick[] {
    return this.frames.flatMap((f) => decodeToTicks(f, this.stats));
  }

  clear(): void {
    this.frames.length = 0;
    this.texts.length = 0;
    this.heartbeats = 0;
  }
}

async function connect(s: Simulator, apiKey = 'k', accessToken = 't'): Promise<Client> {
  const ws = new WebSocket(`${s.wsUrl}?api_key=${apiKey}&access_token=${accessToken}`);
  const c = new Client(ws);
  cleanups.push(() => ws.terminate());
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  return c;
}

/** Attempts a connection that should be refused; resolves with the HTTP status and body. */
function refused(url: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    ws.on('unexpected-response', (_req, res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    ws.on('open', () => reject(new Error('connection was accepted')));
    ws.on('error', () => undefined);
  });
}

/**
 * Subscribes `token` and waits for its snapshot; returns the index of the first frame carrying it.
 * The server handles one socket's messages in order and sends the snapshot in the batch after, so
 * what earlier messages and batches were to send has arrived by then: looking after this marker
 * is how a test sees that something did not come.
 */
async function marker(c: Client, token: number): Promise<number> {
  c.send({ a: 'subscribe', v: [token] });
  return until(`the marker snapshot of ${token}`, () => {
    const at = c.frames.findIndex((f) => decodeToTicks(f).some((t) => t.token === token));
    return at < 0 ? null : { at };
  }).then((r) => r.at);
}

/** Packet lengths straight from a frame's bytes, as the wire has them. */
function packetLengths(frame: Uint8Array): number[] {
  const dv = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
  const out: number[] = [];
  let p = 2;
  for (let n = dv.getUint16(0); n > 0; n--) {
    const len = dv.getUint16(p);
    out.push(len);
    p += 2 + len;
  }
  expect(p).toBe(frame.byteLength);
  return out;
}

describe('Kite simulator: connections', () => {
  it('refuses a wrong or missing api_key/access_token with HTTP 403 and Kite\'s JSON error', async () => {
    const s = await sim({ apiKey: 'key', accessToken: 'tok' });
    for (const q of ['?api_key=key&access_token=bad', '?api_key=other&access_token=tok', '?api_key=key', '']) {
      const r = await refused(s.wsUrl + q);
      expect(r.status).toBe(403);
      expect(JSON.parse(r.body)).toMatchObject({ status: 'error', error_type: 'TokenException' });
    }
    expect(s.stats.refusedAuth).toBe(4);
    await connect(s, 'key', 'tok');
    expect(s.connections()).toBe(1);
  });

  it('accepts any non-empty credentials when none are configured', async () => {
    const s = await sim();
    await connect(s, 'anything', 'goes');
    expect((await refused(`${s.wsUrl}?api_key=&access_token=x`)).status).toBe(403);
  });

  it('refuses a 4th connection per api_key with 429, and takes one again after a close', async () => {
    const s = await sim();
    const a = await connect(s, 'k');
    await connect(s, 'k');
    await connect(s, 'k');
    const r = await refused(`${s.wsUrl}?api_key=k&access_token=t`);
    expect(r.status).toBe(429);
    expect(JSON.parse(r.body).message).toContain('3');
    await connect(s, 'k2'); // another key has its own three
    a.ws.close();
    await until('the close to register', () => s.connections() === 3);
    await connect(s, 'k');
    expect(s.stats.refusedLimit).toBe(1);
  });

  it('closes every client on dropAllConnections and accepts new ones after', async () => {
    const s = await sim();
    const a = await connect(s);
    const b = await connect(s, 'k2');
    s.dropAllConnections();
    await until('both clients to see the close', () => a.closeCode !== -1 && b.closeCode !== -1);
    expect(a.closeCode).toBe(1006); // forcible: no close frame
    expect(s.connections()).toBe(0);
    const c = await connect(s);
    c.send({ a: 'subscribe', v: [INFY] });
    await until('ticks after reconnecting', () => c.ticks().length > 0);
  });

  it('sends a 1-byte heartbeat when idle', async () => {
    const s = await sim({ rate: 0, heartbeatMs: 100 });
    const c = await connect(s);
    await until('3 heartbeats', () => c.heartbeats >= 3);
    expect(c.frames).toHaveLength(0);
  });
});

describe('Kite simulator: subscriptions and modes', () => {
  it('sends each connection packets of its own mode: 8, 28, 32, 44, 184 bytes', async () => {
    const s = await sim({ rate: 0 });
    const a = await connect(s);
    const b = await connect(s, 'k2');
    const option = s.instruments.find((t) => t.segment === 'NFO-OPT')!.instrumentToken;
    a.send({ a: 'subscribe', v: [NIFTY_INDEX_TOKEN, INFY, option] });
    a.send({ a: 'mode', v: ['full', [INFY]] });
    a.send({ a: 'mode', v: ['ltp', [option]] });
    b.send({ a: 'subscribe', v: [NIFTY_INDEX_TOKEN, INFY] });
    b.send({ a: 'mode', v: ['full', [NIFTY_INDEX_TOKEN]] });
    await until('snapshots', () => a.ticks().length >= 3 && b.ticks().length >= 2);
    const lengthsOf = (c: Client) => {
      const m = new Map<number, Set<number>>();
      for (const f of c.frames) {
        const ticks = decodeToTicks(f);
        packetLengths(f).forEach((len, i) => {
          const set = m.get(ticks[i].token) ?? new Set();
          set.add(len);
          m.set(ticks[i].token, set);
        });
      }
      return m;
    };
    const la = lengthsOf(a);
    expect(la.get(NIFTY_INDEX_TOKEN)).toEqual(new Set([28])); // new tokens start in quote mode
    expect(la.get(INFY)).toEqual(new Set([184]));
    expect(la.get(option)).toEqual(new Set([8]));
    const lb = lengthsOf(b);
    expect(lb.get(NIFTY_INDEX_TOKEN)).toEqual(new Set([32]));
    expect(lb.get(INFY)).toEqual(new Set([44]));
    expect(a.stats.totalErrors() + b.stats.totalErrors()).toBe(0);
  });

  it('answers a subscribe in quote mode until the mode message has been in effect modeDelayMs, then sends full packets', async () => {
    const s = await sim({ rate: 2000, modeDelayMs: 1000 });
    const c = await connect(s);
    c.send({ a: 'subscribe', v: [INFY, NIFTY_INDEX_TOKEN] });
    c.send({ a: 'mode', v: ['full', [INFY, NIFTY_INDEX_TOKEN]] });
    const kinds = () => c.frames.flatMap((f) => packetLengths(f));
    await until('full packets of both tokens', () => kinds().includes(184) && kinds().includes(32));
    const seen = kinds();
    // Quote first (44 for the stock, 28 for the index), full only after.
    expect(seen[0] === 44 || seen[0] === 28).toBe(true);
    expect(seen.lastIndexOf(44)).toBeLessThan(seen.indexOf(184));
    expect(seen.lastIndexOf(28)).toBeLessThan(seen.indexOf(32));
    expect(seen.filter((n) => n === 44).length).toBeGreaterThanOrEqual(1);
  });

  it('sends a snapshot on subscribe even when nothing trades', async () => {
    const s = await sim({ rate: 0 });
    const c = await connect(s);
    c.send({ a: 'subscribe', v: [INFY, String(RELIANCE)] }); // tokens may come as digit strings
    await until('two snapshots', () => c.ticks().length === 2);
    await marker(c, TCS);
    const tokens = c.ticks().map((t) => t.token);
    expect(tokens.pop()).toBe(TCS);
    expect(tokens.sort()).toEqual([INFY, RELIANCE].sort());
  });

  it('stops a token\'s ticks on unsubscribe', async () => {
    const s = await sim({ rate: 20_000 });
    const c = await connect(s);
    c.send({ a: 'subscribe', v: [INFY, RELIANCE] });
    await until('INFY ticks', () => c.ticks().filter((t) => t.token === INFY).length > 5);
    c.send({ a: 'unsubscribe', v: [INFY] });
    // Frames before the marker may still carry INFY (sent before the unsubscribe was read).
    const at = await marker(c, TCS);
    const after = () => c.frames.slice(at).flatMap((f) => decodeToTicks(f, c.stats));
    await until('RELIANCE ticks after the marker', () => after().filter((t) => t.token === RELIANCE).length > 5);
    expect(after().filter((t) => t.token === INFY)).toHaveLength(0);
    expect(c.stats.totalErrors()).toBe(0);
  });

  it('ignores unknown tokens silently, as Kite does', async () => {
    const s = await sim({ rate: 0 });
    const c = await connect(s);
    c.send({ a: 'subscribe', v: [1, 2, 99999999, INFY] });
    await until('the INFY snapshot', () => c.ticks().length === 1);
    await marker(c, RELIANCE);
    expect(c.ticks().map((t) => t.token)).toEqual([INFY, RELIANCE]);
    expect(c.texts).toEqual([]);
  });

  it('follows at most 3000 instruments per connection and says so for the excess', async () => {
    const big = buildNifty50Universe({ today: new Date(), strikesEachSide: 250 });
    expect(big.length).toBeGreaterThan(3100);
    const s = await sim({ rate: 0, instruments: big });
    const c = await connect(s);
    c.send({ a: 'subscribe', v: big.slice(0, 3100).map((t) => t.instrumentToken) });
    await until('the error and 3000 snapshots', () => c.texts.length === 1 && c.ticks().length === 3000);
    const msg = JSON.parse(c.texts[0]);
    expect(msg.type).toBe('error');
    expect(msg.data).toContain('3000');
    expect(msg.data).toContain('100 not subscribed');
    expect(new Set(c.ticks().map((t) => t.token)).size).toBe(3000);
    for (const f of c.frames) expect(f.byteLength).toBeLessThanOrEqual(FRAME_CAP_BYTES);
  });

  it('answers malformed messages with an error text and keeps serving', async () => {
    const s = await sim({ rate: 0 });
    const c = await connect(s);
    const bad = ['not json', '[]', 'null', '{"a":"dance"}', '{"a":"subscribe","v":5}', '{"a":"mode","v":["loud",[408065]]}', '{"a":"mode","v":"full"}'];
    for (const b of bad) c.send(b);
    c.ws.send(Buffer.from([1, 2, 3])); // binary
    await until('an error per bad message', () => c.texts.length === bad.length + 1);
    for (const t of c.texts) expect(JSON.parse(t).type).toBe('error');
    c.send({ a: 'subscribe', v: [INFY] });
    await until('a snapshot after the bad messages', () => c.ticks().length === 1);
    expect(s.stats.badMessages).toBe(bad.length + 1);
  });
});

describe('Kite simulator: ticks', () => {
  it('streams sane ticks: valid frames, volume never falling, depth bid < ask, prices on 0.05', async () => {
    const s = await sim({ rate: 50_000 });
    const c = await connect(s);
    const tokens = s.instruments.map((t) => t.instrumentToken);
    c.send({ a: 'subscribe', v: tokens });
    c.send({ a: 'mode', v: ['full', tokens] });
    await until('frames', () => c.frames.length > 20);
    const lastVolume = new Map<number, number>();
    let n = 0;
    for (const f of c.frames) {
      expect(f.byteLength).toBeLessThanOrEqual(FRAME_CAP_BYTES);
      for (const t of decodeToTicks(f, c.stats)) {
        n++;
        expect(t.lastPrice % 5).toBe(0);
        if (t.token === NIFTY_INDEX_TOKEN) continue;
        if (t.depth[0].price !== 0 || t.depth[5].price !== 0) expect(t.depth[0].price).toBeLessThan(t.depth[5].price);
        expect(t.volume).toBeGreaterThanOrEqual(lastVolume.get(t.token) ?? 0);
        lastVolume.set(t.token, t.volume);
      }
    }
    expect(n).toBeGreaterThan(1000);
    expect(c.stats.totalErrors()).toBe(0);
  });

  it('follows setRate: silence at 0, ticks again when raised', async () => {
    const s = await sim({ rate: 0, heartbeatMs: 200 });
    const c = await connect(s);
    c.send({ a: 'subscribe', v: [INFY, RELIANCE] });
    await until('snapshots', () => c.ticks().length === 2);
    // A heartbeat goes out only after 200 ms in which the server sent this socket nothing.
    const heartbeats = c.heartbeats;
    await until('a heartbeat after the snapshots, or a tick', () => c.heartbeats > heartbeats || c.ticks().length > 2);
    expect(c.ticks()).toHaveLength(2);
    s.setRate(2000);
    await until('ticks at the new rate', () => c.ticks().length > 50);
    expect(() => s.setRate(-1)).toThrow(RangeError);
  });

  it('skips a client that stops reading instead of buffering for it, then catches it up', async () => {
    const s = await sim({ rate: 1_000_000, maxBufferedBytes: FRAME_CAP_BYTES });
    const c = await connect(s);
    const tokens = s.instruments.map((t) => t.instrumentToken);
    c.send({ a: 'subscribe', v: tokens });
    c.send({ a: 'mode', v: ['full', tokens] });
    await until('first frames', () => c.frames.length > 0);
    c.ws.pause();
    await until('a skipped frame', () => s.stats.skippedFrames > 0);
    expect(s.stats.coalescedPackets).toBeGreaterThan(0);
    expect(s.stats.droppedByUws).toBe(0);
    c.ws.resume();
    c.clear();
    await until('frames after resuming', () => c.frames.length > 5);
    expect(c.stats.totalErrors()).toBe(0);
  });

  it('delivers order postbacks to the connections of that api_key', async () => {
    const s = await sim({ rate: 0 });
    const a = await connect(s, 'k');
    const b = await connect(s, 'k2');
    const order = { order_id: '151220000000000', status: 'COMPLETE', tradingsymbol: 'INFY', filled_quantity: 1 };
    expect(s.sendOrderPostback(order, 'k')).toBe(1);
    await until('the postback', () => a.texts.length === 1);
    expect(JSON.parse(a.texts[0])).toEqual({ type: 'order', data: order });
    // A later postback to k2 only: had the first reached b, it would have arrived before this one.
    const later = { ...order, order_id: '151220000000001' };
    expect(s.sendOrderPostback(later, 'k2')).toBe(1);
    await until('the k2 postback', () => b.texts.length > 0);
    expect(b.texts.map((t) => JSON.parse(t))).toEqual([{ type: 'order', data: later }]);
    expect(s.sendOrderPostback(order)).toBe(2);
  });
});

describe('Kite simulator: HTTP', () => {
  it('serves the instrument master as text/csv, all and by exchange', async () => {
    const s = await sim();
    const all = await fetch(`${s.apiUrl}/instruments`);
    expect(all.status).toBe(200);
    expect(all.headers.get('content-type')).toBe('text/csv');
    expect(parseCsv(await all.text()).instruments).toEqual(s.instruments);
    const nse = parseCsv(await (await fetch(`${s.apiUrl}/instruments/NSE`)).text()).instruments;
    expect(nse).toHaveLength(51);
    expect(parseCsv(await (await fetch(`${s.apiUrl}/instruments/MCX`)).text()).instruments).toEqual([]);
    const missing = await fetch(`${s.apiUrl}/nope`);
    expect(missing.status).toBe(404);
    expect(((await missing.json()) as { status: string }).status).toBe('error');
  });

  it('answers /quote/ltp with the live price, with Kite\'s token auth', async () => {
    const s = await sim({ apiKey: 'key', accessToken: 'tok' });
    const url = `${s.apiUrl}/quote/ltp?i=${encodeURIComponent('NSE:NIFTY 50')}&i=${INFY}&i=NSE:NOPE`;
    const ok = await fetch(url, { headers: { Authorization: 'token key:tok' } });
    const body = (await ok.json()) as { data: Record<string, { instrument_token: number; last_price: number }> };
    expect(Object.keys(body.data).sort()).toEqual([String(INFY), 'NSE:NIFTY 50']);
    expect(body.data['NSE:NIFTY 50'].instrument_token).toBe(NIFTY_INDEX_TOKEN);
    expect(body.data['NSE:NIFTY 50'].last_price).toBeGreaterThan(20_000);
    expect((await fetch(url, { headers: { Authorization: 'token key:bad' } })).status).toBe(403);
  });

  it('rejects bad options by name', async () => {
    await expect(startSimulator({ port: 70000 })).rejects.toThrow(/port/);
    await expect(startSimulator({ rate: Number.NaN })).rejects.toThrow(/rate/);
    await expect(startSimulator({ batchMs: 0 })).rejects.toThrow(/batchMs/);
    await expect(startSimulator({ modeDelayMs: -1 })).rejects.toThrow(/modeDelayMs/);
  });
});
