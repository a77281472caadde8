/**
 * Order routes on both APIs, over the one order service (src/orders/service.ts).
 *
 * Kite-compatible, under /kite (the official KiteConnect with `root` at /kite works unchanged):
 *
 * | route                                   | answer (`{status:'success', data}`)                      |
 * |-----------------------------------------|----------------------------------------------------------|
 * | POST /kite/orders/{variety}             | `{order_id}`; autoslice: `{order_id, children:[...]}`    |
 * | PUT /kite/orders/{variety}/{order_id}   | `{order_id}`                                             |
 * | DELETE /kite/orders/{variety}/{order_id}| `{order_id}`                                             |
 * | GET /kite/orders                        | the key's orders of the day (IST) and any still working  |
 * | GET /kite/orders/{order_id}             | its history: one row per status                          |
 * | GET /kite/trades, /kite/orders/{id}/trades | trades                                                |
 * | GET /kite/portfolio/positions           | `{net, day}`                                             |
 * | GET /kite/portfolio/holdings            | CNC quantities carried from earlier days                 |
 * | GET /kite/user/margins[/{segment}]      | the paper account's funds                                |
 * | POST /kite/margins/orders               | the margin our checks require per order (JSON body)      |
 *
 * Bodies are form-encoded, as the official clients send them. Errors are Kite's envelope with
 * Kite's exception names: InputException 400 (a check failed: the message names the field and the
 * rule), MarginException 400 (funds), OrderException 400 (an order that cannot be modified or
 * cancelled), PermissionException 403, TokenException 403, NetworkException 429 (rate limit, with
 * Retry-After). An unknown order id, or another key's, is an InputException "not found".
 *
 * JSON, under /api (docs/openapi.yaml): the same service with Kite's field names in JSON bodies,
 * `Idempotency-Key`, baskets and closing positions. Errors `{error, message, field}`.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { z } from 'zod';
import { OrderRejection, SharedStateUnavailable } from '../orders/errors.ts';
import { FINAL_STATUSES, kiteOrderRow, paiseToRupees, type Order } from '../orders/model.ts';
import { IST_OFFSET_MS, istDayStart } from '../core/ist.ts';
import { parseModifyForm, parseModifyJson, parsePlaceForm, parsePlaceJson, type PlaceRequest } from '../orders/request.ts';
import { IdempotencyConflict, OrderNotFound, RateLimited, type OrderService, type Remembered } from '../orders/service.ts';
import { HttpError, jsonOf, queryObject, validate, type HttpReply, type HttpRequest, type Router } from './http.ts';

const KITE_TYPE: Record<OrderRejection['kind'], string> = {
  input: 'InputException', margin: 'MarginException', order: 'OrderException', permission: 'PermissionException', token: 'TokenException',
};

/** An order-path error as the HTTP answer it becomes on either API. */
export function orderHttpError(e: unknown): unknown {
  if (e instanceof OrderRejection) {
    const h = new HttpError(e.kind === 'permission' || e.kind === 'token' ? 403 : 400, e.rule, e.message, e.field);
    h.kiteType = KITE_TYPE[e.kind];
    return h;
  }
  if (e instanceof RateLimited) {
    const secs = Math.max(1, Math.ceil(e.retryAfterMs / 1000));
    const h = new HttpError(429, 'rate_limited', e.message, undefined, { 'Retry-After': String(secs) });
    h.kiteType = 'NetworkException';
    return h;
  }
  if (e instanceof OrderNotFound) {
    const h = new HttpError(404, 'order_not_found', e.message, 'order_id');
    // Kite answers an unknown order with an InputException; the JSON API with a 404.
    h.kiteStatus = 400;
    h.kiteType = 'InputException';
    return h;
  }
  if (e instanceof IdempotencyConflict) return new HttpError(409, 'idempotency_conflict', e.message, 'Idempotency-Key');
  if (e instanceof SharedStateUnavailable) {
    // ROLE=gateway: the account's shared limits or Idempotency-Keys cannot be read, so the order
    // was not sent (placing it unchecked could exceed the account's limits or place it twice).
    const h = new HttpError(503, 'shared_state_unavailable', e.message, undefined, { 'Retry-After': '1' });
    h.kiteType = 'NetworkException';
    return h;
  }
  return e;
}

async function guarded<T>(fn: () => T | Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    throw orderHttpError(e);
  }
}

function formOf(req: HttpRequest): URLSearchParams {
  const type = req.headers['content-type'] ?? '';
  const text = req.body?.toString('utf8') ?? '';
  if (type.includes('application/json')) {
    // Some clients post JSON to Kite's form routes: read it as the same fields.
    let obj: unknown;
    try {
      obj = JSON.parse(text);
    } catch {
      throw new HttpError(400, 'invalid_body', 'body: not valid JSON', 'body');
    }
    if (obj === null || typeof obj !== 'object' || Array.isArray(obj)) throw new HttpError(400, 'invalid_body', 'body: expected an object of order fields', 'body');
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(obj)) q.append(k, String(v));
    return q;
  }
  return new URLSearchParams(text);
}

const ok = (data: unknown): HttpReply => ({ body: { status: 'success', data } });

export interface OrderRouteDeps {
  /** The order service, or the one a request is for (a replay session's: src/replay/session.ts). */
  orders: OrderService | ((r: HttpRequest) => OrderService);
  /** KITE_API_SECRET: checks postbacks' checksums. null: postbacks are refused (503). */
  postbackSecret?: string | null;
}

/** Kite's `/user/margins` equity segment, from the paper account. */
function equityMargins(s: OrderService, key: string) {
  const f = s.funds(key);
  const r = paiseToRupees;
  return {
    enabled: true,
    net: r(f.availablePaise),
    available: { adhoc_margin: 0, cash: r(f.capitalPaise + f.realisedPaise), opening_balance: r(f.capitalPaise), live_balance: r(f.availablePaise), collateral: 0, intraday_payin: 0 },
    utilised: {
      debits: r(f.usedPaise), exposure: 0, m2m_realised: r(f.realisedPaise), m2m_unrealised: r(f.unrealisedPaise), option_premium: 0,
      payout: 0, span: 0, holding_sales: 0, turnover: 0, liquid_collateral: 0, stock_collateral: 0, delivery: 0,
    },
  };
}

function marginRow(s: OrderService, key: string, req: PlaceRequest) {
  const c = s.marginFor(key, req);
  const total = paiseToRupees(c.marginPaise);
  return {
    type: 'equity', tradingsymbol: c.instrument.tradingsymbol, exchange: c.instrument.exchange,
    // SPAN is not available here: the whole requirement is reported under `var` (CNC: full value)
    // or `exposure` (a fraction of the value for MIS/NRML), as checks.ts computes it.
    span: 0, exposure: c.req.product === 'CNC' ? 0 : total, option_premium: 0, additional: 0, bo: 0, cash: 0,
    var: c.req.product === 'CNC' ? total : 0, pnl: { realised: 0, unrealised: 0 }, leverage: 1,
    charges: { transaction_tax: 0, transaction_tax_type: '', exchange_turnover_charge: 0, sebi_turnover_charge: 0, brokerage: 0, stamp_duty: 0, gst: { igst: 0, cgst: 0, sgst: 0, total: 0 }, total: 0 },
    total,
  };
}

/**
 * Where a set of order routes is mounted: the live ones at /kite and /api; a replay session's at
 * /kite/replay/{id} and /api/replays/{id}, with the session's own order service (its paper orders
 * fill on replayed ticks and are kept apart from live ones: src/replay/session.ts).
 */
export interface OrderMount {
  prefix: string;
}

function serviceOf(deps: OrderRouteDeps): (r: HttpRequest) => OrderService {
  const o = deps.orders;
  return typeof o === 'function' ? o : () => o;
}

export function addKiteOrderRoutes(router: Router, deps: OrderRouteDeps, mount: OrderMount = { prefix: '/kite' }): void {
  const svc = serviceOf(deps);
  const P = mount.prefix;
  const k = { auth: 'kite', style: 'kite' } as const;
  const who = (r: HttpRequest) => r.principal!.name;
  router
    .add({ ...k, method: 'POST', path: `${P}/orders/:variety`, handler: (r) => guarded(async () => ok(await svc(r).place(who(r), parsePlaceForm(r.params.variety, formOf(r))))) })
    .add({ ...k, method: 'PUT', path: `${P}/orders/:variety/:order_id`, handler: (r) => guarded(async () => ok(await svc(r).modify(who(r), r.params.order_id, parseModifyForm(formOf(r))))) })
    .add({ ...k, method: 'DELETE', path: `${P}/orders/:variety/:order_id`, handler: (r) => guarded(async () => ok(await svc(r).cancel(who(r), r.params.order_id))) })
    // Kite's order and trade books are the day's: today's (IST) orders and any still working.
    .add({
      ...k, method: 'GET', path: `${P}/orders`, handler: (r) => {
        const today = istDayStart(svc(r).clock());
        return ok(svc(r).orders(who(r)).filter((o) => o.createdMs >= today || !FINAL_STATUSES.has(o.status)).map((o) => kiteOrderRow(o)));
      },
    })
    .add({ ...k, method: 'GET', path: `${P}/orders/:order_id`, handler: (r) => guarded(() => ok(svc(r).history(who(r), r.params.order_id))) })
    .add({
      ...k, method: 'GET', path: `${P}/trades`, handler: (r) => {
        const today = istDayStart(svc(r).clock());
        return ok(svc(r).trades(who(r)).filter((t) => t.timeMs >= today).map((t) => svc(r).tradeRow(t)));
      },
    })
    .add({ ...k, method: 'GET', path: `${P}/orders/:order_id/trades`, handler: (r) => guarded(() => ok(svc(r).orderTrades(who(r), r.params.order_id).map((t) => svc(r).tradeRow(t)))) })
    .add({ ...k, method: 'GET', path: `${P}/portfolio/positions`, handler: (r) => ok(svc(r).kitePositions(who(r))) })
    .add({ ...k, method: 'GET', path: `${P}/portfolio/holdings`, handler: (r) => ok(svc(r).kiteHoldings(who(r))) })
    .add({
      ...k, method: 'GET', path: `${P}/user/margins`, handler: (r) => guarded(async () => {
        // A live key's funds are the Kite account's, as Kite reports them.
        const kite = await svc(r).liveMargins(who(r));
        return ok(kite ?? { equity: equityMargins(svc(r), who(r)), commodity: { enabled: false, net: 0, available: {}, utilised: {} } });
      }),
    })
    .add({
      ...k, method: 'GET', path: `${P}/user/margins/:segment`, handler: (r) => guarded(async () => {
        const kite = await svc(r).liveMargins(who(r));
        if (kite !== null && (r.params.segment === 'equity' || r.params.segment === 'commodity')) return ok(kite[r.params.segment] ?? {});
        if (r.params.segment === 'equity') return ok(equityMargins(svc(r), who(r)));
        if (r.params.segment === 'commodity') return ok({ enabled: false, net: 0, available: {}, utilised: {} });
        throw new HttpError(400, 'invalid_segment', `Invalid segment "${r.params.segment.slice(0, 20)}": use equity or commodity`, 'segment');
      }),
    })
    // Kite's postback (the URL a user registers with Kite): no API key (Kite cannot send ours); the
    // checksum, SHA-256 of order_id + order_timestamp + api_secret, proves it came from Kite.
    // (the live mount only: Kite posts back live orders).
    .add(P === '/kite' ? { method: 'POST', path: '/kite/postback', auth: 'none', style: 'kite', handler: (r) => postback(svc(r), deps.postbackSecret ?? null, r) } : null)
    .add({
      ...k, method: 'POST', path: `${P}/margins/orders`, handler: (r) => guarded(() => {
        const body = jsonOf(r);
        if (!Array.isArray(body)) throw new HttpError(400, 'invalid_body', 'body: a JSON array of orders', 'body');
        if (body.length > 200) throw new HttpError(400, 'invalid_body', 'body: at most 200 orders per call', 'body');
        return ok(body.map((o, i) => {
          try {
            const req = parsePlaceJson({ ...(o as object), variety: (o as { variety?: string } | null)?.variety ?? 'regular' });
            return marginRow(svc(r), who(r), req);
          } catch (e) {
            if (e instanceof OrderRejection) throw e.inLeg(i);
            throw e;
          }
        }));
      }),
    });
}

/**
 * A postback: verified, then handed to the live broker as an update. Idempotent: the same postback
 * twice (Kite retries) changes nothing the second time, as the broker only moves orders forward.
 */
function postback(s: OrderService, secret: string | null, r: HttpRequest): HttpReply {
  if (secret === null) throw new HttpError(503, 'postback_unconfigured', 'Postbacks are not accepted: set KITE_API_SECRET so their checksum can be verified');
  const body = jsonOf(r) as Record<string, unknown>;
  if (body === null || typeof body !== 'object' || Array.isArray(body)) throw new HttpError(400, 'invalid_body', 'body: a JSON object (Kite\'s order postback)', 'body');
  const { order_id: id, order_timestamp: ts, checksum } = body as { order_id?: unknown; order_timestamp?: unknown; checksum?: unknown };
  if (typeof id !== 'string' || id === '') throw new HttpError(400, 'invalid_body', 'order_id: required', 'order_id');
  if (typeof ts !== 'string') throw new HttpError(400, 'invalid_body', 'order_timestamp: required', 'order_timestamp');
  if (typeof checksum !== 'string' || !/^[0-9a-f]{64}$/i.test(checksum)) throw new HttpError(400, 'invalid_body', 'checksum: required, 64 hex digits', 'checksum');
  const want = createHash('sha256').update(id + ts + secret).digest();
  if (!timingSafeEqual(want, Buffer.from(checksum, 'hex'))) {
    throw new HttpError(403, 'checksum_mismatch', 'checksum: does not match SHA-256(order_id + order_timestamp + api_secret); the postback is not from Kite or KITE_API_SECRET is wrong', 'checksum');
  }
  const taken = s.liveUpdate(body, 'postback');
  return ok({ received: true, applied: taken });
}

// --- JSON API ------------------------------------------------------------------------------------

const STATUS_FILTER = ['open', 'complete', 'cancelled', 'rejected', 'all'] as const;
const one = z.preprocess((v) => (Array.isArray(v) ? v[0] : v), z.string());
const ordersQuery = z.strictObject({
  status: one.pipe(z.enum(STATUS_FILTER)).optional(),
  symbol: one.pipe(z.string().max(64)).optional(),
  from: one.pipe(z.string().regex(/^\d{4}-\d{2}-\d{2}$/, 'a date, YYYY-MM-DD (IST)')).optional(),
  to: one.pipe(z.string().regex(/^\d{4}-\d{2}-\d{2}$/, 'a date, YYYY-MM-DD (IST), inclusive')).optional(),
});
export const ORDER_QUERY_PARAMS = { 'GET /api/orders': Object.keys(ordersQuery.shape) } as const;

const closeBody = z.strictObject({
  symbol: z.string().max(64).optional(),
  product: z.enum(['CNC', 'NRML', 'MIS', 'MTF']).optional(),
});


function statusGroup(o: Order): (typeof STATUS_FILTER)[number] {
  if (o.status === 'COMPLETE') return 'complete';
  if (o.status === 'CANCELLED') return 'cancelled';
  if (o.status === 'REJECTED') return 'rejected';
  return 'open';
}

function apiOrder(s: OrderService, key: string, o: Order, withEvents: boolean) {
  const row = kiteOrderRow(o);
  if (!withEvents) return row;
  return { ...row, events: s.events_(key, o.id).map((e) => ({ seq: e.seq, status: e.status, time: new Date(e.atMs).toISOString(), order: e.row })) };
}

async function remembered(s: OrderService, req: HttpRequest, fn: () => Promise<Remembered>): Promise<HttpReply> {
  const idem = req.headers['idempotency-key'] ?? null;
  if (idem !== null && (idem.length === 0 || idem.length > 255)) throw new HttpError(400, 'invalid_header', 'Idempotency-Key: 1-255 characters', 'Idempotency-Key');
  const r = await guarded(() => s.idempotent(req.principal!.name, idem, req.body, async () => {
    try {
      return await fn();
    } catch (e) {
      const h = orderHttpError(e);
      // A refusal is an answer too: the same request with the same key gets it again.
      if (h instanceof HttpError && h.status < 500 && h.status !== 429) return { status: h.status, body: { error: h.code, message: h.message, ...(h.field ? { field: h.field } : {}) } };
      throw e;
    }
  }));
  return { status: r.status, body: r.body };
}

export function addApiOrderRoutes(router: Router, deps: OrderRouteDeps, mount: OrderMount = { prefix: '/api' }): void {
  const svc = serviceOf(deps);
  const P = mount.prefix;
  const j = { auth: 'key', style: 'json' } as const;
  const who = (r: HttpRequest) => r.principal!.name;
  router
    .add({
      ...j, method: 'POST', path: `${P}/orders`, handler: (r) => remembered(svc(r), r, async () => {
        const a = await svc(r).place(who(r), parsePlaceJson(jsonOf(r)));
        const o = svc(r).order(who(r), a.order_id);
        return { status: 201, body: a.children ? { ...apiOrder(svc(r), who(r), o, true), children: a.children } : apiOrder(svc(r), who(r), o, true) };
      }),
    })
    .add({
      ...j, method: 'POST', path: `${P}/orders/basket`, handler: (r) => remembered(svc(r), r, async () => {
        const body = jsonOf(r) as { orders?: unknown };
        if (body === null || typeof body !== 'object' || !Array.isArray(body.orders)) throw new HttpError(400, 'invalid_body', 'orders: required, an array of orders', 'orders');
        if (body.orders.length === 0 || body.orders.length > 50) throw new HttpError(400, 'invalid_body', 'orders: 1 to 50 orders', 'orders');
        const unknown = Object.keys(body).find((k) => k !== 'orders');
        if (unknown !== undefined) throw new HttpError(400, 'invalid_body', `unknown body field "${unknown.slice(0, 40)}"`, unknown.slice(0, 40));
        const reqs = body.orders.map((o, i) => {
          try {
            return parsePlaceJson(o);
          } catch (e) {
            if (e instanceof OrderRejection) throw e.inLeg(i);
            throw e;
          }
        });
        const placed = await svc(r).basket(who(r), reqs);
        return { status: 201, body: { orders: placed.map((o) => apiOrder(svc(r), who(r), o, false)) } };
      }),
    })
    .add({
      ...j, method: 'GET', path: `${P}/orders`, handler: (r) => {
        const q = validate(ordersQuery, queryObject(r.query));
        const from = q.from === undefined ? -Infinity : Date.parse(`${q.from}T00:00:00Z`) - IST_OFFSET_MS;
        const to = q.to === undefined ? Infinity : Date.parse(`${q.to}T00:00:00Z`) - IST_OFFSET_MS + 86_400_000;
        const sym = q.symbol?.toUpperCase();
        const out = svc(r).orders(who(r)).filter((o) =>
          (q.status === undefined || q.status === 'all' || statusGroup(o) === q.status) &&
          (sym === undefined || o.symbol === sym || `${o.exchange}:${o.symbol}` === sym) &&
          o.createdMs >= from && o.createdMs < to);
        return { body: { orders: out.map((o) => apiOrder(svc(r), who(r), o, false)) } };
      },
    })
    .add({ ...j, method: 'GET', path: `${P}/orders/:id`, handler: (r) => guarded(() => ({ body: apiOrder(svc(r), who(r), svc(r).order(who(r), r.params.id), true) })) })
    .add({
      ...j, method: 'PUT', path: `${P}/orders/:id`, handler: (r) => guarded(async () => {
        await svc(r).modify(who(r), r.params.id, parseModifyJson(jsonOf(r)));
        return { body: apiOrder(svc(r), who(r), svc(r).order(who(r), r.params.id), true) };
      }),
    })
    .add({
      ...j, method: 'DELETE', path: `${P}/orders/:id`, handler: (r) => guarded(async () => {
        await svc(r).cancel(who(r), r.params.id);
        return { body: apiOrder(svc(r), who(r), svc(r).order(who(r), r.params.id), true) };
      }),
    })
    .add({ ...j, method: 'GET', path: `${P}/trades`, handler: (r) => ({ body: { trades: svc(r).trades(who(r)).map((t) => svc(r).tradeRow(t)) } }) })
    .add({ ...j, method: 'GET', path: `${P}/positions`, handler: (r) => ({ body: svc(r).kitePositions(who(r)) }) })
    .add({
      ...j, method: 'POST', path: `${P}/positions/close`, handler: (r) => remembered(svc(r), r, async () => {
        const text = r.body?.toString('utf8') ?? '';
        const body = validate(closeBody, text.trim() === '' ? {} : jsonOf(r), 'body');
        const placed = await closePositions(svc(r), who(r), body.symbol, body.product);
        return { status: 201, body: { orders: placed.map((o) => apiOrder(svc(r), who(r), o, false)) } };
      }),
    });
}

/**
 * Flatten one position (symbol) or all: a MARKET order (automatic protection) against each open
 * net quantity, sliced at the freeze quantity (the freeze table in config) and at lot multiples,
 * all placed as one basket: every slice passes the checks or none is placed.
 */
async function closePositions(s: OrderService, key: string, symbol: string | undefined, product: string | undefined): Promise<Order[]> {
  const { net } = s.kitePositions(key) as { net: { tradingsymbol: string; exchange: string; product: string; quantity: number }[] };
  const sym = symbol?.toUpperCase();
  const open = net.filter((p) => p.quantity !== 0 && (product === undefined || p.product === product) &&
    (sym === undefined || p.tradingsymbol === sym || `${p.exchange}:${p.tradingsymbol}` === sym));
  if (open.length === 0) throw new HttpError(400, 'nothing_to_close', sym === undefined ? 'no open position to close' : `symbol: no open position in ${sym.slice(0, 64)}`, 'symbol');
  const reqs: PlaceRequest[] = [];
  for (const p of open) {
    const inst = s.instrument(p.exchange, p.tradingsymbol);
    const lot = Math.max(1, inst?.lotSize ?? 1);
    const freeze = inst === null ? Infinity : (s.freezeOf(inst) ?? Infinity);
    const sliceMax = Number.isFinite(freeze) ? Math.max(lot, Math.floor(freeze / lot) * lot) : Math.abs(p.quantity);
    let left = Math.abs(p.quantity);
    while (left > 0) {
      const q = Math.min(left, sliceMax);
      left -= q;
      reqs.push({
        variety: 'regular', exchange: p.exchange, tradingsymbol: p.tradingsymbol, transaction_type: p.quantity > 0 ? 'SELL' : 'BUY',
        quantity: q, product: p.product as PlaceRequest['product'], order_type: 'MARKET', validity: 'DAY', market_protection: -1,
        autoslice: false, tag: 'close',
      });
    }
  }
  return s.basket(key, reqs);
}
