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

/**
 * One connection's subscriptions. The frame builder (frames.ts) reads `modes` and the owed list
 * directly: they are its per-packet inputs.
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

  /**
   * @param limit rows this connection may follow at most (Kite: 3000)
   * @param followers the simulator's union, kept in step with every add and remove
   */
  constructor(
    size: number,
    readonly limit: number,
    private readonly followers: Followers,
  ) {
    this.modes = new Uint8Array(size);
    this.owed = new Int32Array(size);
    this.owedFlag = new Uint8Array(size);
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
    this.count--;
    this.followers.unfollow(row);
  }

  /** Sets a followed row's mode (a ModeCode); a change owes a snapshot in the new mode. Rows not followed are ignored. */
  setMode(row: number, code: number): void {
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
