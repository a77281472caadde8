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
