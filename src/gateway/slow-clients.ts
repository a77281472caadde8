/**
 * The slow-client policy of both WebSocket endpoints (`/ws` in feed.ts, `/kite` in kite-ws.ts).
 *
 * uWS queues, per socket, what the kernel would not take (`getBufferedAmount()`: unsent bytes).
 * Each endpoint walks its sockets on a timer and asks `check` about each; nothing here runs per tick.
 *
 * | rule     | when                                                         | then                         |
 * |----------|--------------------------------------------------------------|------------------------------|
 * | conflate | unsent bytes > `conflateBytes`                               | the endpoint thins (feed.ts) |
 * | close    | unsent bytes > `closeBytes`                                  | close 4008, `slowCloses`++   |
 * | stall    | unsent bytes > `conflateBytes` with no progress for `stallCloseMs` | close 4008, `stallCloses`++ |
 *
 * Why the stall rule: a client that stops reading is otherwise closed only once its unsent bytes
 * reach `closeBytes`, and a conflated client gets one small frame per interval, which the kernel's
 * socket buffers (megabytes with autotuning) absorb first: closing it could take minutes. Progress
 * is a drain (uWS calls it when the socket turns writable again, i.e. the peer read something) or
 * unsent bytes below their lowest since the clock started; either restarts the clock, so a client
 * that reads, however slowly, is never stall-closed (past `closeBytes` it is slow-closed instead).
 */
import type { WebSocket } from 'uWebSockets.js';
import type { Logger } from '../log.ts';

export interface SlowClientLimits {
  /** Unsent bytes past which a client is slow: /ws conflates it, and the stall clock runs. */
  readonly conflateBytes: number;
  /** Unsent bytes past which a client is closed (4008). */
  readonly closeBytes: number;
  /** A slow client making no progress for this long is closed (4008), ms. */
  readonly stallCloseMs: number;
}

/** The defaults of WS_CONFLATE_BYTES, WS_CLOSE_BYTES and WS_STALL_CLOSE_MS (src/config.ts). */
export const SLOW_CLIENT_DEFAULTS: SlowClientLimits = Object.freeze({ conflateBytes: 1 << 20, closeBytes: 16 << 20, stallCloseMs: 5000 });

/** How often the endpoints walk their sockets, ms: the stall rule's resolution. */
export const SLOW_CHECK_MS = 50;

/** Counters of the policy, part of each endpoint's stats (/health `live.feed`, `live.kite`). */
export interface SlowClientCounters {
  /** Unsent bytes of the fullest socket at the last check. */
  maxUnsentBytes: number;
  /** Clients closed past `closeBytes`. */
  slowCloses: number;
  /** Clients closed for making no progress for `stallCloseMs`. */
  stallCloses: number;
}

/** What the policy keeps per client, in its uWS user data. */
export interface SlowClientState {
  id: number;
  key: string;
  closed: boolean;
  /** Drains seen (bumped by `drained`), and the count at the last progress. */
  drains: number;
  seenDrains: number;
  /** Lowest unsent bytes since the stall clock started. */
  lowUnsent: number;
  /** When the stall clock started (epoch ms); 0: not slow. */
  stallSince: number;
}

export const freshSlowState = () => ({ drains: 0, seenDrains: 0, lowUnsent: 0, stallSince: 0 });

/**
 * The limits, each given one or its default (an undefined one is not given), checked: RangeError
 * naming the one that is wrong (config.ts names the variable first).
 */
export function slowClientLimits(l: Partial<SlowClientLimits> = {}): SlowClientLimits {
  const out = { ...SLOW_CLIENT_DEFAULTS };
  for (const k of ['conflateBytes', 'closeBytes', 'stallCloseMs'] as const) {
    const v = l[k];
    if (v !== undefined) out[k] = v;
    if (!Number.isSafeInteger(out[k]) || out[k] <= 0) throw new RangeError(`${k} must be a positive whole number, got ${out[k]}`);
  }
  if (out.closeBytes <= out.conflateBytes) throw new RangeError(`closeBytes (${out.closeBytes}) must exceed conflateBytes (${out.conflateBytes})`);
  return Object.freeze(out);
}

/** `check`'s answer for a client it closed. */
export const CLOSED = -1;

export class SlowClients {
  private now = 0;
  private passMax = 0;

  constructor(
    readonly limits: SlowClientLimits,
    private readonly stats: SlowClientCounters,
    private readonly log: Logger,
    /** For the log: `/ws` or `/kite`. */
    private readonly endpoint: string,
  ) {}

  /** Start a walk over the sockets (one clock read for all of them). */
  begin(now: number): void {
    this.now = now;
    this.passMax = 0;
  }

  /** End the walk: publish the fullest socket's unsent bytes. */
  end(): void {
    this.stats.maxUnsentBytes = this.passMax;
  }

  /** A drain of the client's socket: progress. Called from uWS's drain handler. */
  drained(c: SlowClientState): void {
    c.drains++;
  }

  /**
   * Apply the close and stall rules to one socket; returns its unsent bytes, or CLOSED.
   * `mayClose`: whether the byte limit applies yet (/ws conflates a client before closing it).
   */
  check(ws: WebSocket<unknown>, c: SlowClientState, mayClose: boolean): number {
    const unsent = ws.getBufferedAmount();
    if (unsent > this.passMax) this.passMax = unsent;
    const { conflateBytes, closeBytes, stallCloseMs } = this.limits;
    if (unsent <= conflateBytes) {
      c.stallSince = 0;
      return unsent;
    }
    if (mayClose && unsent > closeBytes) {
      this.stats.slowCloses++;
      this.close(ws, c, unsent, `slow consumer: more than ${closeBytes} bytes unsent`, 'closing a slow client');
      return CLOSED;
    }
    if (c.stallSince === 0 || c.drains !== c.seenDrains || unsent < c.lowUnsent) {
      c.stallSince = this.now;
      c.seenDrains = c.drains;
      c.lowUnsent = unsent;
      return unsent;
    }
    if (this.now - c.stallSince >= stallCloseMs) {
      this.stats.stallCloses++;
      this.close(ws, c, unsent, `slow consumer: stopped reading (nothing taken for ${stallCloseMs} ms)`, 'closing a client that stopped reading');
      return CLOSED;
    }
    return unsent;
  }

  private close(ws: WebSocket<unknown>, c: SlowClientState, unsent: number, reason: string, msg: string): void {
    this.log.warn({ endpoint: this.endpoint, client: c.id, key: c.key, unsent }, msg);
    c.closed = true;
    ws.end(4008, reason);
  }
}
