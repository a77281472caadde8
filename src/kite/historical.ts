/**
 * Kite's historical API through the official client (KiteConnect.getHistoricalData), within
 * Kite's limit of 3 requests a second per api_key.
 *
 * The limit is Kite's per api_key, and one process holds one api_key: so every caller of the
 * historical API in this process must take a turn from the one `historicalLimiter` below (gap
 * repair does, src/storage/backfill.ts; anything added later must too). A second limiter would
 * let the two together pass 3 a second and earn 429s for both.
 *
 * The limiter lets at most `perSec` requests start within any window of `windowMs` (1,000 ms and
 * a margin: Kite counts requests as they arrive, and two sent 1,000 ms apart can arrive closer).
 * It is a queue in arrival order: a caller waits for the oldest of the last `perSec` starts to
 * leave the window. Kite may still answer 429 (another process on the same key, clocks that
 * disagree): callers retry those (`classify`, src/orders/live/kite.ts, sorts them as 'rate').
 */
import { KiteConnect } from 'kiteconnect';
import { istString, MINUTE_MS } from '../core/ist.ts';

/** Kite's historical API limit: requests a second per api_key. */
export const KITE_HISTORICAL_PER_SEC = 3;
/** 1 s plus a margin for requests arriving closer together than they were sent. */
const WINDOW_MS = 1050;

export class RateLimiter {
  /** Start times of the last `perSec` turns, oldest first. */
  private readonly starts: number[] = [];
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

  /** Resolves, with the turn's start (on `now`), when the caller may send one request (in the order asked). */
  take(): Promise<number> {
    const turn = this.queue.then(() => this.next());
    this.queue = turn;
    return turn;
  }

  private async next(): Promise<number> {
    if (this.starts.length >= this.perSec) {
      // A timer may fire up to a millisecond early (it counts whole ms): look again until the
      // window has truly passed, so no 4th start ever falls inside it.
      let wait = this.starts[0] + this.windowMs - this.now();
      if (wait > 0) this.stats.waited++;
      while (wait > 0) {
        await new Promise((r) => setTimeout(r, Math.ceil(wait)));
        wait = this.starts[0] + this.windowMs - this.now();
      }
      this.starts.shift();
    }
    const at = this.now();
    this.starts.push(at);
    this.stats.turns++;
    return at;
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
    await this.limiter.take();
    // Kite's `to` is inclusive: the last minute asked is the one starting a minute before toMs.
    const got = await this.kc.getHistoricalData(token, 'minute', kiteTime(fromMs), kiteTime(toMs - MINUTE_MS), false, true);
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
