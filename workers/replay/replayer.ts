/**
 * One replay session's loop (the thread's side of src/core/replay-protocol.ts): stored ticks from a
 * TickSource, paced on the wall clock, through the aggregate stage, into the session's output rings.
 *
 * Pacing. Ticks go out in the source's order (exchange time). Their spacing is the spacing they
 * had when they arrived live (RECV_TIME_US): Kite stamps exchange time in whole seconds, so pacing
 * on it would send each second's ticks in one burst. At speed N a tick is due N times sooner than
 * live; ticks due within the same millisecond go out in one publish (one frame per subscription
 * set downstream). A pause longer than `idleSkipMs` (the night, the lunch hour of a thin option) is
 * skipped. Speed 0 sends as fast as the rings drain: the main thread drains them only while the
 * session's clients keep up, so a full-speed replay runs at its slowest client's pace and never
 * drops or conflates a tick (the thread waits on the rings, counted in WAITS).
 *
 * Bars. Every tick goes through an Aggregator (workers/stages/aggregate.ts) on the replayed
 * exchange time: closed bars are written as they close, bars in progress once per publish. The
 * same ticks give the same bars, however fast or often they are replayed.
 *
 * Per tick: a record copied into the ring, the aggregator's arithmetic; nothing allocated.
 */
import { Aggregator, type AggregatorFields } from '../stages/aggregate.ts';
import { BarOut } from '../bar-out.ts';
import { RingProducer } from '../../src/core/ring.ts';
import { ringDoorbells } from '../../src/core/shard-protocol.ts';
import { N, N_FIELDS, NType } from '../../src/core/tick.ts';
import { RS, ReplayState, type ReplayData } from '../../src/core/replay-protocol.ts';

/** The stored ticks of a range, in order, a batch at a time. */
export interface TickSource {
  /** Tick records (src/core/tick.ts layout, N_FIELDS each) of the last next(). */
  readonly batch: Float64Array;
  /** Fill `batch`; resolves to the ticks in it, 0 at the end of the range. */
  next(): Promise<number>;
  close(): Promise<void>;
}

/** Open the range's ticks from `fromMs` (inclusive) to the session's end. */
export type OpenSource = (fromMs: number) => Promise<TickSource>;

const AGGREGATOR_FIELDS: AggregatorFields = {
  token: N.TOKEN, exchTimeMs: N.EXCH_TIME_MS, price: N.PRICE, volumeDelta: N.VOLUME_DELTA, oi: N.OI,
};

/** Ticks due within this many ms of now go out together. */
const DUE_SLACK_MS = 1;
/** Ticks per publish at most, as a shard's batch: downstream frames stay bounded. */
const MAX_PER_PUBLISH = 1024;
/** Free slots a full ring must have again before the thread writes on. */
const REFILL_SLOTS = MAX_PER_PUBLISH;

export class Replayer {
  private readonly status: Float64Array;
  private readonly ticksOut: RingProducer;
  private readonly barsOut: RingProducer;
  private readonly bells: Int32Array;
  private readonly tokens: number[];
  private aggregator!: Aggregator;
  private dirty!: Int32Array;
  private dirtyFlag!: Uint8Array;
  private dirtyCount = 0;
  private readonly bars: BarOut;
  private source: TickSource | null = null;
  private speed: number;
  private running: boolean;
  private stopping = false;
  private seekTo: number | null = null;
  /** Wakes the loop from a pause or a pacing sleep when a command arrives. */
  private wake: (() => void) | null = null;
  private pending = 0;
  private fromMs: number;

  constructor(
    private readonly data: ReplayData,
    private readonly open: OpenSource,
    private readonly post: (m: { type: 'reset' } | { type: 'ended' } | { type: 'failed'; message: string }) => void,
    private readonly resetDone: () => Promise<void>,
  ) {
    this.status = new Float64Array(data.status);
    this.ticksOut = new RingProducer(data.ticksOut);
    this.barsOut = new RingProducer(data.barsOut);
    this.bars = new BarOut(this.barsOut);
    this.bells = new Int32Array(data.doorbells);
    const wanted = data.tokens === null ? null : new Set(data.tokens);
    this.tokens = data.instruments.map((i) => i.instrumentToken).filter((t) => wanted === null || wanted.has(t));
    this.speed = data.speed;
    this.running = data.running;
    this.fromMs = data.fromMs;
    this.status[RS.SPEED] = data.speed;
    this.status[RS.POSITION_MS] = data.fromMs;
    this.status[RS.STATE] = data.running ? ReplayState.RUNNING : ReplayState.WAITING;
    this.newAggregator();
  }

  // --- commands (from the thread's message handler) ----------------------------------------------

  resume(speed?: number): void {
    if (speed !== undefined) {
      this.speed = speed;
      this.status[RS.SPEED] = speed;
    }
    this.running = true;
    if (this.status[RS.STATE] !== ReplayState.ENDED) this.status[RS.STATE] = ReplayState.RUNNING;
    this.poke();
  }

  pause(): void {
    this.running = false;
    if (this.status[RS.STATE] === ReplayState.RUNNING) this.status[RS.STATE] = ReplayState.PAUSED;
    this.poke();
  }

  seek(toMs: number): void {
    this.seekTo = toMs;
    this.poke();
  }

  stop(): void {
    this.stopping = true;
    this.poke();
  }

  private poke(): void {
    const w = this.wake;
    this.wake = null;
    w?.();
  }

  /** Sleep until `ms` passed or a command came. */
  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        this.wake = null;
        resolve();
      }, ms);
      this.wake = () => {
        clearTimeout(t);
        resolve();
      };
    });
  }

  /** Wait for the next command. */
  private idle(): Promise<void> {
    return new Promise((resolve) => {
      this.wake = resolve;
    });
  }

  // --- the loop ------------------------------------------------------------------------------------

  async run(): Promise<void> {
    try {
      await this.loop();
    } catch (e) {
      this.status[RS.STATE] = ReplayState.FAILED;
      this.post({ type: 'failed', message: (e as Error).message });
    } finally {
      await this.source?.close().catch(() => {});
      this.source = null;
    }
  }

  private async loop(): Promise<void> {
    this.source = await this.open(this.fromMs);
    /** Pacing anchor: a tick received live at anchorRecvMs is due at anchorWallMs (at this speed). */
    let anchorWallMs = 0;
    let anchorRecvMs = Number.NaN;
    let anchorSpeed = this.speed;
    let lastRecvMs = Number.NaN;
    let lastDueMs = 0;
    let n = 0;
    let i = 0;
    for (;;) {
      if (this.stopping) return;
      if (this.seekTo !== null) {
        await this.doSeek(this.seekTo);
        anchorRecvMs = Number.NaN;
        lastRecvMs = Number.NaN;
        n = 0;
        i = 0;
        continue;
      }
      if (!this.running) {
        this.publish();
        await this.idle();
        anchorRecvMs = Number.NaN; // re-anchor after a pause
        continue;
      }
      if (i >= n) {
        this.publish();
        n = await this.source!.next();
        i = 0;
        if (n === 0) {
          await this.end();
          continue;
        }
      }
      const f = this.source!.batch;
      const o = i * N_FIELDS;
      const speed = this.speed;
      if (speed > 0) {
        // The pace key never runs backwards: a tick that arrived live before one already sent
        // (stamped in the same exchange second, so ordered after it) goes out at once.
        const recvMs = Math.max(f[o + N.RECV_TIME_US] / 1000, lastRecvMs === lastRecvMs ? lastRecvMs : 0);
        const now = Date.now();
        const idle = recvMs - lastRecvMs > this.data.idleSkipMs;
        if (anchorRecvMs !== anchorRecvMs || speed !== anchorSpeed || idle) {
          if (idle) this.status[RS.SKIPPED_MS] += recvMs - lastRecvMs;
          anchorRecvMs = recvMs;
          anchorWallMs = Math.max(now, lastDueMs);
          anchorSpeed = speed;
        }
        lastRecvMs = recvMs;
        const due = anchorWallMs + (recvMs - anchorRecvMs) / speed;
        lastDueMs = due;
        if (due > now + DUE_SLACK_MS) {
          this.publish();
          await this.sleep(due - now);
          continue; // a command may have come: look again before sending
        }
      }
      if (!(await this.emit(f, o))) continue;
      i++;
      if (this.pending >= MAX_PER_PUBLISH) {
        this.publish();
        if (speed === 0) await new Promise(setImmediate); // let commands in
      }
    }
  }

  /** One tick into the ring and the aggregator; false when the ring had no room (waited). */
  private async emit(f: Float64Array, o: number): Promise<boolean> {
    const out = this.ticksOut;
    if (out.free() === 0 || this.barsOut.free() < 2 * this.data.timeframesMs.length || this.bars.pending > 0) {
      this.publish();
      this.status[RS.WAITS]++;
      await this.drainOverflow();
      // Wait for room for a publish's worth, not one slot: a thread let go at every freed slot
      // published (and rang the main thread) every few ticks while its clients were the bound.
      while (out.free() < REFILL_SLOTS && !this.stopping && this.seekTo === null && this.running) await out.waitForSpace(REFILL_SLOTS, 100);
      return false;
    }
    const slot = out.claim();
    const v = out.views.f64;
    const so = slot >> 1;
    for (let k = 0; k < N_FIELDS; k++) v[so + k] = f[o + k];
    v[so + N.TYPE] = NType.TICK;
    v[so + N.SHARD] = 0;
    out.commit();
    this.pending++;
    const exch = f[o + N.EXCH_TIME_MS];
    const agg = this.aggregator;
    agg.advance(exch);
    agg.setNow(exch);
    agg.onTickAt(v, so);
    const st = this.status;
    st[RS.TICKS]++;
    if (exch > st[RS.POSITION_MS]) st[RS.POSITION_MS] = exch;
    return true;
  }

  private async end(): Promise<void> {
    this.aggregator.flush();
    await this.drainOverflow();
    this.publish();
    this.status[RS.STATE] = ReplayState.ENDED;
    this.post({ type: 'ended' });
    this.running = false;
    while (!this.stopping && this.seekTo === null) await this.idle();
  }

  private async doSeek(toMs: number): Promise<void> {
    this.seekTo = null;
    await this.source?.close();
    this.source = null;
    this.bars.clear();
    this.publish();
    // Everything before the seek is drained before the main thread forgets its latest state.
    while (this.ticksOut.depth() > 0 || this.barsOut.depth() > 0) await this.sleep(1);
    this.post({ type: 'reset' });
    await this.resetDone();
    this.newAggregator();
    this.fromMs = toMs;
    const st = this.status;
    st[RS.POSITION_MS] = toMs;
    st[RS.TICKS] = 0;
    if (st[RS.STATE] === ReplayState.ENDED || st[RS.STATE] === ReplayState.PAUSED) st[RS.STATE] = this.running ? ReplayState.RUNNING : ReplayState.PAUSED;
    this.source = await this.open(toMs);
  }

  private newAggregator(): void {
    const nTf = this.data.timeframesMs.length;
    this.aggregator = new Aggregator({
      tokens: this.tokens.length > 0 ? this.tokens : [0],
      timeframesMs: this.data.timeframesMs,
      graceMs: this.data.graceMs,
      fields: AGGREGATOR_FIELDS,
      onBar: (view, base, closed) => {
        if (closed) {
          this.writeBar(view, base);
          this.status[RS.BARS_CLOSED]++;
          return;
        }
        if (this.dirtyFlag[base] === 0) {
          this.dirtyFlag[base] = 1;
          this.dirty[this.dirtyCount++] = base;
        }
      },
    });
    this.dirtyFlag = new Uint8Array(this.aggregator.view().length);
    this.dirty = new Int32Array(Math.max(1, this.tokens.length * nTf));
    this.dirtyCount = 0;
  }

  private writeBar(view: Float64Array, base: number): void {
    this.bars.write(view, base);
  }

  private drainOverflow(): Promise<void> {
    return this.bars.drain(() => this.publish());
  }

  /** Bars in progress, then everything written, to the main thread. */
  private publish(): void {
    const agg = this.aggregator;
    if (this.dirtyCount > 0) {
      const view = agg.view();
      for (let k = 0; k < this.dirtyCount; k++) {
        const base = this.dirty[k];
        this.dirtyFlag[base] = 0;
        if (agg.isOpen(base)) this.writeBar(view, base);
      }
      this.dirtyCount = 0;
    }
    this.ticksOut.publish();
    this.barsOut.publish();
    this.pending = 0;
    ringDoorbells(this.bells, 1);
  }

  /** The session ends: close the rings so the main thread's pump stops. */
  closeRings(): void {
    this.ticksOut.close();
    this.barsOut.close();
    ringDoorbells(this.bells, 1);
  }
}
