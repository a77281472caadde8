/**
 * Why an order request was refused: the field at fault, the rule it broke, and which of Kite's
 * exception types the refusal is, so the gateway can answer as Kite would without knowing the rules.
 *
 * | kind       | Kite's error_type   | HTTP | used for                                               |
 * |------------|---------------------|------|--------------------------------------------------------|
 * | input      | InputException      | 400  | a malformed request, or one the instrument's rules refuse |
 * | margin     | MarginException     | 400  | required margin above the funds available              |
 * | order      | OrderException      | 400  | per-key risk limits; an order that can no longer change |
 * | permission | PermissionException | 403  | a key that may not do this                             |
 * | token      | TokenException      | 403  | Kite refused the live broker's access token: renew it  |
 *
 * Messages say what to send instead ("quantity: 50 is not a multiple of the lot size 65 for
 * NIFTY26JAN24000CE; send 65, 130, ..."); where Kite documents a phrasing, the message starts
 * with Kite's sentence, so a client matching on it keeps working. Callers switch on `rule`, never
 * on the text.
 */
import { AppError } from '../core/errors.ts';

export type RejectionKind = 'input' | 'margin' | 'order' | 'permission' | 'token';

export class OrderRejection extends AppError {
  constructor(
    readonly kind: RejectionKind,
    /** The request field at fault (Kite's name: `quantity`, `trigger_price`), or `order` for the order as a whole. */
    readonly field: string,
    /** Stable name of the rule broken: `lot_multiple`, `tick`, `price_band`, `required`, ... */
    readonly rule: string,
    message: string,
  ) {
    super('ORDER_REJECTED', message, { field, rule, kind });
    this.name = 'OrderRejection';
  }

  /**
   * The same refusal for the `i`th order of a list (a basket, a margin query): the field becomes
   * `orders[i].quantity` and the message says which order it was.
   */
  inLeg(i: number): OrderRejection {
    const at = `orders[${i}]`;
    const msg = this.message.startsWith(`${this.field}:`) ? `${at}.${this.message}` : `${at}: ${this.message}`;
    return new OrderRejection(this.kind, `${at}.${this.field}`, this.rule, msg);
  }
}

/**
 * The state the gateways share (Redis: the account's order budget, per-key risk counters;
 * PostgreSQL: Idempotency-Key claims) could not be reached. Nothing was sent to the broker: the
 * order path refuses rather than risk passing Kite's limits or placing an order twice. The gateway
 * answers 503: retry in a moment.
 */
export class SharedStateUnavailable extends AppError {
  constructor(readonly store: 'Redis' | 'PostgreSQL', what: string, cause: string) {
    super('ORDER_SHARED_STATE_UNAVAILABLE',
      `${what}: ${store} could not be reached (${cause.slice(0, 200)}); no order was sent. Retry in a moment; if it persists, check that ${store} is up and ${store === 'Redis' ? 'REDIS_URL' : 'DATABASE_URL'} points at it`,
      { store, what, cause });
    this.name = 'SharedStateUnavailable';
  }
}

/** The same Idempotency-Key came with a different body: the gateway answers 409. */
export class IdempotencyConflict extends AppError {
  constructor(
    idemKey: string,
    message = `Idempotency-Key "${idemKey.slice(0, 64)}" was used with a different request body; use a new key for a new order`,
    code = 'IDEMPOTENCY_CONFLICT',
  ) {
    super(code, message, { idemKey });
    this.name = 'IdempotencyConflict';
  }
}

/**
 * The first request with this Idempotency-Key (on this gateway or another) has not answered within
 * the wait: still working, or its gateway stopped mid-request. A conflict too (409, as the gateway
 * answers IdempotencyConflict): the client retries the same request later, never with a new key
 * before it has looked at its orders.
 */
export class IdempotencyInProgress extends IdempotencyConflict {
  constructor(idemKey: string, readonly claimedMs: number, readonly claimedBy: string | null) {
    super(idemKey,
      `Idempotency-Key "${idemKey.slice(0, 64)}": the first request with this key (since ${new Date(claimedMs).toISOString()}) has not answered yet; ` +
        'send the same request again in a few seconds to get its answer. If it never answers, the gateway working it stopped: ' +
        'look for the order in your order book before placing it again under a new key',
      'IDEMPOTENCY_IN_PROGRESS');
    this.name = 'IdempotencyInProgress';
  }
}
