/**
 * Order and position updates across gateways: a key's clients may be connected to any gateway, and
 * its orders are worked by the gateway that placed them. Each gateway hands its order service
 * `bus.push` instead of its local push; every update is
 *
 * 1. delivered at once to this gateway's own sockets (the local push: no round trip through Redis
 *    for the clients of the gateway that made the change), and
 * 2. published on the Redis channel `P orders:updates` (P = REDIS_PREFIX), where every other
 *    gateway's subscriber delivers it to its local sockets of that key.
 *
 * A gateway hears its own publications too: each message carries the publishing process's origin
 * (random per process), and a subscriber drops its own, which it has already delivered. A key with
 * no socket on a gateway costs that gateway a JSON parse per update; order updates are few (the
 * account places at most 10 orders a second), so one channel for all keys beats a channel per key
 * and the subscription bookkeeping it would need.
 *
 * Message: JSON `{"o": origin, "t": "order" | "positions", "k": api key, "r": row | rows}`, the
 * row as the order service pushes it (model.ts kiteOrderRow; the positions' net rows).
 *
 * Delivery is Redis pub/sub's: in publication order from each gateway, at most once. A gateway
 * whose subscription is down while an update is published misses it (its clients read
 * GET /orders after a reconnect, as Kite's clients do after theirs); a publish that fails is
 * counted and logged, and not retried (a late order update is worse than a missing one the client
 * re-reads).
 */
import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { Logger } from '../log.ts';

/** The push the order service makes (service.ts OrderPush), repeated here to keep the bus below the service. */
export interface UpdatePush {
  order(key: string, row: Record<string, unknown>): void;
  positions(key: string, rows: readonly object[]): void;
}

export interface OrderUpdateBusOptions {
  /** For PUBLISH: any connection (the cache's, the limiter's). */
  pub: Redis;
  /** For SUBSCRIBE: a connection of the bus's own (subscribed, it serves nothing else). */
  sub: Redis;
  /** REDIS_PREFIX. */
  prefix: string;
  /** This gateway's sockets. */
  local: UpdatePush;
  log?: Pick<Logger, 'warn'>;
  /** Tells this process's messages from others'; default random. */
  origin?: string;
}

export interface OrderUpdateBusStats {
  published: number;
  /** Others' updates delivered to local sockets. */
  delivered: number;
  /** Own messages heard back and dropped. */
  echoes: number;
  /** Publishes that failed, messages that did not parse. */
  errors: number;
}

interface Message {
  o: string;
  t: 'order' | 'positions';
  k: string;
  r: unknown;
}

const LOG_EVERY_MS = 10_000;

export function orderUpdateChannel(prefix: string): string {
  return `${prefix}orders:updates`;
}

export class OrderUpdateBus {
  readonly origin: string;
  readonly channel: string;
  readonly stats: OrderUpdateBusStats = { published: 0, delivered: 0, echoes: 0, errors: 0 };
  /** What to hand the order service as its `push`. */
  readonly push: UpdatePush;
  private lastLogMs = -Infinity;
  private readonly onMessage = (channel: string, text: string) => this.receive(channel, text);

  constructor(private readonly opts: OrderUpdateBusOptions) {
    this.origin = opts.origin ?? randomBytes(8).toString('hex');
    this.channel = orderUpdateChannel(opts.prefix);
    this.push = {
      order: (key, row) => {
        opts.local.order(key, row);
        this.publish({ o: this.origin, t: 'order', k: key, r: row });
      },
      positions: (key, rows) => {
        opts.local.positions(key, rows);
        this.publish({ o: this.origin, t: 'positions', k: key, r: rows });
      },
    };
  }

  /** Subscribe; resolves once Redis confirmed, so updates published after it are heard. */
  async start(): Promise<void> {
    this.opts.sub.on('message', this.onMessage);
    await this.opts.sub.subscribe(this.channel);
  }

  async close(): Promise<void> {
    this.opts.sub.off('message', this.onMessage);
    await this.opts.sub.unsubscribe(this.channel).catch(() => {});
  }

  private publish(m: Message): void {
    this.opts.pub.publish(this.channel, JSON.stringify(m)).then(
      () => { this.stats.published++; },
      (err: unknown) => this.error(err, 'order update not published to the other gateways (their clients of this key miss it until they re-read their orders)'),
    );
  }

  private receive(channel: string, text: string): void {
    if (channel !== this.channel) return;
    let m: Message;
    try {
      m = JSON.parse(text) as Message;
    } catch (err) {
      this.error(err, 'order update on the channel is not JSON: ignored');
      return;
    }
    if (m.o === this.origin) {
      this.stats.echoes++;
      return;
    }
    if (typeof m.k !== 'string') return;
    if (m.t === 'order' && m.r !== null && typeof m.r === 'object') this.opts.local.order(m.k, m.r as Record<string, unknown>);
    else if (m.t === 'positions' && Array.isArray(m.r)) this.opts.local.positions(m.k, m.r as object[]);
    else return;
    this.stats.delivered++;
  }

  private error(err: unknown, msg: string): void {
    this.stats.errors++;
    const now = Date.now();
    if (now - this.lastLogMs < LOG_EVERY_MS) return;
    this.lastLogMs = now;
    this.opts.log?.warn({ err: (err as Error)?.message ?? String(err), channel: this.channel, errors: this.stats.errors }, msg);
  }
}
