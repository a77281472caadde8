/**
 * Kite's order rate limits, for the one Kite account that every API key of this service shares.
 *
 * Kite counts order requests per account: ratePerSec a second, ratePerMin a minute and ratePerDay an
 * IST calendar day (10, 400 and 5,000 today; src/config.ts holds the numbers). A request past a
 * limit is answered 429 with Retry-After and never forwarded, so Kite never sees us over a limit.
 * Modifications per order (25) are counted by the order service, not here.
 *
 * Windows:
 *
 * | window | kind                                  | a request at ts is counted at time t while   |
 * |--------|---------------------------------------|----------------------------------------------|
 * | second | sliding, log of accepted timestamps   | t - ts < 1000                                |
 * | minute | sliding, log of accepted timestamps   | t - ts < 60000                               |
 * | day    | IST calendar day (UTC+05:30), counter | ts and t lie in the same IST day             |
 *
 * A request is accepted only if, counting it, its window holds at most the limit; so any interval of
 * 1000 ms (60000 ms), whatever its alignment, holds at most ratePerSec (ratePerMin) accepted
 * requests: the last request accepted in such an interval saw all the others in its own window. A
 * fixed-grid counter would let 2 × limit through across a grid line. The logs are rings
 * preallocated to the limit, which they can never exceed.
 *
 * Fair share: a key is *active* when it made an order request (accepted or refused) within the
 * last `rateActiveMs`; within each window a key may hold at most ceil(limit / activeKeys) of the
 * accepted requests (activeKeys counted including the requester). A key alone gets the whole
 * budget. So no key can take the whole budget while others are active, and an idle key holds
 * nothing back. A key already holding more than a share that shrank (another key became active)
 * keeps what it holds but takes no more until it is back under its share.
 *
 * `take(key, n)` is all or nothing: an iceberg's legs or an autoslice's children take their n slots
 * at once or none. On refusal, `retryAfterMs` is exact: the earliest time at which the same take
 * would pass every window if no key made another request meanwhile (for a sliding window, when
 * enough of its oldest counted requests have left it; for the day, the next IST midnight; for a
 * share, also when other keys go idle). Every condition only loosens as time passes, so that time
 * is the latest of the times each refusing condition clears; the refusal names the window with the
 * longest wait.
 *
 * Cost: O(1) amortised per take. Each accepted request is pushed once into each log and evicted
 * once; the active keys are a list ordered by last request (a request moves its key to the tail,
 * idle keys fall off the head); each key keeps small logs of its own accepted requests, grown on
 * demand up to the limit. Only a refusal walks the other keys, in order of going idle, and stops
 * as soon as waiting for one more to go idle cannot help. An accepted take allocates nothing.
 *
 * The clock is made monotonic: a time earlier than one already seen counts as that time, so a clock
 * stepped back cannot reopen a window.
 */
import { AppError } from '../core/errors.ts';
import { DAY_MS, istDayStart } from '../core/ist.ts';
import type { OrdersConfig } from '../config.ts';

export type RateWindow = 'second' | 'minute' | 'day';

export type RateDecision =
  | { ok: true }
  | { ok: false; window: RateWindow | 'share'; retryAfterMs: number; message: string };

export type OrderRateConfig = Pick<OrdersConfig, 'ratePerSec' | 'ratePerMin' | 'ratePerDay' | 'rateActiveMs'>;

export interface OrderRateStats {
  /** Accepted requests in the sliding second, minute, and the IST day, account-wide. */
  second: number;
  minute: number;
  day: number;
  /** Keys that made an order request within the last rateActiveMs. */
  activeKeys: number;
}

const SECOND_MS = 1000;
const MINUTE_MS = 60_000;
const OK: RateDecision = Object.freeze({ ok: true }) as RateDecision;

/** Accepted timestamps, oldest first, in a ring; evicted from the head as they leave the window. */
class TimeLog {
  private buf: Float64Array;
  private head = 0;
  size = 0;

  constructor(initial: number, private readonly max: number) {
    this.buf = new Float64Array(initial);
  }

  /** Drop entries at or before `cutoff` (t - window: they have left the window). */
  evict(cutoff: number): void {
    const buf = this.buf;
    while (this.size > 0 && buf[this.head] <= cutoff) {
      this.head = this.head + 1 === buf.length ? 0 : this.head + 1;
      this.size--;
    }
  }

  push(ts: number): void {
    if (this.size === this.buf.length) this.grow();
    let i = this.head + this.size;
    if (i >= this.buf.length) i -= this.buf.length;
    this.buf[i] = ts;
    this.size++;
  }

  /** The k-th oldest entry, 0-based (k < size). */
  at(k: number): number {
    let i = this.head + k;
    if (i >= this.buf.length) i -= this.buf.length;
    return this.buf[i];
  }

  /** Per-key logs start small and double; the account's logs are allocated full and never grow. */
  private grow(): void {
    const old = this.buf;
    if (old.length >= this.max) throw new Error('TimeLog: more entries than the limit (a bug in OrderRateLimiter)');
    const next = new Float64Array(Math.min(this.max, Math.max(8, old.length * 2)));
    for (let k = 0; k < this.size; k++) next[k] = this.at(k);
    this.buf = next;
    this.head = 0;
  }
}

/** One API key: its own accepted requests per window, and its place in the activity list. */
class KeyState {
  readonly second: TimeLog;
  readonly minute: TimeLog;
  day = 0;
  dayEnd = -Infinity;
  lastSeen = -Infinity;
  active = false;
  prev: KeyState | null = null;
  next: KeyState | null = null;

  constructor(readonly key: string, cfg: OrderRateConfig) {
    this.second = new TimeLog(Math.min(cfg.ratePerSec, 8), cfg.ratePerSec);
    this.minute = new TimeLog(Math.min(cfg.ratePerMin, 8), cfg.ratePerMin);
  }
}

function checkLimit(cfg: OrderRateConfig, name: keyof OrderRateConfig): number {
  const v = cfg[name];
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 1) {
    throw new RangeError(`OrderRateLimiter: ${name} must be a whole number of at least 1, got ${String(v)}`);
  }
  return v;
}

/** A wait as a person reads it: "300 ms", "1 s", "2 min 5 s", "5 h 12 min". Rounded up. */
export function formatWait(ms: number): string {
  if (ms < SECOND_MS) return `${Math.ceil(ms)} ms`;
  const s = Math.ceil(ms / SECOND_MS);
  if (s < 60) return `${s} s`;
  if (s < 3600) return s % 60 === 0 ? `${s / 60} min` : `${Math.floor(s / 60)} min ${s % 60} s`;
  const min = Math.ceil(s / 60);
  return min % 60 === 0 ? `${min / 60} h` : `${Math.floor(min / 60)} h ${min % 60} min`;
}

export const WINDOWS: readonly RateWindow[] = ['second', 'minute', 'day'];
const PER: Record<RateWindow, string> = { second: 'per second', minute: 'per minute', day: 'per day (IST)' };

/**
 * Throws when no wait would ever grant a take of `n`: AppError ORDER_RATE_N_INVALID when n is not a
 * whole number of at least 1, ORDER_RATE_BATCH_TOO_LARGE when n exceeds a limit.
 */
export function checkTakeSize(cfg: OrderRateConfig, n: number): void {
  if (!Number.isSafeInteger(n) || n < 1) {
    throw new AppError('ORDER_RATE_N_INVALID', `OrderRateLimiter.take: n must be a whole number of at least 1, got ${String(n)}`, { n });
  }
  const maxN = Math.min(cfg.ratePerSec, cfg.ratePerMin, cfg.ratePerDay);
  if (n > maxN) {
    throw new AppError(
      'ORDER_RATE_BATCH_TOO_LARGE',
      `An order needing ${n} order requests at once can never pass Kite's limit of ${maxN} orders ` +
        `${cfg.ratePerSec === maxN ? 'per second' : cfg.ratePerMin === maxN ? 'per minute' : 'per day'}: ` +
        `split it into parts of at most ${maxN}.`,
      { n, max: maxN },
    );
  }
}

/**
 * The refusal's message, as a person reads it: which limit (the account's, or this key's share of
 * it while `activeKeys` keys place orders), what the key holds of it and how long to wait. Shared by
 * this limiter and the one in Redis (shared-limits.ts), so both answer in the same words.
 */
export function refusalMessage(
  cfg: OrderRateConfig, of: RateWindow, window: RateWindow | 'share', retryAfterMs: number, held: number, activeKeys: number, n: number,
): string {
  const wait = formatWait(retryAfterMs);
  const limit = of === 'second' ? cfg.ratePerSec : of === 'minute' ? cfg.ratePerMin : cfg.ratePerDay;
  if (window === 'share') {
    return `Too many orders: this API key has used its share of the account's limit of ${limit} orders ${PER[of]} ` +
      `(${held} of ${Math.ceil(limit / activeKeys)} while ${activeKeys} keys place orders${n > 1 ? `; this order needs ${n}` : ''}); retry after ${wait}`;
  }
  return `Too many orders: the account's limit of ${limit} orders ${PER[window]} is used up` +
    `${n > 1 ? ` for an order needing ${n}` : ''}; retry after ${window === 'day' ? `midnight IST, in ${wait}` : wait}`;
}

export class OrderRateLimiter {
  private readonly perSec: number;
  private readonly perMin: number;
  private readonly perDay: number;
  private readonly activeMs: number;

  private readonly second: TimeLog;
  private readonly minute: TimeLog;
  private day = 0;
  /** Epoch ms of the IST midnight that ends the day `day` counts. */
  private dayEnd = -Infinity;

  private readonly keys = new Map<string, KeyState>();
  /** Active keys, least recently seen first. */
  private head: KeyState | null = null;
  private tail: KeyState | null = null;
  private activeCount = 0;
  private lastT = -Infinity;

  constructor(
    private readonly cfg: OrderRateConfig,
    private readonly now: () => number = Date.now,
  ) {
    this.perSec = checkLimit(cfg, 'ratePerSec');
    this.perMin = checkLimit(cfg, 'ratePerMin');
    this.perDay = checkLimit(cfg, 'ratePerDay');
    this.activeMs = checkLimit(cfg, 'rateActiveMs');
    this.second = new TimeLog(this.perSec, this.perSec);
    this.minute = new TimeLog(this.perMin, this.perMin);
  }

  /**
   * Asks for `n` order requests for `key` now, all or nothing. When ok, they are counted. Throws
   * AppError ORDER_RATE_BATCH_TOO_LARGE when n exceeds a limit (no wait would ever grant it).
   */
  take(key: string, n = 1): RateDecision {
    checkTakeSize(this.cfg, n);
    const t = this.tick();
    let ks = this.keys.get(key);
    if (ks === undefined) {
      ks = new KeyState(key, this.cfg);
      this.keys.set(key, ks);
    }
    this.touch(ks, t);
    ks.second.evict(t - SECOND_MS);
    ks.minute.evict(t - MINUTE_MS);
    if (t >= ks.dayEnd) {
      ks.day = 0;
      ks.dayEnd = istDayStart(t) + DAY_MS;
    }

    const a = this.activeCount;
    if (
      this.second.size + n <= this.perSec &&
      this.minute.size + n <= this.perMin &&
      this.day + n <= this.perDay &&
      ks.second.size + n <= Math.ceil(this.perSec / a) &&
      ks.minute.size + n <= Math.ceil(this.perMin / a) &&
      ks.day + n <= Math.ceil(this.perDay / a)
    ) {
      for (let i = 0; i < n; i++) {
        this.second.push(t);
        this.minute.push(t);
        ks.second.push(t);
        ks.minute.push(t);
      }
      this.day += n;
      ks.day += n;
      return OK;
    }
    return this.refuse(ks, n, t);
  }

  stats(): OrderRateStats {
    this.tick();
    return { second: this.second.size, minute: this.minute.size, day: this.day, activeKeys: this.activeCount };
  }

  /** Reads the clock (made monotonic), evicts what left the account's windows, drops idle keys. */
  private tick(): number {
    const c = this.now();
    const t = c > this.lastT ? c : this.lastT;
    this.lastT = t;
    this.second.evict(t - SECOND_MS);
    this.minute.evict(t - MINUTE_MS);
    if (t >= this.dayEnd) {
      this.day = 0;
      this.dayEnd = istDayStart(t) + DAY_MS;
    }
    const idleBefore = t - this.activeMs;
    while (this.head !== null && this.head.lastSeen <= idleBefore) this.unlink(this.head);
    return t;
  }

  /** Marks `ks` as seen at `t`: it moves to the tail of the activity list. */
  private touch(ks: KeyState, t: number): void {
    if (ks.active) this.unlink(ks);
    ks.lastSeen = t;
    ks.active = true;
    ks.prev = this.tail;
    ks.next = null;
    if (this.tail === null) this.head = ks;
    else this.tail.next = ks;
    this.tail = ks;
    this.activeCount++;
  }

  private unlink(ks: KeyState): void {
    if (ks.prev === null) this.head = ks.next;
    else ks.prev.next = ks.next;
    if (ks.next === null) this.tail = ks.prev;
    else ks.next.prev = ks.prev;
    ks.prev = ks.next = null;
    ks.active = false;
    this.activeCount--;
  }

  /** The refusal: every condition that fails, when each clears, and the one that clears last. */
  private refuse(ks: KeyState, n: number, t: number): RateDecision {
    // Account-wide: the (size + n - limit)-th oldest must leave the sliding window. Ties keep the
    // first condition listed, so an account-wide limit is named before a share of it.
    const a = this.activeCount;
    const clears = [
      this.second.size + n > this.perSec ? this.second.at(this.second.size + n - this.perSec - 1) + SECOND_MS : -Infinity,
      this.minute.size + n > this.perMin ? this.minute.at(this.minute.size + n - this.perMin - 1) + MINUTE_MS : -Infinity,
      this.day + n > this.perDay ? this.dayEnd : -Infinity,
      ks.second.size + n > Math.ceil(this.perSec / a) ? this.shareClears(ks, n, t, this.perSec, ks.second, SECOND_MS) : -Infinity,
      ks.minute.size + n > Math.ceil(this.perMin / a) ? this.shareClears(ks, n, t, this.perMin, ks.minute, MINUTE_MS) : -Infinity,
      ks.day + n > Math.ceil(this.perDay / a) ? this.shareClears(ks, n, t, this.perDay, null, 0) : -Infinity,
    ];
    let which = 0;
    for (let i = 1; i < clears.length; i++) if (clears[i] > clears[which]) which = i;
    const at = clears[which];
    const of = WINDOWS[which % 3];
    const window: RateWindow | 'share' = which < 3 ? of : 'share';
    const retryAfterMs = at - t;
    const held = of === 'second' ? ks.second.size : of === 'minute' ? ks.minute.size : ks.day;
    const message = refusalMessage(this.cfg, of, window, retryAfterMs, held, a, n);
    return { ok: false, window, retryAfterMs, message };
  }

  /**
   * When `ks` could take n within its share of one window, if no key made another request: the
   * earliest over m (the active keys then, from now down to 1) of max(when the other keys have
   * gone idle down to m, when enough of its own requests have left for ceil(limit / m)). `log` is
   * null for the day, whose requests all leave together at the next IST midnight.
   */
  private shareClears(ks: KeyState, n: number, t: number, limit: number, log: TimeLog | null, windowMs: number): number {
    const held = log === null ? ks.day : log.size;
    let best = Infinity;
    let other = this.head;
    let idleAt = t; // when the active count has dropped to m
    for (let m = this.activeCount; m >= 1; m--) {
      if (m < this.activeCount) {
        while (other === ks) other = other.next;
        if (other === null) break;
        idleAt = other.lastSeen + this.activeMs;
        other = other.next;
      }
      if (idleAt >= best) break; // waiting for more keys to go idle only takes longer
      const room = Math.ceil(limit / m) - n;
      if (room < 0) continue;
      const mustLeave = held - room;
      const ownAt = mustLeave <= 0 ? t : log === null ? ks.dayEnd : log.at(mustLeave - 1) + windowMs;
      const clears = ownAt > idleAt ? ownAt : idleAt;
      if (clears < best) best = clears;
    }
    return best;
  }
}
