/**
 * A small HTTP layer over uWebSockets.js for the REST routes: uWS hands a handler a stack-allocated
 * request and a response that dies when the client goes away; this gives handlers a plain
 * `HttpRequest` copied out at once, and answers for them, safely, whenever their promise settles.
 *
 * What every request goes through, in order (each step answers and stops when it refuses):
 *
 * | step         | refuses with                                                                 |
 * |--------------|------------------------------------------------------------------------------|
 * | route        | 404 (unknown path: server.ts's catch-all, or the Kite catch-all), 405 + Allow |
 * | auth         | 401 `unauthorized` (JSON) / 403 `TokenException` (Kite), unless `auth: 'none'`|
 * | rate limit   | 429 + Retry-After (whole seconds, rounded up): a token bucket per key name   |
 * | body         | 413 when Content-Length or the bytes received pass `maxBodyBytes`            |
 * | handler      | HttpError → its status; anything else → 500 (logged, message not leaked)    |
 *
 * Errors take the route's style: JSON `{ error, message, field? }`, or Kite's envelope
 * `{ status: 'error', message, data: null, error_type }` so the official KiteConnect client throws
 * them as it would Kite's.
 *
 * uWS rules kept here: everything is read from `req` before the first await (it is invalid after the
 * handler returns); `onAborted` is set before any async work; a late answer is written inside
 * `res.cork`; a response that was aborted or already answered is never touched again.
 */
import type { HttpRequest as UwsRequest, HttpResponse, TemplatedApp } from 'uWebSockets.js';
import { AppError } from '../core/errors.ts';
import type { Logger } from '../log.ts';
import type { Authenticator } from './feed.ts';
import { extractKey } from './feed.ts';

export type Method = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
/** `key`: our API key (Bearer / ?key=); `kite`: Kite's `Authorization: token api_key:access_token`. */
export type AuthMode = 'key' | 'kite' | 'none';
/** Which error body a route answers with. */
export type ErrorStyle = 'json' | 'kite';

export interface HttpRequest {
  readonly method: Method;
  /** Path without the query string, as sent. */
  readonly path: string;
  /** The route pattern that matched (`/kite/instruments/:exchange`): the metrics label. */
  readonly route: string;
  readonly params: Readonly<Record<string, string>>;
  readonly query: URLSearchParams;
  /** The few headers copied out of uWS's request (lower-case names). */
  readonly headers: Readonly<Record<string, string>>;
  /** The body, null when the request had none. */
  readonly body: Buffer | null;
  /** Who the API key belongs to; null on `auth: 'none'` routes. */
  readonly principal: { readonly name: string } | null;
}

export interface HttpReply {
  /** Default 200. */
  status?: number;
  /** A string or Buffer goes out as is; anything else as JSON. */
  body: unknown;
  /** Default application/json. */
  contentType?: string;
  headers?: Readonly<Record<string, string>>;
}

export type Handler = (req: HttpRequest) => HttpReply | Promise<HttpReply>;

export interface RouteDef {
  method: Method;
  /** uWS pattern: `/api/bars`, `/kite/instruments/:exchange`. */
  path: string;
  auth: AuthMode;
  style: ErrorStyle;
  handler: Handler;
}

/** What the OpenAPI test and the docs compare: method and path in OpenAPI's `{param}` form. */
export interface RouteInfo {
  method: Method;
  path: string;
}

/**
 * A refusal a client can act on: HTTP status, a stable code, a message that says what to send
 * instead, and the offending query or body field when there is one.
 */
export class HttpError extends AppError {
  constructor(
    readonly status: number,
    code: string,
    message: string,
    readonly field?: string,
    readonly headers?: Readonly<Record<string, string>>,
  ) {
    super(code, message, field === undefined ? {} : { field });
    this.name = 'HttpError';
  }

  /** Kite's exception name when it is not the one its status implies (MarginException, OrderException). */
  kiteType?: string;
  /** The status on Kite-style routes when Kite answers differently from the JSON API (an unknown order: 400, not 404). */
  kiteStatus?: number;
}

const STATUS_TEXT: Record<number, string> = {
  200: '200 OK', 201: '201 Created', 400: '400 Bad Request', 401: '401 Unauthorized', 403: '403 Forbidden', 404: '404 Not Found',
  405: '405 Method Not Allowed', 409: '409 Conflict', 413: '413 Payload Too Large', 429: '429 Too Many Requests',
  500: '500 Internal Server Error', 502: '502 Bad Gateway', 503: '503 Service Unavailable',
};

export function statusLine(status: number): string {
  return STATUS_TEXT[status] ?? `${status} Status`;
}

/** Kite's error_type for an HTTP status, as Kite answers (docs: "Exceptions and errors"). */
export function kiteErrorType(status: number): string {
  if (status === 400) return 'InputException';
  if (status === 401 || status === 403) return 'TokenException';
  if (status === 429) return 'NetworkException';
  if (status === 502 || status === 503) return 'DataException';
  return 'GeneralException';
}

export function errorBody(style: ErrorStyle, e: HttpError): string {
  if (style === 'kite') return JSON.stringify({ status: 'error', message: e.message, data: null, error_type: e.kiteType ?? kiteErrorType(e.kiteStatus ?? e.status) });
  return JSON.stringify(e.field === undefined ? { error: e.code, message: e.message } : { error: e.code, message: e.message, field: e.field });
}

// --- rate limit ---------------------------------------------------------------------------------

/**
 * One token bucket per key name: `burst` requests at once, refilled at `perSec`. Buckets exist only
 * for verified keys, so the map is bounded by the number of keys. perSec 0 turns limiting off.
 */
export class RateLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  constructor(readonly perSec: number, readonly burst: number, private readonly now: () => number = () => performance.now()) {}

  /** 0 when the request may go ahead (and takes a token), else the seconds until one is available. */
  take(key: string): number {
    if (this.perSec <= 0) return 0;
    const now = this.now();
    let b = this.buckets.get(key);
    if (b === undefined) {
      b = { tokens: this.burst, at: now };
      this.buckets.set(key, b);
    } else {
      b.tokens = Math.min(this.burst, b.tokens + ((now - b.at) / 1000) * this.perSec);
      b.at = now;
    }
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return 0;
    }
    return (1 - b.tokens) / this.perSec;
  }
}

// --- router --------------------------------------------------------------------------------------

export interface RouterOptions {
  auth: Authenticator;
  limiter: RateLimiter;
  maxBodyBytes: number;
  log: Logger;
  /** Called once per answered request, for the latency histogram. */
  observe?: (route: string, method: string, status: number, seconds: number) => void;
}

/** Headers handlers may read; uWS's request is gone after the first await, so they are copied. */
const COPIED_HEADERS = ['authorization', 'content-type', 'content-length', 'transfer-encoding', 'x-kite-version', 'accept', 'idempotency-key'] as const;

interface Pending {
  aborted: boolean;
  answered: boolean;
  t0: number;
  route: string;
  method: string;
  /** The request's path without its query (the query may hold `?key=`: never logged). */
  url: string;
  /** The API key's name once verified. */
  who: string | null;
}

/**
 * Routes grouped by pattern: uWS gets one `any` handler per pattern, which dispatches on the
 * method, so a wrong method is 405 with Allow rather than a confusing 404.
 */
export class Router {
  private readonly byPath = new Map<string, RouteDef[]>();

  constructor(private readonly opts: RouterOptions) {}

  /** Add a route (null: nothing, for a route only some mounts have). */
  add(def: RouteDef | null): this {
    if (def === null) return this;
    const list = this.byPath.get(def.path) ?? [];
    if (list.some((r) => r.method === def.method)) throw new Error(`route ${def.method} ${def.path} added twice`);
    list.push(def);
    this.byPath.set(def.path, list);
    return this;
  }

  /** Every route, in OpenAPI's path form (`{param}`). */
  routes(): RouteInfo[] {
    const out: RouteInfo[] = [];
    for (const [path, defs] of this.byPath) {
      for (const d of defs) out.push({ method: d.method, path: path.replace(/:([A-Za-z_][A-Za-z0-9_]*)/g, '{$1}') });
    }
    return out;
  }

  /**
   * uWS keeps a parameter's name in its route tree: `/kite/orders/:variety` and
   * `/kite/orders/:order_id` are two branches, and the first registered wins, so GET
   * `/kite/orders/:order_id` and `/kite/orders/:order_id/trades` would never be reached. So routes
   * are grouped by shape (parameter names ignored), each group is one uWS pattern whose parameters
   * are named by position (`:p0`, `:p1`: uWS reads them by position anyway), dispatching on the
   * method with each route's own names. With one name per position, a fixed segment wins over a
   * parameter whatever the order of registration.
   */
  mount(app: TemplatedApp): void {
    const shapes = new Map<string, { path: string; defs: { def: RouteDef; names: string[] }[] }>();
    for (const [path, defs] of this.byPath) {
      const shape = path.replace(/:[A-Za-z_][A-Za-z0-9_]*/g, ':');
      let g = shapes.get(shape);
      if (g === undefined) shapes.set(shape, (g = { path, defs: [] }));
      const names = [...path.matchAll(/:([A-Za-z_][A-Za-z0-9_]*)/g)].map((m) => m[1]);
      for (const def of defs) {
        if (g.defs.some((d) => d.def.method === def.method)) throw new Error(`routes ${def.method} ${g.path} and ${path} have the same shape`);
        g.defs.push({ def, names });
      }
    }
    const params = (shape: string) => (shape.match(/:/g) ?? []).length;
    const ordered = [...shapes.entries()].sort((a, b) => params(a[0]) - params(b[0]));
    for (const [shape, g] of ordered) {
      let i = 0;
      const pattern = shape.replace(/:/g, () => `:p${i++}`);
      app.any(pattern, (res, req) => this.dispatch(res, req, g.defs));
    }
  }

  private dispatch(res: HttpResponse, req: UwsRequest, defs: { def: RouteDef; names: string[] }[]): void {
    const method = req.getCaseSensitiveMethod().toUpperCase() as Method;
    const found = defs.find((d) => d.def.method === method);
    const path = found?.def.path ?? defs[0].def.path;
    const p: Pending = { aborted: false, answered: false, t0: performance.now(), route: path, method, url: req.getUrl(), who: null };
    res.onAborted(() => {
      p.aborted = true;
    });
    if (found === undefined) {
      const allow = defs.map((d) => d.def.method).join(', ');
      const style = defs[0].def.style;
      this.fail(res, p, style, new HttpError(405, 'method_not_allowed', `${method} is not allowed on ${path}; use ${allow}`, undefined, { Allow: allow }));
      return;
    }
    const { def, names } = found;
    // Copy everything out of req now: it is invalid once this function returns.
    const headers: Record<string, string> = {};
    for (const h of COPIED_HEADERS) {
      const v = req.getHeader(h);
      if (v !== '') headers[h] = v;
    }
    const params: Record<string, string> = {};
    for (let i = 0; i < names.length; i++) params[names[i]] = decodeURIComponent(req.getParameter(i));
    const url = req.getUrl();
    const rawQuery = req.getQuery() ?? '';

    let principal: { name: string } | null = null;
    if (def.auth !== 'none') {
      principal = def.auth === 'kite' ? this.kitePrincipal(headers.authorization ?? '') : this.keyPrincipal(headers.authorization ?? '', rawQuery);
      if (principal === null) {
        const e = def.auth === 'kite'
          ? new HttpError(403, 'unauthorized', 'Incorrect `api_key` or `access_token`.')
          : new HttpError(401, 'unauthorized', headers.authorization || /(?:^|&)key=/.test(rawQuery)
            ? 'API key not recognised'
            : 'API key missing: send Authorization: Bearer <key> (or ?key=<key>)');
        this.fail(res, p, def.style, e);
        return;
      }
      p.who = principal.name;
      const wait = this.opts.limiter.take(principal.name);
      if (wait > 0) {
        const secs = Math.max(1, Math.ceil(wait));
        this.fail(res, p, def.style, new HttpError(429, 'rate_limited',
          def.style === 'kite' ? 'Too many requests' : `rate limit of ${this.opts.limiter.perSec}/s (burst ${this.opts.limiter.burst}) exceeded for key "${principal.name}"; retry after ${secs} s`,
          undefined, { 'Retry-After': String(secs) }));
        return;
      }
    }

    const declared = headers['content-length'];
    const max = this.opts.maxBodyBytes;
    const tooBig = () => new HttpError(413, 'body_too_large', `request body is over the ${max}-byte limit (API_MAX_BODY_BYTES)`);
    if (declared !== undefined && Number(declared) > max) {
      this.fail(res, p, def.style, tooBig(), true);
      return;
    }
    const base = { method, path: url, route: path, params, query: new URLSearchParams(rawQuery), headers, principal };
    const hasBody = (declared !== undefined && declared !== '0') || headers['transfer-encoding'] !== undefined;
    if (!hasBody) {
      this.run(res, p, def, { ...base, body: null });
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    res.onData((chunk, isLast) => {
      if (p.answered) return;
      size += chunk.byteLength;
      if (size > max) {
        this.fail(res, p, def.style, tooBig(), true);
        return;
      }
      // uWS neuters the chunk when this callback returns: copy it.
      chunks.push(Buffer.from(new Uint8Array(chunk).slice()));
      if (isLast) this.run(res, p, def, { ...base, body: Buffer.concat(chunks, size) });
    });
  }

  private keyPrincipal(authorization: string, rawQuery: string): { name: string } | null {
    const key = extractKey(authorization, rawQuery) ?? /^X-?Api-?Key\s+(\S+)$/i.exec(authorization.trim())?.[1] ?? null;
    return key === null ? null : this.opts.auth.verify(key);
  }

  /** Kite sends `Authorization: token api_key:access_token`; either half may be our key. */
  private kitePrincipal(authorization: string): { name: string } | null {
    const m = /^token\s+([^:\s]*):(\S*)$/i.exec(authorization.trim());
    if (m === null) return null;
    return (m[1] !== '' ? this.opts.auth.verify(m[1]) : null) ?? (m[2] !== '' ? this.opts.auth.verify(m[2]) : null);
  }

  private run(res: HttpResponse, p: Pending, def: RouteDef, req: HttpRequest): void {
    let out: HttpReply | Promise<HttpReply>;
    try {
      out = def.handler(req);
    } catch (e) {
      this.failWith(res, p, def, e);
      return;
    }
    if (out instanceof Promise) {
      out.then((r) => this.reply(res, p, r), (e: unknown) => this.failWith(res, p, def, e));
    } else {
      this.reply(res, p, out);
    }
  }

  private failWith(res: HttpResponse, p: Pending, def: RouteDef, e: unknown): void {
    if (e instanceof HttpError) {
      this.fail(res, p, def.style, e);
      return;
    }
    const code = e instanceof AppError ? e.code : undefined;
    this.opts.log.error({ err: e, route: def.path, code }, 'REST handler failed');
    // AppErrors are ours and say what to do (CACHE_UNAVAILABLE, ...): their message may go out.
    const err = e instanceof AppError
      ? new HttpError(503, code ?? 'unavailable', e.message)
      : new HttpError(500, 'internal', 'internal error; the server log has the details');
    this.fail(res, p, def.style, err);
  }

  private fail(res: HttpResponse, p: Pending, style: ErrorStyle, e: HttpError, close = false): void {
    const status = style === 'kite' && e.kiteStatus !== undefined ? e.kiteStatus : e.status;
    this.write(res, p, status, 'application/json', errorBody(style, e), e.headers, close);
  }

  private reply(res: HttpResponse, p: Pending, r: HttpReply): void {
    const body = typeof r.body === 'string' || Buffer.isBuffer(r.body) ? r.body : JSON.stringify(r.body);
    this.write(res, p, r.status ?? 200, r.contentType ?? 'application/json', body, r.headers, false);
  }

  private write(res: HttpResponse, p: Pending, status: number, contentType: string, body: string | Buffer,
    headers: Readonly<Record<string, string>> | undefined, close: boolean): void {
    if (p.aborted || p.answered) return;
    p.answered = true;
    res.cork(() => {
      res.writeStatus(statusLine(status)).writeHeader('Content-Type', contentType);
      if (headers !== undefined) for (const k in headers) res.writeHeader(k, headers[k]);
      // Closing after a refused body: the rest of it would otherwise be read as the next request.
      res.end(body, close);
    });
    const seconds = (performance.now() - p.t0) / 1000;
    this.opts.observe?.(p.route, p.method, status, seconds);
    // The access log (LOG_LEVEL=debug): the path without its query and the key's name, never the key.
    this.opts.log.debug({ method: p.method, path: p.url, status, ms: Math.round(seconds * 1e4) / 10, key: p.who }, 'request');
  }
}

// --- query validation ----------------------------------------------------------------------------

/**
 * The query as a plain object for a schema: one value → string, repeated keys → string[]. `key`
 * (the API key, when sent as ?key=) is left out, so strict schemas need not list it.
 */
export function queryObject(q: URLSearchParams): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const [k, v] of q) {
    if (k === 'key') continue;
    const prev = out[k];
    if (prev === undefined) out[k] = v;
    else if (Array.isArray(prev)) prev.push(v);
    else out[k] = [prev, v];
  }
  return out;
}

interface SafeParser<T> {
  safeParse(v: unknown): { success: true; data: T } | { success: false; error: { issues: readonly { path: readonly PropertyKey[]; message: string; code?: string; keys?: readonly string[] }[] } };
}

/**
 * Validate `input` with a zod schema; the first issue becomes a 400 naming its field
 * (`field: 'tf'`). An unknown key (strict schemas) names the key itself.
 */
export function validate<T>(schema: SafeParser<T>, input: unknown, what: 'query' | 'body' = 'query'): T {
  const r = schema.safeParse(input);
  if (r.success) return r.data;
  const issue = r.error.issues[0];
  let field = issue.path.map(String).join('.');
  let message = issue.message;
  if (issue.code === 'unrecognized_keys' && issue.keys && issue.keys.length > 0) {
    field = issue.keys[0];
    message = `unknown ${what} parameter "${field}"`;
  }
  if (field === '') field = what;
  throw new HttpError(400, `invalid_${what}`, `${field}: ${message}`, field);
}

/** A request's JSON body; a 400 naming `body` when it is missing or not JSON. */
export function jsonOf(req: HttpRequest): unknown {
  const text = req.body?.toString('utf8') ?? '';
  if (text.trim() === '') throw new HttpError(400, 'invalid_body', 'body: required, a JSON object', 'body');
  try {
    return JSON.parse(text);
  } catch {
    throw new HttpError(400, 'invalid_body', 'body: not valid JSON', 'body');
  }
}
