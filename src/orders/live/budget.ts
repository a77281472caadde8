/**
 * The live broker's budget of Kite's non-order requests (order book, history, trades, positions,
 * margins): a token bucket of `perSec` tokens, refilled continuously, shared by every lookup and
 * poll of the process. Kite allows 10 such requests a second per API key; going over earns 429s,
 * so a request waits here for its token instead of being sent and refused.
 *
 * Waiters are served in arrival order; one timer is armed at a time, for when the next token is due.
 * Order requests (place, modify, cancel) do not pass here: the order service takes them from its
 * own account-wide budget (rate-limit.ts) before it calls the broker.
 */
export class ReadBudget {
  private tokens: number;
  private lastMs: number;
  private readonly waiters: (() => void)[] = [];
  private timer: NodeJS.Timeout | null = null;
  private closed = false;

  constructor(private readonly perSec: number, private readonly clock: () => number = () => performance.now()) {
    if (!(Number.isFinite(perSec) && perSec > 0)) throw new RangeError(`ReadBudget: perSec must be a number above 0 (requests per second), got ${String(perSec)}`);
    this.tokens = perSec;
    this.lastMs = clock();
  }

  /** Resolves when a request may go. After close() it resolves at once (callers check their own state). */
  take(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.refill();
    if (this.waiters.length === 0 && this.tokens >= 1) {
      this.tokens -= 1;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      this.waiters.push(resolve);
      this.arm();
    });
  }

  /** Requests waiting for a token. */
  get waiting(): number {
    return this.waiters.length;
  }

  close(): void {
    this.closed = true;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    for (const w of this.waiters.splice(0)) w();
  }

  private refill(): void {
    const t = this.clock();
    this.tokens = Math.min(this.perSec, this.tokens + ((t - this.lastMs) * this.perSec) / 1000);
    this.lastMs = t;
  }

  private arm(): void {
    if (this.timer !== null || this.closed) return;
    const waitMs = Math.max(1, Math.ceil(((1 - this.tokens) * 1000) / this.perSec));
    this.timer = setTimeout(() => {
      this.timer = null;
      this.refill();
      while (this.waiters.length > 0 && this.tokens >= 1) {
        this.tokens -= 1;
        this.waiters.shift()!();
      }
      if (this.waiters.length > 0) this.arm();
    }, waitMs);
    this.timer.unref();
  }
}
