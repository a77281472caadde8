/**
 * Who follows what, in which mode: one `Subscriptions` per connection (its mode per instrument,
 * Kite's limit of instruments per connection, the snapshots it is owed) and one `Followers` for
 * the simulator (what anyone follows: the list the market draws its trades from).
 *
 * Instruments go by row, their index in the market's instruments (`Market.indexOf`), not by
 * token: state lives in typed arrays indexed by row, sized once, and every add and remove is O(1).
 *
 * Order matters for reproducibility: `Followers.rows` is in the order of follow and unfollow
 * calls, and the market draws from it by position, so the same calls give the same trades.
 */
import { ModeCode } from './market.ts';

/** The rows anyone follows: a dense list with each row's position, so both ways are O(1). */
export class Followers {
  /** The followed rows are `rows[0..count)`: `Market.advance`'s `active`. */
  readonly rows: Int32Array;
  count = 0;
  /** Connections following each row. */
  private readonly followers: Uint32Array;
  /** Position of each row in `rows`, -1 when nobody follows it. */
  private readonly pos: Int32Array;

  constructor(size: number) {
    this.rows = new Int32Array(size);
    this.followers = new Uint32Array(size);
    this.pos = new Int32Array(size).fill(-1);
  }

  follow(row: number): void {
    if (this.followers[row]++ === 0) {
      this.pos[row] = this.count;
      this.rows[this.count++] = row;
    }
  }

  /** Only for a row `follow` was called for: the counts are not checked. */
  unfollow(row: number): void {
    if (--this.followers[row] === 0) {
      // The last row takes the leaver's place.
      const p = this.pos[row];
      const last = this.rows[--this.count];
      this.rows[p] = last;
      this.pos[last] = p;
      this.pos[row] = -1;
    }
  }

  /** How many connections follow `row`. */
  of(row: number): number {
    return this.followers[row];
  }
}

/** When a mode message takes effect (SimulatorOptions.modeDelayMs). */
export interface ModeDelay {
  /** Milliseconds from the mode message until the new mode is in effect; 0 = at once. */
  readonly ms: number;
  /** Monotonic milliseconds (performance.now in the server). */
  readonly now: () => number;
}

const AT_ONCE: ModeDelay = { ms: 0, now: () => 0 };

/**
 * One connection's subscriptions. The frame builder (frames.ts) reads `modes` and the owed list
 * directly: they are its per-packet inputs.
 *
 * A mode message takes effect after `delay.ms` (Kite's own lag): until then the row keeps the mode
 * it has, quote after a subscribe, and its packets go out in it. The change is pending, and
 * `applyDueModes` (once per batch) makes it the row's mode, owing a snapshot in it.
 */
export class Subscriptions {
  /** Mode code per row (ModeCode); 0 = not followed. */
  readonly modes: Uint8Array;
  /** Rows followed. */
  count = 0;
  /** Rows owed a snapshot (new subscription, new mode, or skipped while behind): `owed[0..owedCount)`. */
  readonly owed: Int32Array;
  /** Per row: 0 = not owed; 1 = in `owed`; 2 = in `owed` but already sent in this round (frames.ts). */
  readonly owedFlag: Uint8Array;
  owedCount = 0;
  /** Per row, the mode a message asked for that is not in effect yet (ModeCode); 0 = none. */
  private readonly pendingMode: Uint8Array;
  /** Per row with a pending mode, when it takes effect (delay.now's milliseconds). */
  private readonly pendingAt: Float64Array;
  /** Rows with a pending mode: `pending[0..pendingCount)`, each once (pendingListed). */
  private readonly pending: Int32Array;
  private readonly pendingListed: Uint8Array;
  private pendingCount = 0;

  /**
   * @param limit rows this connection may follow at most (Kite: 3000)
   * @param followers the simulator's union, kept in step with every add and remove
   * @param delay when a mode message takes effect; default at once
   */
  constructor(
    size: number,
    readonly limit: number,
    private readonly followers: Followers,
    private readonly delay: ModeDelay = AT_ONCE,
  ) {
    this.modes = new Uint8Array(size);
    this.owed = new Int32Array(size);
    this.owedFlag = new Uint8Array(size);
    this.pendingMode = new Uint8Array(size);
    this.pendingAt = new Float64Array(size);
    this.pending = new Int32Array(size);
    this.pendingListed = new Uint8Array(size);
  }

  /**
   * Follows `row` in quote mode (Kite's default for a new token) and owes it a snapshot. A row
   * already followed keeps its mode. False when the row is new and the connection is at its limit.
   */
  add(row: number): boolean {
    if (this.modes[row] !== 0) return true;
    if (this.count >= this.limit) return false;
    this.modes[row] = ModeCode.QUOTE;
    this.count++;
    this.followers.follow(row);
    this.owe(row);
    return true;
  }

  /** Stops following `row`; a row not followed is ignored. A snapshot still owed lapses unsent. */
  remove(row: number): void {
    if (this.modes[row] === 0) return;
    this.modes[row] = 0;
    this.pendingMode[row] = 0;
    this.count--;
    this.followers.unfollow(row);
  }

  /**
   * A mode message for a followed row (a ModeCode): in effect at once, or after `delay.ms` (the
   * class header). A change owes a snapshot in the new mode. Rows not followed are ignored.
   */
  setMode(row: number, code: number): void {
    if (this.modes[row] === 0) return;
    if (this.delay.ms === 0) {
      this.applyMode(row, code);
      return;
    }
    if (this.pendingListed[row] === 0) {
      this.pendingListed[row] = 1;
      this.pending[this.pendingCount++] = row;
    }
    this.pendingMode[row] = code;
    this.pendingAt[row] = this.delay.now() + this.delay.ms;
  }

  /** Puts in effect the pending modes that are due at `now` (delay.now's milliseconds). */
  applyDueModes(now: number): void {
    let kept = 0;
    for (let p = 0; p < this.pendingCount; p++) {
      const row = this.pending[p];
      const code = this.pendingMode[row];
      if (code === 0 || now >= this.pendingAt[row]) {
        // Due, or unfollowed meanwhile (remove cleared the mode).
        this.pendingListed[row] = 0;
        this.pendingMode[row] = 0;
        if (code !== 0) this.applyMode(row, code);
      } else {
        this.pending[kept++] = row;
      }
    }
    this.pendingCount = kept;
  }

  /** Rows whose mode message is not in effect yet. */
  pendingModes(): number {
    let n = 0;
    for (let p = 0; p < this.pendingCount; p++) if (this.pendingMode[this.pending[p]] !== 0) n++;
    return n;
  }

  private applyMode(row: number, code: number): void {
    const m = this.modes[row];
    if (m === 0 || m === code) return;
    this.modes[row] = code;
    this.owe(row);
  }

  /** Stops following everything (the connection closed), in row order. */
  clear(): void {
    const modes = this.modes;
    for (let i = 0; i < modes.length && this.count > 0; i++) {
      if (modes[i] !== 0) {
        modes[i] = 0;
        this.pendingMode[i] = 0;
        this.count--;
        this.followers.unfollow(i);
      }
    }
  }

  /** Owes `row` a snapshot in the next frame, once however often it is owed before then. */
  owe(row: number): void {
    if (this.owedFlag[row] === 0) {
      this.owedFlag[row] = 1;
      this.owed[this.owedCount++] = row;
    }
  }
}
