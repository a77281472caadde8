/**
 * What the live broker needs of Kite, and how it reads Kite's answers: the client's methods it
 * calls (the official `KiteConnect` has them all), the sorting of Kite's errors into what to do
 * next, and Kite's order row read into the few fields that move an order.
 *
 * The official client rejects with Kite's error body (`{ error_type, message }`) and drops the
 * HTTP status; with `{ error_type: 'NetworkException', message: 'No response from server ...' }`
 * when no answer came (a timeout, a reset connection); with the status text when the answer was
 * not Kite's JSON. So the sorting reads `error_type` and, for a 429, the message:
 *
 * | error_type                          | kind      | meaning for a request that changes an order    |
 * |-------------------------------------|-----------|------------------------------------------------|
 * | TokenException                      | token     | refused: the access token is wrong or expired  |
 * | InputException, OrderException,     | refused   | refused, as Kite phrased it; nothing was done  |
 * | MarginException, PermissionException|           |                                                |
 * | NetworkException "Too many requests"| rate      | refused by Kite's rate limit; nothing was done |
 * | NetworkException (other), General-, | lost      | unknown: it may or may not have been done      |
 * | DataException, anything else        |           | (look before doing it again)                   |
 */
import { rupeesToPaise } from '../model.ts';

/** The official client's methods the live broker calls (Kite's answers, as the client gives them). */
export interface KiteClient {
  placeOrder(variety: string, params: Record<string, string | number>): Promise<unknown>;
  modifyOrder(variety: string, orderId: string, params: Record<string, string | number>): Promise<unknown>;
  cancelOrder(variety: string, orderId: string): Promise<unknown>;
  getOrders(): Promise<Record<string, unknown>[]>;
  getOrderHistory(orderId: string): Promise<Record<string, unknown>[]>;
  getOrderTrades(orderId: string): Promise<Record<string, unknown>[]>;
  getTrades(): Promise<Record<string, unknown>[]>;
  getPositions(): Promise<{ net: Record<string, unknown>[]; day: Record<string, unknown>[] }>;
  getMargins(): Promise<Record<string, unknown>>;
  setAccessToken(token: string): void;
}

export type AnswerKind = 'token' | 'refused' | 'rate' | 'lost';

export interface KiteFailure {
  kind: AnswerKind;
  /** Kite's error_type ('' when the failure was not Kite's). */
  errorType: string;
  /** Kite's message as phrased. */
  message: string;
}

const REFUSALS = new Set(['InputException', 'OrderException', 'MarginException', 'PermissionException']);

/** Sorts a rejection of the official client (or anything thrown on the way) by what to do next. */
export function classify(e: unknown): KiteFailure {
  if (e === null || typeof e !== 'object') return { kind: 'lost', errorType: '', message: String(e) };
  const o = e as { error_type?: unknown; message?: unknown };
  const errorType = typeof o.error_type === 'string' ? o.error_type : '';
  const message = typeof o.message === 'string' && o.message !== '' ? o.message : `Kite failed without a message (${errorType || 'no error_type'})`;
  if (errorType === 'TokenException') return { kind: 'token', errorType, message };
  if (REFUSALS.has(errorType)) return { kind: 'refused', errorType, message };
  // Kite's 429 body is a NetworkException "Too many requests"; without a JSON body the client gives
  // the status text "Too Many Requests". Either way the request was refused before any work.
  if (errorType === 'NetworkException' && /too many requests/i.test(message)) return { kind: 'rate', errorType, message };
  return { kind: 'lost', errorType, message };
}

/** The message of an order refused because Kite no longer takes the access token. */
export function tokenMessage(kiteMessage: string): string {
  return `Kite refused the access token (${kiteMessage}): it expires daily at 06:00 IST. Renew KITE_ACCESS_TOKEN (log in to Kite again) and restart; live orders are refused until then.`;
}

/** Kite's order id in a place / modify / cancel answer, or null when the answer carries none. */
export function orderIdOfAnswer(a: unknown): string | null {
  if (a === null || typeof a !== 'object') return null;
  const id = (a as { order_id?: unknown }).order_id;
  return typeof id === 'string' && id !== '' ? id : typeof id === 'number' ? String(id) : null;
}

/** The fields of Kite's order row (order book, history, ticker update, postback) that move an order. */
export interface KiteRow {
  orderId: string;
  status: string;
  statusMessage: string | null;
  exchangeOrderId: string | null;
  orderType: string;
  filled: number;
  /** average_price as Kite sent it (rupees): read exactly by `filledValue`. */
  averagePrice: number | string;
  tag: unknown;
  quantity: number;
  pricePaise: number;
  triggerPaise: number;
}

/** Reads Kite's order row; null when it has no order_id or status (not an order row). */
export function readRow(row: Record<string, unknown>): KiteRow | null {
  const id = row.order_id;
  const orderId = typeof id === 'string' ? id : typeof id === 'number' ? String(id) : '';
  const status = typeof row.status === 'string' ? row.status : '';
  if (orderId === '' || status === '') return null;
  const x = row.exchange_order_id;
  const avg = row.average_price;
  return {
    orderId,
    status,
    statusMessage: typeof row.status_message === 'string' && row.status_message !== '' ? row.status_message : null,
    exchangeOrderId: typeof x === 'string' && x !== '' ? x : typeof x === 'number' ? String(x) : null,
    orderType: typeof row.order_type === 'string' ? row.order_type : '',
    filled: wholeNumber(row.filled_quantity),
    averagePrice: typeof avg === 'number' || typeof avg === 'string' ? avg : 0,
    tag: row.tag,
    quantity: wholeNumber(row.quantity),
    pricePaise: paiseOf(row.price),
    triggerPaise: paiseOf(row.trigger_price),
  };
}

function wholeNumber(v: unknown): number {
  const n = typeof v === 'string' ? Number(v) : v;
  return typeof n === 'number' && Number.isSafeInteger(n) && n >= 0 ? n : 0;
}

/** Kite's rupees (a JSON number or decimal text) as paise; a value off the paisa is rounded to it. */
export function paiseOf(v: unknown): number {
  if (typeof v !== 'number' && typeof v !== 'string') return 0;
  const p = rupeesToPaise(v);
  if (!Number.isNaN(p)) return p;
  const n = Number(v);
  return Number.isFinite(n) ? Math.round(n * 100) : 0;
}

/**
 * Rupees as an exact fraction `num / 10^scale` (BigInt), from Kite's JSON number or text: the
 * decimal digits as written, never through float arithmetic. Null when it is not a plain decimal.
 */
export function exactRupees(v: number | string): { num: bigint; scale: bigint } | null {
  let s = typeof v === 'number' ? (Number.isFinite(v) ? String(v) : '') : v.trim();
  if (/e/i.test(s)) s = Number(s).toFixed(12); // 1e-7 and the like: far below a paisa
  const m = /^(-?)(\d+)(?:\.(\d*))?$/.exec(s);
  if (m === null) return null;
  const frac = (m[3] ?? '').slice(0, 18);
  const num = BigInt(m[2] + frac) * (m[1] === '-' ? -1n : 1n);
  return { num, scale: 10n ** BigInt(frac.length) };
}

/** Paise as Kite's rupee text, exactly ("1234.05"). */
export function rupeesText(paise: number): string {
  const a = Math.abs(paise);
  return `${paise < 0 ? '-' : ''}${Math.floor(a / 100)}.${String(a % 100).padStart(2, '0')}`;
}
