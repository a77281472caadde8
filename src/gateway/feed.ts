/**
 * The msgpack feed: `GET /ws` (WebSocket). Protocol in docs/protocol.md.
 *
 * Fan-out is uWebSockets.js topics. Ticks: one topic per subscription set (fanout.ts): clients
 * that follow the same instruments in the same modes share one; after each drain of the pipeline's
 * output rings every set that gathered ticks gets ONE frame with all of them, published once, and
 * uWS copies it to each subscriber. Each tick is encoded once per mode wanted (msgpack-encoder.ts, straight
 * from the ring record), never per set or client. Writes per client are one frame per drain,
 * whatever the ticks and instruments. Bars: one topic per (instrument, timeframe), as they are few.
 *
 * Slow clients: a client whose unsent bytes pass `conflateBytes` is taken off its tick topic and
 * marked conflated: from then on it gets, every `conflateIntervalMs`, one frame with only the
 * latest tick of each instrument it follows. When its socket drains below half the limit it
 * rejoins its topic. If it stops reading, it is closed with code 4008 once it has taken nothing
 * for `stallCloseMs`, or once those frames pile up past `closeBytes` (the rules, shared with /kite,
 * are in slow-clients.ts). All are counted. Other clients are never held up:
 * uWS queues per socket and publish does not wait for anyone.
 *
 * A key's own order updates and positions (`order`, `position`) go to that key's sockets only,
 * never through a topic: sockets are indexed by key (SocketsByKey), so a push touches the owner's
 * few sockets, not every client. They are sent to conflated clients too: conflation thins ticks,
 * and an order's state must not be skipped.
 */
import type { HttpRequest, HttpResponse, TemplatedApp, WebSocket } from 'uWebSockets.js';
import type { Logger } from '../log.ts';
import { N_FIELDS } from '../core/tick.ts';
import { B, BAR_FIELDS } from '../core/bar.ts';
import { parseTimeframe } from '../core/ist.ts';
import { Fanout, FRAME_HEAD, type SubscriptionSet } from './fanout.ts';
import type { FeedHub, HubListener } from './hub.ts';
import {
  barFor, createPackr, createUnpackr, FEED_MODES, PROTOCOL_VERSION, tickFor,
  type ControlMessage, type FeedBar, type FeedMode, type FeedTick,
} from './messages.ts';
import { encodeSymbol, PLAIN_FRAMES, RECORD_FRAMES, RecordWriter } from './msgpack-encoder.ts';
import { CLOSED, freshSlowState, SLOW_CHECK_MS, SlowClients, slowClientLimits, type SlowClientCounters, type SlowClientState } from './slow-clients.ts';

export interface Authenticator {
  verify(secret: string): { name: string } | null;
  /** The key's trading mode, for the welcome frame (the dashboard shows it); absent: not said. */
  modeOf?(name: string): 'paper' | 'live';
}

export interface FeedOptions {
  hub: FeedHub;
  auth: Authenticator;
  log: Logger;
  /** Unsent bytes past which a client is conflated. Default 1 MiB (WS_CONFLATE_BYTES). */
  conflateBytes?: number;
  /** Unsent bytes past which a client is closed. Default 16 MiB (WS_CLOSE_BYTES). */
  closeBytes?: number;
  /** A conflated client taking nothing for this long is closed. Default 5000 ms (WS_STALL_CLOSE_MS). */
  stallCloseMs?: number;
  /** How often a conflated client gets the latest ticks. Default 1000 ms. */
  conflateIntervalMs?: number;
  heartbeatMs?: number;
  /** Called when the set of instruments anyone follows changes (rows). */
  onInterest?: (rows: number[]) => void;
  /** The latest chain analytics and breadth (src/analytics/service.ts), for `chain` and `breadth` subscriptions. */
  analytics?: AnalyticsFrames;
  /**
   * Starts every uWS topic this feed uses; topics are global to the app, so a replay's feed has its
   * own. Default '' (the live feed).
   */
  topicPrefix?: string;
  /** Route patterns to register. Default ['/ws']; none: the caller routes sockets (a replay's feed). */
  routes?: readonly string[];
  /** Told when a client subscribes to instruments (a replay set to start on subscribe starts then). */
  onSubscribe?: () => void;
  /** Told when a client's socket drains (a replay waiting for its slowest client goes on then). */
  onDrain?: () => void;
}

/** The socket settings of every msgpack feed route (closeBytes: the feed's own slow-client limit). */
export function feedWsBehavior(closeBytes: number) {
  return {
    maxPayloadLength: 64 * 1024,
    idleTimeout: 120,
    sendPingsAutomatically: true,
    // We close slow clients ourselves (with a reason) before uWS's own limit is reached.
    maxBackpressure: closeBytes * 2,
  };
}

/** What the feed needs of the analytics: each key's latest `/ws` frame, both encodings. */
export interface AnalyticsFrames {
  latest(key: string): { records: Uint8Array; plain: Uint8Array } | null;
  /** Chain keys (`NIFTY:2026-12-08`). */
  keys(): string[];
}

/** Topic of a chain's analytics frames (`c/NIFTY:2026-12-08`) and of breadth's. */
const chainTopic = (key: string) => `c/${key}`;
const BREADTH_TOPIC = 'breadth';

export interface FeedClient extends SlowClientState {
  id: number;
  /** The feed that upgraded it: the live one, or a replay's (src/replay/routes.ts routes by it). */
  endpoint: Feed;
  key: string;
  records: boolean;
  /** mode index per followed row */
  modes: Map<number, number>;
  /** bar topics followed */
  bars: Set<string>;
  /** Analytics topics followed: chain topics and breadth's. */
  analytics: Set<string>;
  /** The subscription set of its ticks (null: it follows no ticks). */
  set: SubscriptionSet | null;
  conflated: boolean;
  conflatedSentAt: number;
  closed: boolean;
}

export interface FeedStats extends SlowClientCounters {
  clients: number;
  /** Distinct subscription sets (clients following the same instruments in the same modes share one). */
  subscriptionSets: number;
  framesPublished: number;
  ticksPublished: number;
  barsPublished: number;
  conflations: number;
  refusedUpgrades: number;
  badMessages: number;
}

/** End every session opened with one of the named keys, with code 4001 (shared by /ws and /kite). */
export function endSessionsOf<T extends { key: string; closed: boolean }>(sockets: Iterable<WebSocket<T>>, names: readonly string[]): void {
  for (const ws of sockets) {
    const c = ws.getUserData();
    if (!c.closed && names.includes(c.key)) {
      c.closed = true;
      ws.end(4001, 'API key revoked');
    }
  }
}

/** Per mode (ltp, quote, full), the rows with a follower in `subs` (row × 3 + mode counts; shared by /ws and /kite). */
export function followingOf(subs: Uint32Array): [number, number, number] {
  const out: [number, number, number] = [0, 0, 0];
  for (let i = 0; i < subs.length; i++) if (subs[i] > 0) out[i % 3]++;
  return out;
}

/** Unsent bytes of the fullest of `sockets` (shared by /ws and /kite). */
export function maxBufferedOf(sockets: Iterable<WebSocket<unknown>>): number {
  let max = 0;
  for (const ws of sockets) {
    const b = ws.getBufferedAmount();
    if (b > max) max = b;
  }
  return max;
}

/**
 * Open sockets by the API key name they were opened with (shared by /ws and /kite), so a message for
 * one key reaches its sockets without a scan of every client. Kept on open and close.
 */
export class SocketsByKey<T extends { key: string; closed: boolean }> {
  private readonly byKey = new Map<string, Set<WebSocket<T>>>();

  add(ws: WebSocket<T>): void {
    const key = ws.getUserData().key;
    let set = this.byKey.get(key);
    if (!set) {
      set = new Set();
      this.byKey.set(key, set);
    }
    set.add(ws);
  }

  delete(ws: WebSocket<T>): void {
    const key = ws.getUserData().key;
    const set = this.byKey.get(key);
    if (!set) return;
    set.delete(ws);
    if (set.size === 0) this.byKey.delete(key);
  }

  /**
   * Send a frame to every open socket of `key`; `frame` gives each socket's bytes (encode once per
   * variant, not per socket). Returns how many took it: sockets being closed, and sends uWS drops
   * past the socket's backpressure limit (send returns 2), are not counted.
   */
  send(key: string, frame: (c: T) => string | Uint8Array, isBinary: boolean): number {
    const set = this.byKey.get(key);
    if (!set) return 0;
    let n = 0;
    for (const ws of set) {
      const c = ws.getUserData();
      if (c.closed) continue;
      if (ws.send(frame(c), isBinary) !== 2) n++;
    }
    return n;
  }
}

export function extractKey(authorization: string, query: string): string | null {
  const m = /^Bearer\s+(\S+)$/i.exec(authorization.trim());
  if (m) return m[1];
  const q = new URLSearchParams(query).get('key');
  return q && q.length > 0 ? q : null;
}

const ERR = (message: string, id?: string | number) => ({ type: 'error', message, ...(id !== undefined ? { id } : {}) });

export class Feed implements HubListener {
  readonly stats: FeedStats = {
    clients: 0, subscriptionSets: 0, framesPublished: 0, ticksPublished: 0, barsPublished: 0, conflations: 0, slowCloses: 0,
    stallCloses: 0, maxUnsentBytes: 0, refusedUpgrades: 0, badMessages: 0,
  };
  private readonly hub: FeedHub;
  private readonly packr = createPackr(true);
  private readonly plain = createPackr(false);
  private readonly unpackr = createUnpackr();
  private readonly conflateBytes: number;
  readonly closeBytes: number;
  private readonly slow: SlowClients;
  private readonly px: string;
  /** Clients following each (row, mode): the instruments anyone wants (onInterest). */
  private readonly subs: Uint32Array;
  private readonly barSubs = new Map<string, number>();
  private readonly pendingBars = new Map<string, FeedBar[]>();
  private readonly sockets = new Set<WebSocket<FeedClient>>();
  private readonly byKey = new SocketsByKey<FeedClient>();
  /** Ticks by subscription set; encodings per row: modes 0-2 as records, 3-5 as plain maps. */
  private readonly fanout: Fanout;
  /** This drain's encoded ticks, which the sets' frames are copied from. */
  private readonly arena = new RecordWriter(1 << 18, FRAME_HEAD);
  /** Each instrument's trading symbol as msgpack, made once. */
  private readonly symbolBytes: Uint8Array[];
  private nextId = 1;
  private heartbeat: NodeJS.Timeout;
  private slowCheck: NodeJS.Timeout;

  constructor(private readonly app: TemplatedApp, private readonly opts: FeedOptions) {
    this.hub = opts.hub;
    const limits = slowClientLimits({ conflateBytes: opts.conflateBytes, closeBytes: opts.closeBytes, stallCloseMs: opts.stallCloseMs });
    this.conflateBytes = limits.conflateBytes;
    this.closeBytes = limits.closeBytes;
    this.slow = new SlowClients(limits, this.stats, opts.log, opts.topicPrefix ? 'replay /ws' : '/ws');
    this.px = opts.topicPrefix ?? '';
    const rows = this.hub.rows;
    this.subs = new Uint32Array(rows * 3);
    this.symbolBytes = this.hub.symbols.map(encodeSymbol);
    this.fanout = new Fanout({
      topicPrefix: `${this.px}f`, rows, encodings: 6,
      publish: (topic, frame, items) => {
        this.app.publish(topic, frame, true);
        this.stats.framesPublished++;
        this.stats.ticksPublished += items;
      },
    });
    this.registerRoutes();
    this.heartbeat = setInterval(() => this.publishBoth('hb', { type: 'hb', ts: Date.now() }), opts.heartbeatMs ?? 1000);
    this.heartbeat.unref();
    this.slowCheck = setInterval(() => this.checkSlow(), SLOW_CHECK_MS);
    this.slowCheck.unref();
  }

  // --- HubListener: gather per drain, publish at batch end --------------------------------------

  tick(f: Float64Array, o: number, row: number): void {
    const s = this.subs;
    const base = row * 3;
    if (s[base] + s[base + 1] + s[base + 2] === 0) return;
    const fan = this.fanout;
    const w = this.arena;
    for (let e = 0; e < 6; e++) {
      const pair = row * 6 + e;
      if (!fan.wants(pair)) continue;
      const start = w.pos;
      w.tick(f, o, e % 3, this.symbolBytes[row], e < 3);
      fan.add(w, pair, start, w.pos);
    }
  }

  bar(f: Float64Array, o: number, row: number): void {
    if (this.barSubs.size === 0) return;
    const topic = `b${f[o + B.TF_MS]}:${row}`;
    if (!this.barSubs.has(topic)) return;
    let list = this.pendingBars.get(topic);
    if (!list) {
      list = [];
      this.pendingBars.set(topic, list);
    }
    list.push(barFor(f, o, this.hub.symbols[row]));
  }

  batchEnd(): void {
    this.fanout.flush(this.arena);
    this.arena.reset();
    if (this.pendingBars.size > 0) {
      for (const [topic, list] of this.pendingBars) {
        this.publishBoth(topic, { type: 'bars', d: list });
        this.stats.barsPublished += list.length;
      }
      this.pendingBars.clear();
    }
  }

  /** Publish to the records and the plain-map variant of a topic, each encoded once. */
  private publishBoth(name: string, msg: unknown): void {
    const topic = this.px + name;
    if (this.app.numSubscribers(topic) > 0) {
      this.app.publish(topic, this.packr.pack(msg), true);
      this.stats.framesPublished++;
    }
    const plainTopic = `${this.px}p/${name}`;
    if (this.app.numSubscribers(plainTopic) > 0) {
      this.app.publish(plainTopic, this.plain.pack(msg), true);
      this.stats.framesPublished++;
    }
  }

  // --- a key's own messages ---------------------------------------------------------------------

  /** `{ type: 'order', d: row }` to the sockets of `key` only; returns how many got it. */
  orderUpdate(key: string, row: Record<string, unknown>): number {
    return this.toKey(key, { type: 'order', d: row });
  }

  /** `{ type: 'position', d: rows }` to the sockets of `key` only; returns how many got it. */
  positionUpdate(key: string, rows: readonly object[]): number {
    return this.toKey(key, { type: 'position', d: rows });
  }

  /**
   * A message to one key's sockets, encoded at most once per variant. Record clients get the records
   * packr's bytes and plain clients the plain maps, as `send` does: the records decoder reads plain
   * maps as `Map`s, not objects.
   */
  private toKey(key: string, msg: { type: string; d: unknown }): number {
    let records: Uint8Array | null = null;
    let plain: Uint8Array | null = null;
    return this.byKey.send(key, (c) => (c.records ? (records ??= this.packr.pack(msg)) : (plain ??= this.plain.pack(msg))), true);
  }

  // --- analytics ----------------------------------------------------------------------------------

  /**
   * One refresh's frame of a chain (`NIFTY:2026-12-08`) or of `breadth`, already encoded both ways
   * by the analytics pool: published to whoever follows it, nothing encoded here.
   */
  publishAnalytics(key: string, records: Uint8Array, plain: Uint8Array): void {
    const name = key === 'breadth' ? BREADTH_TOPIC : chainTopic(key);
    const topic = this.px + name;
    if (this.app.numSubscribers(topic) > 0) {
      this.app.publish(topic, records, true);
      this.stats.framesPublished++;
    }
    const plainTopic = `${this.px}p/${name}`;
    if (this.app.numSubscribers(plainTopic) > 0) {
      this.app.publish(plainTopic, plain, true);
      this.stats.framesPublished++;
    }
  }

  /** The analytics topics a control message names, and what it named that is not followed. */
  private analyticsTopics(msg: ControlMessage): { topics: { topic: string; key: string }[]; rejected: { chain: unknown; reason: string }[] } {
    const topics: { topic: string; key: string }[] = [];
    const rejected: { chain: unknown; reason: string }[] = [];
    const a = this.opts.analytics;
    const chains = msg.chain === undefined ? [] : Array.isArray(msg.chain) ? msg.chain : [msg.chain];
    const keys = a?.keys() ?? [];
    for (const c of chains) {
      const key = typeof c !== 'string' ? '' : c.includes(':') ? c.toUpperCase() : `NIFTY:${c}`;
      if (!keys.includes(key)) {
        rejected.push({ chain: c, reason: a === undefined ? 'analytics are off (ANALYTICS_REFRESH_MS=0)' : `not a followed chain; followed: ${keys.join(', ') || 'none'}` });
      } else topics.push({ topic: chainTopic(key), key });
    }
    if (msg.breadth === true) {
      if (a === undefined) rejected.push({ chain: 'breadth', reason: 'analytics are off (ANALYTICS_REFRESH_MS=0)' });
      else topics.push({ topic: BREADTH_TOPIC, key: 'breadth' });
    }
    return { topics, rejected };
  }

  /** Close the sessions of revoked keys (code 4001). */
  dropKeys(names: readonly string[]): void {
    endSessionsOf(this.sockets, names);
  }

  /** Stop the timers and end every session (`code` 1001: the server is going away). */
  close(code = 1001, reason = 'server shutting down'): void {
    clearInterval(this.heartbeat);
    clearInterval(this.slowCheck);
    for (const ws of this.sockets) ws.end(code, reason);
  }

  /** Instruments followed in each mode (ltp, quote, full) by at least one client. */
  following(): [number, number, number] {
    return followingOf(this.subs);
  }

  /** Unsent bytes of the fullest socket: a replay at full speed waits on it rather than outrun its clients. */
  maxBuffered(): number {
    return maxBufferedOf(this.sockets);
  }

  get clients(): number {
    return this.sockets.size;
  }

  // --- WebSocket route ---------------------------------------------------------------------------

  private registerRoutes(): void {
    for (const route of this.opts.routes ?? ['/ws']) this.registerRoute(route);
  }

  private registerRoute(route: string): void {
    this.app.ws<FeedClient>(route, {
      ...feedWsBehavior(this.closeBytes),
      upgrade: (res, req, context) => this.upgrade(res, req, context),
      open: (ws) => this.open(ws),
      message: (ws, message, isBinary) => this.message(ws, message, isBinary),
      drain: (ws) => this.drain(ws),
      close: (ws) => this.closed(ws),
    });
  }

  /** A socket's upgrade; the live route calls it, and the replay route for its session's feed. */
  upgrade(res: HttpResponse, req: HttpRequest, context: unknown): void {
    // Copy everything out of req now: it is invalid after this call returns.
    const key = extractKey(req.getHeader('authorization'), req.getQuery() ?? '');
    const query = new URLSearchParams(req.getQuery() ?? '');
    const wsKey = req.getHeader('sec-websocket-key');
    const wsProtocol = req.getHeader('sec-websocket-protocol');
    const wsExtensions = req.getHeader('sec-websocket-extensions');
    const who = key ? this.opts.auth.verify(key) : null;
    // The access log (LOG_LEVEL=debug): the key's name, never the key nor the query that may hold it.
    this.opts.log.debug({ method: 'GET', path: req.getUrl(), status: who ? 101 : 401, key: who?.name ?? null }, 'request');
    if (!who) {
      this.stats.refusedUpgrades++;
      res.cork(() => {
        res.writeStatus('401 Unauthorized').writeHeader('Content-Type', 'application/json')
          .end(JSON.stringify({ error: 'unauthorized', message: key ? 'API key not recognised' : 'API key missing: send Authorization: Bearer <key> or ?key=<key>' }));
      });
      return;
    }
    const client: FeedClient = {
      id: this.nextId++, endpoint: this, key: who.name, records: query.get('records') !== '0', modes: new Map(), bars: new Set(), analytics: new Set(), set: null,
      conflated: false, conflatedSentAt: 0, closed: false, ...freshSlowState(),
    };
    res.upgrade(client, wsKey, wsProtocol, wsExtensions, context as never);
  }

  open(ws: WebSocket<FeedClient>): void {
    this.sockets.add(ws);
    this.byKey.add(ws);
    this.stats.clients = this.sockets.size;
    const c = ws.getUserData();
    ws.subscribe(this.topic(c, 'hb'));
    const mode = this.opts.auth.modeOf?.(c.key);
    this.send(ws, {
      type: 'welcome', protocol: PROTOCOL_VERSION, key: c.key, ...(mode !== undefined ? { mode } : {}),
      records: c.records, modes: FEED_MODES, timeframes: this.hub.timeframesMs,
    });
  }

  private topic(c: FeedClient, t: string): string {
    return c.records ? this.px + t : `${this.px}p/${t}`;
  }

  private send(ws: WebSocket<FeedClient>, msg: unknown): void {
    const c = ws.getUserData();
    if (c.closed) return;
    ws.send((c.records ? this.packr : this.plain).pack(msg), true);
  }

  message(ws: WebSocket<FeedClient>, data: ArrayBuffer, isBinary: boolean): void {
    let msg: ControlMessage;
    try {
      msg = (isBinary ? this.unpackr.unpack(new Uint8Array(data)) : JSON.parse(Buffer.from(data).toString('utf8'))) as ControlMessage;
    } catch {
      this.stats.badMessages++;
      this.send(ws, ERR('message is neither msgpack nor JSON'));
      return;
    }
    if (msg === null || typeof msg !== 'object' || typeof msg.op !== 'string') {
      this.stats.badMessages++;
      this.send(ws, ERR('expected an object with op: "subscribe", "unsubscribe" or "ping"'));
      return;
    }
    if (msg.op === 'ping') {
      this.send(ws, { type: 'pong', id: msg.id, ts: Date.now() });
      return;
    }
    if (msg.op !== 'subscribe' && msg.op !== 'unsubscribe') {
      this.stats.badMessages++;
      this.send(ws, ERR(`unknown op "${String(msg.op)}"`, msg.id));
      return;
    }
    const mode = msg.mode ?? 'quote';
    const m = FEED_MODES.indexOf(mode);
    if (m < 0) {
      this.send(ws, ERR(`mode must be one of ${FEED_MODES.join(', ')}`, msg.id));
      return;
    }
    const wantsAnalytics = msg.chain !== undefined || msg.breadth !== undefined;
    if (msg.instruments === undefined && wantsAnalytics) {
      this.analyticsMessage(ws, msg);
      return;
    }
    if (!Array.isArray(msg.instruments) || msg.instruments.length === 0) {
      this.send(ws, ERR('instruments: a non-empty array of tokens or trading symbols is required (or chain / breadth alone)', msg.id));
      return;
    }
    if (wantsAnalytics) this.analyticsMessage(ws, msg);
    const tfs: number[] = [];
    for (const tf of msg.bars ?? []) {
      let ms: number;
      try {
        ms = parseTimeframe(String(tf));
      } catch (e) {
        this.send(ws, ERR(`bars: ${(e as Error).message}`, msg.id));
        return;
      }
      if (!this.hub.timeframesMs.includes(ms)) {
        this.send(ws, ERR(`bars: ${tf} is not aggregated here (BAR_TIMEFRAMES)`, msg.id));
        return;
      }
      tfs.push(ms);
    }
    const c = ws.getUserData();
    const accepted: number[] = [];
    const rejected: { instrument: unknown; reason: string }[] = [];
    const rows: number[] = [];
    for (const inst of msg.instruments) {
      const row = typeof inst === 'number' || typeof inst === 'string' ? this.hub.resolve(inst) : -1;
      if (row < 0) {
        rejected.push({ instrument: inst, reason: 'not an instrument this service follows' });
        continue;
      }
      rows.push(row);
      accepted.push(this.hub.instruments[row].instrumentToken);
    }
    if (msg.op === 'subscribe') {
      for (const row of rows) this.follow(ws, c, row, m, tfs);
      this.rejoin(ws, c);
      this.send(ws, { type: 'ack', op: msg.op, id: msg.id, mode, instruments: accepted, bars: msg.bars ?? [], rejected });
      this.sendSnapshot(ws, c, rows, tfs);
      if (rows.length > 0) this.opts.onSubscribe?.();
    } else {
      for (const row of rows) this.unfollow(ws, c, row, tfs);
      this.rejoin(ws, c);
      this.send(ws, { type: 'ack', op: msg.op, id: msg.id, instruments: accepted, rejected });
    }
    this.opts.onInterest?.(this.interest());
  }

  /** Subscribe to or leave chain analytics and breadth; a subscribe gets the latest frame of each at once. */
  private analyticsMessage(ws: WebSocket<FeedClient>, msg: ControlMessage): void {
    const c = ws.getUserData();
    const { topics, rejected } = this.analyticsTopics(msg);
    const keys = topics.map((t) => t.key);
    if (msg.op === 'subscribe') {
      for (const t of topics) {
        c.analytics.add(t.topic);
        ws.subscribe(this.topic(c, t.topic));
      }
      this.send(ws, { type: 'ack', op: msg.op, id: msg.id, analytics: keys, rejected });
      for (const t of topics) {
        const latest = this.opts.analytics?.latest(t.key);
        if (latest && !c.closed) ws.send(c.records ? latest.records : latest.plain, true);
      }
    } else {
      for (const t of topics) {
        c.analytics.delete(t.topic);
        ws.unsubscribe(this.topic(c, t.topic));
      }
      this.send(ws, { type: 'ack', op: msg.op, id: msg.id, analytics: keys, rejected });
    }
  }

  private follow(ws: WebSocket<FeedClient>, c: FeedClient, row: number, m: number, tfs: number[]): void {
    const old = c.modes.get(row);
    if (old !== m) {
      if (old !== undefined) this.subs[row * 3 + old]--;
      c.modes.set(row, m);
      this.subs[row * 3 + m]++;
    }
    for (const tf of tfs) {
      const t = `b${tf}:${row}`;
      if (c.bars.has(t)) continue;
      c.bars.add(t);
      this.barSubs.set(t, (this.barSubs.get(t) ?? 0) + 1);
      ws.subscribe(this.topic(c, t));
    }
  }

  /** Move the client to the subscription set of what it now follows (one topic for all its ticks). */
  private rejoin(ws: WebSocket<FeedClient>, c: FeedClient): void {
    const e0 = c.records ? 0 : 3;
    const pairs: number[] = [];
    for (const [row, m] of c.modes) pairs.push(row * 6 + e0 + m);
    const old = c.set;
    const next = this.fanout.move(old, c.records ? 'r' : 'p', pairs, c.records ? RECORD_FRAMES : PLAIN_FRAMES);
    if (next === old) return;
    // A conflated client is off its topic until it drains; it then subscribes to c.set.
    if (old && !c.conflated) ws.unsubscribe(old.topic);
    c.set = next;
    if (next && !c.conflated) ws.subscribe(next.topic);
    this.stats.subscriptionSets = this.fanout.size;
  }

  private unfollow(ws: WebSocket<FeedClient>, c: FeedClient, row: number, tfs: number[]): void {
    const old = c.modes.get(row);
    // With no timeframes named, unsubscribe drops the instrument's ticks and all its bars.
    const dropAll = tfs.length === 0;
    if (old !== undefined && dropAll) {
      this.subs[row * 3 + old]--;
      c.modes.delete(row);
    }
    for (const t of [...c.bars]) {
      const [tfPart, rowPart] = t.slice(1).split(':');
      if (Number(rowPart) !== row || (!dropAll && !tfs.includes(Number(tfPart)))) continue;
      c.bars.delete(t);
      const n = (this.barSubs.get(t) ?? 1) - 1;
      if (n <= 0) this.barSubs.delete(t);
      else this.barSubs.set(t, n);
      ws.unsubscribe(this.topic(c, t));
    }
  }

  /** Latest tick (and in-progress bars) of each row, so a client never starts blank. */
  private sendSnapshot(ws: WebSocket<FeedClient>, c: FeedClient, rows: number[], tfs: number[]): void {
    const hub = this.hub;
    const ticks: FeedTick[] = [];
    const bars: FeedBar[] = [];
    for (const row of rows) {
      const m = c.modes.get(row);
      if (m !== undefined && hub.hasTick[row]) ticks.push(tickFor(hub.latestTicks, row * N_FIELDS, FEED_MODES[m], hub.symbols[row]));
      for (const tf of tfs) {
        const k = hub.timeframesMs.indexOf(tf);
        const slot = row * hub.timeframesMs.length + k;
        if (k >= 0 && hub.hasBar[slot]) bars.push(barFor(hub.latestBars, slot * BAR_FIELDS, hub.symbols[row]));
      }
    }
    this.send(ws, { type: 'snapshot', ticks, bars });
  }

  private interest(): number[] {
    const rows: number[] = [];
    for (let r = 0; r < this.hub.rows; r++) {
      if (this.subs[r * 3] + this.subs[r * 3 + 1] + this.subs[r * 3 + 2] > 0) rows.push(r);
    }
    return rows;
  }

  // --- slow clients -------------------------------------------------------------------------------

  private checkSlow(): void {
    const slow = this.slow;
    const now = Date.now();
    slow.begin(now);
    for (const ws of this.sockets) {
      const c = ws.getUserData();
      if (c.closed) continue;
      // A client that jumped past both limits between two checks is conflated first, and closed
      // at a later check if it is still past the second: conflation always comes before a close.
      const buffered = slow.check(ws, c, c.conflated);
      if (buffered === CLOSED) continue;
      if (!c.conflated && buffered > this.conflateBytes) {
        c.conflated = true;
        c.conflatedSentAt = now;
        this.stats.conflations++;
        if (c.set) ws.unsubscribe(c.set.topic);
      } else if (c.conflated) {
        if (now - c.conflatedSentAt >= (this.opts.conflateIntervalMs ?? 1000)) {
          c.conflatedSentAt = now;
          this.sendLatest(ws, c);
        }
      }
    }
    slow.end();
  }

  /** One frame with the latest tick of every instrument the client follows. */
  private sendLatest(ws: WebSocket<FeedClient>, c: FeedClient): void {
    const hub = this.hub;
    const ticks: FeedTick[] = [];
    for (const [row, m] of c.modes) {
      if (hub.hasTick[row]) ticks.push(tickFor(hub.latestTicks, row * N_FIELDS, FEED_MODES[m], hub.symbols[row]));
    }
    if (ticks.length > 0) this.send(ws, { type: 'ticks', d: ticks, conflated: true });
  }

  drain(ws: WebSocket<FeedClient>): void {
    this.opts.onDrain?.();
    const c = ws.getUserData();
    this.slow.drained(c);
    if (!c.conflated || c.closed || ws.getBufferedAmount() > this.conflateBytes / 2) return;
    c.conflated = false;
    // The latest tick of everything it follows, then live again.
    this.sendLatest(ws, c);
    if (c.set) ws.subscribe(c.set.topic);
  }

  closed(ws: WebSocket<FeedClient>): void {
    const c = ws.getUserData();
    c.closed = true;
    this.sockets.delete(ws);
    this.byKey.delete(ws);
    this.stats.clients = this.sockets.size;
    for (const [row, m] of c.modes) this.subs[row * 3 + m]--;
    for (const t of c.bars) {
      const n = (this.barSubs.get(t) ?? 1) - 1;
      if (n <= 0) this.barSubs.delete(t);
      else this.barSubs.set(t, n);
    }
    c.modes.clear();
    c.bars.clear();
    if (c.set) {
      this.fanout.leave(c.set);
      c.set = null;
      this.stats.subscriptionSets = this.fanout.size;
    }
    this.opts.onInterest?.(this.interest());
  }
}
