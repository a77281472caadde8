/**
 * The paper strategy of the end-to-end bench (bench/e2e.bench.ts), in a process of its own
 * (forked with `node --import tsx`) so that its clock does not wait behind the clients' decoding:
 * `perS` orders a second through `POST /api/orders` with a paper key, paced on a schedule (open
 * loop: an answer that is late does not delay the next order), each BUY 1 INFY LIMIT CNC 10 % under
 * the quote so that it rests. A round trip is from just before the request to the answer's last
 * byte (the 201 with its order_id, sent once the order is committed). The resting orders are
 * cancelled after each step, untimed, so blocked funds stay bounded.
 *
 * Commands (IPC), each answered with `{ type: 'answer', id, v }`:
 * - start { port, secret, perS }: prices INFY, then places orders until stop.
 * - stop: answers with E2eOrderStats once the orders in flight have answered and the resting are cancelled.
 */
import { Agent, request } from 'node:http';
import { Histogram } from './support.ts';

export type E2eOrderCommand =
  | { id: number; cmd: 'start'; port: number; secret: string; perS: number }
  | { id: number; cmd: 'stop' };

export interface E2eOrderStats {
  placed: number;
  /** Answers other than 201, and requests that failed; the first one's text in `firstError`. */
  errors: number;
  firstError: string | null;
  /** Orders not sent because MAX_IN_FLIGHT were still unanswered (the service is that far behind). */
  skipped: number;
  p50: number;
  p99: number;
  max: number;
}

/** Unanswered orders at most; past it a scheduled order is skipped and counted. */
const MAX_IN_FLIGHT = 32;

const agent = new Agent({ keepAlive: true, maxSockets: 8 });
const hist = new Histogram();
let port = 0;
let secret = '';
let timer: NodeJS.Timeout | null = null;
let inFlight = 0;
let placed = 0;
let errors = 0;
let skipped = 0;
let firstError: string | null = null;
let price = 0;
const resting: string[] = [];

function call(method: string, path: string, body?: string): Promise<{ status: number; text: string; us: number }> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string | number> = { Authorization: `Bearer ${secret}` };
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      headers['Content-Length'] = Buffer.byteLength(body);
    }
    const t0 = performance.now();
    const req = request({ host: '127.0.0.1', port, method, path, agent, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8'), us: (performance.now() - t0) * 1000 }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

function fail(what: string): void {
  errors++;
  firstError ??= what;
}

function placeOne(): void {
  if (inFlight >= MAX_IN_FLIGHT) {
    skipped++;
    return;
  }
  // 10 % under the market, on the 0.05 tick, in integer paise: it rests.
  const paise = Math.floor((Math.round(price * 100) * 9) / 10 / 5) * 5;
  const body = JSON.stringify({
    variety: 'regular', exchange: 'NSE', tradingsymbol: 'INFY', transaction_type: 'BUY', quantity: 1, product: 'CNC',
    order_type: 'LIMIT', price: paise / 100, tag: 'e2e',
  });
  inFlight++;
  call('POST', '/api/orders', body).then((r) => {
    inFlight--;
    let id: unknown;
    try {
      id = (JSON.parse(r.text) as { order_id?: unknown }).order_id;
    } catch {
      id = undefined;
    }
    if (r.status !== 201 || typeof id !== 'string') return fail(`POST /api/orders: HTTP ${r.status} ${r.text.slice(0, 300)}`);
    placed++;
    hist.record(r.us);
    resting.push(id);
  }, (e: Error) => {
    inFlight--;
    fail(`POST /api/orders: ${e.message}`);
  });
}

async function start(perS: number): Promise<void> {
  hist.reset();
  placed = errors = skipped = 0;
  firstError = null;
  const q = await call('GET', `/api/quote?symbols=${encodeURIComponent('NSE:INFY')}`);
  const p = q.status === 200 ? (JSON.parse(q.text) as { quotes: { price: number }[] }).quotes[0]?.price : undefined;
  if (!(typeof p === 'number' && p > 0)) throw new Error(`GET /api/quote: no INFY price (HTTP ${q.status} ${q.text.slice(0, 200)})`);
  price = p;
  if (perS <= 0) return;
  // On a schedule: the orders due since the last timer, however late it fired.
  const t0 = performance.now();
  let sent = 0;
  timer = setInterval(() => {
    const due = Math.floor(((performance.now() - t0) / 1000) * perS);
    while (sent < due) {
      placeOne();
      sent++;
    }
  }, Math.max(1, Math.min(50, Math.floor(1000 / perS))));
}

async function stop(): Promise<E2eOrderStats> {
  if (timer !== null) clearInterval(timer);
  timer = null;
  const until = performance.now() + 10_000;
  while (inFlight > 0 && performance.now() < until) await new Promise((r) => setTimeout(r, 10));
  const stats: E2eOrderStats = { placed, errors, firstError, skipped, p50: hist.quantile(0.5), p99: hist.quantile(0.99), max: hist.max };
  for (const id of resting.splice(0)) {
    const r = await call('DELETE', `/api/orders/${id}`).catch((e: Error) => ({ status: 0, text: e.message }));
    if (r.status !== 200) fail(`DELETE /api/orders/${id}: HTTP ${r.status} ${r.text.slice(0, 200)}`);
  }
  return stats;
}

process.on('message', (c: E2eOrderCommand) => {
  const answer = (v: unknown): void => void process.send!({ type: 'answer', id: c.id, v });
  const failed = (e: unknown): void => void process.send!({ type: 'answer', id: c.id, error: (e as Error).stack ?? String(e) });
  if (c.cmd === 'start') {
    port = c.port;
    secret = c.secret;
    start(c.perS).then(() => answer(true), failed);
  } else {
    stop().then(answer, failed);
  }
});

process.on('disconnect', () => process.exit(0));
process.send!({ type: 'up' });
