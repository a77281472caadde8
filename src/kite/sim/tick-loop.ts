/**
 * The simulator's batches: what goes out each time the server's timer fires.
 *
 * Each batch the market makes `rate * elapsed` trades over the rows anyone follows, in rounds of
 * distinct rows (Market.advance); each round is matched against the simulator's working orders
 * (`onRound`, orders.ts), then becomes one or more frames per connection (frames.ts). A batch that trades nothing still makes one pass, for the snapshots connections
 * are owed. Then each connection that was sent nothing for `heartbeatMs` gets Kite's 1-byte
 * heartbeat, unless it is behind.
 *
 * Batch length: Kite batches a full-mode feed about once a second, but a 50 ms batch keeps the
 * simulator's latency low for pipeline tests while frames still carry many packets (2000 ticks/s
 * over 1000 tokens is about 100 packets a frame).
 *
 * Fractions of a trade carry over to the next batch, so any rate is met on average. A stalled
 * event loop does not bank an unbounded backlog (elapsed time is capped), and a batch makes at
 * most MAX_TRADES_PER_BATCH trades, so "max rate" cannot starve the event loop; the rest is dropped.
 *
 * Mode messages that were delayed (SimulatorOptions.modeDelayMs) take effect at the start of the
 * first batch after their delay, and owe their snapshot in that batch.
 *
 * No allocation per batch: the round's rows go to one preallocated array.
 */
import { performance } from 'node:perf_hooks';
import { HEARTBEAT } from '../codec.ts';
import type { FrameBuilder, FrameTarget } from './frames.ts';
import type { Market } from './market.ts';
import type { Followers } from './subscriptions.ts';

/** Trades per batch at most; the rest is dropped. */
export const MAX_TRADES_PER_BATCH = 250_000;

export interface TickLoopOptions {
  /** Trades per second over all followed rows; 0 = snapshots and heartbeats only. */
  rate: number;
  batchMs: number;
  /** Idle time before a heartbeat. */
  heartbeatMs: number;
  /** Unsent bytes above which a connection gets no heartbeat (frames.ts skips it too). */
  maxBuffered: number;
  /** Milliseconds, monotonic. Default performance.now. */
  now?: () => number;
  /** After each round that traded, its rows (`updated[0..k)`): the simulator's order matching. */
  onRound?: (updated: Int32Array, k: number) => void;
}

/** The counters batches keep (a subset of the simulator's SimStats). */
export interface TickStats {
  heartbeats: number;
  /** The market's counts, copied after each batch. */
  trades: number;
  rounds: number;
}

export class TickLoop {
  /** Trades per second; the server checks it before setting it. */
  rate: number;
  private readonly batchMs: number;
  private readonly heartbeatMs: number;
  private readonly maxBuffered: number;
  private readonly now: () => number;
  private readonly onRound: ((updated: Int32Array, k: number) => void) | undefined;
  /** Trades owed to the rate, fractions included. */
  private budget = 0;
  private lastBatchMs: number;
  private readonly updated: Int32Array;

  constructor(
    private readonly market: Market,
    private readonly followers: Followers,
    private readonly frames: FrameBuilder,
    private readonly stats: TickStats,
    opts: TickLoopOptions,
  ) {
    this.rate = opts.rate;
    this.batchMs = opts.batchMs;
    this.heartbeatMs = opts.heartbeatMs;
    this.maxBuffered = opts.maxBuffered;
    this.now = opts.now ?? (() => performance.now());
    this.onRound = opts.onRound;
    this.updated = new Int32Array(market.size);
    this.lastBatchMs = this.now();
  }

  /** One batch to `conns`, in their order. */
  run(conns: Iterable<FrameTarget>): void {
    const now = this.now();
    const elapsed = Math.min(now - this.lastBatchMs, 4 * Math.max(this.batchMs, this.heartbeatMs));
    this.lastBatchMs = now;
    const market = this.market;
    const followers = this.followers;
    const updated = this.updated;
    // Mode messages whose delay has passed take effect before the batch: its packets go out in them.
    for (const c of conns) c.subs.applyDueModes(now);
    let want = 0;
    if (followers.count > 0) {
      this.budget += (this.rate * elapsed) / 1000;
      want = Math.floor(this.budget);
      this.budget -= want;
      if (want > MAX_TRADES_PER_BATCH) want = MAX_TRADES_PER_BATCH;
    } else {
      this.budget = 0;
    }
    let k: number;
    do {
      k = want > 0 ? market.advance(want, followers.rows, followers.count, updated) : 0;
      want -= k;
      if (k > 0 && this.onRound !== undefined) this.onRound(updated, k);
      for (const c of conns) this.frames.emit(c, updated, k);
      // A round can empty the followed rows (its fills finished the last working order of an
      // otherwise unfollowed row): then nothing is left to trade this batch.
    } while (want > 0 && k > 0);
    this.stats.trades = market.trades;
    this.stats.rounds = market.rounds;

    const t = this.now();
    for (const c of conns) {
      const ws = c.ws;
      if (ws !== null && t - c.lastSendMs >= this.heartbeatMs && ws.getBufferedAmount() <= this.maxBuffered) {
        ws.send(HEARTBEAT, true);
        c.lastSendMs = t;
        this.stats.heartbeats++;
      }
    }
  }
}
