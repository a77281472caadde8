/**
 * Order requests as callers send them, read into one shape: Kite's field names, prices still in
 * rupees as given (the checks turn them into paise). Each field's own form is settled here; rules
 * that join fields or need the instrument, the market or the key's state are src/orders/checks.ts's.
 *
 * Two bodies carry the same fields:
 *
 * | route | body                               | numbers                     | unknown fields        |
 * |-------|------------------------------------|-----------------------------|-----------------------|
 * | /kite | application/x-www-form-urlencoded  | digit strings, read as numbers | ignored            |
 * | /api  | JSON with Kite's field names       | JSON numbers only ("65" is refused) | refused, named |
 *
 * Why /kite ignores unknown fields: the official clients send fields of their own in the body
 * (kiteconnectjs copies `variety` and `order_id` from the path into it; bracket-order fields such as
 * `squareoff` ride along when set), and Kite itself ignores extras. Refusing them would break
 * unchanged Kite programs, which is what /kite exists to serve. /api is ours: a misspelt `qty` there
 * is a mistake worth a 400, not a silently missing field.
 *
 * Further readings, each chosen to match what clients actually send:
 * - Forms: an empty value is an absent field (qs, under kiteconnectjs, sends `price=` for a null
 *   price); a field sent twice is refused (which one was meant?). `autoslice` reads true/false in
 *   any case (Python's requests sends `True`) or 1/0.
 * - JSON: `null` is an absent field (clients serialise unset optionals as null).
 * - `price` and `trigger_price` 0 are accepted here: the official clients and many scripts send
 *   `price=0` with MARKET orders, and Kite's order rows show 0 for "no price". The checks read 0 as
 *   absent; a positive price with MARKET is refused there.
 * - Whole paise only: "100.05" is fine, "100.055" is refused here rather than rounded.
 * - `algo_id` is accepted and dropped (Kite's algo registration id; nothing here uses it).
 */
import { z } from 'zod';
import { OrderRejection } from './errors.ts';
import {
  ORDER_TYPES, PLACEABLE_VARIETIES, PRODUCTS, SIDES, VALIDITIES, VARIETIES, rupeesToPaise,
  type OrderType, type Product, type Side, type Validity, type Variety,
} from './model.ts';

/** Kite's exchanges. Which instruments exist is the master's business: an unknown one is refused by the checks. */
export const EXCHANGES = ['NSE', 'BSE', 'NFO', 'BFO', 'CDS', 'BCD', 'MCX'] as const;
export const MAX_QUANTITY = 1_000_000_000;
export const MAX_PRICE_RUPEES = 100_000_000;
export const TAG_MAX = 20;
export const GUID_MAX = 64;
/** Kite's TTL validity: 1 minute to a day. */
export const TTL_MAX_MINUTES = 1440;

const SYMBOL = /^[A-Z0-9&_-]{1,40}$/;
const GUID = /^[A-Za-z0-9_.:-]+$/;
/** Printable ASCII: a tag ends up in logs and order books, a control character has no place there. */
const TAG = /^[\x20-\x7e]+$/;

export interface PlaceRequest {
  variety: Variety;
  exchange: string;
  tradingsymbol: string;
  transaction_type: Side;
  quantity: number;
  product: Product;
  order_type: OrderType;
  /** Rupees, as sent; 0 or absent means none. */
  price?: number;
  trigger_price?: number;
  /** DAY when not sent. */
  validity: Validity;
  /** Minutes, TTL only. */
  validity_ttl?: number;
  disclosed_quantity?: number;
  iceberg_legs?: number;
  iceberg_quantity?: number;
  tag?: string;
  /** 0 none, 1-100 percent, -1 automatic. */
  market_protection?: number;
  autoslice: boolean;
  guid?: string;
}

/** A modification: only what is sent changes. */
export interface ModifyRequest {
  quantity?: number;
  price?: number;
  order_type?: OrderType;
  trigger_price?: number;
  validity?: Validity;
  disclosed_quantity?: number;
  market_protection?: number;
}

// --- fields --------------------------------------------------------------------------------------

type Body = 'form' | 'json';
type Ctx = z.core.$RefinementCtx;

/** Record the refusal; the transform returns this value (zod's NEVER) and stops there. */
function fail(ctx: Ctx, rule: string, message: string): never {
  ctx.addIssue({ code: 'custom', message, params: { rule } });
  return z.NEVER;
}

/** A value quoted for a message, cut short: the message must not carry a megabyte back. */
function shown(v: unknown): string {
  const s = typeof v === 'string' ? JSON.stringify(v) : typeof v === 'object' && v !== null ? (Array.isArray(v) ? 'a list' : 'an object') : String(v);
  return s.length > 40 ? `${s.slice(0, 40)}...` : s;
}

/** A string from a closed list; the message names the list. */
function choice<T extends string>(values: readonly T[]) {
  return z.unknown().transform((v, ctx): T => {
    if (v === undefined) return fail(ctx, 'required', 'is required');
    if (typeof v !== 'string' || !(values as readonly string[]).includes(v)) {
      return fail(ctx, 'enum', `${shown(v)} is not one of ${values.join(', ')}`);
    }
    return v as T;
  });
}

function text(pattern: RegExp, max: number, what: string) {
  return z.unknown().transform((v, ctx): string => {
    if (v === undefined) return fail(ctx, 'required', 'is required');
    if (typeof v !== 'string') return fail(ctx, 'type', `must be a string, not ${shown(v)}`);
    if (v.length > max) return fail(ctx, 'length', `is ${v.length} characters long; at most ${max} are allowed`);
    if (!pattern.test(v)) return fail(ctx, 'format', `${shown(v)} is not ${what}`);
    return v;
  });
}

/**
 * A number as the body carries one: a digit string on forms, a JSON number in JSON. Returns null
 * after recording why not.
 */
function number(body: Body, v: unknown, ctx: Ctx, form: RegExp, formWhat: string): number | null {
  if (v === undefined) return fail(ctx, 'required', 'is required');
  if (body === 'json') {
    if (typeof v === 'string') return fail(ctx, 'type', `must be a JSON number, not the string ${shown(v)}`);
    if (typeof v !== 'number') return fail(ctx, 'type', `must be a JSON number, not ${shown(v)}`);
    if (!Number.isFinite(v)) return fail(ctx, 'type', `must be a finite number, not ${shown(v)}`);
    return v;
  }
  if (typeof v !== 'string' || !form.test(v)) return fail(ctx, 'format', `${shown(v)} is not ${formWhat}`);
  return Number(v);
}

function whole(body: Body, min: number, max: number) {
  return z.unknown().transform((v, ctx): number => {
    const n = number(body, v, ctx, /^-?\d+$/, 'a whole number');
    if (n === null) return z.NEVER;
    if (!Number.isInteger(n)) return fail(ctx, 'whole', `${shown(v)} is not a whole number`);
    if (n < min || n > max) return fail(ctx, 'range', `${shown(v)} is outside ${min}..${max}`);
    return n;
  });
}

/** Rupees, at most two decimals (whole paise), 0 up to MAX_PRICE_RUPEES. */
function rupees(body: Body) {
  return z.unknown().transform((v, ctx): number => {
    const n = number(body, v, ctx, /^-?\d+(\.\d+)?$/, 'a price in rupees (digits, at most 2 decimals)');
    if (n === null) return z.NEVER;
    if (n < 0) return fail(ctx, 'range', `${shown(v)} is negative; prices are rupees from 0`);
    if (n > MAX_PRICE_RUPEES) return fail(ctx, 'range', `${shown(v)} is above ${MAX_PRICE_RUPEES} rupees`);
    // A form's string is read digit by digit, a JSON number with float noise allowed.
    if (Number.isNaN(rupeesToPaise(typeof v === 'string' ? v : n))) {
      return fail(ctx, 'decimals', `${shown(v)} has more than 2 decimals; prices are whole paise, e.g. 100.05`);
    }
    return n;
  });
}

function flag(body: Body) {
  return z.unknown().transform((v, ctx): boolean => {
    if (body === 'json') {
      if (typeof v !== 'boolean') return fail(ctx, 'type', `must be true or false, not ${shown(v)}`);
      return v;
    }
    const s = typeof v === 'string' ? v.toLowerCase() : '';
    if (s === 'true' || s === '1') return true;
    if (s === 'false' || s === '0') return false;
    return fail(ctx, 'format', `${shown(v)} is not true, false, 1 or 0`);
  });
}

/** Kite's variety, refusing the two this service does not place with a message saying so. */
const variety = z.unknown().transform((v, ctx): Variety => {
  if (typeof v !== 'string' || !(VARIETIES as readonly string[]).includes(v)) {
    return fail(ctx, 'enum', `${shown(v)} is not one of ${PLACEABLE_VARIETIES.join(', ')}`);
  }
  if (!PLACEABLE_VARIETIES.includes(v as Variety)) {
    const what = v === 'co' ? 'cover orders (co)' : 'auction orders';
    return fail(ctx, 'variety_unsupported', `${what} are not placed by this service; use ${PLACEABLE_VARIETIES.join(', ')}`);
  }
  return v as Variety;
});

function placeShape(body: Body) {
  return {
    // Absent variety and autoslice are defaulted after parsing (regular, false): zod refuses a
    // value produced for an absent key.
    variety: variety.optional(),
    exchange: choice(EXCHANGES),
    tradingsymbol: text(SYMBOL, 40, "a trading symbol (1-40 of A-Z 0-9 & _ -, as in Kite's instrument master)"),
    transaction_type: choice(SIDES),
    quantity: whole(body, 1, MAX_QUANTITY),
    product: choice(PRODUCTS),
    order_type: choice(ORDER_TYPES),
    price: rupees(body).optional(),
    trigger_price: rupees(body).optional(),
    validity: choice(VALIDITIES).optional(),
    validity_ttl: whole(body, 1, TTL_MAX_MINUTES).optional(),
    disclosed_quantity: whole(body, 0, MAX_QUANTITY).optional(),
    iceberg_legs: whole(body, 1, MAX_QUANTITY).optional(),
    iceberg_quantity: whole(body, 1, MAX_QUANTITY).optional(),
    tag: text(TAG, TAG_MAX, 'printable text').optional(),
    market_protection: whole(body, -1, 100).optional(),
    autoslice: flag(body).optional(),
    guid: text(GUID, GUID_MAX, 'a mark of A-Z a-z 0-9 _ . : -').optional(),
    algo_id: z.unknown().optional(),
  };
}

function modifyShape(body: Body) {
  return {
    quantity: whole(body, 1, MAX_QUANTITY).optional(),
    price: rupees(body).optional(),
    order_type: choice(ORDER_TYPES).optional(),
    trigger_price: rupees(body).optional(),
    validity: choice(VALIDITIES).optional(),
    disclosed_quantity: whole(body, 0, MAX_QUANTITY).optional(),
    market_protection: whole(body, -1, 100).optional(),
  };
}

// Built once: a schema is data, not work per request.
const placeForm = z.object(placeShape('form'));
const placeJson = z.strictObject(placeShape('json'));
const modifyForm = z.object(modifyShape('form'));
const modifyJson = z.strictObject(modifyShape('json'));
const PLACE_FIELDS = Object.keys(placeShape('json'));
const MODIFY_FIELDS = Object.keys(modifyShape('json'));

// --- parsing -------------------------------------------------------------------------------------

interface Issue {
  readonly path: readonly PropertyKey[];
  readonly message: string;
  readonly code?: string;
  readonly keys?: readonly string[];
  readonly params?: Record<string, unknown>;
}

/**
 * The first issue as a refusal naming its field. An unknown field goes first: `qty` sent for
 * `quantity` is better told as "qty is not a field" than as "quantity is required".
 */
function refusal(issues: readonly Issue[], what: string, fields: readonly string[]): OrderRejection {
  const unknown = issues.find((i) => i.code === 'unrecognized_keys' && i.keys !== undefined && i.keys.length > 0);
  if (unknown !== undefined) {
    const f = unknown.keys![0].slice(0, 40);
    return new OrderRejection('input', f, 'unknown_field', `${f}: not a field of ${what}; the fields are ${fields.join(', ')}`);
  }
  const issue = issues[0];
  if (issue.path.length === 0) return new OrderRejection('input', 'body', 'type', `body: ${what} is a JSON object with Kite's field names (${fields.join(', ')})`);
  const field = String(issue.path[0]);
  const rule = typeof issue.params?.rule === 'string' ? issue.params.rule : 'format';
  return new OrderRejection('input', field, rule, `${field}: ${issue.message}`);
}

/** A form as a plain object: empty values dropped, a known field sent twice refused. */
function formObject(body: URLSearchParams, fields: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const k of fields) {
    const values = body.getAll(k).filter((v) => v !== '');
    if (values.length > 1) throw new OrderRejection('input', k, 'repeated', `${k}: sent ${values.length} times; send it once`);
    if (values.length === 1) out[k] = values[0];
  }
  return out;
}

/** A JSON object with its null fields dropped; anything else is left for the schema to refuse. */
function withoutNulls(body: unknown): unknown {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return body;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(body)) if (v !== null) out[k] = v;
  return out;
}

type PlaceParsed = z.output<typeof placeJson>;
type ModifyParsed = z.output<typeof modifyJson>;

function toPlace(p: PlaceParsed): PlaceRequest {
  return {
    variety: p.variety ?? 'regular',
    exchange: p.exchange,
    tradingsymbol: p.tradingsymbol,
    transaction_type: p.transaction_type,
    quantity: p.quantity,
    product: p.product,
    order_type: p.order_type,
    price: p.price,
    trigger_price: p.trigger_price,
    validity: p.validity ?? 'DAY',
    validity_ttl: p.validity_ttl,
    disclosed_quantity: p.disclosed_quantity,
    iceberg_legs: p.iceberg_legs,
    iceberg_quantity: p.iceberg_quantity,
    tag: p.tag,
    market_protection: p.market_protection,
    autoslice: p.autoslice ?? false,
    guid: p.guid,
  };
}

function toModify(p: ModifyParsed): ModifyRequest {
  return {
    quantity: p.quantity,
    price: p.price,
    order_type: p.order_type,
    trigger_price: p.trigger_price,
    validity: p.validity,
    disclosed_quantity: p.disclosed_quantity,
    market_protection: p.market_protection,
  };
}

/** A place request from /kite: `variety` from the path (a `variety` in the body is ignored), fields from the form. */
export function parsePlaceForm(varietyPath: string, body: URLSearchParams): PlaceRequest {
  const fields = formObject(body, PLACE_FIELDS.filter((f) => f !== 'variety'));
  const r = placeForm.safeParse({ ...fields, variety: varietyPath });
  if (!r.success) throw refusal(r.error.issues, 'a place request', PLACE_FIELDS);
  return toPlace(r.data);
}

/** A place request from /api: a JSON object with Kite's field names, `variety` inside (regular when absent). */
export function parsePlaceJson(body: unknown): PlaceRequest {
  const r = placeJson.safeParse(withoutNulls(body));
  if (!r.success) throw refusal(r.error.issues, 'a place request', PLACE_FIELDS);
  return toPlace(r.data);
}

export function parseModifyForm(body: URLSearchParams): ModifyRequest {
  const r = modifyForm.safeParse(formObject(body, MODIFY_FIELDS));
  if (!r.success) throw refusal(r.error.issues, 'a modify request', MODIFY_FIELDS);
  return toModify(r.data);
}

export function parseModifyJson(body: unknown): ModifyRequest {
  const r = modifyJson.safeParse(withoutNulls(body));
  if (!r.success) throw refusal(r.error.issues, 'a modify request', MODIFY_FIELDS);
  return toModify(r.data);
}
