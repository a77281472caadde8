/**
 * Kite ingest: keeps the upstream WebSocket connections alive and hands every raw binary message
 * to the decoder.
 *
 * Tokens are spread over at most `connections` slots (Kite allows 3 connections per API key and
 * 3,000 instruments per connection); each token lives on exactly one slot. A slot holds at most one
 * live socket: a new socket is only opened after the old one is closed and forgotten.
 *
 * A slot reconnects on close, on error and after `silenceMs` without any message (Kite sends a
 * 1-byte heartbeat every second when idle, so 5 s of silence means a dead link, the same rule the
 * official client uses). Back-off is exponential with full jitter, capped, reset once a connection
 * has delivered data. On every (re)connect the slot subscribes its tokens in chunks and restores
 * their mode. An upgrade refused with 401/403 is fatal: bad credentials do not improve by retrying.
 */
import { EventEmitter } from 'node:events';
import WebSocket from 'ws';
import type { TickMode } from '../core/instrument.ts';
import { KiteAuthError } from '../core/errors.ts';
import type { Logger } from '../log.ts';
import { silentLogger } from '../log.ts';

export const MAX_TOKENS_PER_CONNECTION = 3000;
export const MAX_CONNECTIONS_PER_KEY = 3;
/** Tokens per subscribe message: Kite takes long lists, but a bounded message keeps each frame small. */
const SUBSCRIBE_CHUNK = 500;

export interface IngestOptions {
  /** Kite's WebSocket root, e.g. wss://ws.kite.trade/ */
  wsUrl: string;
  apiKey: string;
  accessToken: string;
  tokens: readonly number[];
  mode: TickMode;
  /** Connections to spread the tokens over, 1..3. Fewer are used when fewer are needed. */
  connections?: number;
  /** Instruments per connection, at most Kite's 3,000 (lower in tests to exercise several slots). */
  maxTokensPerConnection?: number;
  /** Binary message: the raw bytes (valid only during the call), the slot and the slot's frame sequence. */
  onBinary: (msg: Uint8Array, slot: number, seq: number) => void;
  /** Text message (order postbacks, errors), as received. */
  onText?: (text: string, slot: number) => void;
  log?: Logger;
  silenceMs?: number;
  /** First reconnect delay, ms; it doubles per failed attempt. Default 500. */
  backoffInitialMs?: number;
  /**
   * Cap of the reconnect delay, ms (KITE_RECONNECT_MAX_MS). Default 5000: a larger cap leaves the
   * next attempt scheduled far out when Kite comes back (13.7 s to recover from 30 s of refused
   * connections with a 30 s cap, 1.5-5.1 s with 5 s).
   */
  backoffMaxMs?: number;
  /** Injected for tests; defaults to Math.random. */
  random?: () => number;
  /**
   * Epoch ms that gap times are read from: the service's clock (Date.now in production, the
   * simulator's fast clock in tests). The silence watchdog and back-off keep real time: they
   * measure the network, not the market.
   */
  clock?: () => number;
}

export interface SlotStats {
  slot: number;
  tokens: number;
  connected: boolean;
  connects: number;
  disconnects: number;
  /** Times the slot went silent for `silenceMs` and was cut. */
  silences: number;
  /** Completed outages: disconnect → next first message. */
  gaps: number;
  /** Total milliseconds spent in completed outages, on the ingest's clock. */
  gapMs: number;
  frames: number;
  bytes: number;
  lastMessageAt: number;
}

/** Split tokens into at most `connections` groups of at most 3,000, each token exactly once. */
export function assignSlots(tokens: readonly number[], connections: number, perConnection = MAX_TOKENS_PER_CONNECTION): number[][] {
  const unique = [...new Set(tokens)];
  const capacity = connections * perConnection;
  if (unique.length > capacity) {
    throw new RangeError(
      `${unique.length} instruments exceed ${connections} connection(s) × ${perConnection}; ` +
        'narrow KITE_INSTRUMENTS or OPTION_STRIKES/OPTION_EXPIRIES, or raise KITE_CONNECTIONS (max 3)',
    );
  }
  const needed = Math.max(1, Math.ceil(unique.length / perConnection));
  const groups: number[][] = [];
  for (let i = 0; i < needed; i++) groups.push([]);
  // Round-robin rather than fill-first: load spreads evenly and every slot carries a share.
  for (let i = 0; i < unique.length; i++) groups[i % needed].push(unique[i]);
  return groups;
}

export function kiteUrl(root: string, apiKey: string, accessToken: string): string {
  const u = new URL(root);
  u.searchParams.set('api_key', apiKey);
  u.searchParams.set('access_token', accessToken);
  u.searchParams.set('uid', String(Date.now()));
  return u.toString();
}

/** An upstream outage of one connection slot, reported when its data flows again. */
export interface FeedGap {
  slot: number;
  /** When the connection was lost, epoch ms. */
  startMs: number;
  /** The first message after it, epoch ms (both on the ingest's `clock`). */
  endMs: number;
  cause: string;
  /** The tokens the slot carries: none of them ticked in the gap. */
  tokens: readonly number[];
}

/** The next connection attempt of a slot, as scheduled after a loss. */
export interface ReconnectPlan {
  slot: number;
  /** Failed attempts since data last flowed, this loss included (1 after the first loss). */
  attempt: number;
  /** Milliseconds until the attempt: at most `backoffMaxMs`. */
  delayMs: number;
  reason: string;
}

class Slot {
  socket: WebSocket | null = null;
  attempt = 0;
  reconnectTimer: NodeJS.Timeout | null = null;
  outageSince = 0;
  /** The last message's time on the ingest's clock (stats.lastMessageAt is real time, for silence). */
  lastMessageClock = 0;
  /** Why the current outage began (the disconnect's reason). */
  outageCause = '';
  seq = 0;
  readonly stats: SlotStats;
  constructor(readonly index: number, readonly tokens: number[]) {
    this.stats = {
      slot: index, tokens: tokens.length, connected: false, connects: 0, disconnects: 0, silences: 0,
      gaps: 0, gapMs: 0, frames: 0, bytes: 0, lastMessageAt: 0,
    };
  }
}

/**
 * Events: 'connect' (slot), 'disconnect' (slot, reason), 'reconnecting' (ReconnectPlan: the next
 * attempt is scheduled), 'gap' (FeedGap: an outage ended, data flows again), 'fatal' (KiteAuthError).
 */
export class KiteIngest extends EventEmitter {
  private readonly slots: Slot[];
  private readonly log: Logger;
  private readonly silenceMs: number;
  private readonly backoffInitialMs: number;
  private readonly backoffMaxMs: number;
  private readonly random: () => number;
  private readonly clock: () => number;
  private watchdog: NodeJS.Timeout | null = null;
  private stopped = true;
  private paused = false;
  /** Set when Kite refused the credentials; the ingest has stopped for good. */
  fatalError: KiteAuthError | null = null;

  constructor(private readonly opts: IngestOptions) {
    super();
    const connections = Math.min(opts.connections ?? MAX_CONNECTIONS_PER_KEY, MAX_CONNECTIONS_PER_KEY);
    const perConnection = Math.min(opts.maxTokensPerConnection ?? MAX_TOKENS_PER_CONNECTION, MAX_TOKENS_PER_CONNECTION);
    this.slots = assignSlots(opts.tokens, connections, perConnection).map((t, i) => new Slot(i, t));
    this.log = opts.log ?? silentLogger;
    this.silenceMs = opts.silenceMs ?? 5000;
    this.backoffInitialMs = opts.backoffInitialMs ?? 500;
    this.backoffMaxMs = opts.backoffMaxMs ?? 5000;
    this.random = opts.random ?? Math.random;
    this.clock = opts.clock ?? Date.now;
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    for (const s of this.slots) this.open(s);
    const tick = Math.max(50, Math.min(1000, this.silenceMs / 5));
    this.watchdog = setInterval(() => this.checkSilence(), tick);
    this.watchdog.unref();
  }

  /** Close every socket and stop reconnecting. Resolves when all sockets are closed. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.watchdog) clearInterval(this.watchdog);
    this.watchdog = null;
    const closing: Promise<void>[] = [];
    for (const s of this.slots) {
      if (s.reconnectTimer) clearTimeout(s.reconnectTimer);
      s.reconnectTimer = null;
      const ws = s.socket;
      if (ws) {
        closing.push(new Promise((resolve) => {
          if (ws.readyState === WebSocket.CLOSED) return resolve();
          ws.once('close', () => resolve());
          // Give a polite close a moment, then cut it.
          setTimeout(() => { ws.terminate(); resolve(); }, 1000).unref();
          if (ws.readyState === WebSocket.CONNECTING) ws.terminate();
          else ws.close(1000, 'shutdown');
        }));
      }
    }
    await Promise.all(closing);
  }

  /**
   * Stop reading the sockets: TCP fills and pushes back on the sender. Used by the front when the
   * rings are nearly full. The silence watchdog is off while paused (we, not Kite, went quiet).
   */
  pause(): void {
    if (this.paused) return;
    this.paused = true;
    for (const s of this.slots) s.socket?.pause();
  }

  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    const now = Date.now();
    for (const s of this.slots) {
      s.stats.lastMessageAt = now;
      s.socket?.resume();
    }
  }

  isPaused(): boolean {
    return this.paused;
  }

  stats(): SlotStats[] {
    return this.slots.map((s) => ({ ...s.stats }));
  }

  /** Every slot has an open socket. */
  connected(): boolean {
    return this.slots.every((s) => s.stats.connected);
  }

  /** Tokens per slot, for tests and the health page. */
  assignment(): number[][] {
    return this.slots.map((s) => [...s.tokens]);
  }

  private open(s: Slot): void {
    if (this.stopped || s.socket) return;
    const ws = new WebSocket(kiteUrl(this.opts.wsUrl, this.opts.apiKey, this.opts.accessToken), {
      headers: { 'X-Kite-Version': '3' },
      handshakeTimeout: 10_000,
      perMessageDeflate: false,
    });
    s.socket = ws;
    ws.binaryType = 'nodebuffer';

    ws.on('open', () => {
      if (s.socket !== ws) return;
      s.stats.connected = true;
      s.stats.connects++;
      s.stats.lastMessageAt = Date.now();
      s.lastMessageClock = this.clock();
      if (this.paused) ws.pause();
      this.subscribe(ws, s.tokens);
      this.log.info({ slot: s.index, tokens: s.tokens.length, mode: this.opts.mode }, 'kite connection open, subscribed');
      this.emit('connect', s.index);
    });

    ws.on('message', (data: Buffer, isBinary: boolean) => {
      if (s.socket !== ws) return;
      const now = Date.now();
      const at = this.clock === Date.now ? now : this.clock();
      if (s.outageSince !== 0) {
        s.stats.gaps++;
        s.stats.gapMs += at - s.outageSince;
        this.emit('gap', { slot: s.index, startMs: s.outageSince, endMs: at, cause: s.outageCause, tokens: s.tokens } satisfies FeedGap);
        s.outageSince = 0;
      }
      // Data flows again: the link is healthy, so the next outage starts its back-off afresh.
      s.attempt = 0;
      s.stats.lastMessageAt = now;
      s.lastMessageClock = at;
      s.stats.frames++;
      s.stats.bytes += data.length;
      if (isBinary) {
        s.seq = (s.seq + 1) >>> 0;
        try {
          this.opts.onBinary(data, s.index, s.seq);
        } catch (e) {
          // The decoder never throws by design; a consumer bug must not kill the feed either.
          this.log.error({ err: e, slot: s.index }, 'binary handler threw; message skipped');
        }
      } else if (this.opts.onText) {
        this.opts.onText(data.toString('utf8'), s.index);
      }
    });

    ws.on('unexpected-response', (_req, res) => {
      const status = res.statusCode ?? 0;
      res.resume();
      ws.terminate();
      if (status === 401 || status === 403) {
        const err = new KiteAuthError(status);
        this.log.fatal({ slot: s.index, status }, err.message);
        this.stopped = true;
        this.fatalError = err;
        this.emit('fatal', err);
      } else {
        this.log.warn({ slot: s.index, status }, 'kite refused the upgrade; will retry');
      }
    });

    ws.on('error', (err) => {
      if (s.socket !== ws) return;
      this.log.warn({ slot: s.index, err: err.message }, 'kite socket error');
    });

    ws.on('close', (code, reason) => {
      if (s.socket !== ws) return;
      this.lost(s, `close ${code}${reason.length ? ' ' + reason.toString() : ''}`);
    });
  }

  private subscribe(ws: WebSocket, tokens: readonly number[]): void {
    for (let i = 0; i < tokens.length; i += SUBSCRIBE_CHUNK) {
      const chunk = tokens.slice(i, i + SUBSCRIBE_CHUNK);
      ws.send(JSON.stringify({ a: 'subscribe', v: chunk }));
      ws.send(JSON.stringify({ a: 'mode', v: [this.opts.mode, chunk] }));
    }
  }

  /** The slot's socket is gone (or being cut): forget it and schedule the next attempt. */
  private lost(s: Slot, reason: string): void {
    const ws = s.socket;
    s.socket = null;
    if (ws && ws.readyState !== WebSocket.CLOSED) ws.terminate();
    if (s.stats.connected) {
      s.stats.disconnects++;
      // The data stopped at the last message (a silent link is cut only after silenceMs).
      s.outageSince = s.lastMessageClock > 0 ? s.lastMessageClock : this.clock();
      s.outageCause = reason;
    }
    s.stats.connected = false;
    this.emit('disconnect', s.index, reason);
    if (this.stopped) return;
    const cap = Math.min(this.backoffMaxMs, this.backoffInitialMs * 2 ** Math.min(s.attempt, 20));
    // Full jitter: spread reconnects of many slots (and many services) over the window.
    const delay = Math.round(cap / 2 + this.random() * (cap / 2));
    s.attempt++;
    this.log.warn({ slot: s.index, reason, retryInMs: delay, attempt: s.attempt }, 'kite connection lost; reconnecting');
    this.emit('reconnecting', { slot: s.index, attempt: s.attempt, delayMs: delay, reason } satisfies ReconnectPlan);
    if (s.reconnectTimer) clearTimeout(s.reconnectTimer);
    s.reconnectTimer = setTimeout(() => {
      s.reconnectTimer = null;
      this.open(s);
    }, delay);
  }

  private checkSilence(): void {
    if (this.paused) return;
    const now = Date.now();
    for (const s of this.slots) {
      if (s.socket && s.stats.connected && now - s.stats.lastMessageAt >= this.silenceMs) {
        s.stats.silences++;
        this.lost(s, `silent for ${now - s.stats.lastMessageAt} ms`);
      }
    }
  }
}
