/**
 * Differential test against the official client: the same Kite frames go over a real WebSocket to
 * `KiteTicker` (kiteconnect) and through our decodeFrame; every field of every tick must agree,
 * modulo the known, deliberate differences listed below.
 *
 * Client quirks this test works around (kiteconnect 5.x, dist/lib/ticker.js):
 * - its socket, handlers and retry state are module-level globals: one KiteTicker per process
 *   (vitest runs each test file in its own process), and disconnect() at the end;
 * - spent reconnects call process.exit(1): `reconnect: false` keeps it from trying;
 * - it skips binary messages of 2 bytes or fewer, so heartbeats yield no 'ticks' event;
 * - its 5 s read timer is never cleared by disconnect(); it fires once more, finds no socket, stops.
 */

import { WebSocketServer, type WebSocket } from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CollectingSink, DecodeStats, HEARTBEAT, decodeFrame, emptyWireTick, encodeFrame, parseTextMessage, type WireTick } from './codec.ts';
import { Kind, type KindCode, modeOfKind, priceDivisor } from '../core/packet-slot.ts';
import { ALL_KINDS, ALL_SEGMENTS, I32_MAX, I32_MIN, Rng, U32_MAX, genTick } from '../../test/support/gen.ts';
import { type OfficialTick, officialTicker } from '../../test/support/kite-official.ts';
import { until } from '../../test/support/until.ts';

/**
 * Where we differ from KiteTicker on purpose. The comparison below applies exactly these
 * conversions and nothing else.
 */
export const KNOWN_DIFFERENCES = [
  'Counts (last_traded_quantity, volume_traded, total_buy_quantity, total_sell_quantity, oi, ' +
    'oi_day_high, oi_day_low, depth quantity) are read as signed int32 by the client, so values ' +
    '>= 2^31 come out negative; ours are unsigned. Asserted: ours === client >>> 0.',
  'instrument_token is likewise read signed by the client (tokens >= 2^31 turn negative); ours is ' +
    'unsigned. Asserted: ours === client >>> 0.',
  'Prices: the client divides by the segment divisor; we keep integers in the smallest unit. ' +
    'Asserted: ours / priceDivisor(token) === client (the same float division).',
  "change: the client derives (last - close) * 100 / close when close != 0, else the raw field for " +
    'index packets and 0 for tradable ones; we carry only CHANGE_RAW (index packets; 0 otherwise). ' +
    "Asserted: the client's change equals that rule applied to our integers.",
  'Timestamps: the client gives a Date, or null when the field is 0; ours are epoch seconds, 0 when ' +
    'absent. Asserted: client === null when ours is 0, else client.getTime() === ours * 1000.',
] as const;

const PACKETS = 12_000;
const TIMEOUT_MS = 20_000;

interface Fixture {
  frames: Uint8Array[];
  ticks: WireTick[];
}

/** Ticks covering every kind × segment, edge-value ticks, then random ones, packed into frames. */
function fixture(): Fixture {
  const r = new Rng(0xd1ff);
  const ticks: WireTick[] = [];
  for (const kind of ALL_KINDS) {
    for (const seg of ALL_SEGMENTS) {
      for (let i = 0; i < 4; i++) ticks.push(genTick(r, kind, seg));
      ticks.push(extremeTick(kind, seg, 'max'), extremeTick(kind, seg, 'min'), extremeTick(kind, seg, 'zero'));
    }
  }
  while (ticks.length < PACKETS) ticks.push(genTick(r));
  // Varied frame sizes: many small, some busy (up to 200), a few single-packet frames.
  const frames: Uint8Array[] = [];
  let i = 0;
  while (i < ticks.length) {
    const n = r.chance(0.1) ? 1 : r.chance(0.3) ? r.int(100, 200) : r.int(2, 60);
    frames.push(encodeFrame(ticks.slice(i, i + n)));
    i += n;
  }
  return { frames, ticks };
}

/** Every carried field at one extreme: i32 max / min / 0 for prices and times, u32 max / 2^31 / 0 for counts. */
function extremeTick(kind: KindCode, seg: number, which: 'max' | 'min' | 'zero'): WireTick {
  const price = which === 'max' ? I32_MAX : which === 'min' ? I32_MIN : 0;
  const count = which === 'max' ? U32_MAX : which === 'min' ? 0x8000_0000 : 0;
  const token = which === 'max' ? ((0xff_ffff << 8) | seg) >>> 0 : which === 'min' ? ((0x80_0000 << 8) | seg) >>> 0 : seg;
  const t = emptyWireTick(kind, token);
  t.lastPrice = price;
  if (kind === Kind.LTP) return t;
  Object.assign(t, { open: price, high: price, low: price, close: price });
  if (kind === Kind.INDEX_QUOTE || kind === Kind.INDEX_FULL) {
    t.changeRaw = price;
    if (kind === Kind.INDEX_FULL) t.exchangeTime = price;
    return t;
  }
  Object.assign(t, { lastQty: count, avgPrice: price, volume: count, buyQty: count, sellQty: count });
  if (kind === Kind.QUOTE) return t;
  Object.assign(t, { lastTradeTime: price, oi: count, oiHigh: count, oiLow: count, exchangeTime: price });
  const orders = which === 'max' ? 0xffff : which === 'min' ? 0x8000 : 0;
  for (const d of t.depth) Object.assign(d, { quantity: count, price, orders });
  return t;
}

const COUNT_FIELDS = [
  ['last_traded_quantity', 'lastQty'],
  ['volume_traded', 'volume'],
  ['total_buy_quantity', 'buyQty'],
  ['total_sell_quantity', 'sellQty'],
] as const;
const OI_FIELDS = [
  ['oi', 'oi'],
  ['oi_day_high', 'oiHigh'],
  ['oi_day_low', 'oiLow'],
] as const;

/**
 * Compare one official tick with ours; push a line per mismatch into `bad`. Also counts how often
 * the signed/unsigned difference actually showed, so the test can insist it was exercised.
 */
function compare(i: number, c: OfficialTick, o: WireTick, bad: string[], seen: { negativeCounts: number; negativeTokens: number }): void {
  const at = `tick ${i} (kind ${o.kind}, token ${o.token})`;
  const div = priceDivisor(o.token);
  const num = (name: string, got: unknown, want: number): void => {
    if (!Object.is(got, want)) bad.push(`${at}: ${name} official ${String(got)} ours→${want}`);
  };
  const count = (name: string, got: unknown, ours: number): void => {
    if (typeof got !== 'number' || got >>> 0 !== ours || !Number.isInteger(got)) bad.push(`${at}: ${name} official ${String(got)} ours ${ours} (want ours === official >>> 0)`);
    else if (got < 0) seen.negativeCounts++;
  };
  const time = (name: string, got: unknown, ours: number): void => {
    const ok = ours === 0 ? got === null : got instanceof Date && got.getTime() === ours * 1000;
    if (!ok) bad.push(`${at}: ${name} official ${String(got)} ours ${ours}`);
  };
  const keys = (got: object, want: string[]): void => {
    const k = Object.keys(got).sort().join(',');
    if (k !== [...want].sort().join(',')) bad.push(`${at}: keys official [${k}] want [${want.join(',')}]`);
  };

  if (c.instrument_token >>> 0 !== o.token) bad.push(`${at}: instrument_token official ${c.instrument_token}`);
  if (c.instrument_token < 0) seen.negativeTokens++;
  if (c.tradable !== ((o.token & 0xff) !== 9)) bad.push(`${at}: tradable official ${c.tradable}`);
  if (c.mode !== modeOfKind(o.kind)) bad.push(`${at}: mode official ${c.mode} ours ${modeOfKind(o.kind)}`);
  num('last_price', c.last_price, o.lastPrice / div);

  const base = ['tradable', 'mode', 'instrument_token', 'last_price'];
  if (o.kind === Kind.LTP) {
    keys(c, base);
    return;
  }
  const ohlc = c.ohlc ?? { open: NaN, high: NaN, low: NaN, close: NaN };
  num('ohlc.open', ohlc.open, o.open / div);
  num('ohlc.high', ohlc.high, o.high / div);
  num('ohlc.low', ohlc.low, o.low / div);
  num('ohlc.close', ohlc.close, o.close / div);
  const isIndex = o.kind === Kind.INDEX_QUOTE || o.kind === Kind.INDEX_FULL;
  // The client's rule, applied to our integers (same float operations in the same order).
  const last = o.lastPrice / div;
  const close = o.close / div;
  num('change', c.change, close !== 0 ? ((last - close) * 100) / close : isIndex ? o.changeRaw : 0);
  if (isIndex) {
    if (Object.keys(c.ohlc ?? {}).join(',') !== 'high,low,open,close') bad.push(`${at}: index ohlc key order ${Object.keys(c.ohlc ?? {})}`);
    if (o.kind === Kind.INDEX_FULL) {
      time('exchange_timestamp', c.exchange_timestamp, o.exchangeTime);
      keys(c, [...base, 'ohlc', 'change', 'exchange_timestamp']);
    } else {
      keys(c, [...base, 'ohlc', 'change']);
    }
    return;
  }
  for (const [name, ours] of COUNT_FIELDS) count(name, c[name], o[ours]);
  num('average_traded_price', c.average_traded_price, o.avgPrice / div);
  const quoteKeys = [...base, 'ohlc', 'change', ...COUNT_FIELDS.map(([n]) => n), 'average_traded_price'];
  if (o.kind === Kind.QUOTE) {
    keys(c, quoteKeys);
    return;
  }
  time('last_trade_time', c.last_trade_time, o.lastTradeTime);
  time('exchange_timestamp', c.exchange_timestamp, o.exchangeTime);
  for (const [name, ours] of OI_FIELDS) count(name, c[name], o[ours]);
  keys(c, [...quoteKeys, 'last_trade_time', 'exchange_timestamp', ...OI_FIELDS.map(([n]) => n), 'depth']);
  const buy = c.depth?.buy ?? [];
  const sell = c.depth?.sell ?? [];
  if (buy.length !== 5 || sell.length !== 5) {
    bad.push(`${at}: depth sizes ${buy.length}/${sell.length}`);
    return;
  }
  for (let d = 0; d < 10; d++) {
    const side = d < 5 ? 'buy' : 'sell';
    const cd = d < 5 ? buy[d] : sell[d - 5];
    const od = o.depth[d];
    count(`depth.${side}[${d % 5}].quantity`, cd.quantity, od.quantity);
    num(`depth.${side}[${d % 5}].price`, cd.price, od.price / div);
    num(`depth.${side}[${d % 5}].orders`, cd.orders, od.orders);
  }
}

describe('KiteTicker (official client) and decodeFrame agree on the same frames over a real WebSocket', () => {
  const { frames, ticks } = fixture();
  const order = { type: 'order', data: { order_id: '240612000000001', status: 'COMPLETE', tradingsymbol: 'NIFTY24JUN23500CE', quantity: 75 } };
  let wss: WebSocketServer;
  let port = 0;
  let upgradeUrl = '';
  let upgradeVersion: string | undefined;
  const official: OfficialTick[][] = [];
  const orders: Record<string, unknown>[] = [];
  const clientErrors: unknown[] = [];
  let binaryMessages = 0;
  let sentBinary = 0;
  let ticker: ReturnType<typeof officialTicker>;

  beforeAll(async () => {
    wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    await new Promise<void>((res, rej) => {
      wss.once('listening', res);
      wss.once('error', rej);
    });
    port = (wss.address() as { port: number }).port;
    wss.on('connection', (sock: WebSocket, req) => {
      upgradeUrl = req.url ?? '';
      upgradeVersion = req.headers['x-kite-version'] as string | undefined;
      // Heartbeats and an empty 2-byte frame between data frames: the client skips them, we count them.
      const send = (b: Uint8Array): void => {
        sock.send(b, { binary: true });
        sentBinary++;
      };
      send(HEARTBEAT);
      sock.send(JSON.stringify(order));
      frames.forEach((f, i) => {
        send(f);
        if (i % 97 === 0) send(HEARTBEAT);
        if (i % 389 === 0) send(new Uint8Array([0, 0]));
      });
    });

    ticker = officialTicker({ api_key: 'diff_key', access_token: 'diff_token', root: `ws://127.0.0.1:${port}/`, reconnect: false });
    ticker.on('ticks', (ts) => official.push(ts));
    ticker.on('message', () => binaryMessages++);
    ticker.on('order_update', (o) => orders.push(o));
    ticker.on('error', (e) => clientErrors.push(e));
    ticker.connect();

    // Wait until every binary message has arrived (its ticks are emitted synchronously after it).
    await until(() => {
      const got = official.reduce((n, b) => n + b.length, 0);
      return `KiteTicker to deliver every tick: it delivered ${got} of ${ticks.length} (${binaryMessages} of ${sentBinary || '?'} binary messages, ` +
        `${official.length} 'ticks' events); connected=${ticker.connected()}, client errors: ${clientErrors.map(String).join('; ') || 'none'}`;
    }, () => sentBinary > 0 && binaryMessages === sentBinary, TIMEOUT_MS);
  }, TIMEOUT_MS + 5_000);

  afterAll(async () => {
    ticker?.disconnect();
    for (const c of wss?.clients ?? []) c.terminate();
    await new Promise<void>((res) => (wss ? wss.close(() => res()) : res()));
  });

  it(`serves ${PACKETS}+ packets covering every kind × segment`, () => {
    expect(ticks.length).toBeGreaterThanOrEqual(10_000);
    const combos = new Set(ticks.map((t) => `${t.kind}/${t.token & 0xff}`));
    expect(combos.size).toBe(ALL_KINDS.length * ALL_SEGMENTS.length);
    expect(frames.length).toBeGreaterThan(100);
  });

  it('the client connected the way Kite expects (api_key, access_token, X-Kite-Version: 3)', () => {
    const q = new URLSearchParams(upgradeUrl.slice(upgradeUrl.indexOf('?') + 1));
    expect(q.get('api_key')).toBe('diff_key');
    expect(q.get('access_token')).toBe('diff_token');
    expect(upgradeVersion).toBe('3');
    expect(clientErrors).toEqual([]);
  });

  it('one ticks event per data frame with the same packet count; heartbeats yield none', () => {
    const sink = new CollectingSink(ticks.length);
    const stats = new DecodeStats();
    const perFrame = frames.map((f, i) => decodeFrame(f, { recvTimeUs: 0, seq: i, conn: 0 }, sink, stats));
    expect(official.map((b) => b.length)).toEqual(perFrame);
    expect(stats.totalErrors()).toBe(0);
    // Our side of the heartbeats the client skipped.
    const hb = new DecodeStats();
    decodeFrame(HEARTBEAT, { recvTimeUs: 0, seq: 0, conn: 0 }, sink, hb);
    decodeFrame(new Uint8Array([0, 0]), { recvTimeUs: 0, seq: 0, conn: 0 }, sink, hb);
    expect([hb.heartbeats, hb.totalErrors()]).toEqual([2, 0]);
  });

  it('every field of every tick agrees (modulo KNOWN_DIFFERENCES)', () => {
    const sink = new CollectingSink(ticks.length);
    const stats = new DecodeStats();
    frames.forEach((f, i) => decodeFrame(f, { recvTimeUs: 0, seq: i, conn: 0 }, sink, stats));
    const ours = sink.ticks();
    expect(ours).toEqual(ticks); // ours round-trips the generator exactly
    const flat = official.flat();
    expect(flat.length).toBe(ours.length);

    const bad: string[] = [];
    const seen = { negativeCounts: 0, negativeTokens: 0 };
    for (let i = 0; i < flat.length; i++) compare(i, flat[i], ours[i], bad, seen);
    expect(bad.slice(0, 30), `${bad.length} mismatches`).toEqual([]);
    // The known difference was actually exercised, not just tolerated.
    expect(seen.negativeCounts).toBeGreaterThan(100);
    expect(seen.negativeTokens).toBeGreaterThan(10);
  });

  it('the edge values reached both decoders: 0, i32 extremes, counts past 2^31, negative prices', () => {
    const has = (f: (t: WireTick) => boolean): boolean => ticks.some(f);
    expect(has((t) => t.lastPrice === 0)).toBe(true);
    expect(has((t) => t.lastPrice === I32_MAX)).toBe(true);
    expect(has((t) => t.lastPrice === I32_MIN)).toBe(true);
    expect(has((t) => t.lastPrice < 0 && t.lastPrice > I32_MIN)).toBe(true);
    expect(has((t) => t.volume >= 2 ** 31)).toBe(true);
    expect(has((t) => t.kind === Kind.FULL && t.depth.some((d) => d.quantity === U32_MAX && d.orders === 0xffff))).toBe(true);
    expect(has((t) => t.kind === Kind.FULL && t.lastTradeTime === 0)).toBe(true);
    expect(has((t) => t.kind === Kind.INDEX_FULL && t.exchangeTime === 0)).toBe(true);
    expect(has((t) => t.kind === Kind.QUOTE && t.close === 0)).toBe(true);
    expect(has((t) => t.kind === Kind.INDEX_QUOTE && t.close === 0 && t.changeRaw !== 0)).toBe(true);
  });

  it('order postbacks: the client emits what parseTextMessage returns', () => {
    expect(orders).toEqual([order.data]);
    expect(parseTextMessage(JSON.stringify(order))).toEqual({ type: 'order', data: orders[0] });
  });
});
