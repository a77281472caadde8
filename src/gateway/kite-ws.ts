/**
 * Kite-compatible ticker endpoint: `GET /kite` (WebSocket).
 *
 * Code written for Kite works unchanged: point the official `KiteTicker`'s `root` at
 * `ws://HOST:PORT/kite` and pass one of our API keys as `api_key` (the access token may be any
 * value, or the key again). It speaks Kite's protocol: JSON `subscribe` / `unsubscribe` / `mode`
 * messages, new tokens in `quote` mode, Kite binary frames with each subscriber's packets in the
 * length of its own mode (8/44/184, index 8/28/32), a 1-byte heartbeat every second, and Kite's
 * `{"type":"error"}` text for malformed input. One upstream Kite connection then serves any number
 * of downstream tickers, lifting Kite's three-connections-per-key limit for a team.
 *
 * Fan-out mirrors the msgpack feed (fanout.ts): tickers that follow the same tokens in the same
 * modes share one topic, and after each drain every such set gets one Kite frame with all of its
 * packets, as Kite itself sends one frame per interval with every subscribed token that changed.
 * Each packet is encoded once per mode into this drain's arena; frames are copies of those bytes.
 *
 * Order updates go as Kite sends them, a text frame `{"type":"order","data":{...order row...}}`
 * (the official KiteTicker emits it as `order_update`), to the sockets opened with the order's API
 * key only: sockets are indexed by key (SocketsByKey), so a push does not scan every ticker.
 *
 * Slow tickers: the close and stall rules of /ws (slow-clients.ts, the same limits), but no
 * conflation. A ticker past `conflateBytes` still gets every frame (uWS queues them) until it
 * reads again, stops reading for `stallCloseMs` or passes `closeBytes`; then it is closed with 4008.
 * Why not skip its packets instead: Kite has no conflated mode, so a KiteTicker cannot tell skipped
 * packets from a quiet market, and code written for Kite would act on stale prices unknowingly.
 * A close is what KiteTicker knows how to handle: it reconnects, resubscribes, and starts again
 * from each instrument's latest packet (the snapshot a subscribe gets).
 */
import type { HttpRequest, HttpResponse, TemplatedApp, WebSocket } from 'uWebSockets.js';
import { emptyWireTick, HEARTBEAT, writeWirePacket, type WireTick } from '../kite/codec.ts';
import { DEPTH_ENTRIES, Frame, PacketLength } from '../kite/packet-layout.ts';
import { KIND_LENGTH, Kind, priceDivisor, Segment, type KindCode } from '../core/packet-slot.ts';
import type { Logger } from '../log.ts';
import { N, N_FIELDS } from '../core/tick.ts';
import { Fanout, FRAME_HEAD, type FrameFormat, type SubscriptionSet } from './fanout.ts';
import { RecordWriter } from './msgpack-encoder.ts';
import { endSessionsOf, followingOf, maxBufferedOf, SocketsByKey, type Authenticator } from './feed.ts';
import type { FeedHub, HubListener } from './hub.ts';
import { freshSlowState, SLOW_CHECK_MS, SLOW_CLIENT_DEFAULTS, SlowClients, slowClientLimits, type SlowClientCounters, type SlowClientLimits, type SlowClientState } from './slow-clients.ts';

const MODES = ['ltp', 'quote', 'full'] as const;
/** A Kite frame at most this big; more packets for one topic go in further frames. */
const FRAME_BYTES = 64 * 1024;
// Bound once: read per packet, and an imported binding is reloaded at every use (see codec.ts).
const PACKET_LENGTH_BYTES = Frame.LENGTH_BYTES;
const WIRE_DEPTH_ENTRIES = DEPTH_ENTRIES;

export interface KiteClient extends SlowClientState {
  id: number;
  /** The endpoint that upgraded it: the live one, or a replay's (src/replay/routes.ts routes by it). */
  endpoint: KiteWs;
  key: string;
  modes: Map<number, number>;
  /** The subscription set of its packets (null: it follows nothing). */
  set: SubscriptionSet | null;
  closed: boolean;
}

/** A Kite frame: u16 packet count, then per packet u16 length and the packet (packet-layout.ts). */
const KITE_FRAMES: FrameFormat = {
  headerBytes: () => Frame.HEADER_BYTES,
  writeHeader(out, pos, count) {
    out[pos + Frame.COUNT] = count >> 8;
    out[pos + Frame.COUNT + 1] = count & 0xff;
    return pos + Frame.HEADER_BYTES;
  },
};

export interface KiteWsStats extends SlowClientCounters {
  clients: number;
  frames: number;
  packets: number;
  refusedUpgrades: number;
  badMessages: number;
}

/**
 * Where an endpoint sits on the app. The live endpoint registers `/kite`; a replay's registers no
 * route (one `/kite/replay/:id` route hands each socket to its session's endpoint) and prefixes
 * its topics so that its frames reach its own tickers only.
 */
export interface KiteMount {
  /** Starts every uWS topic the endpoint uses (topics are global to the app). */
  topicPrefix: string;
  /** Route patterns to register; none: the caller routes sockets to upgrade/opened/message/closed. */
  routes: readonly string[];
}

export const LIVE_KITE_MOUNT: KiteMount = { topicPrefix: 'k', routes: ['/kite', '/kite/'] };

const KITE_TOKEN_ERROR = JSON.stringify({
  status: 'error', message: 'Incorrect `api_key` or `access_token`.', data: null, error_type: 'TokenException',
});

/** The socket settings of every Kite route (closeBytes: the endpoint's own slow-client limit). */
export function kiteWsBehavior(closeBytes: number) {
  // We close slow tickers ourselves (with a reason) before uWS's own limit is reached.
  return { maxPayloadLength: 1 << 20, idleTimeout: 120, maxBackpressure: closeBytes * 2 } as const;
}

/** The settings of the replays' Kite route: their endpoints keep the default limits. */
export const KITE_WS_BEHAVIOR = kiteWsBehavior(SLOW_CLIENT_DEFAULTS.closeBytes);

export class KiteWs implements HubListener {
  readonly stats: KiteWsStats = {
    clients: 0, frames: 0, packets: 0, refusedUpgrades: 0, badMessages: 0, maxUnsentBytes: 0, slowCloses: 0, stallCloses: 0,
  };
  private readonly subs: Uint32Array;
  private readonly fanout: Fanout;
  /** This drain's packets, each `u16 length, packet`, which the frames are copied from. */
  private readonly arena = new RecordWriter(1 << 18, FRAME_HEAD);
  private readonly wire: WireTick[];
  private readonly sockets = new Set<WebSocket<KiteClient>>();
  private readonly byKey = new SocketsByKey<KiteClient>();
  private readonly heartbeat: NodeJS.Timeout;
  private readonly slowCheck: NodeJS.Timeout;
  private readonly slow: SlowClients;
  private nextId = 1;

  private readonly hbTopic: string;

  constructor(
    private readonly app: TemplatedApp, private readonly hub: FeedHub, private readonly auth: Authenticator, private readonly log: Logger,
    private readonly mount: KiteMount = LIVE_KITE_MOUNT,
    /** Slow-client limits (the /ws feed's, src/config.ts WS_*); defaults: SLOW_CLIENT_DEFAULTS. */
    limits: Partial<SlowClientLimits> = {},
  ) {
    const rows = hub.rows;
    const slowLimits = slowClientLimits(limits);
    this.slow = new SlowClients(slowLimits, this.stats, log, mount.routes.length > 0 ? '/kite' : 'replay /kite');
    this.subs = new Uint32Array(rows * 3);
    this.hbTopic = `${mount.topicPrefix}:hb`;
    this.fanout = new Fanout({
      topicPrefix: mount.topicPrefix, rows, encodings: 3, maxFrameBytes: FRAME_BYTES - Frame.HEADER_BYTES, maxFrameItems: 0xffff,
      publish: (topic, frame, items) => {
        this.app.publish(topic, frame, true);
        this.stats.frames++;
        this.stats.packets += items;
      },
    });
    this.wire = hub.instruments.map((i) => emptyWireTick(Kind.FULL, i.instrumentToken));
    for (const pattern of mount.routes) {
      app.ws<KiteClient>(pattern, {
        ...kiteWsBehavior(slowLimits.closeBytes),
        upgrade: (res, req, ctx) => this.upgrade(res, req, ctx),
        open: (ws) => this.opened(ws),
        message: (ws, msg, isBinary) => this.message(ws, msg, isBinary),
        drain: (ws) => this.drained(ws),
        close: (ws) => this.closed(ws),
      });
    }
    this.heartbeat = setInterval(() => app.publish(this.hbTopic, HEARTBEAT, true), 1000);
    this.heartbeat.unref();
    this.slowCheck = setInterval(() => this.checkSlow(), SLOW_CHECK_MS);
    this.slowCheck.unref();
  }

  /** Instruments followed in each mode (ltp, quote, full) by at least one ticker. */
  following(): [number, number, number] {
    return followingOf(this.subs);
  }

  /** Unsent bytes of the fullest socket: a replay at full speed waits on it rather than outrun its tickers. */
  maxBuffered(): number {
    return maxBufferedOf(this.sockets);
  }

  get clients(): number {
    return this.sockets.size;
  }

  /**
   * Kite's order postback, `{"type":"order","data":row}` as text, to the tickers opened with API key
   * name `key` only. Returns how many got it.
   */
  orderUpdate(key: string, row: Record<string, unknown>): number {
    const text = JSON.stringify({ type: 'order', data: row });
    return this.byKey.send(key, () => text, false);
  }

  /** Close the sessions of revoked keys (code 4001). */
  dropKeys(names: readonly string[]): void {
    endSessionsOf(this.sockets, names);
  }

  /** Stop the heartbeat and end every session (`code` 1001: the server is going away). */
  close(code = 1001, reason = 'server shutting down'): void {
    clearInterval(this.heartbeat);
    clearInterval(this.slowCheck);
    for (const ws of this.sockets) ws.end(code, reason);
  }

  // --- HubListener ---------------------------------------------------------------------------------

  tick(f: Float64Array, o: number, row: number): void {
    const s = this.subs;
    const base = row * 3;
    if (s[base] + s[base + 1] + s[base + 2] === 0) return;
    const t = this.fill(f, o, row);
    for (let m = 0; m < 3; m++) {
      const pair = base + m;
      if (!this.fanout.wants(pair)) continue;
      this.append(m, row, t);
    }
  }

  batchEnd(): void {
    this.fanout.flush(this.arena);
    this.arena.reset();
  }

  // --- encoding ------------------------------------------------------------------------------------

  /** The row's WireTick, refilled from the canonical tick: prices back to Kite's integer units. */
  private fill(f: Float64Array, o: number, row: number): WireTick {
    const t = this.wire[row];
    const div = priceDivisor(t.token);
    t.lastPrice = Math.round(f[o + N.PRICE] * div);
    t.lastQty = f[o + N.LAST_QTY];
    t.avgPrice = Math.round(f[o + N.AVG_PRICE] * div);
    t.volume = f[o + N.VOLUME];
    t.buyQty = f[o + N.BUY_QTY];
    t.sellQty = f[o + N.SELL_QTY];
    t.open = Math.round(f[o + N.OPEN] * div);
    t.high = Math.round(f[o + N.HIGH] * div);
    t.low = Math.round(f[o + N.LOW] * div);
    t.close = Math.round(f[o + N.CLOSE] * div);
    t.changeRaw = 0;
    t.lastTradeTime = Math.floor(f[o + N.LAST_TRADE_MS] / 1000);
    t.oi = f[o + N.OI];
    t.oiHigh = f[o + N.OI_HIGH];
    t.oiLow = f[o + N.OI_LOW];
    t.exchangeTime = Math.floor(f[o + N.EXCH_TIME_MS] / 1000);
    for (let i = 0; i < WIRE_DEPTH_ENTRIES; i++) {
      const d = o + N.DEPTH + 3 * i;
      const e = t.depth[i];
      e.quantity = f[d];
      e.price = Math.round(f[d + 1] * div);
      e.orders = f[d + 2];
    }
    return t;
  }

  private kindFor(m: number, row: number): KindCode {
    const index = this.hub.instruments[row] && (this.hub.instruments[row].segment === 'INDICES' || (this.wire[row].token & 0xff) === Segment.INDICES);
    if (m === 0) return Kind.LTP;
    if (index) return m === 1 ? Kind.INDEX_QUOTE : Kind.INDEX_FULL;
    return m === 1 ? Kind.QUOTE : Kind.FULL;
  }

  /** The row's packet in mode m, once, into the arena; every set following (row, m) gets it. */
  private append(m: number, row: number, t: WireTick): void {
    const kind = this.kindFor(m, row);
    const plen = KIND_LENGTH[kind];
    const a = this.arena;
    a.ensure(PACKET_LENGTH_BYTES + plen); // keeps this drain's packets at their offsets (the sets point at them)
    const start = a.pos;
    t.kind = kind;
    a.dv.setUint16(start, plen);
    writeWirePacket(a.dv, start + PACKET_LENGTH_BYTES, t);
    a.pos = start + PACKET_LENGTH_BYTES + plen;
    this.fanout.add(a, row * 3 + m, start, a.pos);
  }

  /** One frame with the latest packet of each row, in mode m: what a new subscription starts with. */
  private snapshot(ws: WebSocket<KiteClient>, rows: number[], m: number): void {
    const hub = this.hub;
    const buf = new Uint8Array(Frame.HEADER_BYTES + rows.length * (Frame.LENGTH_BYTES + PacketLength.FULL));
    const dv = new DataView(buf.buffer);
    let len = Frame.HEADER_BYTES;
    let count = 0;
    for (const row of rows) {
      if (!hub.hasTick[row]) continue;
      const t = this.fill(hub.latestTicks, row * N_FIELDS, row);
      t.kind = this.kindFor(m, row);
      dv.setUint16(len, KIND_LENGTH[t.kind]);
      writeWirePacket(dv, len + Frame.LENGTH_BYTES, t);
      len += Frame.LENGTH_BYTES + KIND_LENGTH[t.kind];
      count++;
    }
    if (count === 0) return;
    dv.setUint16(Frame.COUNT, count);
    ws.send(buf.subarray(0, len), true);
  }

  // --- WebSocket -----------------------------------------------------------------------------------

  /** A socket's upgrade; the live route calls it, and the replay route for its session's endpoint. */
  upgrade(res: HttpResponse, req: HttpRequest, context: unknown): void {
    const q = new URLSearchParams(req.getQuery() ?? '');
    const wsKey = req.getHeader('sec-websocket-key');
    const wsProtocol = req.getHeader('sec-websocket-protocol');
    const wsExtensions = req.getHeader('sec-websocket-extensions');
    const apiKey = q.get('api_key') ?? '';
    const token = q.get('access_token') ?? '';
    const who = (apiKey && this.auth.verify(apiKey)) || (token && this.auth.verify(token)) || null;
    if (!who) {
      this.stats.refusedUpgrades++;
      // Kite refuses bad credentials with 403 and this body.
      res.cork(() => res.writeStatus('403 Forbidden').writeHeader('Content-Type', 'application/json').end(KITE_TOKEN_ERROR));
      return;
    }
    const c: KiteClient = { id: this.nextId++, endpoint: this, key: who.name, modes: new Map(), set: null, closed: false, ...freshSlowState() };
    res.upgrade(c, wsKey, wsProtocol, wsExtensions, context as never);
  }

  private error(ws: WebSocket<KiteClient>, data: string): void {
    this.stats.badMessages++;
    ws.send(JSON.stringify({ type: 'error', data }), false);
  }

  opened(ws: WebSocket<KiteClient>): void {
    this.sockets.add(ws);
    this.byKey.add(ws);
    this.stats.clients = this.sockets.size;
    ws.subscribe(this.hbTopic);
    this.onClients?.(this.sockets.size);
  }

  /** Told the number of open tickers whenever it changes (a replay starts on its first subscribe). */
  onClients: ((n: number) => void) | null = null;
  /** Told when a ticker subscribes to something (a replay set to start on subscribe starts then). */
  onSubscribe: (() => void) | null = null;
  /** Told when a ticker's socket drains (a replay waiting for its slowest client goes on then). */
  onDrain: (() => void) | null = null;

  drained(ws: WebSocket<KiteClient>): void {
    this.slow.drained(ws.getUserData());
    this.onDrain?.();
  }

  /** The close and stall rules over every ticker (slow-clients.ts); on a timer, never per tick. */
  private checkSlow(): void {
    const slow = this.slow;
    slow.begin(Date.now());
    for (const ws of this.sockets) {
      const c = ws.getUserData();
      if (!c.closed) slow.check(ws, c, true);
    }
    slow.end();
  }

  message(ws: WebSocket<KiteClient>, data: ArrayBuffer, isBinary: boolean): void {
    if (isBinary) return this.error(ws, 'binary messages are not accepted; send JSON text');
    let msg: { a?: unknown; v?: unknown };
    try {
      msg = JSON.parse(Buffer.from(data).toString('utf8'));
    } catch {
      return this.error(ws, 'invalid JSON');
    }
    if (msg === null || typeof msg !== 'object') return this.error(ws, 'expected {"a": ..., "v": ...}');
    const c = ws.getUserData();
    if (msg.a === 'subscribe' || msg.a === 'unsubscribe') {
      if (!Array.isArray(msg.v)) return this.error(ws, `${msg.a}: v must be an array of instrument tokens`);
      const rows = this.rowsOf(msg.v);
      if (msg.a === 'subscribe') {
        const fresh = rows.filter((r) => !c.modes.has(r));
        for (const r of fresh) this.setMode(c, r, 1);
        this.rejoin(ws, c);
        this.snapshot(ws, fresh, 1);
        if (rows.length > 0) this.onSubscribe?.();
      } else {
        for (const r of rows) this.drop(c, r);
        this.rejoin(ws, c);
      }
      return;
    }
    if (msg.a === 'mode') {
      const v = msg.v;
      if (!Array.isArray(v) || v.length !== 2 || !Array.isArray(v[1])) return this.error(ws, 'mode: v must be [mode, [tokens]]');
      const m = MODES.indexOf(v[0] as (typeof MODES)[number]);
      if (m < 0) return this.error(ws, `mode: "${String(v[0])}" is not one of ltp, quote, full`);
      const rows = this.rowsOf(v[1]).filter((r) => c.modes.has(r));
      for (const r of rows) this.setMode(c, r, m);
      this.rejoin(ws, c);
      this.snapshot(ws, rows, m);
      return;
    }
    this.error(ws, `unknown action "${String(msg.a)}"`);
  }

  /** Rows of the tokens this service follows; others are ignored silently, as Kite does. */
  private rowsOf(v: unknown[]): number[] {
    const rows: number[] = [];
    for (const t of v) {
      if (typeof t !== 'number') continue;
      const r = this.hub.rowOfToken.get(t);
      if (r !== undefined) rows.push(r);
    }
    return rows;
  }

  private setMode(c: KiteClient, row: number, m: number): void {
    const old = c.modes.get(row);
    if (old === m) return;
    if (old !== undefined) this.subs[row * 3 + old]--;
    c.modes.set(row, m);
    this.subs[row * 3 + m]++;
  }

  private drop(c: KiteClient, row: number): void {
    const old = c.modes.get(row);
    if (old === undefined) return;
    this.subs[row * 3 + old]--;
    c.modes.delete(row);
  }

  /** Move the ticker to the subscription set of what it now follows. */
  private rejoin(ws: WebSocket<KiteClient>, c: KiteClient): void {
    const pairs: number[] = [];
    for (const [row, m] of c.modes) pairs.push(row * 3 + m);
    const old = c.set;
    const next = this.fanout.move(old, 'k', pairs, KITE_FRAMES);
    if (next === old) return;
    if (old) ws.unsubscribe(old.topic);
    c.set = next;
    if (next) ws.subscribe(next.topic);
  }

  closed(ws: WebSocket<KiteClient>): void {
    const c = ws.getUserData();
    c.closed = true;
    this.sockets.delete(ws);
    this.byKey.delete(ws);
    this.stats.clients = this.sockets.size;
    for (const [row, m] of c.modes) this.subs[row * 3 + m]--;
    c.modes.clear();
    if (c.set) {
      this.fanout.leave(c.set);
      c.set = null;
    }
    this.log.debug({ client: c.id }, 'kite client closed');
    this.onClients?.(this.sockets.size);
  }
}
