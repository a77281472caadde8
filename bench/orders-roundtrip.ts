/**
 * The client side of the order round trip in bench/orders.bench.ts, run in a worker thread of its
 * own (src/threads.ts startWorker) so that its clock and its socket reads do not wait behind the
 * service's main thread, which also runs the simulator, ingest and the REST server: a response is
 * timed when it arrives, as a separate client process would time it.
 *
 * One keep-alive HTTP/1.1 connection (`http.Agent`, maxSockets 1), requests one at a time, in
 * pairs on that connection:
 *
 * | request                          | what it is                                                  |
 * |----------------------------------|-------------------------------------------------------------|
 * | GET /api/quote?symbols=NSE:INFY  | the baseline: a keyed REST call that places nothing         |
 * | POST /api/orders                 | BUY 1 INFY LIMIT CNC at 10 % under the quote's price (rests) |
 *
 * A round trip is from just before `http.request` to the response's last byte: for an order, the
 * 201 with its `order_id` (the service answers after the order and its first events are
 * committed). The quote's price prices the next order, so the limit stays 10 % under the market.
 * Every `cancelEvery` orders the resting ones are cancelled (DELETE /api/orders/:id, not timed) so
 * the key's open quantity and blocked funds stay bounded.
 *
 * On PostgreSQL (`dbUrl`), then, with the feed still running: the floor under any answer given
 * after a commit on this machine, `commits` one-row INSERT transactions on the same database, one
 * at a time, as the order store sends its writes (BEGIN, the statements pipelined, COMMIT).
 *
 * Protocol with the parent (worker messages): `{ type: 'measuring' }` when the timed pairs begin
 * (after the warm-up), then `{ type: 'done', result }`; a request that fails ends the run with
 * the failure in `result.failure` (status code and body), nothing worked around.
 */
import { Agent, request } from 'node:http';
import type { Socket } from 'node:net';
import { parentPort, workerData } from 'node:worker_threads';
import postgres from 'postgres';
import { pgOptions } from '../src/core/db.ts';
import { Histogram } from './support.ts';

export interface RoundTripOptions {
  port: number;
  secret: string;
  warmupPairs: number;
  pairs: number;
  cancelEvery: number;
  /** Orders per block of the per-block p50 (does the cost grow with the orders placed?). */
  block: number;
  /** The service's PostgreSQL database, for the commit floor; null on the embedded PGlite. */
  dbUrl: string | null;
  commits: number;
}

export interface Latency {
  count: number;
  meanUs: number;
  p50Us: number;
  p99Us: number;
  p999Us: number;
  maxUs: number;
}

export interface RoundTripResult {
  order: Latency;
  quote: Latency;
  /** One-row transactions committed on the same PostgreSQL; null on PGlite or when orders failed. */
  commit: Latency | null;
  /** p50 of the order round trip per block of `block` orders, in order (µs). */
  orderBlockP50Us: number[];
  ordersPlaced: number;
  ordersCancelled: number;
  /** TCP connections the agent opened over the whole run: 1 means every request shared one. */
  connections: number;
  /** Wall time of the timed phase, ms (cancels included). */
  measuredMs: number;
  failure: string | null;
}

export type RoundTripMessage = { type: 'measuring' } | { type: 'done'; result: RoundTripResult };

interface Reply {
  status: number;
  text: string;
  us: number;
}

class Client {
  private readonly agent = new Agent({ keepAlive: true, maxSockets: 1 });
  readonly sockets = new Set<Socket>();

  constructor(private readonly port: number, private readonly secret: string) {}

  call(method: string, path: string, body?: string): Promise<Reply> {
    return new Promise((resolve, reject) => {
      const headers: Record<string, string | number> = { Authorization: `Bearer ${this.secret}` };
      if (body !== undefined) {
        headers['Content-Type'] = 'application/json';
        headers['Content-Length'] = Buffer.byteLength(body);
      }
      const t0 = performance.now();
      const req = request({ host: '127.0.0.1', port: this.port, method, path, agent: this.agent, headers }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const us = (performance.now() - t0) * 1000;
          resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8'), us });
        });
        res.on('error', reject);
      });
      req.on('socket', (s: Socket) => this.sockets.add(s));
      req.on('error', reject);
      req.end(body);
    });
  }

  close(): void {
    this.agent.destroy();
  }
}

function latency(h: Histogram): Latency {
  return {
    count: h.count, meanUs: h.count ? h.sum / h.count : NaN,
    p50Us: h.quantile(0.5), p99Us: h.quantile(0.99), p999Us: h.quantile(0.999), maxUs: h.max,
  };
}

const QUOTE_PATH = `/api/quote?symbols=${encodeURIComponent('NSE:INFY')}`;

export async function runRoundTrips(o: RoundTripOptions, onMeasuring: () => void): Promise<RoundTripResult> {
  const client = new Client(o.port, o.secret);
  const orderH = new Histogram();
  const quoteH = new Histogram();
  const blockH = new Histogram();
  const blockP50: number[] = [];
  const resting: string[] = [];
  let placed = 0;
  let cancelled = 0;
  let failure: string | null = null;
  let t0 = 0;

  const quote = async (timed: boolean): Promise<number> => {
    const r = await client.call('GET', QUOTE_PATH);
    if (r.status !== 200) throw new Error(`GET ${QUOTE_PATH}: HTTP ${r.status} ${r.text.slice(0, 300)}`);
    const q = (JSON.parse(r.text) as { quotes: { price: number }[] }).quotes[0];
    if (q === undefined || !(q.price > 0)) throw new Error(`GET ${QUOTE_PATH}: no INFY price in ${r.text.slice(0, 300)}`);
    if (timed) quoteH.record(r.us);
    return q.price;
  };

  const order = async (price: number, timed: boolean): Promise<void> => {
    // 10 % under the market, on the 0.05 tick, in integer paise.
    const paise = Math.floor((Math.round(price * 100) * 9) / 10 / 5) * 5;
    const body = JSON.stringify({
      variety: 'regular', exchange: 'NSE', tradingsymbol: 'INFY', transaction_type: 'BUY', quantity: 1, product: 'CNC',
      order_type: 'LIMIT', price: paise / 100, tag: 'bench',
    });
    const r = await client.call('POST', '/api/orders', body);
    let id: unknown;
    try {
      id = (JSON.parse(r.text) as { order_id?: unknown }).order_id;
    } catch {
      id = undefined;
    }
    if (r.status !== 201 || typeof id !== 'string') {
      throw new Error(`POST /api/orders (order ${placed + 1}, body ${body}): HTTP ${r.status} ${r.text.slice(0, 400)}`);
    }
    placed++;
    resting.push(id);
    if (timed) {
      orderH.record(r.us);
      blockH.record(r.us);
      if (blockH.count === o.block) {
        blockP50.push(blockH.quantile(0.5));
        blockH.reset();
      }
    }
  };

  const cancelResting = async (): Promise<void> => {
    for (const id of resting.splice(0)) {
      const r = await client.call('DELETE', `/api/orders/${id}`);
      if (r.status !== 200) throw new Error(`DELETE /api/orders/${id}: HTTP ${r.status} ${r.text.slice(0, 300)}`);
      cancelled++;
    }
  };

  try {
    let price = await quote(false);
    for (let i = 0; i < o.warmupPairs; i++) {
      await order(price, false);
      price = await quote(false);
      if (resting.length >= o.cancelEvery) await cancelResting();
    }
    await cancelResting();
    onMeasuring();
    t0 = performance.now();
    for (let i = 0; i < o.pairs; i++) {
      price = await quote(true);
      await order(price, true);
      if (resting.length >= o.cancelEvery) await cancelResting();
    }
  } catch (e) {
    failure = (e as Error).message;
  }
  const measuredMs = t0 === 0 ? 0 : performance.now() - t0;
  try {
    if (failure === null) await cancelResting();
  } catch (e) {
    failure = (e as Error).message;
  }
  const connections = client.sockets.size;
  client.close();
  let commit: Latency | null = null;
  if (o.dbUrl !== null && failure === null) {
    try {
      commit = await commitFloor(o.dbUrl, o.commits);
    } catch (e) {
      failure = `commit floor on ${o.dbUrl}: ${(e as Error).message}`;
    }
  }
  return {
    order: latency(orderH), quote: latency(quoteH), commit, orderBlockP50Us: blockP50, ordersPlaced: placed, ordersCancelled: cancelled,
    connections, measuredMs, failure,
  };
}

/** `n` one-row transactions, one at a time, after a warm-up of n / 10; the table is dropped after. */
async function commitFloor(url: string, n: number): Promise<Latency> {
  const sql = postgres(url, pgOptions({ max: 1 }));
  const h = new Histogram();
  try {
    await sql.unsafe('CREATE TABLE IF NOT EXISTS bench_commit_floor (i bigint, at timestamptz DEFAULT now())');
    const warm = Math.ceil(n / 10);
    for (let i = 0; i < warm + n; i++) {
      const t0 = performance.now();
      await sql.begin((tx) => [tx.unsafe('INSERT INTO bench_commit_floor (i) VALUES ($1)', [i])]);
      if (i >= warm) h.record((performance.now() - t0) * 1000);
    }
    await sql.unsafe('DROP TABLE bench_commit_floor');
  } finally {
    await sql.end({ timeout: 1 });
  }
  return latency(h);
}

// As a worker (startWorker): run with the options in workerData and report to the parent.
if (parentPort !== null && (workerData as { data?: { roundTrip?: RoundTripOptions } })?.data?.roundTrip) {
  const port = parentPort;
  const opts = (workerData as { data: { roundTrip: RoundTripOptions } }).data.roundTrip;
  const result = await runRoundTrips(opts, () => port.postMessage({ type: 'measuring' } satisfies RoundTripMessage));
  port.postMessage({ type: 'done', result } satisfies RoundTripMessage);
}
