/**
 * The Kite simulator: one uWebSockets.js app that speaks Kite's ticker WebSocket on `/` and serves
 * Kite's REST routes (rest.ts), so both the official `kiteconnect` client and ours can point their
 * `root` at it. This file wires the parts together and owns the connections' lifecycle and the
 * batch timer; each part has its own module:
 *
 * - credentials.ts: the api_key / access_token accepted, on the socket and on REST.
 * - connections.ts: the open connections and Kite's limit per api_key.
 * - subscriptions.ts: who follows what in which mode, Kite's limit per connection.
 * - control.ts: the subscribe / unsubscribe / mode JSON a connection sends.
 * - tick-loop.ts: each batch: trades at `rate`, rounds to frames, heartbeats.
 * - frames.ts: a round as Kite frames per connection, within FRAME_CAP_BYTES; backpressure.
 * - market.ts, universe.ts: the seeded market model and its instruments.
 * - orders.ts, portfolio.ts: Kite's orders, trades, positions and funds per api_key, matched
 *   against the market each round; order-routes.ts serves them as Kite's REST API;
 *   order-faults.ts has the fault switches for tests; postbacks.ts posts updates back.
 *
 * WebSocket (`ws://host:port/?api_key=K&access_token=T`):
 * - Upgrade refused with HTTP 403 and Kite's JSON error for missing or wrong credentials, with 429
 *   for a 4th connection on one api_key (Kite allows 3).
 * - JSON text in: subscribe / unsubscribe / mode, as Kite. New tokens start in quote mode (a mode
 *   message takes effect after `modeDelayMs`, 0 by default, Kite's own lag); a
 *   connection follows at most 3000 tokens (the excess is refused with an error message); unknown
 *   tokens are ignored, as Kite does; malformed input gets `{"type":"error","data":...}`.
 * - Binary out: Kite frames, each packet in the mode its connection chose for that token. A newly
 *   subscribed (or re-moded) token gets a snapshot in the next batch, trading or not: a client
 *   that reconnects and subscribes again gets each token's current packet, the very packet it
 *   last had when nothing traded meanwhile (Kite's snapshot on subscribe, a duplicate to drop).
 * - A 1-byte heartbeat when nothing was sent for `heartbeatMs`.
 * - Order updates as `{"type":"order","data":{...}}` to every connection of the order's api_key,
 *   on each status change of an order placed through the REST API (or sent by hand with
 *   `sendOrderPostback`).
 *
 * Cut mode (`cutFeed()` / `restoreFeed()`, or `POST /sim/feed?state=cut|up`): Kite unreachable
 * while its market trades on. Every ticker connection is dropped (no close frame, as a broken link)
 * and every new upgrade is closed before any HTTP answer, which is what a client sees of a host it
 * cannot reach through: no status to read, so the client's network retry path runs, not its
 * handling of a refusal (a 403 would be fatal, a 429 a limit). The rows the dropped connections
 * followed stay followed until the feed is restored, because the market trades only followed rows:
 * so the history (Kite's historical API, which stays up) holds the trades the feed missed, as
 * Kite's would. `GET /sim/feed` reads the state.
 *
 * Backpressure: a client whose unsent bytes pass `maxBufferedBytes` is skipped rather than buffered
 * for: its tokens are marked and get one fresh snapshot each once it drains (coalesced, counted in
 * stats).
 *
 * No allocation per tick: market state lives in preallocated WireTicks and typed arrays, packets
 * are written straight into one frame buffer; per frame there is one subarray for `send`.
 */
import { performance } from 'node:perf_hooks';
import type { us_listen_socket } from 'uWebSockets.js';
import { AppError } from '../../core/errors.ts';
import { uws } from '../../uws.ts';
import type { Instrument } from '../../core/instrument.ts';
import { buildNifty50Universe } from './universe.ts';
import { Market } from './market.ts';
import { applyControl } from './control.ts';
import { Credentials, KITE_TOKEN_ERROR } from './credentials.ts';
import { RestRoutes } from './rest.ts';
import { Followers, Subscriptions } from './subscriptions.ts';
import { FRAME_CAP_BYTES, FrameBuilder } from './frames.ts';
import { type Conn, Connections } from './connections.ts';
import { MarketHistory } from './history.ts';
import { TickLoop } from './tick-loop.ts';
import { FaultState, type OrderFaults } from './order-faults.ts';
import { type KiteOrderRow, SimOrders } from './orders.ts';
import { OrderRoutes } from './order-routes.ts';
import { Postbacks } from './postbacks.ts';

export { FRAME_CAP_BYTES };
export type { OrderFaults } from './order-faults.ts';
export type { KiteOrderRow, KiteTradeRow, OrderUpdate } from './orders.ts';

export interface SimulatorOptions {
  /** 0 = any free port. Default 0. */
  port?: number;
  /** Default '127.0.0.1'. */
  host?: string;
  /** Credentials accepted. Either left out: any non-empty value is accepted for it. */
  apiKey?: string;
  accessToken?: string;
  /** PRNG seed: same seed, same subscriptions, same ticks. Default 1. */
  seed?: number;
  /** Trades per second over all followed tokens; 0 = snapshots and heartbeats only. Default 2000. */
  rate?: number;
  /** Default: buildNifty50Universe for the clock's day. */
  instruments?: readonly Instrument[];
  /** Frame batching interval. Default 50 ms (tick-loop.ts says why). */
  batchMs?: number;
  /** Idle time before a heartbeat. Default 1000 ms. */
  heartbeatMs?: number;
  /** Epoch milliseconds for exchange timestamps and option ageing. Default Date.now. */
  clock?: () => number;
  /** Kite's limit: 3. */
  maxConnectionsPerKey?: number;
  /** Kite's limit: 3000. */
  maxTokensPerConnection?: number;
  /** Unsent bytes above which a connection is skipped. Default 4 MiB. */
  maxBufferedBytes?: number;
  /**
   * How long a `mode` message takes to take effect, ms. Default 0: at once. Kite answers a
   * subscribe in quote mode and switches to the mode asked for a little later, so a client that
   * subscribes in full mode gets quote packets first (on every reconnect); set this to see them.
   * Until then the token's packets go out in the mode it had; then a snapshot in the new mode.
   */
  modeDelayMs?: number;
  /**
   * Called with each binary tick frame uWS took (one it dropped is counted in `droppedByUws`
   * instead) and the id of its connection (from 1, never reused). The bytes are the encode
   * buffer, rewritten for the next frame: copy what you keep. For tests that account for every
   * packet sent.
   */
  onFrame?: (conn: number, frame: Uint8Array) => void;
  /** Orders: time from OPEN PENDING to the exchange, and for modifications and cancels, ms. Default 5. */
  acceptLatencyMs?: number;
  /** Orders: funds of every api_key, paise. Default ₹1 crore. */
  capitalPaise?: number;
  /** Orders: Kite's user id in order rows (`placed_by`) and updates (`user_id`). Default 'SIM001'. */
  userId?: string;
  /** Orders: the updates' `app_id`. Default 1. */
  appId?: number;
  /** Orders: where Kite's postbacks go (http or https); needs `apiSecret`. Default none. */
  postbackUrl?: string;
  /** The app's api_secret: the postbacks' checksum is SHA-256 of order_id + order_timestamp + it. */
  apiSecret?: string;
}

export interface SimStats {
  connectionsOpened: number;
  connectionsClosed: number;
  refusedAuth: number;
  refusedLimit: number;
  /** Upgrades closed unanswered while the feed was cut. */
  refusedCut: number;
  /** Binary tick frames sent (heartbeats not included). */
  frames: number;
  packets: number;
  bytes: number;
  heartbeats: number;
  textMessages: number;
  messagesIn: number;
  badMessages: number;
  /** Frames not sent because the client was behind (one per connection and round). */
  skippedFrames: number;
  /** Packets folded into a later snapshot because the client was behind. */
  coalescedPackets: number;
  /** `send` returned 2: uWS dropped the frame (should stay 0: we skip before its limit). */
  droppedByUws: number;
  trades: number;
  rounds: number;
  /** Order API requests received. */
  orderRequests: number;
  /** Order updates sent on ticker connections (one per connection). */
  orderUpdates: number;
  /** Placements carried out but left unanswered (fault dropPlaceResponse). */
  droppedAnswers: number;
  /** Postbacks the receiver took (2xx), and those that failed. */
  postbacks: number;
  postbackFailures: number;
}

export interface Simulator {
  /** e.g. 'ws://127.0.0.1:41234/' — KiteTicker's `root`. */
  readonly wsUrl: string;
  /** e.g. 'http://127.0.0.1:41234' — KiteConnect's `root`. */
  readonly apiUrl: string;
  readonly port: number;
  /** Live counters. */
  readonly stats: SimStats;
  readonly market: Market;
  readonly instruments: readonly Instrument[];
  close(): Promise<void>;
  /** Forcibly closes every client socket (no close frame): for reconnect tests. */
  dropAllConnections(): void;
  /**
   * Cut mode on (see the module header): drops every ticker connection and refuses new ones, while
   * the market keeps trading what they followed. Also `POST /sim/feed?state=cut`. Idempotent.
   */
  cutFeed(): void;
  /** Cut mode off: connections are taken again; the held rows are released. Also `?state=up`. */
  restoreFeed(): void;
  /** True while the feed is cut. */
  feedCut(): boolean;
  /** Sends `{"type":"order","data":order}` to every connection of `apiKey` (all, when omitted); returns how many. */
  sendOrderPostback(order: Record<string, unknown>, apiKey?: string): number;
  setRate(ticksPerSecond: number): void;
  connections(): number;
  /**
   * Sets the order API's fault switches given (order-faults.ts; the others stay) and returns those
   * in force; with no argument, only returns them. Also `POST /sim/order-faults`.
   */
  orderFaults(faults?: OrderFaults): OrderFaults;
  /** The simulator's order book, latest state per order: every api_key's, or one's. Also `GET /sim/orders`. */
  orders(apiKey?: string): KiteOrderRow[];
  /** One order's history (any api_key), one row per status; null when unknown. */
  orderHistory(orderId: string): KiteOrderRow[] | null;
}

const DEFAULTS = {
  port: 0,
  host: '127.0.0.1',
  seed: 1,
  rate: 2000,
  batchMs: 50,
  heartbeatMs: 1000,
  maxConnectionsPerKey: 3,
  maxTokensPerConnection: 3000,
  maxBufferedBytes: 4 * 1024 * 1024,
  acceptLatencyMs: 5,
  capitalPaise: 1_00_00_000_00,
  userId: 'SIM001',
  appId: 1,
} as const;

function checkInt(name: string, v: number | undefined, min: number, max: number): void {
  if (v === undefined) return;
  if (typeof v !== 'number' || !Number.isInteger(v)) throw new TypeError(`startSimulator: ${name} must be an integer, got ${String(v)}`);
  if (v < min || v > max) throw new RangeError(`startSimulator: ${name} must be within ${min}..${max}, got ${v}`);
}

function checkRate(v: number): void {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) {
    throw new RangeError(`startSimulator: rate must be a finite number >= 0 (ticks per second), got ${String(v)}`);
  }
}

export async function startSimulator(opts: SimulatorOptions = {}): Promise<Simulator> {
  checkInt('port', opts.port, 0, 65535);
  checkInt('seed', opts.seed, 0, 2 ** 32 - 1);
  checkInt('batchMs', opts.batchMs, 1, 60_000);
  checkInt('heartbeatMs', opts.heartbeatMs, 1, 600_000);
  checkInt('maxConnectionsPerKey', opts.maxConnectionsPerKey, 1, 1000);
  checkInt('maxTokensPerConnection', opts.maxTokensPerConnection, 1, 1_000_000);
  checkInt('maxBufferedBytes', opts.maxBufferedBytes, FRAME_CAP_BYTES, 2 ** 31 - 1);
  checkInt('modeDelayMs', opts.modeDelayMs, 0, 600_000);
  if (opts.rate !== undefined) checkRate(opts.rate);
  if (opts.apiKey === '' || opts.accessToken === '') throw new RangeError('startSimulator: apiKey and accessToken, when given, must be non-empty');
  checkInt('acceptLatencyMs', opts.acceptLatencyMs, 0, 60_000);
  checkInt('capitalPaise', opts.capitalPaise, 0, Number.MAX_SAFE_INTEGER);
  checkInt('appId', opts.appId, 0, 2 ** 31 - 1);
  if (opts.userId === '') throw new RangeError('startSimulator: userId, when given, must be non-empty');
  if (opts.postbackUrl !== undefined) {
    let u: URL | null = null;
    try {
      u = new URL(opts.postbackUrl);
    } catch {
      // reported below
    }
    if (u === null || (u.protocol !== 'http:' && u.protocol !== 'https:')) {
      throw new RangeError(`startSimulator: postbackUrl must be an http(s) URL, e.g. http://127.0.0.1:8080/postback, got ${opts.postbackUrl}`);
    }
    if (!opts.apiSecret) throw new RangeError('startSimulator: postbackUrl needs apiSecret, the secret its checksum is made with');
  }

  const port = opts.port ?? DEFAULTS.port;
  const host = opts.host ?? DEFAULTS.host;
  const batchMs = opts.batchMs ?? DEFAULTS.batchMs;
  const heartbeatMs = opts.heartbeatMs ?? DEFAULTS.heartbeatMs;
  const maxPerKey = opts.maxConnectionsPerKey ?? DEFAULTS.maxConnectionsPerKey;
  const maxTokens = opts.maxTokensPerConnection ?? DEFAULTS.maxTokensPerConnection;
  const maxBuffered = opts.maxBufferedBytes ?? DEFAULTS.maxBufferedBytes;
  const clock = opts.clock ?? Date.now;
  const rate = opts.rate ?? DEFAULTS.rate;
  const onFrame = opts.onFrame;
  const modeDelay = { ms: opts.modeDelayMs ?? 0, now: () => performance.now() };

  const instruments = opts.instruments ?? buildNifty50Universe({ today: new Date(clock()) });
  // Minute candles of the market's own trades: Kite's historical API (history.ts).
  const history = new MarketHistory(instruments.length);
  const market = new Market({
    instruments, seed: opts.seed ?? DEFAULTS.seed, clock,
    onTrade: (row, t, nowSec) => history.record(row, t.lastPrice, t.volume, t.lastQty, t.oi, nowSec),
  });
  const size = market.size;

  const credentials = new Credentials(opts.apiKey, opts.accessToken);
  const rest = new RestRoutes(instruments, market, credentials, history, clock);

  const stats: SimStats = {
    connectionsOpened: 0,
    connectionsClosed: 0,
    refusedAuth: 0,
    refusedLimit: 0,
    refusedCut: 0,
    frames: 0,
    packets: 0,
    bytes: 0,
    heartbeats: 0,
    textMessages: 0,
    messagesIn: 0,
    badMessages: 0,
    skippedFrames: 0,
    coalescedPackets: 0,
    droppedByUws: 0,
    trades: 0,
    rounds: 0,
    orderRequests: 0,
    orderUpdates: 0,
    droppedAnswers: 0,
    postbacks: 0,
    postbackFailures: 0,
  };

  const followers = new Followers(size);
  const connections = new Connections(maxPerKey);
  const frames = new FrameBuilder(market, stats, { maxBuffered, onFrame });

  const faults = new FaultState();
  const postbacks = opts.postbackUrl === undefined ? null : new Postbacks(opts.postbackUrl, opts.apiSecret!, stats);
  const orders = new SimOrders({
    market,
    followers,
    clock,
    acceptLatencyMs: opts.acceptLatencyMs ?? DEFAULTS.acceptLatencyMs,
    capitalPaise: opts.capitalPaise ?? DEFAULTS.capitalPaise,
    userId: opts.userId ?? DEFAULTS.userId,
    appId: opts.appId ?? DEFAULTS.appId,
    faults,
    onUpdate(apiKey, update, postback) {
      stats.orderUpdates += sendOrderUpdate(update, apiKey);
      if (postback && postbacks !== null) postbacks.send(update);
    },
  });
  const orderRoutes = new OrderRoutes(orders, credentials, faults, stats);
  const loop = new TickLoop(market, followers, frames, stats, {
    rate,
    batchMs,
    heartbeatMs,
    maxBuffered,
    onRound: (updated, k) => orders.onRound(updated, k),
  });

  function sendText(c: Conn, text: string): void {
    if (c.ws === null) return;
    c.ws.send(text, false);
    c.lastSendMs = performance.now();
    stats.textMessages++;
  }

  /** `{"type":"order","data":order}` to every connection of `apiKey` (all, when undefined); how many. */
  function sendOrderUpdate(order: object, apiKey: string | undefined): number {
    const text = JSON.stringify({ type: 'order', data: order });
    let n = 0;
    for (const c of connections.open) {
      if (apiKey === undefined || c.apiKey === apiKey) {
        sendText(c, text);
        n++;
      }
    }
    return n;
  }

  function sendError(c: Conn, message: string): void {
    stats.badMessages++;
    sendText(c, JSON.stringify({ type: 'error', data: message }));
  }

  function release(c: Conn): void {
    if (connections.release(c)) stats.connectionsClosed++;
  }

  // Cut mode (module header). `held` lists each row once per connection that followed it, so the
  // restore gives back exactly the follows the cut took over.
  let cut = false;
  let held: number[] = [];

  // ----- the app

  const app = uws.App();
  app.ws<Conn>('/', {
    compression: uws.DISABLED,
    maxPayloadLength: 1024 * 1024,
    // We send a heartbeat every second; uWS's own idle timer would only duplicate it.
    idleTimeout: 0,
    // Above our own skip threshold, so uWS never silently drops a frame.
    maxBackpressure: maxBuffered + 4 * FRAME_CAP_BYTES,
    upgrade: (res, req, context) => {
      if (cut) {
        stats.refusedCut++;
        res.close();
        return;
      }
      const apiKey = req.getQuery('api_key') ?? '';
      const accessToken = req.getQuery('access_token') ?? '';
      const secKey = req.getHeader('sec-websocket-key');
      const secProtocol = req.getHeader('sec-websocket-protocol');
      const secExtensions = req.getHeader('sec-websocket-extensions');
      if (!credentials.accepts(apiKey, accessToken)) {
        stats.refusedAuth++;
        res.writeStatus('403 Forbidden').writeHeader('Content-Type', 'application/json').end(KITE_TOKEN_ERROR);
        return;
      }
      if (connections.full(apiKey)) {
        stats.refusedLimit++;
        res
          .writeStatus('429 Too Many Requests')
          .writeHeader('Content-Type', 'application/json')
          .end(
            JSON.stringify({
              status: 'error',
              message: `Maximum ${maxPerKey} WebSocket connections per api_key are already open; close one before opening another.`,
              data: null,
              error_type: 'NetworkException',
            }),
          );
        return;
      }
      const conn = connections.create(apiKey, new Subscriptions(size, maxTokens, followers, modeDelay), performance.now());
      res.upgrade(conn, secKey, secProtocol, secExtensions, context);
    },
    open: (ws) => {
      connections.opened(ws.getUserData(), ws, performance.now());
      stats.connectionsOpened++;
    },
    message: (ws, message, isBinary) => {
      stats.messagesIn++;
      const c = ws.getUserData();
      if (isBinary) {
        sendError(c, 'Invalid message: binary messages are not accepted; send JSON text.');
        return;
      }
      // The ArrayBuffer dies with this callback: decode it now.
      const error = applyControl(Buffer.from(message).toString('utf8'), c.subs, market);
      if (error !== null) sendError(c, error);
    },
    close: (ws) => {
      release(ws.getUserData());
    },
  });
  orderRoutes.mount(app);
  const feedState = () => JSON.stringify({ status: 'success', data: { cut, heldRows: held.length } });
  app.get('/sim/feed', (res) => {
    res.writeStatus('200 OK').writeHeader('Content-Type', 'application/json').end(feedState());
  });
  app.post('/sim/feed', (res, req) => {
    const state = new URLSearchParams(req.getQuery() ?? '').get('state');
    if (state === 'cut') cutFeed();
    else if (state === 'up') restoreFeed();
    else {
      res.writeStatus('400 Bad Request').writeHeader('Content-Type', 'application/json')
        .end(JSON.stringify({ status: 'error', message: `state must be cut or up, e.g. /sim/feed?state=cut; got ${String(state)}`, data: null, error_type: 'InputException' }));
      return;
    }
    res.writeStatus('200 OK').writeHeader('Content-Type', 'application/json').end(feedState());
  });
  rest.mount(app);

  const listenSocket = await new Promise<us_listen_socket>((resolve, reject) => {
    app.listen(host, port, (ls) => {
      if (ls === false) {
        reject(
          new AppError(
            'SIM_LISTEN_FAILED',
            `The Kite simulator could not listen on ${host}:${port}: the port is taken or the address is not local. ` +
              'Set SIM_PORT to a free port, or 0 for any.',
            { host, port },
          ),
        );
      } else resolve(ls);
    });
  });
  const boundPort = uws.us_socket_local_port(listenSocket as never);
  const timer = setInterval(() => loop.run(connections.open), Math.min(batchMs, heartbeatMs));

  function dropAllConnections(): void {
    for (const c of [...connections.open]) {
      const ws = c.ws;
      if (ws !== null) ws.close(); // calls the close handler at once
      release(c);
    }
  }

  function cutFeed(): void {
    if (cut) return;
    cut = true;
    for (const c of connections.open) {
      const modes = c.subs.modes;
      for (let row = 0; row < modes.length; row++) {
        if (modes[row] === 0) continue;
        followers.follow(row);
        held.push(row);
      }
    }
    dropAllConnections();
  }
  function restoreFeed(): void {
    if (!cut) return;
    cut = false;
    for (const row of held) followers.unfollow(row);
    held = [];
  }

  let closed = false;
  const urlHost = host.includes(':') ? `[${host}]` : host;
  return {
    wsUrl: `ws://${urlHost}:${boundPort}/`,
    apiUrl: `http://${urlHost}:${boundPort}`,
    port: boundPort,
    stats,
    market,
    instruments,
    async close() {
      if (closed) return;
      closed = true;
      clearInterval(timer);
      orders.close();
      orderRoutes.close();
      await postbacks?.close();
      dropAllConnections();
      uws.us_listen_socket_close(listenSocket);
      // Present at runtime in this uWS build, missing from its typings: closes lingering HTTP sockets.
      (app as unknown as { close?: () => void }).close?.();
      await new Promise((r) => setImmediate(r));
    },
    dropAllConnections,
    cutFeed,
    restoreFeed,
    feedCut: () => cut,
    sendOrderPostback(order, apiKey) {
      return sendOrderUpdate(order, apiKey);
    },
    setRate(ticksPerSecond) {
      checkRate(ticksPerSecond);
      loop.rate = ticksPerSecond;
    },
    connections() {
      return connections.open.size;
    },
    orderFaults(f) {
      return f === undefined ? faults.get() : faults.set(f);
    },
    orders(apiKey) {
      return orders.all(apiKey);
    },
    orderHistory(orderId) {
      return orders.historyOf(orderId);
    },
  };
}
