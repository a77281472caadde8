/**
 * REST on the same origin (`/api/...`, docs/openapi.yaml) with the API key as a bearer token, and the
 * row types the views read. A refusal becomes an ApiError carrying the server's `error` code,
 * message and `field`, so the order ticket can show the message beside the field at fault.
 */

export class ApiError extends Error {
  constructor(
    readonly status: number,
    /** The server's stable code (`unauthorized`, `lot_multiple`, `tick`, ...) or `network`. */
    readonly code: string,
    message: string,
    /** The query or body field at fault, when the server names one. */
    readonly field: string | null = null,
    /** Seconds, on a 429. */
    readonly retryAfter: number | null = null,
  ) {
    super(message);
  }
}

let apiKey = '';
/** The key every later request carries. */
export function setApiKey(k: string): void {
  apiKey = k;
}

export async function api<T>(path: string, init: { method?: string; body?: unknown; headers?: Record<string, string>; key?: string } = {}): Promise<T> {
  const headers: Record<string, string> = { Authorization: `Bearer ${init.key ?? apiKey}`, ...init.headers };
  if (init.body !== undefined) headers['Content-Type'] = 'application/json';
  let res: Response;
  try {
    res = await fetch(path, { method: init.method ?? 'GET', headers, body: init.body === undefined ? undefined : JSON.stringify(init.body) });
  } catch (e) {
    throw new ApiError(0, 'network', `the service did not answer (${(e as Error).message}): is it running?`);
  }
  const text = await res.text();
  let json: unknown = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    // A proxy's HTML error page, say: the status line says more than its body.
  }
  if (!res.ok) {
    const j = (json ?? {}) as { error?: string; message?: string; field?: string };
    const retry = res.headers.get('Retry-After');
    throw new ApiError(res.status, j.error ?? `http_${res.status}`, j.message ?? `HTTP ${res.status} ${res.statusText}`, j.field ?? null, retry ? Number(retry) : null);
  }
  return json as T;
}

/** 32 hex digits from the CSPRNG: `crypto.randomUUID` exists only on secure origins, this everywhere. */
export function randomId(): string {
  const b = crypto.getRandomValues(new Uint8Array(16));
  let s = '';
  for (const x of b) s += x.toString(16).padStart(2, '0');
  return s;
}

export interface Instrument {
  token: number;
  symbol: string;
  name: string;
  exchange: string;
  segment: string;
  type: 'EQ' | 'FUT' | 'CE' | 'PE';
  expiry: string | null;
  strike: number;
  tickSize: number;
  lotSize: number;
}

export interface ApiBar { st: number; o: number; h: number; l: number; c: number; v: number; vw: number | null; n: number; oi: number }
export interface BarsAnswer { symbol: string; tf: string; count: number; truncated: boolean; bars: ApiBar[] }

export interface LegAnalytics {
  bid: number | null; ask: number | null; mid: number | null;
  ivMid: number | null; ivLast: number | null; delta: number | null;
  oiChangeDay: number | null;
}
export interface ChainLeg {
  token: number; symbol: string; lastPrice: number | null; change: number | null; changePct: number | null;
  oi: number | null; volume: number | null; analytics: LegAnalytics | null;
}
export interface ChainFigures {
  spot: number | null; forward: number | null; atmStrike: number | null; atmIv: number | null;
  maxPain: number | null; pcrOi: number | null; expectedMove: number | null; straddle: number | null;
  asOf: number;
}
export interface OptionChain {
  name: string; expiry: string; expiries: string[];
  underlying: { symbol: string; token: number; price: number | null } | null;
  pcr: number | null;
  analytics?: ChainFigures | null;
  strikes: { strike: number; ce: ChainLeg | null; pe: ChainLeg | null }[];
}
/** One option of a `/ws` `chain` frame (docs/protocol.md). */
export interface ChainOption {
  token: number; symbol: string; strike: number; type: 'CE' | 'PE'; price: number | null;
  ivMid: number | null; ivLast: number | null; delta: number | null; oi: number | null; oiChangeDay: number | null;
}
export interface ChainFrame extends ChainFigures { key: string; expiry: string; options: ChainOption[] }

export interface OrderRow {
  order_id: string;
  status: string;
  status_message: string | null;
  order_timestamp: string;
  variety: string;
  exchange: string;
  tradingsymbol: string;
  instrument_token: number;
  order_type: 'MARKET' | 'LIMIT' | 'SL' | 'SL-M';
  transaction_type: 'BUY' | 'SELL';
  validity: string;
  product: string;
  quantity: number;
  price: number;
  trigger_price: number;
  average_price: number;
  filled_quantity: number;
  pending_quantity: number;
  market_protection: number;
  paper?: boolean;
}

export interface PositionRow {
  tradingsymbol: string;
  exchange: string;
  instrument_token: number;
  product: string;
  quantity: number;
  multiplier: number;
  average_price: number;
  last_price: number;
  pnl: number;
  buy_value: number;
  sell_value: number;
}

/** Statuses an order can still leave: modify and cancel apply to these. */
export const WORKING = new Set(['OPEN', 'TRIGGER PENDING', 'AMO REQ RECEIVED', 'OPEN PENDING', 'PUT ORDER REQ RECEIVED', 'VALIDATION PENDING', 'MODIFY PENDING', 'MODIFY VALIDATION PENDING', 'MODIFIED']);
