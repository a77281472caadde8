/**
 * Fault switches of the simulator's order API, for tests of a client's failure handling. Set
 * through `Simulator.orderFaults()` or `POST /sim/order-faults` (a JSON object of the same
 * fields); read back the same ways. Counts are consumed by the requests they hit; `slowMs` and a
 * `true` tokenExpired stay until set back.
 *
 * | switch            | hits                                    | what the client sees                               |
 * |-------------------|-----------------------------------------|----------------------------------------------------|
 * | dropPlaceResponse | the next N placements                   | the order is placed and works, but the connection  |
 * |                   |                                         | closes without an answer                           |
 * | slowMs            | every order API answer                  | the answer that long after the work is done        |
 * | rateLimit         | the next N place / modify / cancel      | HTTP 429 NetworkException "Too many requests";     |
 * |                   |                                         | nothing is done                                    |
 * | tokenExpired      | order API requests (N, or all if true)  | HTTP 403 TokenException; nothing is done           |
 * | rejectNext        | the next N orders reaching the exchange | the order answers with its id, then REJECTED with  |
 * |                   |                                         | `rejectMessage`                                    |
 */

export interface OrderFaults {
  /** Placements to accept and carry out but leave unanswered (the connection is closed). */
  dropPlaceResponse?: number;
  /** Delay of every order API answer, ms; 0 = none. */
  slowMs?: number;
  /** Place / modify / cancel requests to refuse with 429 NetworkException. */
  rateLimit?: number;
  /** Order API requests to refuse with 403 TokenException: a count, or true for all until false. */
  tokenExpired?: boolean | number;
  /** Orders the exchange rejects on arrival. */
  rejectNext?: number;
  /** status_message of those rejections. */
  rejectMessage?: string;
}

export const DEFAULT_REJECT_MESSAGE = 'Rejected by the exchange (simulator fault rejectNext)';

const COUNTS = ['dropPlaceResponse', 'rateLimit', 'rejectNext'] as const;
const MAX_SLOW_MS = 600_000;

/** The switches in force. Each `take*` consumes one hit and says whether the fault applies. */
export class FaultState {
  dropPlaceResponse = 0;
  slowMs = 0;
  rateLimit = 0;
  /** -1: every request until cleared; else requests left. */
  tokenExpired = 0;
  rejectNext = 0;
  rejectMessage = DEFAULT_REJECT_MESSAGE;

  /**
   * Sets the fields given (others stay); checks them all first, so a bad one changes nothing.
   * Throws a TypeError naming a field that is not one of OrderFaults's, or a bad value.
   */
  set(f: OrderFaults): OrderFaults {
    if (f === null || typeof f !== 'object' || Array.isArray(f)) throw new TypeError('orderFaults: give an object of switches, e.g. { rateLimit: 2 }');
    const known = new Set<string>([...COUNTS, 'slowMs', 'tokenExpired', 'rejectMessage']);
    for (const k of Object.keys(f)) {
      if (!known.has(k)) throw new TypeError(`orderFaults: unknown switch "${k}"; the switches are ${[...known].join(', ')}`);
    }
    for (const k of COUNTS) {
      const v = f[k];
      if (v !== undefined && !(Number.isSafeInteger(v) && v >= 0)) throw new TypeError(`orderFaults: ${k} must be a whole number >= 0 (requests), got ${String(v)}`);
    }
    if (f.slowMs !== undefined && !(Number.isSafeInteger(f.slowMs) && f.slowMs >= 0 && f.slowMs <= MAX_SLOW_MS)) {
      throw new TypeError(`orderFaults: slowMs must be a whole number of ms within 0..${MAX_SLOW_MS}, got ${String(f.slowMs)}`);
    }
    const t = f.tokenExpired;
    if (t !== undefined && typeof t !== 'boolean' && !(Number.isSafeInteger(t) && t >= 0)) {
      throw new TypeError(`orderFaults: tokenExpired must be true, false or a whole number of requests, got ${String(t)}`);
    }
    if (f.rejectMessage !== undefined && (typeof f.rejectMessage !== 'string' || f.rejectMessage === '')) {
      throw new TypeError('orderFaults: rejectMessage must be a non-empty string');
    }
    for (const k of COUNTS) if (f[k] !== undefined) this[k] = f[k];
    if (f.slowMs !== undefined) this.slowMs = f.slowMs;
    if (t !== undefined) this.tokenExpired = t === true ? -1 : t === false ? 0 : t;
    if (f.rejectMessage !== undefined) this.rejectMessage = f.rejectMessage;
    return this.get();
  }

  get(): OrderFaults {
    return {
      dropPlaceResponse: this.dropPlaceResponse,
      slowMs: this.slowMs,
      rateLimit: this.rateLimit,
      tokenExpired: this.tokenExpired < 0 ? true : this.tokenExpired,
      rejectNext: this.rejectNext,
      rejectMessage: this.rejectMessage,
    };
  }

  takeDrop(): boolean {
    if (this.dropPlaceResponse === 0) return false;
    this.dropPlaceResponse--;
    return true;
  }

  takeRateLimit(): boolean {
    if (this.rateLimit === 0) return false;
    this.rateLimit--;
    return true;
  }

  takeTokenExpired(): boolean {
    if (this.tokenExpired === 0) return false;
    if (this.tokenExpired > 0) this.tokenExpired--;
    return true;
  }

  /** The rejection message when the next order is to be rejected, else null. */
  takeReject(): string | null {
    if (this.rejectNext === 0) return null;
    this.rejectNext--;
    return this.rejectMessage;
  }
}
