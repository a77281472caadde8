/**
 * Kite's historical API through the official client (KiteConnect.getHistoricalData), within
 * Kite's limit of 3 requests a second per api_key.
 *
 * The limit is Kite's per api_key, and one process holds one api_key: so every caller of the
 * historical API in this process must take a turn from the one `historicalLimiter` below (gap
 * repair does, src/storage/backfill.ts; anything added later must too). A second limiter would
 * let the two together pass 3 a second and earn 429s for both.
 *
 * The limiter counts Kite's window from where Kite counts it, the request's arrival, which the
 * client cannot see: it lies after the request was sent and before its answer came back. So a turn
 * holds its place until the caller is done with the answer, and a new request starts only once
 * `windowMs` (1,000 ms) has passed since the answer of the request `perSec` turns back: then it
 * reaches Kite at least a window after that one did, whatever the network's delays. (Counting from
 * the sends, even with a margin, let a delayed first request arrive within the window of the fourth,
 * and the simulator refused it under load.) It is a queue in the order asked. Kite may still answer
 * 429 (another process on the same key): callers retry those (`classify`,
 * src/orders/live/kite.ts, sorts them as 'rate').
 */
import { KiteConnect } from 'kiteconnect';
import { istString, MINUTE_MS } from '../core/ist.ts';

/** Kite's historical API limit: requests a second per api_key. */
export const KITE_HISTORICAL_PER_SEC = 3;
/** Kite's window: counted from each answer (see the module header), so no margin is needed. */
const WINDOW_MS = 1000;

/** One request's turn: `done()` when its answer (or failure) is in, which starts its window. */
export interface Turn {
  /** When the turn started, on the limiter's clock. */
  at: number;
  done(): void;
}

interface Slot { end: number; ended: Promise<void>; finish: () => void }

export class RateLimiter {
  /** The last `perSec` turns, oldest first; `end` is Infinity until the turn is done. */
  private readonly slots: Slot[] = [];
  private queue: Promise<unknown> = Promise.resolve();
  /** Turns given, and turns that had to wait: for tests and /health. */
  readonly stats = { turns: 0, waited: 0 };

  constructor(
    readonly perSec: number,
    readonly windowMs = WINDOW_MS,
    /** Real time: the limit is Kite's, counted on Kite's clock, never on a simulated one. */
    private readonly now: () => number = () => performance.now(),
  ) {
    if (!Number.isInteger(perSec) || perSec < 1) throw new RangeError(`RateLimiter: perSec must be an integer >= 1, got ${String(perSec)}`);
    if (!(windowMs > 0)) throw new RangeError(`RateLimiter: windowMs must be > 0, got ${String(windowMs)}`);
  }

  /** Resolves, in the order asked, when the caller may send one request; call `done()` when its answer is in. */
  take(): Promise<Turn> {
    const turn = this.queue.then(() => this.next());
    this.queue = turn;
    return turn;
  }

  /** `fn` (one request) in a turn, the turn done when `fn` settles. */
  async run<T>(fn: () => Promise<T>): Promise<T> {
    const turn = await this.take();
    try {
      return await fn();
    } finally {
      turn.done();
    }
  }

  private async next(): Promise<Turn> {
    if (this.slots.length >= this.perSec) {
      const oldest = this.slots[0];
      let waited = false;
      if (oldest.end === Infinity) {
        waited = true;
        await oldest.ended;
      }
      // A timer may fire up to a millisecond early (it counts whole ms): look again until the
      // window has truly passed.
      let wait = oldest.end + this.windowMs - this.now();
      if (wait > 0) waited = true;
      while (wait > 0) {
        await new Promise((r) => setTimeout(r, Math.ceil(wait)));
        wait = oldest.end + this.windowMs - this.now();
      }
      if (waited) this.stats.waited++;
      this.slots.shift();
    }
    let finish!: () => void;
    const slot: Slot = { end: Infinity, ended: new Promise<void>((r) => { finish = r; }), finish };
    this.slots.push(slot);
    this.stats.turns++;
    return {
      at: this.now(),
      done: () => {
        if (slot.end !== Infinity) return;
        slot.end = this.now();
        slot.finish();
      },
    };
  }
}

/** The one limiter of the process for Kite's historical API (see the module header). */
export const historicalLimiter = new RateLimiter(KITE_HISTORICAL_PER_SEC);

/** One minute candle as Kite sends it: rupees, volume in the minute, OI at its end. */
export interface KiteCandle {
  /** Minute start, epoch ms. */
  startMs: number;
  open: number;
  high: number;
  low: number;
  close: number;
  volume: number;
  oi: number;
}

/** The client's method we call, so a test can stand in anything with the official shape. */
interface HistoricalClient {
  getHistoricalData(token: number, interval: string, from: string, to: string, continuous?: boolean, oi?: boolean): Promise<unknown>;
}

/** Kite's `from` / `to`: India wall clock, 'YYYY-MM-DD HH:mm:ss'. */
export function kiteTime(ms: number): string {
  return istString(ms);
}

export class KiteHistorical {
  private readonly kc: HistoricalClient;
  private readonly limiter: RateLimiter;

  constructor(opts: { apiUrl: string; apiKey: string; accessToken: string; timeoutMs?: number; limiter?: RateLimiter }) {
    const kc = new KiteConnect({ api_key: opts.apiKey, root: opts.apiUrl, timeout: opts.timeoutMs ?? 7000 });
    kc.setAccessToken(opts.accessToken);
    this.kc = kc as unknown as HistoricalClient;
    this.limiter = opts.limiter ?? historicalLimiter;
  }

  /**
   * Minute candles of `token` whose start is in [fromMs, toMs) (minute-aligned), oldest first, with
   * OI. One request, after a turn of the limiter. Rejects with the client's error (Kite's body, e.g.
   * `{ error_type: 'NetworkException', message: 'Too many requests' }`).
   */
  async minutes(token: number, fromMs: number, toMs: number): Promise<KiteCandle[]> {
    // Kite's `to` is inclusive: the last minute asked is the one starting a minute before toMs.
    const got = await this.limiter.run(() => this.kc.getHistoricalData(token, 'minute', kiteTime(fromMs), kiteTime(toMs - MINUTE_MS), false, true));
    const rows = (Array.isArray(got) ? got : (got as { data?: unknown }).data) as { date: Date; open: number; high: number; low: number; close: number; volume: number; oi?: number }[] | undefined;
    if (!Array.isArray(rows)) {
      const e = got as { error_type?: string; message?: string };
      throw Object.assign(new Error(e?.message ?? 'Kite answered historical data in an unknown shape'), { error_type: e?.error_type ?? 'DataException' });
    }
    const out: KiteCandle[] = [];
    for (const c of rows) {
      const startMs = new Date(c.date).getTime();
      if (startMs < fromMs || startMs >= toMs) continue;
      out.push({ startMs, open: c.open, high: c.high, low: c.low, close: c.close, volume: c.volume, oi: c.oi ?? 0 });
    }
    return out;
  }
}
