/**
 * Kite's order REST API on the simulator, over the order book of orders.ts, as the official
 * `kiteconnect` client calls it (bodies form-encoded; DELETE's fields in the query):
 *
 * | route                              | answer `data`                                        |
 * |------------------------------------|------------------------------------------------------|
 * | POST   /orders/:variety            | { order_id }                                         |
 * | PUT    /orders/:variety/:order_id  | { order_id }                                         |
 * | DELETE /orders/:variety/:order_id  | { order_id }                                         |
 * | GET    /orders                     | the key's orders, latest state                       |
 * | GET    /orders/:order_id           | the order's history, one row per status             |
 * | GET    /orders/:order_id/trades    | its trades                                           |
 * | GET    /trades                     | the key's trades                                     |
 * | GET    /portfolio/positions        | { net, day }                                         |
 * | GET    /user/margins[/:segment]    | { equity, commodity }, or one of them                |
 *
 * Each needs Kite's `Authorization: token api_key:access_token` (else HTTP 403 TokenException);
 * orders belong to the api_key. Errors are Kite's `{status:'error', message, data:null,
 * error_type}`. The fault switches (order-faults.ts) act here, before and after the order book.
 *
 * Test control, not Kite's (no auth: the simulator listens on loopback):
 * - `POST /sim/order-faults` with a JSON OrderFaults sets switches, `GET` reads them; both answer
 *   the switches in force.
 * - `GET /sim/orders[?api_key=K]`: the order book, latest state, of every key or one.
 *
 * uWS rules: everything is copied out of the request before the handler returns, `onAborted` is
 * set first, a late answer is written inside `cork`, and an aborted or answered response is never
 * touched again.
 */
import type { HttpRequest, HttpResponse, TemplatedApp } from 'uWebSockets.js';
import { KITE_TOKEN_ERROR, type Credentials } from './credentials.ts';
import type { FaultState } from './order-faults.ts';
import { type Form, KiteApiError, type SimOrders } from './orders.ts';
import { segmentMargins } from './portfolio.ts';

const TOO_MANY_REQUESTS = JSON.stringify({ status: 'error', message: 'Too many requests', data: null, error_type: 'NetworkException' });
/** Bodies past this are refused: no order form comes near it. */
const MAX_BODY_BYTES = 64 * 1024;

const STATUS_LINE: Readonly<Record<number, string>> = {
  200: '200 OK',
  400: '400 Bad Request',
  403: '403 Forbidden',
  413: '413 Payload Too Large',
  429: '429 Too Many Requests',
  500: '500 Internal Server Error',
};

/** place: may be dropped; write: place, modify, cancel (rate limited); read: the rest. */
type Kind = 'place' | 'write' | 'read';

interface Pending {
  aborted: boolean;
  answered: boolean;
}

type Act = (apiKey: string, params: readonly string[], form: Form) => unknown;

export interface OrderRouteStats {
  /** Order API requests received (control routes not counted). */
  orderRequests: number;
  /** Placements carried out but left unanswered (dropPlaceResponse). */
  droppedAnswers: number;
}

export class OrderRoutes {
  private readonly timers = new Set<NodeJS.Timeout>();

  constructor(
    private readonly orders: SimOrders,
    private readonly credentials: Credentials,
    private readonly faults: FaultState,
    private readonly stats: OrderRouteStats,
  ) {}

  /** Mount before the catch-all 404 (rest.ts). */
  mount(app: TemplatedApp): void {
    const o = this.orders;
    this.route(app, 'post', '/orders/:variety', 'place', (key, [variety], form) => ({ order_id: o.place(key, variety, form) }));
    this.route(app, 'put', '/orders/:variety/:order_id', 'write', (key, [variety, id], form) => ({ order_id: o.modify(key, variety, id, form) }));
    this.route(app, 'del', '/orders/:variety/:order_id', 'write', (key, [variety, id]) => ({ order_id: o.cancel(key, variety, id) }));
    this.route(app, 'get', '/orders', 'read', (key) => o.orders(key));
    this.route(app, 'get', '/orders/:order_id', 'read', (key, [id]) => o.history(key, id));
    this.route(app, 'get', '/orders/:order_id/trades', 'read', (key, [id]) => o.orderTrades(key, id));
    this.route(app, 'get', '/trades', 'read', (key) => o.trades(key));
    this.route(app, 'get', '/portfolio/positions', 'read', (key) => o.positions(key));
    this.route(app, 'get', '/user/margins', 'read', (key) => ({ equity: segmentMargins(o.funds(key)), commodity: segmentMargins(null) }));
    this.route(app, 'get', '/user/margins/:segment', 'read', (key, [segment]) => {
      if (segment === 'equity') return segmentMargins(o.funds(key));
      if (segment === 'commodity') return segmentMargins(null);
      throw new KiteApiError('InputException', `Invalid segment "${segment}": send equity or commodity.`);
    });

    app.get('/sim/order-faults', (res) => {
      res.writeStatus('200 OK').writeHeader('Content-Type', 'application/json').end(JSON.stringify({ status: 'success', data: this.faults.get() }));
    });
    app.post('/sim/order-faults', (res, req) => {
      const p: Pending = { aborted: false, answered: false };
      res.onAborted(() => {
        p.aborted = true;
      });
      const hasBody = Number(req.getHeader('content-length') || '0') > 0 || req.getHeader('transfer-encoding') !== '';
      const go = (body: Buffer) => {
        let status = 200;
        let out: string;
        try {
          out = JSON.stringify({ status: 'success', data: this.faults.set(JSON.parse(body.toString('utf8') || '{}') as never) });
        } catch (e) {
          status = 400;
          out = JSON.stringify({ status: 'error', message: (e as Error).message, data: null, error_type: 'InputException' });
        }
        this.write(res, p, status, out);
      };
      if (hasBody) this.readBody(res, p, go);
      else go(Buffer.alloc(0));
    });
    app.get('/sim/orders', (res, req) => {
      const key = new URLSearchParams(req.getQuery() ?? '').get('api_key') ?? undefined;
      res.writeStatus('200 OK').writeHeader('Content-Type', 'application/json').end(JSON.stringify({ status: 'success', data: this.orders.all(key) }));
    });
  }

  close(): void {
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
  }

  private route(app: TemplatedApp, method: 'get' | 'post' | 'put' | 'del', pattern: string, kind: Kind, act: Act): void {
    const nParams = (pattern.match(/:/g) ?? []).length;
    app[method](pattern, (res: HttpResponse, req: HttpRequest) => {
      this.stats.orderRequests++;
      const p: Pending = { aborted: false, answered: false };
      res.onAborted(() => {
        p.aborted = true;
      });
      // Copy everything out of req now: it is invalid once this function returns.
      const auth = req.getHeader('authorization');
      const json = req.getHeader('content-type').includes('application/json');
      const query = req.getQuery() ?? '';
      const params: string[] = [];
      for (let i = 0; i < nParams; i++) params.push(decodeURIComponent(req.getParameter(i) ?? ''));
      const hasBody = method !== 'get' && method !== 'del' && (Number(req.getHeader('content-length') || '0') > 0 || req.getHeader('transfer-encoding') !== '');
      const go = (body: Buffer) => this.serve(res, p, kind, auth, params, formOf(query, body, json), act);
      if (hasBody) this.readBody(res, p, go);
      else go(Buffer.alloc(0));
    });
  }

  private serve(res: HttpResponse, p: Pending, kind: Kind, auth: string, params: readonly string[], form: Form | null, act: Act): void {
    const f = this.faults;
    if (f.takeTokenExpired()) return this.answer(res, p, 403, KITE_TOKEN_ERROR);
    const apiKey = this.credentials.keyOf(auth);
    if (apiKey === null) return this.answer(res, p, 403, KITE_TOKEN_ERROR);
    if (kind !== 'read' && f.takeRateLimit()) return this.answer(res, p, 429, TOO_MANY_REQUESTS);
    if (form === null) return this.answer(res, p, 400, new KiteApiError('InputException', 'The body is not JSON: send the fields form-encoded, as Kite takes them.').body());
    let status = 200;
    let body: string;
    try {
      body = JSON.stringify({ status: 'success', data: act(apiKey, params, form) });
    } catch (e) {
      const err = e instanceof KiteApiError ? e : new KiteApiError('GeneralException', `The simulator failed: ${(e as Error).message}`);
      status = err.httpStatus;
      body = err.body();
    }
    if (kind === 'place' && status === 200 && f.takeDrop()) {
      // The order is placed and works; the client never hears so.
      this.stats.droppedAnswers++;
      if (!p.aborted && !p.answered) {
        p.answered = true;
        res.close();
      }
      return;
    }
    this.answer(res, p, status, body);
  }

  /** Writes the answer now, or `slowMs` later. */
  private answer(res: HttpResponse, p: Pending, status: number, body: string): void {
    const delay = this.faults.slowMs;
    if (delay === 0) {
      this.write(res, p, status, body);
      return;
    }
    const t = setTimeout(() => {
      this.timers.delete(t);
      this.write(res, p, status, body);
    }, delay);
    this.timers.add(t);
  }

  private write(res: HttpResponse, p: Pending, status: number, body: string): void {
    if (p.aborted || p.answered) return;
    p.answered = true;
    res.cork(() => {
      res.writeStatus(STATUS_LINE[status] ?? `${status} Error`).writeHeader('Content-Type', 'application/json').end(body);
    });
  }

  private readBody(res: HttpResponse, p: Pending, done: (body: Buffer) => void): void {
    const chunks: Buffer[] = [];
    let size = 0;
    res.onData((chunk, isLast) => {
      if (p.answered) return;
      size += chunk.byteLength;
      if (size > MAX_BODY_BYTES) {
        this.write(res, p, 413, new KiteApiError('InputException', `The body is over ${MAX_BODY_BYTES} bytes.`).body());
        return;
      }
      // uWS neuters the chunk when this callback returns: copy it.
      chunks.push(Buffer.from(new Uint8Array(chunk).slice()));
      if (isLast) done(Buffer.concat(chunks, size));
    });
  }
}

/**
 * The request's fields: the query's, then the body's (form-encoded, or a JSON object) over them;
 * the last of a repeated field. Null for a JSON body that is not an object.
 */
function formOf(query: string, body: Buffer, json: boolean): Form | null {
  const form: Record<string, string> = {};
  for (const [k, v] of new URLSearchParams(query)) form[k] = v;
  if (body.length === 0) return form;
  const text = body.toString('utf8');
  if (!json) {
    for (const [k, v] of new URLSearchParams(text)) form[k] = v;
    return form;
  }
  let o: unknown;
  try {
    o = JSON.parse(text);
  } catch {
    return null;
  }
  if (o === null || typeof o !== 'object' || Array.isArray(o)) return null;
  for (const [k, v] of Object.entries(o)) if (v !== null && v !== undefined) form[k] = String(v);
  return form;
}
