/**
 * The Kite simulator: one uWebSockets.js app that speaks Kite's ticker WebSocket on `/` and serves
 * the instrument master over HTTP, so both the official `kiteconnect` client and ours can point
 * their `root` at it.
 *
 * WebSocket (`ws://host:port/?api_key=K&access_token=T`):
 * - Upgrade refused with HTTP 403 and Kite's JSON error for missing or wrong credentials, with 429
 *   for a 4th connection on one api_key (Kite allows 3).
 * - JSON text in: subscribe / unsubscribe / mode, as Kite. New tokens start in quote mode; a
 *   connection follows at most 3000 tokens (the excess is refused with an error message); unknown
 *   tokens are ignored, as Kite does; malformed input gets `{"type":"error","data":...}`.
 * - Binary out: Kite frames, each packet in the mode its connection chose for that token. A newly
 *   subscribed (or re-moded) token gets a snapshot in the next batch, trading or not: a client
 *   that reconnects and subscribes again gets each token's current packet, the very packet it
 *   last had when nothing traded meanwhile (Kite's snapshot on subscribe, a duplicate to drop).
 * - A 1-byte heartbeat when nothing was sent for `heartbeatMs`.
 * - Order postbacks as `{"type":"order","data":{...}}` to every connection of an api_key.
 *
 * HTTP: `GET /instruments` and `GET /instruments/{exchange}` return the master as CSV with
 * Content-Type exactly `text/csv` (the official client compares the header verbatim), without
 * auth as Kite; `GET /quote/ltp?i=NSE:NIFTY 50` answers last prices, with Kite's
 * `Authorization: token api_key:access_token`. Anything else is a Kite-style JSON 404.
 *
 * Ticks: every `batchMs` the market makes `rate * elapsed` trades over the tokens anyone follows,
 * in rounds of distinct tokens; each round becomes one or more frames per connection (at most
 * FRAME_CAP_BYTES each). Default batch 50 ms: Kite batches a full-mode feed about once a second,
 * but a 50 ms batch keeps the simulator's latency low for pipeline tests while frames still carry
 * many packets (2000 ticks/s over 1000 tokens is about 100 packets a frame). Every update goes out
 * in every mode, changed or not in that mode: in ltp mode a book change or a trade at the last
 * price repeats the previous 8-byte packet (see market.ts), and is sent all the same.
 *
 * Backpressure: a client whose unsent bytes pass `maxBufferedBytes` is skipped rather than buffered
 * for: its tokens are marked and get one fresh snapshot each once it drains (coalesced, counted in
 * stats; frames.ts).
 *
 * No allocation per tick: market state lives in preallocated WireTicks and typed arrays, packets
 * are written straight into one frame buffer; per frame there is one subarray for `send`.
 */
import { performance } from 'node:perf_hooks';
import type { us_listen_socket, WebSocket } from 'uWebSockets.js';
import { AppError } from '../../core/errors.ts';
import { uws } from '../../uws.ts';
import { HEARTBEAT } from '../codec.ts';
import type { Instrument } from '../../core/instrument.ts';
import { buildNifty50Universe } from './universe.ts';
import { Market } from './market.ts';
import { applyControl } from './control.ts';
import { Credentials, KITE_TOKEN_ERROR } from './credentials.ts';
import { RestRoutes } from './rest.ts';
import { Followers, Subscriptions } from './subscriptions.ts';
import { FRAME_CAP_BYTES, FrameBuilder } from './frames.ts';

export { FRAME_CAP_BYTES };

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
  /** Frame batching interval. Default 50 ms (see the module header). */
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
   * Called with each binary tick frame uWS took (one it dropped is counted in `droppedByUws`
   * instead) and the id of its connection (from 1, never reused). The bytes are the encode
   * buffer, rewritten for the next frame: copy what you keep. For tests that account for every
   * packet sent.
   */
  onFrame?: (conn: number, frame: Uint8Array) => void;
}

export interface SimStats {
  connectionsOpened: number;
  connectionsClosed: number;
  refusedAuth: number;
  refusedLimit: number;
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
  /** Sends `{"type":"order","data":order}` to every connection of `apiKey` (all, when omitted); returns how many. */
  sendOrderPostback(order: Record<string, unknown>, apiKey?: string): number;
  setRate(ticksPerSecond: number): void;
  connections(): number;
}

/** Trades per batch at most, so "max rate" cannot starve the event loop; the rest is dropped. */
const MAX_TRADES_PER_BATCH = 250_000;

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
} as const;

interface Conn {
  readonly id: number;
  readonly apiKey: string;
  ws: WebSocket<Conn> | null;
  open: boolean;
  readonly subs: Subscriptions;
  lastSendMs: number;
}

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
  if (opts.rate !== undefined) checkRate(opts.rate);
  if (opts.apiKey === '' || opts.accessToken === '') throw new RangeError('startSimulator: apiKey and accessToken, when given, must be non-empty');

  const port = opts.port ?? DEFAULTS.port;
  const host = opts.host ?? DEFAULTS.host;
  const batchMs = opts.batchMs ?? DEFAULTS.batchMs;
  const heartbeatMs = opts.heartbeatMs ?? DEFAULTS.heartbeatMs;
  const maxPerKey = opts.maxConnectionsPerKey ?? DEFAULTS.maxConnectionsPerKey;
  const maxTokens = opts.maxTokensPerConnection ?? DEFAULTS.maxTokensPerConnection;
  const maxBuffered = opts.maxBufferedBytes ?? DEFAULTS.maxBufferedBytes;
  const clock = opts.clock ?? Date.now;
  let rate = opts.rate ?? DEFAULTS.rate;
  const onFrame = opts.onFrame;

  const instruments = opts.instruments ?? buildNifty50Universe({ today: new Date(clock()) });
  const market = new Market({ instruments, seed: opts.seed ?? DEFAULTS.seed, clock });
  const size = market.size;

  const credentials = new Credentials(opts.apiKey, opts.accessToken);
  const rest = new RestRoutes(instruments, market, credentials);

  const stats: SimStats = {
    connectionsOpened: 0,
    connectionsClosed: 0,
    refusedAuth: 0,
    refusedLimit: 0,
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
  };

  const conns = new Set<Conn>();
  const perKey = new Map<string, number>();
  let nextConnId = 1;

  const followers = new Followers(size);
  const updated = new Int32Array(size);

  const frames = new FrameBuilder(market, stats, { maxBuffered, onFrame });

  function sendText(c: Conn, text: string): void {
    if (!c.open || c.ws === null) return;
    c.ws.send(text, false);
    c.lastSendMs = performance.now();
    stats.textMessages++;
  }

  function sendError(c: Conn, message: string): void {
    stats.badMessages++;
    sendText(c, JSON.stringify({ type: 'error', data: message }));
  }

  let budget = 0;
  let lastBatchMs = performance.now();

  function onBatch(): void {
    const now = performance.now();
    // A stalled loop does not bank an unbounded backlog of trades.
    const elapsed = Math.min(now - lastBatchMs, 4 * Math.max(batchMs, heartbeatMs));
    lastBatchMs = now;
    let want = 0;
    if (followers.count > 0) {
      budget += (rate * elapsed) / 1000;
      want = Math.floor(budget);
      budget -= want;
      if (want > MAX_TRADES_PER_BATCH) want = MAX_TRADES_PER_BATCH;
    } else {
      budget = 0;
    }
    // At least one pass, for owed snapshots even when nothing trades.
    do {
      const k = want > 0 ? market.advance(want, followers.rows, followers.count, updated) : 0;
      want -= k;
      for (const c of conns) frames.emit(c, updated, k);
    } while (want > 0);
    stats.trades = market.trades;
    stats.rounds = market.rounds;

    const t = performance.now();
    for (const c of conns) {
      if (c.open && c.ws !== null && t - c.lastSendMs >= heartbeatMs && c.ws.getBufferedAmount() <= maxBuffered) {
        c.ws.send(HEARTBEAT, true);
        c.lastSendMs = t;
        stats.heartbeats++;
      }
    }
  }

  function release(c: Conn): void {
    if (!c.open) return;
    c.open = false;
    c.ws = null;
    conns.delete(c);
    const left = (perKey.get(c.apiKey) ?? 1) - 1;
    if (left <= 0) perKey.delete(c.apiKey);
    else perKey.set(c.apiKey, left);
    c.subs.clear();
    stats.connectionsClosed++;
  }

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
      if ((perKey.get(apiKey) ?? 0) >= maxPerKey) {
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
      const conn: Conn = {
        id: nextConnId++,
        apiKey,
        ws: null,
        open: false,
        subs: new Subscriptions(size, maxTokens, followers),
        lastSendMs: performance.now(),
      };
      res.upgrade(conn, secKey, secProtocol, secExtensions, context);
    },
    open: (ws) => {
      const c = ws.getUserData();
      c.ws = ws;
      c.open = true;
      // uWS runs open() inside res.upgrade(), so the next upgrade already sees this count; counting
      // here rather than in upgrade() means a socket that never opens cannot leak a slot.
      perKey.set(c.apiKey, (perKey.get(c.apiKey) ?? 0) + 1);
      c.lastSendMs = performance.now();
      conns.add(c);
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
  const timer = setInterval(onBatch, Math.min(batchMs, heartbeatMs));

  function dropAllConnections(): void {
    for (const c of [...conns]) {
      const ws = c.ws;
      if (ws !== null) ws.close(); // calls the close handler at once
      release(c);
    }
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
      dropAllConnections();
      uws.us_listen_socket_close(listenSocket);
      // Present at runtime in this uWS build, missing from its typings: closes lingering HTTP sockets.
      (app as unknown as { close?: () => void }).close?.();
      await new Promise((r) => setImmediate(r));
    },
    dropAllConnections,
    sendOrderPostback(order, apiKey) {
      const text = JSON.stringify({ type: 'order', data: order });
      let n = 0;
      for (const c of conns) {
        if (apiKey === undefined || c.apiKey === apiKey) {
          sendText(c, text);
          n++;
        }
      }
      return n;
    },
    setRate(ticksPerSecond) {
      checkRate(ticksPerSecond);
      rate = ticksPerSecond;
    },
    connections() {
      return conns.size;
    },
  };
}
