/**
 * A small typed client for the msgpack feed (`/ws`), for Node and for browsers. Downstream apps import it:
 *
 *   import { FeedClient } from 'nifty50-trading-system/src/client/index.ts';
 *   const feed = new FeedClient({ url: 'ws://127.0.0.1:3000/ws', key: process.env.N50_KEY! });
 *   feed.on('ticks', (ticks) => console.log(ticks));
 *   await feed.connect();
 *   await feed.subscribe(['NIFTY 50', 'NFO:NIFTY25DEC26000CE'], { mode: 'full', bars: ['1m'] });
 *
 * It decodes records with the same shared structures the server encodes with, keeps what it follows
 * and re-sends it after a reconnect, and resolves `subscribe` with the server's ack.
 *
 * Where it runs: a browser's WebSocket (`globalThis.WebSocket`) cannot set headers, so there the key
 * goes in the URL's `key` query (docs/protocol.md); in Node (20 has no global WebSocket) the `ws`
 * package is loaded on first connect and the key goes in `Authorization: Bearer`, which keeps it out
 * of access logs. `ws` is imported through a variable so that a bundler never pulls it into a
 * browser bundle. The emitter is our own few lines for the same reason: `node:events` does not
 * exist in browsers.
 */
import { createUnpackr } from '../core/feed-structures.ts';
import type { FeedBar, FeedMode, FeedTick } from '../gateway/messages.ts';

export type { FeedBar, FeedMode, FeedTick, TickFull, TickLtp, TickQuote } from '../gateway/messages.ts';

export interface FeedClientOptions {
  /** e.g. ws://127.0.0.1:3000/ws */
  url: string;
  key: string;
  /** Reconnect after a drop (default true), with back-off up to 10 s. */
  reconnect?: boolean;
}

export interface Ack {
  type: 'ack';
  op: 'subscribe' | 'unsubscribe';
  id: number;
  instruments: number[];
  rejected: { instrument?: unknown; chain?: unknown; reason: string }[];
  /** Analytics subscriptions: chain keys ('NIFTY:2026-12-08') and 'breadth'. */
  analytics?: string[];
}

/** The server's first frame on every connection. */
export interface Welcome {
  type: 'welcome';
  protocol: number;
  /** The API key's name. */
  key: string;
  /** Whether the key's orders go to the paper broker or to Kite; absent from older servers. */
  mode?: 'paper' | 'live';
  records: boolean;
  modes: FeedMode[];
  /** Bar timeframes the server aggregates, ms. */
  timeframes: number[];
}

export interface FeedClientEvents {
  ticks: [FeedTick[], { conflated: boolean }];
  bars: [FeedBar[]];
  snapshot: [{ ticks: FeedTick[]; bars: FeedBar[] }];
  welcome: [Welcome];
  /** One option chain's analytics (docs/protocol.md `chain`), at each refresh. */
  chain: [Record<string, unknown>];
  /** NIFTY 50 breadth, at each refresh. */
  breadth: [Record<string, unknown>];
  /** The server's heartbeat, every second: the connection is alive even when no tick comes. */
  heartbeat: [number];
  order: [Record<string, unknown>];
  /** The key's net positions (Kite's position rows), at most every 250 ms while they change. */
  position: [Record<string, unknown>[]];
  error: [Error];
  open: [];
  close: [number, string];
}

type Listener<A extends unknown[]> = (...args: A) => void;

/** A typed emitter: `on`, `off`, `emit`, `listenerCount`; listeners run in the order added. */
export class Emitter<E extends { [K in keyof E]: unknown[] }> {
  private readonly listeners: { [K in keyof E]?: Listener<E[K]>[] } = {};

  on<K extends keyof E>(event: K, fn: Listener<E[K]>): this {
    (this.listeners[event] ??= []).push(fn);
    return this;
  }

  off<K extends keyof E>(event: K, fn: Listener<E[K]>): this {
    const list = this.listeners[event];
    const i = list ? list.indexOf(fn) : -1;
    if (i >= 0) list!.splice(i, 1);
    return this;
  }

  listenerCount(event: keyof E): number {
    return this.listeners[event]?.length ?? 0;
  }

  /** Calls each listener; true when there was one. A listener that throws does not stop the others. */
  emit<K extends keyof E>(event: K, ...args: E[K]): boolean {
    const list = this.listeners[event];
    if (!list || list.length === 0) return false;
    for (const fn of list.slice()) {
      try {
        fn(...args);
      } catch (e) {
        // Rethrown outside the loop so one bad listener neither hides the error nor starves the rest.
        setTimeout(() => { throw e; }, 0);
      }
    }
    return true;
  }
}

/** The part of the WebSocket interface both the browser's and `ws`'s implement. */
interface Socket {
  binaryType: string;
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
  onclose: ((ev: { code: number; reason: string }) => void) | null;
}
/** `ws`'s extras: the HTTP answer to a refused upgrade, and closing before the handshake ends. */
interface NodeSocket extends Socket {
  on(event: 'unexpected-response', fn: (req: unknown, res: { statusCode?: number }) => void): unknown;
  terminate(): void;
}
type SocketCtor = new (url: string, opts?: unknown) => Socket;
const OPEN = 1;

let nodeWs: Promise<SocketCtor> | null = null;
function loadNodeWs(): Promise<SocketCtor> {
  const name = 'ws';
  nodeWs ??= import(/* @vite-ignore */ name).then((m: { default: SocketCtor }) => m.default);
  return nodeWs;
}

/** What one instrument is followed for, as last asked. */
interface Follow { mode: FeedMode; bars: Set<string> }

export class FeedClient extends Emitter<FeedClientEvents> {
  private ws: Socket | null = null;
  private readonly unpackr = createUnpackr();
  private nextId = 1;
  private readonly acks = new Map<number, { resolve: (a: Ack) => void; reject: (e: Error) => void }>();
  /** Instrument (as given: token or symbol) → its mode and bars; re-sent after a reconnect. */
  private readonly follows = new Map<number | string, Follow>();
  private readonly chains = new Set<string>();
  private breadth = false;
  private closing = false;
  private attempt = 0;
  private retry: ReturnType<typeof setTimeout> | null = null;
  private welcomeFrame: Welcome | null = null;

  constructor(private readonly opts: FeedClientOptions) {
    super();
  }

  /** True while the socket is open. */
  get connected(): boolean {
    return this.ws !== null && this.ws.readyState === OPEN;
  }

  /** The current connection's welcome frame (null before it arrives). */
  get welcome(): Welcome | null {
    return this.welcomeFrame;
  }

  /**
   * Open the socket; resolves once it is open (after a refusal or drop it keeps retrying with
   * back-off unless `reconnect: false`; the promise of that first attempt rejects all the same).
   */
  async connect(): Promise<void> {
    this.closing = false;
    if (this.retry) clearTimeout(this.retry);
    this.retry = null;
    const Browser = (globalThis as { WebSocket?: SocketCtor }).WebSocket;
    let ws: Socket;
    if (Browser) {
      const u = new URL(this.opts.url);
      u.searchParams.set('key', this.opts.key);
      ws = new Browser(u.toString());
    } else {
      const Ws = await loadNodeWs();
      if (this.closing) throw new Error('feed client closed while connecting');
      ws = new Ws(this.opts.url, { headers: { Authorization: `Bearer ${this.opts.key}` } });
    }
    ws.binaryType = 'arraybuffer';
    this.ws = ws;
    return new Promise((resolve, reject) => {
      let opened = false;
      if (!Browser) {
        (ws as NodeSocket).on('unexpected-response', (_req, res) => {
          reject(new Error(`feed refused the connection: HTTP ${res.statusCode} (check the API key)`));
          (ws as NodeSocket).terminate();
        });
      }
      ws.onopen = () => {
        opened = true;
        this.attempt = 0;
        this.resubscribe();
        this.emit('open');
        resolve();
      };
      ws.onerror = (ev) => {
        const err = (ev as { error?: Error }).error
          ?? new Error(opened ? 'feed connection failed' : 'feed connection failed before it opened: check the URL and the API key (browsers do not show the HTTP status)');
        if (this.listenerCount('error') > 0) this.emit('error', err);
        reject(err);
      };
      ws.onmessage = (ev) => this.onMessage(ev.data);
      ws.onclose = (ev) => {
        if (this.ws === ws) this.ws = null;
        this.welcomeFrame = null;
        reject(new Error(`feed closed before it opened (${ev.code})`));
        for (const [, p] of this.acks) p.reject(new Error('feed connection closed before the server answered'));
        this.acks.clear();
        this.emit('close', ev.code, String(ev.reason ?? ''));
        if (!this.closing && this.opts.reconnect !== false) {
          // Full jitter: many dashboards dropped by one restart do not come back in step.
          const delay = Math.min(10_000, 250 * 2 ** this.attempt++) * (0.5 + Math.random() / 2);
          const timer = setTimeout(() => { this.retry = null; this.connect().catch(() => {}); }, delay);
          (timer as { unref?: () => void }).unref?.();
          this.retry = timer;
        }
      };
    });
  }

  /**
   * Follow instruments (tokens or symbols) in a mode, with bar timeframes added to those already
   * followed; resolves with the server's ack. Recorded even when not connected (the promise then
   * rejects): it is sent at the next connect.
   */
  subscribe(instruments: (number | string)[], opts: { mode?: FeedMode; bars?: string[] } = {}): Promise<Ack> {
    const mode = opts.mode ?? 'quote';
    const bars = opts.bars ?? [];
    for (const i of instruments) {
      const f = this.follows.get(i);
      if (f) {
        f.mode = mode;
        for (const b of bars) f.bars.add(b);
      } else {
        this.follows.set(i, { mode, bars: new Set(bars) });
      }
    }
    return this.request({ op: 'subscribe', instruments, mode, bars });
  }

  /** Stop following instruments; with `bars`, only those timeframes' bars (the ticks stay). */
  unsubscribe(instruments: (number | string)[], opts: { bars?: string[] } = {}): Promise<Ack> {
    for (const i of instruments) {
      if (!opts.bars) this.follows.delete(i);
      else for (const b of opts.bars) this.follows.get(i)?.bars.delete(b);
    }
    return this.request(opts.bars ? { op: 'unsubscribe', instruments, bars: opts.bars } : { op: 'unsubscribe', instruments });
  }

  /** Receive chain analytics (expiries, or 'NAME:YYYY-MM-DD') and/or breadth at each refresh. */
  subscribeAnalytics(opts: { chain?: string[]; breadth?: boolean }): Promise<Ack> {
    for (const c of opts.chain ?? []) this.chains.add(c);
    if (opts.breadth) this.breadth = true;
    return this.request({ op: 'subscribe', ...opts });
  }

  unsubscribeAnalytics(opts: { chain?: string[]; breadth?: boolean }): Promise<Ack> {
    for (const c of opts.chain ?? []) this.chains.delete(c);
    if (opts.breadth) this.breadth = false;
    return this.request({ op: 'unsubscribe', ...opts });
  }

  /** What this client follows and will re-send after a reconnect. */
  following(): { instruments: { instrument: number | string; mode: FeedMode; bars: string[] }[]; chains: string[]; breadth: boolean } {
    return {
      instruments: [...this.follows].map(([instrument, f]) => ({ instrument, mode: f.mode, bars: [...f.bars].sort() })),
      chains: [...this.chains],
      breadth: this.breadth,
    };
  }

  close(): void {
    this.closing = true;
    if (this.retry) clearTimeout(this.retry);
    this.retry = null;
    this.ws?.close();
  }

  /** After a (re)connect: what is followed, grouped by mode and bars into as few messages as can be. */
  private resubscribe(): void {
    const groups = new Map<string, { mode: FeedMode; bars: string[]; instruments: (number | string)[] }>();
    for (const [i, f] of this.follows) {
      const bars = [...f.bars].sort();
      const k = `${f.mode}|${bars.join(',')}`;
      let g = groups.get(k);
      if (!g) groups.set(k, (g = { mode: f.mode, bars, instruments: [] }));
      g.instruments.push(i);
    }
    for (const g of groups.values()) this.send({ op: 'subscribe', id: this.nextId++, ...g });
    if (this.chains.size > 0 || this.breadth) {
      this.send({ op: 'subscribe', id: this.nextId++, ...(this.chains.size > 0 ? { chain: [...this.chains] } : {}), ...(this.breadth ? { breadth: true } : {}) });
    }
  }

  private request(msg: Record<string, unknown>): Promise<Ack> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.acks.set(id, { resolve, reject });
      if (!this.send({ ...msg, id })) {
        this.acks.delete(id);
        reject(new Error('not connected: call connect() first (the subscription is kept and sent when it connects)'));
      }
    });
  }

  private send(msg: unknown): boolean {
    if (!this.ws || this.ws.readyState !== OPEN) return false;
    this.ws.send(JSON.stringify(msg));
    return true;
  }

  private onMessage(data: unknown): void {
    let m: { type: string; [k: string]: unknown };
    try {
      m = typeof data === 'string' ? JSON.parse(data) : this.unpackr.unpack(new Uint8Array(data as ArrayBuffer));
    } catch (e) {
      if (this.listenerCount('error') > 0) this.emit('error', e as Error);
      return;
    }
    switch (m.type) {
      case 'ticks': this.emit('ticks', m.d as FeedTick[], { conflated: m.conflated === true }); break;
      case 'bars': this.emit('bars', m.d as FeedBar[]); break;
      case 'snapshot': this.emit('snapshot', m as unknown as { ticks: FeedTick[]; bars: FeedBar[] }); break;
      case 'chain': this.emit('chain', m.d as Record<string, unknown>); break;
      case 'breadth': this.emit('breadth', m.d as Record<string, unknown>); break;
      case 'hb': this.emit('heartbeat', m.ts as number); break;
      case 'order': this.emit('order', m.d as Record<string, unknown>); break;
      case 'position': this.emit('position', m.d as Record<string, unknown>[]); break;
      case 'welcome':
        this.welcomeFrame = m as unknown as Welcome;
        this.emit('welcome', this.welcomeFrame);
        break;
      case 'ack': {
        const a = m as unknown as Ack;
        this.acks.get(a.id)?.resolve(a);
        this.acks.delete(a.id);
        break;
      }
      case 'error': {
        const err = new Error(String(m.message));
        const p = typeof m.id === 'number' ? this.acks.get(m.id) : undefined;
        if (p) {
          this.acks.delete(m.id as number);
          p.reject(err);
        }
        if (this.listenerCount('error') > 0) this.emit('error', err);
        break;
      }
      default: break;
    }
  }
}
