/**
 * The live orders bench, `npm run bench -- live-orders`: what our service adds to a live order's
 * round trip to Kite, with the Kite simulator standing in for Kite on loopback. Both figures come
 * from one run, on the same machine and load, interleaved order by order:
 *
 * | series           | what is timed                                                                 |
 * |------------------|-------------------------------------------------------------------------------|
 * | direct (baseline)| the official `KiteConnect.placeOrder` straight to the simulator's API: request |
 * |                  | → Kite's acknowledgement `{order_id}`                                         |
 * | ours, answer     | the official `KiteConnect.placeOrder` on our /kite with a live key: request → |
 * |                  | our `{order_id}`, given once OUR record is committed (checks, rate limit,      |
 * |                  | PostgreSQL); the live broker sends the order to Kite beside that answer        |
 * | ours, Kite's id  | request → the moment Kite's order_id is known to our service                   |
 * |                  | (`orderById(id).brokerOrderId` set, from Kite's answer or its ticker update)   |
 *
 * Overhead = ours − direct, at p50 and at p99 (differences of quantiles, not quantiles of
 * differences).
 *
 * How it runs: the simulator in a process of its own (`npm run sim`, as Kite is remote; it accepts
 * any api_key/access_token pair, so the service and the direct client use different api_keys and
 * so different accounts at it), at BENCH_LIVE_SIM_RATE ticks/s (default 2,000). The whole service
 * in this process as test/orders/live-orders.test.ts starts it (Kite credentials pointing at the
 * simulator, MARKET_HOURS=always, a key created live in DATA_DIR before start), storage a fresh
 * PostgreSQL database on 127.0.0.1:5432 (BENCH_PG_URL names the admin database;
 * `bench_live_orders_<pid>` is created and dropped). The client is a worker thread (this same
 * file, started by src/threads.ts) with two official `KiteConnect` clients, so its clock does not
 * wait behind the service's main thread; both reuse one keep-alive connection each. Times that
 * cross threads are taken on `process.hrtime`, one monotonic clock for every thread. After the
 * rounds, with the service still running, the client times the floor under any answer given after
 * a commit: one-row INSERT transactions on the same database (as bench/orders-roundtrip.ts does).
 *
 * One round, sequential: direct, ours (A), direct, ours (B). Each is a LIMIT BUY 1 INFY CNC at
 * 10 % under the market, which rests at the simulator; both accounts place as many orders. The
 * next order starts only once Kite's order_id of ours is known to the service, so orders never
 * overlap. Every CANCEL_EVERY rounds the resting orders are cancelled, untimed (ours through /kite,
 * until our book has them CANCELLED; direct at the simulator, until it shows them CANCELLED), so
 * neither book keeps growing working orders and the live broker's poller (LIVE_POLL_MS) has
 * nothing due.
 *
 * Sessions: the simulator's placement walks every order its account placed that day (its funds
 * check, src/kite/sim/orders.ts `funds`), so its acknowledgement slows as the day's orders grow
 * (measured here in one session: direct p50 from 1.6 ms to 4.3 ms over 2,300 orders an account), which is the
 * simulator's cost, not Kite's, and would shrink our overhead as the baseline grows. So the rounds
 * run in sessions of SESSION_ROUNDS, each with a fresh simulator process, database and service,
 * and its own warm-up; the figures pool the sessions' timed orders. The per-session p50s are
 * printed to show whether anything still drifts.
 *
 * Watching for Kite's order_id: (B) orders only. When the live broker's request to Kite starts
 * (the `http.client.request.start` diagnostics channel of this thread, POST /orders/...), a
 * setImmediate loop looks at the order until its `brokerOrderId` is set; the first look that sees it
 * is the time. Nothing in src is wrapped. The loop keeps the service's main thread busy for Kite's
 * round trip, so the clean answer figure is (A)'s, where nothing watches: after (A)'s answer the
 * same loop only waits for the id before the next order. The table shows (B)'s answers too, to
 * show what the watching costs.
 *
 * Raised so the bench measures latency, not refusals: Kite's order budget, the key's risk limits
 * and the API rate (RAISED, printed). BENCH_LIVE_N sets the timed rounds (default 1,000: 2,000
 * direct orders, 2,000 of ours). A failure (status and Kite's error body) ends the run and is
 * printed; nothing in the service is worked around.
 */
import type { ChildProcess } from 'node:child_process';
import diagnostics from 'node:diagnostics_channel';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import type { ClientRequest } from 'node:http';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parentPort, workerData, type Worker } from 'node:worker_threads';
import { KiteConnect } from 'kiteconnect';
import { until } from '../test/support/until.ts';
import type { Latency } from './orders-roundtrip.ts';
import { QUICK, record } from './report.ts';
import { loadLine, schedDelta, schedOf, startSimProcess, us, type Sched } from './support.ts';

const ADMIN_URL = process.env.BENCH_PG_URL ?? 'postgres://root@127.0.0.1:5432/test';
const ROUNDS = Number(process.env.BENCH_LIVE_N ?? (QUICK ? 60 : 1000));
/** Rounds per session (fresh simulator, database and service), and the untimed rounds that start each. */
const SESSION_ROUNDS = 250;
const WARMUP_ROUNDS = QUICK ? 10 : 50;
const CANCEL_EVERY = 50;
const SIM_RATE = Number(process.env.BENCH_LIVE_SIM_RATE ?? 2000);
/** The live key's name (`npm run keys -- create trader --live`). */
const KEY = 'trader';
/** The service's api_key at the simulator, and the direct client's: two accounts there. */
const SERVICE_KITE_KEY = 'bench-service';
const DIRECT_KITE_KEY = 'bench-direct';
const WAIT_MS = 30_000;
const DB_NAME = `bench_live_orders_${process.pid}`;
const DB_URL = ADMIN_URL.replace(/\/[^/]*$/, `/${DB_NAME}`);

/** Raised from Kite's and the key's defaults so that no order is refused during the bench. */
const RAISED: Record<string, string> = {
  API_RATE_PER_SEC: '1000000',
  API_RATE_BURST: '1000000',
  KITE_ORDER_RATE_PER_SEC: '1000000',
  KITE_ORDER_RATE_PER_MIN: '1000000',
  KITE_ORDER_RATE_PER_DAY: '100000000',
  ORDER_MAX_PER_DAY: '10000000',
  ORDER_MAX_OPEN_QTY: '1000000000',
  PAPER_CAPITAL: '1000000000',
};

// --- between the client thread and the service's thread -----------------------------------------

/** Round trips of one series, µs, in the order taken. */
type Samples = number[];
type Series = 'direct' | 'oursA' | 'oursB' | 'handOff' | 'kiteSeen' | 'ack' | 'commit';
const SERIES: readonly Series[] = ['direct', 'oursA', 'oursB', 'handOff', 'kiteSeen', 'ack', 'commit'];

interface ClientOptions {
  ourRoot: string;
  secret: string;
  simRoot: string;
  warmupRounds: number;
  rounds: number;
  cancelEvery: number;
  /** The service's database, for the commit floor after the rounds. */
  dbUrl: string;
  commits: number;
}

interface ClientResult {
  direct: Samples;
  oursA: Samples;
  oursB: Samples;
  /** (B): request → the live broker starts its request to Kite. */
  handOff: Samples;
  /** (B): the live broker's request to Kite → Kite's answer's headers parsed, in our process. */
  kiteSeen: Samples;
  /** (B): request → Kite's order_id known to our service. */
  ack: Samples;
  /** One-row INSERT transactions on the service's database, from this thread, after the rounds (the service still running). */
  commit: Samples;
  /** (B) orders whose Kite order_id was known before Kite's answer to the place was parsed (the ticker update came first). */
  ackBeforeKiteAnswer: number;
  /** (B) orders whose Kite order_id was known to the service before our answer reached the client. */
  ackBeforeOurAnswer: number;
  placed: { direct: number; ours: number };
  cancelled: { direct: number; ours: number };
  /** TCP connections the KiteConnect clients opened over the run (2: one to each, kept alive). */
  connections: number;
  failure: string | null;
}

/** Client → service thread. Each asks for one reply, and the client waits for it before going on. */
type Ask =
  | { type: 'price' }
  | { type: 'arm' }
  | { type: 'placedB'; id: string }
  | { type: 'waitAck'; id: string }
  | { type: 'waitFinal'; ids: string[] }
  | { type: 'measuring' }
  | { type: 'measured' };
type Reply =
  | { type: 'ok'; lastPaise: number }
  | { type: 'ack'; lastPaise: number; sendNs: number; respNs: number; ackNs: number }
  | { type: 'error'; message: string };
type ToService = { type: 'ask'; ask: Ask } | { type: 'done'; result: ClientResult };

/** Monotonic ns, the same clock in every thread of the process (unlike performance.now()). */
const nowNs = (): number => Number(process.hrtime.bigint());

/** Exact quantiles of the samples (a few thousand: sorting them is cheap). */
function latency(samples: Samples): Latency {
  const v = Float64Array.from(samples).sort();
  const n = v.length;
  const q = (p: number): number => (n === 0 ? NaN : v[Math.max(0, Math.ceil(p * n) - 1)]);
  let sum = 0;
  for (let i = 0; i < n; i++) sum += v[i];
  return { count: n, meanUs: n ? sum / n : NaN, p50Us: q(0.5), p99Us: q(0.99), p999Us: q(0.999), maxUs: n ? v[n - 1] : NaN };
}

/** A KiteConnect rejection is a plain object ({ status, message, error_type }), not an Error. */
function describe(e: unknown): string {
  if (e instanceof Error) {
    const code = (e as Error & { code?: string }).code;
    return `${e.name}${code ? ` [${code}]` : ''}: ${e.message}`;
  }
  try {
    return JSON.stringify(e).slice(0, 400);
  } catch {
    return String(e);
  }
}

// --- the client (worker thread) ------------------------------------------------------------------

async function runClient(o: ClientOptions, port: NonNullable<typeof parentPort>): Promise<ClientResult> {
  let pending: ((r: Reply) => void) | null = null;
  port.on('message', (r: Reply) => {
    const p = pending;
    pending = null;
    p?.(r);
  });
  const ask = (a: Ask): Promise<Reply> => new Promise((resolve, reject) => {
    pending = (r) => (r.type === 'error' ? reject(new Error(r.message)) : resolve(r));
    port.postMessage({ type: 'ask', ask: a } satisfies ToService);
  });
  let connections = 0;
  diagnostics.subscribe('net.client.socket', () => { connections++; });

  const direct = new KiteConnect({ api_key: DIRECT_KITE_KEY, access_token: DIRECT_KITE_KEY, root: o.simRoot });
  const ours = new KiteConnect({ api_key: o.secret, access_token: o.secret, root: o.ourRoot });
  const h: Record<Series, Samples> = { direct: [], oursA: [], oursB: [], handOff: [], kiteSeen: [], ack: [], commit: [] };
  const restingDirect: string[] = [];
  const restingOurs: string[] = [];
  const placed = { direct: 0, ours: 0 };
  const cancelled = { direct: 0, ours: 0 };
  let ackBeforeKiteAnswer = 0;
  let ackBeforeOurAnswer = 0;
  let failure: string | null = null;
  /** Connections the two KiteConnect clients opened (the commit floor's comes after). */
  let kiteConnections = 0;
  let timed = false;
  let lastPaise = 0;

  const params = () => ({
    exchange: 'NSE', tradingsymbol: 'INFY', transaction_type: 'BUY', quantity: 1, product: 'CNC', order_type: 'LIMIT',
    // 10 % under the market, on the 0.05 tick, from integer paise.
    price: (Math.floor((lastPaise * 9) / 10 / 5) * 5) / 100,
  });
  const place = async (kc: InstanceType<typeof KiteConnect>, what: string): Promise<{ id: string; t0: number; t1: number }> => {
    const body = params();
    const t0 = nowNs();
    let answer: { order_id?: unknown };
    try {
      answer = await kc.placeOrder('regular', body as never) as { order_id?: unknown };
    } catch (e) {
      throw new Error(`${what}: placeOrder ${JSON.stringify(body)} refused: ${describe(e)}`);
    }
    const t1 = nowNs();
    if (typeof answer?.order_id !== 'string') throw new Error(`${what}: placeOrder answered without an order_id: ${describe(answer)}`);
    return { id: answer.order_id, t0, t1 };
  };
  const record = (series: Samples, ns: number): void => {
    if (timed) series.push(ns / 1000);
  };

  const placeDirect = async (): Promise<void> => {
    const r = await place(direct, 'direct to the simulator');
    placed.direct++;
    restingDirect.push(r.id);
    record(h.direct, r.t1 - r.t0);
  };
  // (A): nothing watches; after the answer, wait for Kite's id before the next order.
  const placeOursA = async (): Promise<void> => {
    const r = await place(ours, 'ours (/kite, live key)');
    placed.ours++;
    restingOurs.push(r.id);
    record(h.oursA, r.t1 - r.t0);
    const a = await ask({ type: 'waitAck', id: r.id });
    if (a.type === 'ok') lastPaise = a.lastPaise;
  };
  // (B): the service thread watches from the live broker's request to Kite until Kite's id is known.
  const placeOursB = async (): Promise<void> => {
    await ask({ type: 'arm' });
    const r = await place(ours, 'ours (/kite, live key, watched)');
    placed.ours++;
    restingOurs.push(r.id);
    const a = await ask({ type: 'placedB', id: r.id });
    if (a.type !== 'ack') throw new Error(`the service thread answered ${a.type} to placedB`);
    lastPaise = a.lastPaise;
    record(h.oursB, r.t1 - r.t0);
    record(h.handOff, a.sendNs - r.t0);
    record(h.kiteSeen, a.respNs - a.sendNs);
    record(h.ack, a.ackNs - r.t0);
    if (timed && a.ackNs < a.respNs) ackBeforeKiteAnswer++;
    if (timed && a.ackNs < r.t1) ackBeforeOurAnswer++;
  };

  const cancelAll = async (): Promise<void> => {
    const oursIds = restingOurs.splice(0);
    for (const id of oursIds) {
      try {
        await ours.cancelOrder('regular', id);
      } catch (e) {
        throw new Error(`cancelOrder ${id} on /kite refused: ${describe(e)}`);
      }
      cancelled.ours++;
    }
    await ask({ type: 'waitFinal', ids: oursIds });
    const directIds = restingDirect.splice(0);
    for (const id of directIds) {
      try {
        await direct.cancelOrder('regular', id);
      } catch (e) {
        throw new Error(`cancelOrder ${id} at the simulator refused: ${describe(e)}`);
      }
      cancelled.direct++;
    }
    const wanted = new Set(directIds);
    await until('the simulator to show the direct orders CANCELLED', async () => {
      const rows = (await direct.getOrders()) as { order_id: string; status: string }[];
      return rows.every((row) => !wanted.has(row.order_id) || row.status === 'CANCELLED');
    }, WAIT_MS);
  };

  try {
    lastPaise = ((await ask({ type: 'price' })) as { lastPaise: number }).lastPaise;
    for (let i = 0; i < o.warmupRounds + o.rounds; i++) {
      if (i === o.warmupRounds) {
        await cancelAll();
        await ask({ type: 'measuring' });
        timed = true;
      }
      await placeDirect();
      await placeOursA();
      await placeDirect();
      await placeOursB();
      if ((i + 1) % o.cancelEvery === 0) await cancelAll();
    }
    await cancelAll();
    await ask({ type: 'measured' });
    kiteConnections = connections;
    h.commit = await commitFloor(o.dbUrl, o.commits);
  } catch (e) {
    failure = describe(e);
  }
  return { ...h, ackBeforeKiteAnswer, ackBeforeOurAnswer, placed, cancelled, connections: kiteConnections > 0 ? kiteConnections : connections, failure };
}

/**
 * The floor under any answer given after a commit on this machine: `n` one-row INSERT
 * transactions on the same database, one at a time, after n / 10 untimed; the table is dropped.
 */
async function commitFloor(url: string, n: number): Promise<Samples> {
  const [{ default: postgres }, { pgOptions }] = await Promise.all([import('postgres'), import('../src/core/db.ts')]);
  const sql = postgres(url, pgOptions({ max: 1 }));
  const out: Samples = [];
  try {
    await sql.unsafe('CREATE TABLE IF NOT EXISTS bench_commit_floor (i bigint, at timestamptz DEFAULT now())');
    const warm = Math.ceil(n / 10);
    for (let i = 0; i < warm + n; i++) {
      const t0 = nowNs();
      await sql.begin((tx) => [tx.unsafe('INSERT INTO bench_commit_floor (i) VALUES ($1)', [i])]);
      if (i >= warm) out.push((nowNs() - t0) / 1000);
    }
    await sql.unsafe('DROP TABLE bench_commit_floor');
  } finally {
    await sql.end({ timeout: 1 });
  }
  return out;
}

// As a worker (startWorker): run the client with the options in workerData and report.
if (parentPort !== null && (workerData as { data?: { liveOrders?: ClientOptions } })?.data?.liveOrders) {
  const port = parentPort;
  const result = await runClient((workerData as { data: { liveOrders: ClientOptions } }).data.liveOrders, port);
  port.postMessage({ type: 'done', result } satisfies ToService);
}

// --- the service's side --------------------------------------------------------------------------

type Service = import('../src/service.ts').Service;

interface Watch {
  armed: boolean;
  /** Orders of the key when armed: the watched order is the one at this index. */
  n0: number;
  req: ClientRequest | null;
  sendNs: number;
  respNs: number;
  ackNs: number;
  done: Promise<void> | null;
}

/** Resolves with the first truthy value of `cond`, looked at once per event-loop turn (setImmediate). */
function spin<T>(what: string, cond: () => T | null | undefined | false): Promise<T> {
  return new Promise((resolve, reject) => {
    const deadline = performance.now() + WAIT_MS;
    const look = (): void => {
      let v: T | null | undefined | false;
      try {
        v = cond();
      } catch (e) {
        reject(e);
        return;
      }
      if (v) resolve(v);
      else if (performance.now() > deadline) reject(new Error(`timed out after ${WAIT_MS} ms waiting for ${what}`));
      else setImmediate(look);
    };
    look();
  });
}

/** Over the timed rounds: ticks that reached the hub, wall time, and the CPU of the service's and the simulator's main threads. */
interface Measured {
  ticks: number;
  seconds: number;
  main: Sched | null;
  sim: Sched | null;
}

/** Runs the client worker, answering its asks; samples the feed and CPU between 'measuring' and 'measured' (the timed rounds and their cancels). */
function serveClient(s: Service, infy: number, simPid: number, opts: ClientOptions, startWorker: typeof import('../src/threads.ts').startWorker): Promise<{ result: ClientResult; measured: Measured | null }> {
  const watch: Watch = { armed: false, n0: 0, req: null, sendNs: 0, respNs: 0, ackNs: 0, done: null };
  const lastPaise = (): number => s.orders.mark(infy)?.lastPaise ?? 0;
  const onStart = (m: unknown): void => {
    const req = (m as { request: ClientRequest }).request;
    if (!watch.armed || watch.req !== null || req.method !== 'POST' || !req.path.startsWith('/orders/')) return;
    watch.req = req;
    watch.sendNs = nowNs();
    watch.done = spin('Kite\'s order_id of the watched order', () => s.orders.orders(KEY)[watch.n0]?.brokerOrderId).then(() => { watch.ackNs = nowNs(); });
  };
  const onResponse = (m: unknown): void => {
    if ((m as { request: ClientRequest }).request === watch.req && watch.respNs === 0) watch.respNs = nowNs();
  };
  diagnostics.subscribe('http.client.request.start', onStart);
  diagnostics.subscribe('http.client.response.finish', onResponse);

  let before: { ticks: number; t: number; main: Sched | null; sim: Sched | null } | null = null;
  let measured: Measured | null = null;
  const ticks = (): number => (s.health() as { live: { ticks: number } }).live.ticks;

  const answer = async (a: Ask): Promise<Reply> => {
    switch (a.type) {
      case 'price':
        return { type: 'ok', lastPaise: lastPaise() };
      case 'arm':
        watch.armed = true;
        watch.n0 = s.orders.orders(KEY).length;
        watch.req = null;
        watch.sendNs = watch.respNs = watch.ackNs = 0;
        watch.done = null;
        return { type: 'ok', lastPaise: lastPaise() };
      case 'placedB': {
        const o = s.orders.orders(KEY)[watch.n0];
        if (o === undefined || o.id !== a.id) throw new Error(`the watched order is ${o?.id ?? 'missing'}, the client placed ${a.id}`);
        if (watch.done === null) throw new Error(`no request to Kite started for order ${a.id} (http.client.request.start did not see POST /orders/...)`);
        await watch.done;
        // Kite's answer may be parsed after the id came by the ticker: wait for it too (untimed).
        await spin('Kite\'s answer to the watched placement', () => watch.respNs !== 0);
        watch.armed = false;
        return { type: 'ack', lastPaise: lastPaise(), sendNs: watch.sendNs, respNs: watch.respNs, ackNs: watch.ackNs };
      }
      case 'waitAck':
        await spin(`Kite's order_id of ${a.id}`, () => s.orders.orderById(a.id)?.brokerOrderId);
        return { type: 'ok', lastPaise: lastPaise() };
      case 'waitFinal': {
        const ids = a.ids;
        await until(() => `our orders to be CANCELLED (${ids.filter((id) => s.orders.orderById(id)?.status !== 'CANCELLED').length} of ${ids.length} not yet)`,
          () => ids.every((id) => s.orders.orderById(id)?.status === 'CANCELLED'), WAIT_MS);
        return { type: 'ok', lastPaise: lastPaise() };
      }
      case 'measuring':
        before = { ticks: ticks(), t: performance.now(), main: schedOf([process.pid]), sim: procSched(simPid) };
        return { type: 'ok', lastPaise: lastPaise() };
      case 'measured':
        if (before !== null) {
          measured = {
            ticks: ticks() - before.ticks, seconds: (performance.now() - before.t) / 1000,
            main: schedDelta(before.main, schedOf([process.pid])), sim: schedDelta(before.sim, procSched(simPid)),
          };
        }
        return { type: 'ok', lastPaise: lastPaise() };
    }
  };

  return new Promise((resolve, reject) => {
    const w: Worker = startWorker(new URL(import.meta.url), { workerData: { liveOrders: opts } });
    let done = false;
    const finish = (): void => {
      diagnostics.unsubscribe('http.client.request.start', onStart);
      diagnostics.unsubscribe('http.client.response.finish', onResponse);
    };
    w.on('message', (m: ToService) => {
      if (m.type === 'ask') {
        answer(m.ask).then((r) => w.postMessage(r), (e: unknown) => w.postMessage({ type: 'error', message: describe(e) } satisfies Reply));
        return;
      }
      done = true;
      finish();
      resolve({ result: m.result, measured });
      void w.terminate();
    });
    w.on('error', (e) => {
      finish();
      reject(e);
    });
    w.on('exit', (code) => {
      if (!done) {
        finish();
        reject(new Error(`the client worker exited (${code}) before reporting`));
      }
    });
  });
}

/** Another process's main thread: run and wait ns (Linux /proc), null where not available. */
function procSched(pid: number): Sched | null {
  try {
    const [run, wait] = readFileSync(`/proc/${pid}/schedstat`, 'utf8').split(' ');
    return { runNs: Number(run), waitNs: Number(wait) };
  } catch {
    return null;
  }
}

type Outcome = { ok: true; result: ClientResult; measured: Measured | null } | { ok: false; failure: string };

/** One session: a fresh simulator process, database and service; `rounds` timed rounds after the warm-up. */
async function session(rounds: number): Promise<Outcome> {
  const [{ default: postgres }, { pgOptions }, { loadConfig }, { KeyStore, keysFilePath }, { silentLogger }, { startService }, { startWorker }] = await Promise.all([
    import('postgres'), import('../src/core/db.ts'), import('../src/config.ts'), import('../src/auth/keys.ts'), import('../src/log.ts'),
    import('../src/service.ts'), import('../src/threads.ts'),
  ]);
  const dataDir = mkdtempSync(join(tmpdir(), 'bench-live-orders-'));
  const admin = postgres(ADMIN_URL, pgOptions({ max: 1 }));
  let service: Service | null = null;
  let sim: ChildProcess | null = null;
  try {
    const started = await startSimProcess(SIM_RATE);
    sim = started.child;
    await admin.unsafe(`DROP DATABASE IF EXISTS ${DB_NAME}`);
    await admin.unsafe(`CREATE DATABASE ${DB_NAME}`);
    // A live key, made as `npm run keys -- create trader --live` makes it, before the service starts.
    const keys = await KeyStore.load({ configured: [], file: keysFilePath(dataDir) });
    const secret = (await keys.create(KEY, 'live')).secret;
    const config = loadConfig({
      KITE_API_KEY: SERVICE_KITE_KEY, KITE_ACCESS_TOKEN: SERVICE_KITE_KEY, KITE_WS_URL: started.wsUrl, KITE_API_URL: started.apiUrl,
      MARKET_HOURS: 'always', DATABASE_URL: DB_URL, DATA_DIR: dataDir, PORT: '0', ...RAISED,
    });
    try {
      service = await startService(config, silentLogger);
    } catch (e) {
      return { ok: false, failure: `startService failed: ${describe(e)}` };
    }
    const s = service;
    const infy = s.tokens.find((t) => s.orders.kiteSymbol(t) === 'INFY');
    if (infy === undefined) return { ok: false, failure: 'INFY is not in the service\'s universe (service.tokens)' };
    await until('INFY to tick', () => s.orders.mark(infy) !== null, 60_000);
    const { result, measured } = await serveClient(s, infy, sim.pid ?? 0, {
      ourRoot: `http://127.0.0.1:${s.port}/kite`, secret, simRoot: started.apiUrl, warmupRounds: WARMUP_ROUNDS, rounds, cancelEvery: CANCEL_EVERY,
      dbUrl: DB_URL, commits: rounds,
    }, startWorker);
    const writeErrors = s.orders.stats().writeErrors;
    if (writeErrors > 0 && result.failure === null) result.failure = `the order service counted ${writeErrors} failed writes (orders.stats().writeErrors)`;
    return { ok: true, result, measured };
  } catch (e) {
    return { ok: false, failure: describe(e) };
  } finally {
    await service?.close();
    sim?.kill('SIGTERM');
    await admin.unsafe(`DROP DATABASE IF EXISTS ${DB_NAME} WITH (FORCE)`).catch(() => {});
    await admin.end();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

// --- printing ------------------------------------------------------------------------------------

function printTable(head: string[], rows: string[][], indent = '   '): void {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const fmt = (r: string[]) => indent + r.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  console.log(fmt(head));
  for (const r of rows) console.log(fmt(r));
}

const row = (label: string, l: Latency): string[] => [label, String(l.count), us(l.meanUs), us(l.p50Us), us(l.p99Us), us(l.p999Us), us(l.maxUs)];
const plus = (x: number): string => (x >= 0 ? `+${us(x)}` : `−${us(-x)}`);
const pct = (x: number): string => `${(x * 100).toFixed(0)} %`;

export default async function run(): Promise<void> {
  console.log(loadLine());
  const sessions = Math.ceil(ROUNDS / SESSION_ROUNDS);
  console.log(`\nLive order round trip on loopback, the Kite simulator standing in for Kite (its own process, feed at ${SIM_RATE} ticks/s), ` +
    `the whole service in this process; ${ROUNDS} rounds in ${sessions} session${sessions === 1 ? '' : 's'} of up to ${SESSION_ROUNDS} ` +
    `(each a fresh simulator, database and service, ${WARMUP_ROUNDS} rounds of warm-up); a round: direct, ours (A), direct, ours (B), one at a time:`);
  console.log(`   raised so the bench measures latency, not refusals: ${Object.entries(RAISED).map(([k, v]) => `${k}=${v}`).join(' ')}`);
  console.log(`   orders: LIMIT BUY 1 INFY CNC 10 % under the market (they rest); cancelled every ${CANCEL_EVERY} rounds, untimed, until both books show them CANCELLED`);
  console.log(`   storage: a fresh PostgreSQL database per session, ${DB_URL.replace(/\/\/[^@/]*@/, '//')}; client: a worker thread with two official KiteConnect clients`);

  const all: ClientResult = { direct: [], oursA: [], oursB: [], handOff: [], kiteSeen: [], ack: [], commit: [], ackBeforeKiteAnswer: 0, ackBeforeOurAnswer: 0,
    placed: { direct: 0, ours: 0 }, cancelled: { direct: 0, ours: 0 }, connections: 0, failure: null };
  const m = { ticks: 0, seconds: 0, main: { runNs: 0, waitNs: 0 } as Sched | null, sim: { runNs: 0, waitNs: 0 } as Sched | null };
  const perSession: string[][] = [];
  for (let i = 0; i < sessions && all.failure === null; i++) {
    const rounds = Math.min(SESSION_ROUNDS, ROUNDS - i * SESSION_ROUNDS);
    const out = await session(rounds);
    if (!out.ok) {
      all.failure = `session ${i + 1}: ${out.failure}`;
      break;
    }
    const r = out.result;
    for (const k of SERIES) all[k].push(...r[k]);
    all.ackBeforeKiteAnswer += r.ackBeforeKiteAnswer;
    all.ackBeforeOurAnswer += r.ackBeforeOurAnswer;
    all.placed.direct += r.placed.direct;
    all.placed.ours += r.placed.ours;
    all.cancelled.direct += r.cancelled.direct;
    all.cancelled.ours += r.cancelled.ours;
    all.connections += r.connections;
    if (r.failure !== null) all.failure = `session ${i + 1}: ${r.failure}`;
    const x = out.measured;
    if (x !== null) {
      m.ticks += x.ticks;
      m.seconds += x.seconds;
      m.main = m.main && x.main && { runNs: m.main.runNs + x.main.runNs, waitNs: m.main.waitNs + x.main.waitNs };
      m.sim = m.sim && x.sim && { runNs: m.sim.runNs + x.sim.runNs, waitNs: m.sim.waitNs + x.sim.waitNs };
    }
    const [d, a, k] = [latency(r.direct), latency(r.oursA), latency(r.ack)];
    perSession.push([String(i + 1), String(a.count), us(d.p50Us), us(a.p50Us), us(k.p50Us), us(d.p99Us), us(a.p99Us), us(k.p99Us), String(r.connections), loadavg()[0].toFixed(2)]);
  }

  const r = all;
  const [direct, oursA, oursB, ack, handOff, kiteSeen, commit] = [r.direct, r.oursA, r.oursB, r.ack, r.handOff, r.kiteSeen, r.commit].map(latency);
  if (m.seconds > 0) {
    const cpu = (x: Sched | null, who: string) => (x === null ? '' : `; ${who} on a core ${pct(x.runNs / 1e9 / m.seconds)}, waiting for one ${pct(x.waitNs / 1e9 / m.seconds)}`);
    console.log(`   during the timed rounds and their cancels (${m.seconds.toFixed(1)} s): feed ${(m.ticks / m.seconds).toFixed(0)} ticks/s at the hub` +
      cpu(m.main, 'the service\'s main thread') + cpu(m.sim, 'the simulator\'s main thread'));
  }
  if (r.failure !== null) console.log(`   FAILED after ${r.placed.direct} direct and ${r.placed.ours} of our orders: ${r.failure}`);
  console.log('   per session (p50 and p99; connections the client opened, 2 = one kept alive to each):');
  printTable(['session', 'rounds', 'direct p50', 'ours A p50', 'Kite id p50', 'direct p99', 'ours A p99', 'Kite id p99', 'conns', 'load avg after'], perSession, '     ');
  printTable(['round trip (request → ...), all sessions', 'n', 'mean', 'p50', 'p99', 'p99.9', 'max'], [
    row('direct to the simulator → Kite\'s {order_id} (baseline)', direct),
    row('ours (A), /kite live key → our {order_id}', oursA),
    row('ours (B, watched) → our {order_id}', oursB),
    row('ours (B) → Kite\'s order_id known to our service', ack),
    row('  of which: → the live broker starts its request to Kite', handOff),
    row('  and: that request → Kite\'s answer parsed in our process', kiteSeen),
    row('floor: 1-row INSERT transaction, the same PostgreSQL', commit),
  ]);
  const ok = r.failure === null && direct.count > 0 && oursA.count > 0 && ack.count > 0;
  if (direct.count > 0 && oursA.count > 0 && ack.count > 0) {
    console.log(`   overhead, our answer (A) − direct: p50 ${plus(oursA.p50Us - direct.p50Us)} (${(oursA.p50Us / direct.p50Us).toFixed(2)}x), ` +
      `p99 ${plus(oursA.p99Us - direct.p99Us)} (${(oursA.p99Us / direct.p99Us).toFixed(2)}x)`);
    console.log(`   overhead, Kite's id known to us (B) − direct: p50 ${plus(ack.p50Us - direct.p50Us)} (${(ack.p50Us / direct.p50Us).toFixed(2)}x), ` +
      `p99 ${plus(ack.p99Us - direct.p99Us)} (${(ack.p99Us / direct.p99Us).toFixed(2)}x)`);
    console.log(`   what watching costs, our answer (B) − (A): p50 ${plus(oursB.p50Us - oursA.p50Us)}, p99 ${plus(oursB.p99Us - oursA.p99Us)}`);
    console.log(`   (B) Kite's id known before Kite's answer to the place was parsed (its ticker update came first): ${r.ackBeforeKiteAnswer} of ${ack.count}; ` +
      `before our answer reached the client: ${r.ackBeforeOurAnswer} of ${ack.count}`);
  }
  console.log(`   orders placed (warm-up included): direct ${r.placed.direct}, ours ${r.placed.ours}; cancelled ${r.cancelled.direct} and ${r.cancelled.ours}`);
  console.log(`   ${loadLine()} (after the run)`);

  if (ok) {
    for (const [name, l] of [["live place, our answer (/kite, live key)", oursA], ["live place, Kite's order_id known to us", ack]] as const) {
      record({ bench: 'live-orders', name: `${name} p50`, unit: 'µs', better: 'lower', value: l.p50Us, baseline: { name: 'direct to Kite, p50', value: direct.p50Us } });
      record({ bench: 'live-orders', name: `${name} p99`, unit: 'µs', better: 'lower', value: l.p99Us, baseline: { name: 'direct to Kite, p99', value: direct.p99Us } });
    }
  }
  const why = ok ? '' : `NOT MEASURED: ${r.failure ?? 'no timed orders'}`.slice(0, 160);
  console.log('\nsummary');
  printTable(['figure', 'value', 'baseline', 'target', 'result'], [
    ['live place p50, our answer (/kite, live key)', us(oursA.p50Us), `direct ${us(direct.p50Us)}`, 'none set', ok ? `overhead ${plus(oursA.p50Us - direct.p50Us)}` : why],
    ['live place p99, our answer (/kite, live key)', us(oursA.p99Us), `direct ${us(direct.p99Us)}`, 'none set', ok ? `overhead ${plus(oursA.p99Us - direct.p99Us)}` : why],
    ['live place p50, Kite\'s order_id known to us', us(ack.p50Us), `direct ${us(direct.p50Us)}`, 'none set', ok ? `overhead ${plus(ack.p50Us - direct.p50Us)}` : why],
    ['live place p99, Kite\'s order_id known to us', us(ack.p99Us), `direct ${us(direct.p99Us)}`, 'none set', ok ? `overhead ${plus(ack.p99Us - direct.p99Us)}` : why],
  ]);
}
