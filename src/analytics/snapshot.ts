/**
 * Builds analytics snapshots (src/core/chain-snapshot.ts, field table there) from the hub's latest
 * ticks: a copy of a few fields per row into a reused Float64Array, plus two OI references the
 * ticks do not carry, kept here between refreshes:
 *
 * - OI_OPEN: the first OI seen on the current IST day. Kite's ticks carry OI and its day high and
 *   low, not the day's opening OI; a service started mid-session starts counting from its first tick.
 * - OI_AGO: the OI one interval ago, from a ring of the OIs sampled at each refresh. The ring holds
 *   interval / refresh + 2 samples, so its oldest is always at least one interval old once full.
 *
 * Runs on the main thread once per refresh: no allocation, a few µs for the default chain.
 */
import { N, N_FIELDS } from '../core/tick.ts';
import { istDayStart } from '../core/ist.ts';
import { HEADER_FIELDS, ROW_FIELDS, SNAP, SNAP_HEADER } from '../core/chain-snapshot.ts';

export class SnapshotBuilder {
  private readonly rows: number;
  private readonly oiOpen: Float64Array;
  private oiDay = -1;
  /** Sampled OIs, `cap` samples of `rows` values, and each sample's time. */
  private readonly ring: Float64Array;
  private readonly ringTimes: Float64Array;
  private readonly cap: number;
  private head = 0;
  private filled = 0;

  constructor(private readonly hubRows: Int32Array, private readonly oiIntervalMs: number, refreshMs: number) {
    this.rows = hubRows.length;
    this.oiOpen = new Float64Array(this.rows).fill(NaN);
    this.cap = Math.ceil(oiIntervalMs / Math.max(1, refreshMs)) + 2;
    this.ring = new Float64Array(this.cap * this.rows).fill(NaN);
    this.ringTimes = new Float64Array(this.cap).fill(NaN);
  }

  /** Fill `snap` (snapshotLength(rows) values) from the hub's `ticks`/`has` at wall-clock `now`. */
  fill(snap: Float64Array, ticks: Float64Array, has: Uint8Array, now: number, seq: number): void {
    const rows = this.rows;
    const day = istDayStart(now);
    if (day !== this.oiDay) {
      this.oiDay = day;
      this.oiOpen.fill(NaN);
    }
    // The sample one interval old: the newest whose time is at least that far back.
    const cutoff = now - this.oiIntervalMs;
    let ago = -1;
    for (let k = 0; k < this.filled; k++) {
      const slot = (this.head - 1 - k + this.cap) % this.cap;
      if (this.ringTimes[slot] <= cutoff) {
        ago = slot;
        break;
      }
    }
    const ringAt = this.head * rows;
    let newest = 0;
    for (let r = 0; r < rows; r++) {
      const b = HEADER_FIELDS + r * ROW_FIELDS;
      const hub = this.hubRows[r];
      if (has[hub] !== 1) {
        for (let i = 0; i < ROW_FIELDS; i++) snap[b + i] = 0;
        snap[b + SNAP.OI_OPEN] = NaN;
        snap[b + SNAP.OI_AGO] = NaN;
        this.ring[ringAt + r] = NaN;
        continue;
      }
      const t = hub * N_FIELDS;
      const oi = ticks[t + N.OI];
      const exch = ticks[t + N.EXCH_TIME_MS];
      if (exch > newest) newest = exch;
      const levels = ticks[t + N.DEPTH_LEVELS];
      snap[b + SNAP.HAS] = 1;
      snap[b + SNAP.PRICE] = ticks[t + N.PRICE];
      // Depth levels are [qty, price, orders]: the best bid first, the best ask 15 values on.
      snap[b + SNAP.BID] = levels > 0 ? ticks[t + N.DEPTH + 1] : 0;
      snap[b + SNAP.BID_QTY] = levels > 0 ? ticks[t + N.DEPTH] : 0;
      snap[b + SNAP.ASK] = levels > 0 ? ticks[t + N.DEPTH + 16] : 0;
      snap[b + SNAP.ASK_QTY] = levels > 0 ? ticks[t + N.DEPTH + 15] : 0;
      snap[b + SNAP.EXCH_MS] = exch;
      snap[b + SNAP.OI] = oi;
      snap[b + SNAP.VOLUME] = ticks[t + N.VOLUME];
      snap[b + SNAP.OPEN] = ticks[t + N.OPEN];
      snap[b + SNAP.HIGH] = ticks[t + N.HIGH];
      snap[b + SNAP.LOW] = ticks[t + N.LOW];
      snap[b + SNAP.CLOSE] = ticks[t + N.CLOSE];
      if (this.oiOpen[r] !== this.oiOpen[r] && istDayStart(exch) === day) this.oiOpen[r] = oi;
      snap[b + SNAP.OI_OPEN] = this.oiOpen[r];
      snap[b + SNAP.OI_AGO] = ago < 0 ? NaN : this.ring[ago * rows + r];
      snap[b + 15] = 0;
      this.ring[ringAt + r] = oi;
    }
    this.ringTimes[this.head] = now;
    this.head = (this.head + 1) % this.cap;
    if (this.filled < this.cap) this.filled++;
    snap[SNAP_HEADER.NOW_MS] = now;
    snap[SNAP_HEADER.SEQ] = seq;
    snap[SNAP_HEADER.NEWEST_MS] = newest;
    for (let i = 3; i < HEADER_FIELDS; i++) snap[i] = 0;
  }
}
