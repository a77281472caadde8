/**
 * The simulator's ticker connections: each one's id, api_key, socket and subscriptions, and
 * Kite's limit of connections per api_key (3: a 4th upgrade is refused with HTTP 429).
 *
 * A connection counts against its key from uWS's `open` on, not from the upgrade: uWS runs
 * `open` inside `res.upgrade()`, so the next upgrade already sees the count, and a socket that
 * never opens cannot leak a slot.
 */
import type { WebSocket } from 'uWebSockets.js';
import type { FrameTarget } from './frames.ts';
import type { Subscriptions } from './subscriptions.ts';

export class Conn implements FrameTarget {
  /** Set while open; null before `open` and once released. */
  ws: WebSocket<Conn> | null = null;
  lastSendMs: number;

  constructor(
    /** From 1, never reused (SimulatorOptions.onFrame). */
    readonly id: number,
    readonly apiKey: string,
    readonly subs: Subscriptions,
    now: number,
  ) {
    this.lastSendMs = now;
  }
}

export class Connections {
  /** The open connections, in the order they opened: batches and postbacks go in this order. */
  readonly open = new Set<Conn>();
  private readonly perKey = new Map<string, number>();
  private nextId = 1;

  constructor(readonly maxPerKey: number) {}

  /** True when `apiKey` already has its maximum open. */
  full(apiKey: string): boolean {
    return (this.perKey.get(apiKey) ?? 0) >= this.maxPerKey;
  }

  /** A connection for an accepted upgrade, not yet open. */
  create(apiKey: string, subs: Subscriptions, now: number): Conn {
    return new Conn(this.nextId++, apiKey, subs, now);
  }

  opened(c: Conn, ws: WebSocket<Conn>, now: number): void {
    c.ws = ws;
    this.perKey.set(c.apiKey, (this.perKey.get(c.apiKey) ?? 0) + 1);
    c.lastSendMs = now;
    this.open.add(c);
  }

  /**
   * Forgets `c`: its slot, its socket, its subscriptions. False when it was not open (a close
   * after `dropAll` already released it).
   */
  release(c: Conn): boolean {
    if (c.ws === null) return false;
    c.ws = null;
    this.open.delete(c);
    const left = (this.perKey.get(c.apiKey) ?? 1) - 1;
    if (left <= 0) this.perKey.delete(c.apiKey);
    else this.perKey.set(c.apiKey, left);
    c.subs.clear();
    return true;
  }
}
