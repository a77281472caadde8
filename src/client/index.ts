/**
 * A small typed client for the msgpack feed (`/ws`). Downstream TypeScript apps import it:
 *
 *   import { FeedClient } from 'nifty50-trading-system/src/client/index.ts';
 *   const feed = new FeedClient({ url: 'ws://127.0.0.1:3000/ws', key: process.env.N50_KEY! });
 *   feed.on('ticks', (ticks) => console.log(ticks));
 *   await feed.connect();
 *   await feed.subscribe(['NIFTY 50', 'NFO:NIFTY25DEC26000CE'], { mode: 'full', bars: ['1m'] });
 *
 * It decodes records with the same shared structures the server encodes with, re-sends its
 * subscriptions after a reconnect, and resolves `subscribe` with the server's ack.
 */
import { EventEmitter } from 'node:events';
import WebSocket from 'ws';
import { createUnpackr, type FeedBar, type FeedMode, type FeedTick } from '../gateway/messages.ts';

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
  rejected: { instrument: unknown; reason: string }[];
}

export interface FeedClientEvents {
  ticks: [FeedTick[], { conflated: boolean }];
  bars: [FeedBar[]];
  snapshot: [{ ticks: FeedTick[]; bars: FeedBar[] }];
  order: [Record<string, unknown>];
  /** The key's net positions (Kite's position rows), at most every 250 ms while they change. */
  position: [Record<string, unknown>[]];
  error: [Error];
  open: [];
  close: [number, string];
}

export class FeedClient extends EventEmitter<FeedClientEvents> {
  private ws: WebSocket | null = null;
  private readonly unpackr = createUnpackr();
  private nextId = 1;
  private readonly acks = new Map<number, (a: Ack) => void>();
  private readonly subscriptions: { instruments: (number | string)[]; mode: FeedMode; bars: string[] }[] = [];
  private closing = false;
  private attempt = 0;

  constructor(private readonly opts: FeedClientOptions) {
    super();
  }

  connect(): Promise<void> {
    this.closing = false;
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(this.opts.url, { headers: { Authorization: `Bearer ${this.opts.key}` } });
      this.ws = ws;
      ws.on('open', () => {
        this.attempt = 0;
        for (const s of this.subscriptions) this.send({ op: 'subscribe', id: this.nextId++, ...s });
        this.emit('open');
        resolve();
      });
      ws.on('unexpected-response', (_req, res) => {
        const err = new Error(`feed refused the connection: HTTP ${res.statusCode} (check the API key)`);
        reject(err);
        ws.terminate();
      });
      ws.on('error', (err) => {
        if (this.listenerCount('error') > 0) this.emit('error', err);
        reject(err);
      });
      ws.on('message', (data: Buffer) => this.onMessage(data));
      ws.on('close', (code, reason) => {
        this.emit('close', code, reason.toString());
        if (!this.closing && this.opts.reconnect !== false) {
          const delay = Math.min(10_000, 250 * 2 ** this.attempt++);
          setTimeout(() => this.connect().catch(() => {}), delay).unref();
        }
      });
    });
  }

  /** Follow instruments (tokens or symbols); resolves with the server's ack. */
  subscribe(instruments: (number | string)[], opts: { mode?: FeedMode; bars?: string[] } = {}): Promise<Ack> {
    const sub = { instruments, mode: opts.mode ?? 'quote', bars: opts.bars ?? [] };
    this.subscriptions.push(sub);
    return this.request({ op: 'subscribe', ...sub });
  }

  unsubscribe(instruments: (number | string)[]): Promise<Ack> {
    return this.request({ op: 'unsubscribe', instruments });
  }

  close(): void {
    this.closing = true;
    this.ws?.close();
  }

  private request(msg: Record<string, unknown>): Promise<Ack> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.acks.set(id, resolve);
      if (!this.send({ ...msg, id })) {
        this.acks.delete(id);
        reject(new Error('not connected: call connect() first'));
      }
    });
  }

  private send(msg: unknown): boolean {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return false;
    this.ws.send(JSON.stringify(msg));
    return true;
  }

  private onMessage(data: Buffer): void {
    let m: { type: string; [k: string]: unknown };
    try {
      m = this.unpackr.unpack(data);
    } catch (e) {
      this.emit('error', e as Error);
      return;
    }
    switch (m.type) {
      case 'ticks': this.emit('ticks', m.d as FeedTick[], { conflated: m.conflated === true }); break;
      case 'bars': this.emit('bars', m.d as FeedBar[]); break;
      case 'snapshot': this.emit('snapshot', m as unknown as { ticks: FeedTick[]; bars: FeedBar[] }); break;
      case 'order': this.emit('order', m.d as Record<string, unknown>); break;
      case 'position': this.emit('position', m.d as Record<string, unknown>[]); break;
      case 'ack': {
        const a = m as unknown as Ack;
        this.acks.get(a.id)?.(a);
        this.acks.delete(a.id);
        break;
      }
      case 'error': if (this.listenerCount('error') > 0) this.emit('error', new Error(String(m.message))); break;
      default: break;
    }
  }
}
