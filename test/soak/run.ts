/**
 * Soak and faults (issue #17): the service as its own process (`node --import tsx src/main.ts`)
 * against the Kite simulator in this process, whose `onFrame` hook records every packet sent
 * (ledger.ts), PostgreSQL in a scratch database, Redis of its own. Loopback only; stops by itself.
 *
 *   node --import tsx test/soak/run.ts [--minutes N] [--ci] [--only soak|faults|NAME,...] [--rate R]
 *
 * - soak: N minutes (default 10) at a steady rate: RSS and V8 heap sampled every 5 s (slope per
 *   minute printed), ring depth, then every tick in market_data exactly once, the closed bars equal
 *   to a reference computed from the sent ticks, every paper order consistent.
 * - faults, each followed by the same exactly-once check (cumulative over the whole run).
 * - --ci: a 2-minute soak and three faults (kite-drop, pg-terminate, sigkill-restart).
 *
 * Prints a table (fault, ticks produced, rows stored, duplicates, lost with the service's reason,
 * lost without one, recovery) and exits 1 when a tick is stored twice, lost without a reason, a bar
 * differs, an order is inconsistent, memory or ring depth grows, or a recovery never comes.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import postgres from 'postgres';
import WebSocket from 'ws';
import { pgOptions } from '../../src/core/db.ts';
import { startSimulator, type Simulator } from '../../src/kite/sim/server.ts';
import { until } from '../support/until.ts';
import { checkBars, checkOnce, checkOrders, slope, type Window } from './checks.ts';
import { SoakLedger } from './ledger.ts';
import { OwnRedis, startServiceProc, stop, type ServiceProc } from './procs.ts';

// ---------------------------------------------------------------------------------------------
// Options

const argv = process.argv.slice(2);
const flag = (name: string) => argv.includes(name);
const opt = (name: string) => {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : undefined;
};
const CI = flag('--ci');
const MINUTES = Number(opt('--minutes') ?? (CI ? 2 : 10));
const RATE = Number(opt('--rate') ?? 1500);
const ALL_FAULTS = ['kite-drop', 'kite-refused-30s', 'pg-terminate', 'pg-refused-30s', 'redis-restart', 'spill-full', 'slow-client', 'hostile-messages', 'sigkill-restart', 'ingest-owner-kill'];
const CI_FAULTS = ['kite-drop', 'pg-terminate', 'sigkill-restart'];
const only = (opt('--only') ?? '').split(',').filter((x) => x !== '');
const runSoak = only.length === 0 || only.includes('soak');
const faults = (only.length === 0 || only.includes('faults') ? (CI ? CI_FAULTS : ALL_FAULTS) : ALL_FAULTS.filter((f) => only.includes(f)));
for (const o of only) if (o !== 'soak' && o !== 'faults' && !ALL_FAULTS.includes(o)) throw new Error(`--only: unknown ${o}; one of soak, faults, ${ALL_FAULTS.join(', ')}`);
if (!(MINUTES > 0)) throw new Error(`--minutes must be a positive number, got ${opt('--minutes')}`);
const OUTAGE_MS = 30_000;

// ---------------------------------------------------------------------------------------------
// The run's parts

const SECRET = `soak${randomBytes(10).toString('hex')}`;
const AUTH = { authorization: `Bearer ${SECRET}` };
const t0 = Date.now();
const elapsed = () => `${((Date.now() - t0) / 1000).toFixed(1)}s`;
const say = (msg: string) => console.log(`[soak ${elapsed()}] ${msg}`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const dir = mkdtempSync(join(tmpdir(), 'n50-soak-'));
const dataDir = join(dir, 'data');
const dbName = `soak_${process.pid}_${randomBytes(3).toString('hex')}`;
const ADMIN_URL = 'postgres://root@127.0.0.1:5432/test';
const dbUrl = `postgres://root@127.0.0.1:5432/${dbName}`;
const admin = postgres(ADMIN_URL, pgOptions({ max: 2, onnotice: () => {} }));
let sql: postgres.Sql<any>;
const basePort = 20_000 + Math.floor(Math.random() * 9000);
let nextPort = basePort;
const redis = new OwnRedis(basePort + 900, dir);
const ledger = new SoakLedger();
let sim: Simulator;
let svc: ServiceProc | null = null;
const others: ServiceProc[] = [];
const windows: Window[] = [];
const noisy: { fromMs: number; toMs: number }[] = [];
/** When a new service process began to take ticks: its first tick per token has no volume before it. */
const resets: number[] = [];
const failures: string[] = [];

interface Row { fault: string; recoveryMs: number | null; note: string }
const table: Row[] = [];

function serviceEnv(extra: Record<string, string> = {}): Record<string, string> {
  return {
    KITE_API_KEY: 'sim-key', KITE_ACCESS_TOKEN: 'sim-token', KITE_WS_URL: sim.wsUrl, KITE_API_URL: sim.apiUrl, KITE_MODE: 'full',
    DATABASE_URL: dbUrl, REDIS_URL: redis.url, REDIS_PREFIX: `soak${process.pid}:`, DATA_DIR: dataDir, API_KEYS: `soak:${SECRET}`,
    WORKERS: '1', MARKET_HOURS: 'always', LOG_LEVEL: 'info', ...extra,
  };
}

async function startService(name: string, extra: Record<string, string> = {}): Promise<ServiceProc> {
  orderTarget = null;
  resets.push(Date.now());
  const p = startServiceProc(name, nextPort++, serviceEnv(extra), dir, SECRET);
  await until(`${name} to take ticks (log ${p.log})`, async () => {
    if (p.child.exitCode !== null) throw new Error(`${name} exited with ${p.child.exitCode}; log ${p.log}`);
    const h = await p.health();
    return h?.feed?.connected === true && h.store?.state !== undefined;
  }, 90_000);
  if (extra.ROLE === undefined) orderTarget = p;
  return p;
}

// ---------------------------------------------------------------------------------------------
// Paper orders, one every 2 s while trading: MARKET buys and sells of a few stocks, and LIMIT
// orders far from the market that rest (then get cancelled).

let ordering = false;
/** Where orders go: the ROLE=all service; null while none serves REST (the ingest roles). */
let orderTarget: ServiceProc | null = null;

async function lastPrice(p: ServiceProc, sym: string): Promise<number | null> {
  try {
    const r = await fetch(`${p.url}/api/quote?symbols=NSE:${sym}`, { headers: AUTH, signal: AbortSignal.timeout(5000) });
    const q = ((await r.json()) as { quotes?: Record<string, unknown>[] }).quotes?.[0];
    const v = q?.last_price ?? q?.lastPrice ?? q?.price;
    return typeof v === 'number' && v > 0 ? v : null;
  } catch {
    return null;
  }
}
const orderStats = { sent: 0, accepted: 0, refused: 0, errors: 0 };
/** Why orders were refused, by answer: a refusal is an answer, not an inconsistency (503 while the database is away). */
const refusals = new Map<string, number>();
async function orderLoop(): Promise<void> {
  const syms = ['INFY', 'TCS', 'RELIANCE', 'HDFCBANK'];
  let i = 0;
  while (ordering) {
    const target = orderTarget;
    if (target !== null) {
      const sym = syms[i % syms.length];
      const body: Record<string, unknown> = { exchange: 'NSE', tradingsymbol: sym, transaction_type: i % 2 ? 'SELL' : 'BUY', quantity: 1, product: 'MIS', variety: 'regular' };
      // Every fifth a LIMIT buy 10% under the last price: it rests, inside the day's band.
      const last = i % 5 === 4 ? await lastPrice(target, sym) : null;
      if (last !== null) Object.assign(body, { order_type: 'LIMIT', price: Math.round(last * 0.9 * 20) / 20, transaction_type: 'BUY' });
      else Object.assign(body, { order_type: 'MARKET', market_protection: -1 });
      orderStats.sent++;
      try {
        const r = await fetch(`${target.url}/api/orders`, {
          method: 'POST', headers: { ...AUTH, 'content-type': 'application/json', 'idempotency-key': `soak-${i}` }, body: JSON.stringify(body), signal: AbortSignal.timeout(5000),
        });
        const text = await r.text();
        if (r.status < 300) orderStats.accepted++;
        else {
          orderStats.refused++;
          const why = `${r.status} ${text.slice(0, 120)}`;
          refusals.set(why, (refusals.get(why) ?? 0) + 1);
        }
      } catch {
        orderStats.errors++;
      }
      i++;
    }
    await sleep(2000);
  }
}

// ---------------------------------------------------------------------------------------------
// Quiet, caught up, checked

/** Stop trading and wait until everything sent is stored: ring empty, nothing unacknowledged, no spill, count steady. */
async function quiesce(p: ServiceProc): Promise<void> {
  sim.setRate(0);
  let last = -1;
  let lastPackets = -1;
  await until(() => `${p.name} to catch up (rows ${last})`, async () => {
    const h = await p.health();
    const [{ n }] = await sql`SELECT count(*)::int AS n FROM market_data`.catch(() => [{ n: -1 }]);
    const steady = n === last && ledger.packets === lastPackets && n >= 0;
    last = n;
    lastPackets = ledger.packets;
    const rings = (h?.rings as { depth: number }[] | undefined) ?? [];
    const ok = h !== null && rings.every((r) => r.depth === 0) && h.store?.lagRecords?.ticks === 0 && h.store?.lagRecords?.bars === 0 && (h.store?.spill?.batches ?? 1) === 0;
    if (!steady || !ok) await sleep(400);
    return steady && ok;
  }, 120_000);
}

/** The tokens the service follows, as far as the simulator has sent them. */
function followedTokens(): number[] {
  const set = new Set<number>();
  for (let i = Math.max(0, ledger.n - 50_000); i < ledger.n; i++) set.add(ledger.token[i]);
  return [...set];
}

async function check(label: string): Promise<void> {
  const r = await checkOnce(sql, ledger, windows);
  const o = await checkOrders(sql);
  say(`${label}: ${r.total.produced} ticks sent, ${r.storedRows} rows in market_data, ${r.total.duplicates} duplicates, `
    + `${r.total.lostWithReason} lost with a reason, ${r.total.lostWithout} lost without; ${r.quarantined} quarantined; ${r.gaps.length} feed gaps; `
    + `${o.orders} orders ${JSON.stringify(o.byStatus)}, ${o.problems.length} inconsistent`);
  if (o.problems.length > 0) failures.push(`${label}: orders inconsistent: ${o.problems.slice(0, 5).join('; ')}`);
}

/** Ticks at RATE for `ms`. */
async function trade(ms: number): Promise<void> {
  sim.setRate(RATE);
  await sleep(ms);
}

/** Until a tick received after `sinceMs` is committed and the spill is empty: recovery in ms since `sinceMs`. */
async function recovered(p: ServiceProc, sinceMs: number, what: string, timeoutMs = 120_000): Promise<number | null> {
  try {
    await until(`${what}: a tick received after ${new Date(sinceMs).toISOString()} committed`, async () => {
      const [{ n }] = await sql`SELECT count(*)::int AS n FROM market_data WHERE recv_time > ${new Date(sinceMs)}`.catch(() => [{ n: 0 }]);
      if (n === 0) return false;
      const h = await p.health();
      return (h?.store?.spill?.batches ?? 1) === 0;
    }, timeoutMs);
    return Date.now() - sinceMs;
  } catch (e) {
    failures.push(`${what}: no recovery: ${(e as Error).message}`);
    return null;
  }
}

async function refuseDb(on: boolean): Promise<void> {
  await admin.unsafe(`ALTER DATABASE "${dbName}" WITH ALLOW_CONNECTIONS ${on ? 'false' : 'true'}`);
  if (on) await terminateDb(true);
}

/** Terminate the service's sessions on the database (the soak's own checker too when `all`). */
async function terminateDb(all = false): Promise<number> {
  const rows = await admin`SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity
    WHERE datname = ${dbName} AND pid <> pg_backend_pid() AND (${all} OR application_name <> 'soak-check')`;
  return rows.length;
}

// ---------------------------------------------------------------------------------------------
// Phases

async function phase(name: string, body: () => Promise<{ recoveryMs: number | null; note: string; noisy?: boolean }>): Promise<void> {
  const from = Date.now();
  say(`--- ${name}`);
  let res: { recoveryMs: number | null; note: string; noisy?: boolean };
  try {
    res = await body();
    await quiesce(svc!);
  } catch (e) {
    failures.push(`${name}: ${(e as Error).stack ?? e}`);
    res = { recoveryMs: null, note: `error: ${(e as Error).message}` };
    sim.setRate(0);
    await sleep(2000);
  }
  const to = Date.now();
  windows.push({ name, fromMs: from, toMs: to });
  if (res.noisy !== false) noisy.push({ fromMs: from, toMs: to });
  table.push({ fault: name, recoveryMs: res.recoveryMs, note: res.note });
  await check(name);
}

interface Sample { s: number; rss: number; heap: number; depth: number }

async function soak(): Promise<Sample[]> {
  const samples: Sample[] = [];
  const start = Date.now();
  const end = start + MINUTES * 60_000;
  sim.setRate(RATE);
  while (Date.now() < end) {
    await sleep(5000);
    const h = await svc!.health();
    const rss = svc!.rss();
    const heap = await svc!.heapUsed();
    const depth = Math.max(0, ...(((h?.rings as { depth: number }[]) ?? []).map((r) => r.depth)));
    if (rss !== null && heap !== null) samples.push({ s: (Date.now() - start) / 1000, rss, heap, depth });
  }
  return samples;
}

const FAULTS: Record<string, () => Promise<{ recoveryMs: number | null; note: string; noisy?: boolean }>> = {
  async 'kite-drop'() {
    await trade(5000);
    const before = (await svc!.health())?.feed?.connections?.reduce((n: number, c: { disconnects: number }) => n + c.disconnects, 0);
    const at = Date.now();
    sim.dropAllConnections();
    const rec = await recovered(svc!, at, 'kite-drop');
    await trade(5000);
    const h = await svc!.health();
    const after = h?.feed?.connections?.reduce((n: number, c: { disconnects: number }) => n + c.disconnects, 0);
    return { recoveryMs: rec, note: `disconnects ${before} → ${after}, trading through the drop` };
  },

  async 'kite-refused-30s'() {
    await trade(5000);
    const trades0 = sim.stats.trades;
    const at = Date.now();
    sim.cutFeed();
    await sleep(OUTAGE_MS);
    const unsent = sim.stats.trades - trades0;
    const upAt = Date.now();
    sim.restoreFeed();
    const rec = await recovered(svc!, upAt, 'kite-refused-30s');
    await trade(5000);
    // The trades made while Kite was unreachable never reached the wire: lost by nature, with a
    // reason when a gap covers the cut for every instrument.
    const gaps = (await sql`SELECT extract(epoch FROM started_at)::float8 * 1000 AS s, extract(epoch FROM ended_at)::float8 * 1000 AS e, instruments::text AS i, cause
      FROM feed_gaps WHERE ended_at >= ${new Date(at)}`);
    const covered = new Set<number>();
    for (const g of gaps) if (g.s <= at + 1000 && g.e >= upAt - 1000) for (const t of String(g.i).replace(/[{}]/g, '').split(',')) covered.add(Number(t));
    const tokens = (await svc!.health())?.feed?.instruments as number;
    const refusals = sim.stats.refusedCut;
    if (covered.size < tokens) failures.push(`kite-refused-30s: the cut is a recorded gap for ${covered.size} of ${tokens} instruments`);
    return { recoveryMs: rec, note: `${unsent} trades made while cut (never sent: lost with reason "${gaps[0]?.cause ?? 'none'}" for ${covered.size}/${tokens} instruments); ${refusals} connects refused` };
  },

  async 'pg-terminate'() {
    await trade(5000);
    const at = Date.now();
    const n = await terminateDb();
    const rec = await recovered(svc!, at, 'pg-terminate');
    await trade(5000);
    const h = await svc!.health();
    return { recoveryMs: rec, note: `${n} sessions terminated while trading; writer restarts ${h?.store?.restarts ?? '?'}` };
  },

  async 'pg-refused-30s'() {
    await trade(5000);
    await refuseDb(true);
    await sleep(OUTAGE_MS);
    const h0 = await svc!.health();
    const upAt = Date.now();
    await refuseDb(false);
    const rec = await recovered(svc!, upAt, 'pg-refused-30s');
    await trade(5000);
    const h = await svc!.health();
    return { recoveryMs: rec, note: `spill at the end of the outage: ${h0?.store?.spill?.batches} batches, ${h0?.store?.spill?.bytes} B; replayed ${h?.store?.spill?.replayed}` };
  },

  async 'redis-restart'() {
    await trade(5000);
    const at = Date.now();
    await redis.stop();
    await sleep(3000);
    await redis.start();
    const upAt = Date.now();
    const cache = await until('the cache to write to Redis again', async () => {
      const h = await svc!.health();
      return h?.cache && (h.cache.pending === 0 || h.cache.pending === undefined) && Date.now() - upAt > 2000 ? h.cache : null;
    }, 60_000).catch((e) => {
      failures.push(`redis-restart: ${(e as Error).message}`);
      return null;
    });
    const rec = await recovered(svc!, at, 'redis-restart');
    await trade(3000);
    return { recoveryMs: cache ? Date.now() - upAt : rec, note: `Redis down 3 s while trading; cache ${JSON.stringify(cache)}`.slice(0, 160), noisy: false };
  },

  async 'spill-full'() {
    // A 1 MiB spill (the smallest SPILL_MAX_BYTES accepted) and the database refusing: the spill
    // fills, the feed is paused (back-pressure), nothing is dropped.
    await stop(svc!, 'SIGTERM');
    svc = await startService('service-smallspill', { SPILL_MAX_BYTES: String(1024 * 1024) });
    await trade(3000);
    await refuseDb(true);
    const full = await until('SPILL_FULL', async () => ((await svc!.health())?.store?.spill?.full ? true : null), 60_000).catch(() => null);
    // Past the rings' 65,536 slots while the spill is full: the front must pause the Kite sockets.
    const coalesced0 = sim.stats.coalescedPackets;
    sim.setRate(8000);
    const paused = await until('the feed to pause', async () => ((await svc!.health())?.feed?.paused ? true : null), 20_000).catch(() => false);
    const h0 = await svc!.health();
    sim.setRate(RATE);
    const upAt = Date.now();
    await refuseDb(false);
    const rec = await recovered(svc!, upAt, 'spill-full');
    await trade(3000);
    await quiesce(svc!);
    if (!full) failures.push('spill-full: the spill never reported full');
    if (!paused) failures.push('spill-full: the feed never paused with the spill full and the rings filling');
    await stop(svc!, 'SIGTERM');
    svc = await startService('service');
    return { recoveryMs: rec, note: `spill full ${Boolean(full)}, ${h0?.store?.spill?.bytes} B; feed paused ${paused}; Kite coalesced ${sim.stats.coalescedPackets - coalesced0} packets (slow consumer)` };
  },

  async 'slow-client'() {
    const ws = new WebSocket(`${svc!.url.replace('http', 'ws')}/ws`, { headers: AUTH });
    await new Promise((res, rej) => { ws.once('open', res); ws.once('error', rej); });
    const tokens = followedTokens();
    ws.send(JSON.stringify({ op: 'subscribe', id: 1, instruments: tokens, mode: 'full', bars: ['1s', '1m'] }));
    await sleep(200);
    let closed: string | null = null;
    ws.on('close', (code, reason) => { closed = `${code} ${reason.toString()}`; });
    ws.on('error', () => {});
    (ws as unknown as { _socket: import('node:net').Socket })._socket.pause();
    const rss0 = svc!.rss() ?? 0;
    await trade(20_000);
    const rss1 = svc!.rss() ?? 0;
    const live = (await svc!.health())?.live?.feed as Record<string, number> | undefined;
    (ws as unknown as { _socket: import('node:net').Socket })._socket.resume();
    await sleep(1000);
    ws.terminate();
    return { recoveryMs: 0, note: `a client not reading for 20 s: ${closed ? `cut off by the service (${closed})` : 'still open'}; feed conflations ${live?.conflations}, slow closes ${live?.slowCloses}, stall closes ${live?.stallCloses}; service RSS ${((rss1 - rss0) / 2 ** 20).toFixed(1)} MB over it`, noisy: false };
  },

  async 'hostile-messages'() {
    sim.setRate(RATE);
    const base = svc!.url.replace('http', 'ws');
    const sent: string[] = [];
    const open = async (path: string, headers: Record<string, string> = AUTH) => {
      const ws = new WebSocket(`${base}${path}`, { headers, maxPayload: 64 * 2 ** 20 });
      ws.on('error', () => {});
      ws.on('message', () => {});
      await new Promise((res) => { ws.once('open', res); ws.once('close', res); ws.once('unexpected-response', res); });
      return ws;
    };
    const msgs: (string | Buffer)[] = [
      '', 'not json', '{', '[]', 'null', '{"op":"subscribe"}', '{"op":"subscribe","id":1,"instruments":"INFY"}',
      JSON.stringify({ op: 'subscribe', id: 2, instruments: Array.from({ length: 200_000 }, (_, i) => i + 1) }),
      JSON.stringify({ op: 'subscribe', id: 3, instruments: ['INFY'], mode: 'nonsense', bars: ['7x'] }),
      JSON.stringify({ op: '__proto__', id: { a: 1 } }), '{"__proto__":{"polluted":true},"op":"subscribe","id":4,"instruments":["INFY"]}',
      '['.repeat(100_000), 'x'.repeat(2 * 2 ** 20), randomBytes(4096), Buffer.from([0xc1]), Buffer.from([0xdc, 0xff, 0xff]),
    ];
    for (const path of ['/ws', '/kite']) {
      const ws = await open(path);
      for (const m of msgs) if (ws.readyState === WebSocket.OPEN) { ws.send(m); sent.push(path); }
      if (path === '/kite' && ws.readyState === WebSocket.OPEN) for (const m of ['{"a":"subscribe","v":"x"}', '{"a":"mode","v":["full",[-1,1e30]]}', '{"a":"subscribe","v":[1e308,-5,"x"]}']) ws.send(m);
      await sleep(500);
      ws.terminate();
    }
    // Unauthenticated and half-open upgrades, and a burst of connections.
    for (const headers of [{}, { authorization: 'Bearer wrong' }, { authorization: 'Basic x' }] as Record<string, string>[]) (await open('/ws', headers)).terminate();
    const burst = await Promise.all(Array.from({ length: 50 }, () => open('/ws')));
    for (const ws of burst) ws.terminate();
    // Malformed REST bodies.
    for (const body of ['{', 'x'.repeat(100_000), JSON.stringify({ exchange: 'NSE', tradingsymbol: 'INFY', quantity: -1 }), '{"__proto__":{"x":1}}']) {
      await fetch(`${svc!.url}/api/orders`, { method: 'POST', headers: { ...AUTH, 'content-type': 'application/json' }, body }).then((r) => r.arrayBuffer()).catch(() => {});
    }
    // Hostile text from upstream: order updates with garbage payloads on the Kite sockets.
    for (const data of [{}, { order_id: null }, { order_id: 'x'.repeat(10_000), status: 42 }, { status: 'COMPLETE', filled_quantity: 'NaN' }]) sim.sendOrderPostback(data as Record<string, unknown>);
    await trade(5000);
    const h = await svc!.health();
    const alive = h !== null && svc!.child.exitCode === null;
    if (!alive) failures.push('hostile-messages: the service stopped answering /health');
    return { recoveryMs: 0, note: `${msgs.length} hostile messages on /ws and /kite, 3 bad upgrades, 50-connection burst, 4 bad REST bodies, 4 garbage upstream order updates; alive ${alive}; decode errors ${JSON.stringify(h?.decode?.errors)}`.slice(0, 220), noisy: false };
  },

  async 'sigkill-restart'() {
    await trade(8000);
    const at = Date.now();
    svc!.child.kill('SIGKILL');
    await svc!.exited;
    const restartAt = Date.now();
    svc = await startService('service-restarted');
    sim.setRate(RATE);
    const rec = await recovered(svc!, restartAt, 'sigkill-restart');
    await trade(5000);
    const h = await svc!.health();
    const [{ n: gaps }] = await sql`SELECT count(*)::int AS n FROM feed_gaps WHERE ended_at >= ${new Date(at)}`;
    return { recoveryMs: rec === null ? null : restartAt - at + rec, note: `SIGKILL while trading, restart on the same DATA_DIR; spill replayed ${h?.store?.spill?.replayed}; feed gaps recorded for the downtime: ${gaps}` };
  },

  async 'ingest-owner-kill'() {
    await stop(svc!, 'SIGTERM');
    const a = await startService('ingest-a', { ROLE: 'ingest' });
    await until('ingest A to own the lease', async () => (await a.health())?.lease?.state === 'owner', 60_000);
    const b = startServiceProc('ingest-b', nextPort++, serviceEnv({ ROLE: 'ingest' }), dir, SECRET);
    others.push(b);
    await until('ingest B to stand by', async () => (await b.health())?.lease === 'standby' || (await b.health())?.lease?.state === 'standby', 90_000);
    svc = a;
    await trade(8000);
    const at = Date.now();
    a.child.kill('SIGKILL');
    await a.exited;
    resets.push(Date.now());
    await until('ingest B to own the lease', async () => (await b.health())?.lease?.state === 'owner', 60_000);
    svc = b;
    const rec = await recovered(b, at, 'ingest-owner-kill');
    await trade(5000);
    return { recoveryMs: rec, note: `standby took over; lease token ${(await b.health())?.lease?.token}` };
  },
};

// ---------------------------------------------------------------------------------------------

async function main(): Promise<number> {
  say(`dir ${dir}; database ${dbName}; rate ${RATE} ticks/s; soak ${runSoak ? `${MINUTES} min` : 'off'}; faults ${faults.join(', ') || 'none'}`);
  await admin.unsafe(`CREATE DATABASE "${dbName}"`);
  sql = postgres(dbUrl, pgOptions({ max: 2, connection: { application_name: 'soak-check' }, onnotice: () => {} }));
  await redis.start();
  // Kite's mode message takes effect late: quote ticks come first after every (re)subscribe.
  sim = await startSimulator({ apiKey: 'sim-key', accessToken: 'sim-token', rate: 0, seed: 17, modeDelayMs: 100, onFrame: ledger.onFrame });
  const startAt = Date.now();
  svc = await startService('service');
  noisy.push({ fromMs: startAt - 1000, toMs: Date.now() + 2000 });
  say(`service up on ${svc.url} in ${Date.now() - startAt} ms`);
  windows.push({ name: 'start-up', fromMs: 0, toMs: Date.now() });
  table.push({ fault: 'start-up', recoveryMs: Date.now() - startAt, note: 'first start: migrations, subscribe snapshots (rate 0); recovery = time to take ticks' });
  ordering = true;
  const orders = orderLoop();

  let samples: Sample[] = [];
  if (runSoak) {
    await phase('soak', async () => {
      samples = await soak();
      return { recoveryMs: null, note: `${MINUTES} min at ${RATE} ticks/s`, noisy: false };
    });
    const bars = await checkBars(sql, ledger, noisy, resets, Date.now() - 2000);
    say(`bars: ${bars.compared} closed bars equal to the reference, ${bars.mismatched} differ, ${bars.skipped} flagged late/carried/partial not compared`);
    for (const e of bars.examples) say(`  bar: ${e}`);
    if (bars.mismatched > 0) failures.push(`soak: ${bars.mismatched} bars differ from the reference`);
    if (bars.compared === 0) failures.push('soak: no bar compared');
  }
  for (const f of faults) await phase(f, FAULTS[f]);
  ordering = false;
  await orders;
  if (svc) await quiesce(svc);

  // The final exactly-once check, split by phase.
  const r = await checkOnce(sql, ledger, windows);
  const o = await checkOrders(sql);
  if (faults.length > 0) {
    const bars = await checkBars(sql, ledger, noisy, resets, Date.now() - 2000);
    say(`bars over the whole run: ${bars.compared} equal to the reference, ${bars.mismatched} differ`);
    for (const e of bars.examples) say(`  bar: ${e}`);
    if (bars.mismatched > 0) failures.push(`${bars.mismatched} bars differ from the reference over the whole run`);
  }
  console.log('\n| fault | ticks produced | rows stored | duplicates | lost (with the service\'s reason) | lost without a reason | recovery | notes |');
  console.log('|---|---|---|---|---|---|---|---|');
  for (const row of table) {
    const w = r.rows.get(row.fault)!;
    const reasons = [...w.reasons].map(([c, n]) => `${n}: ${c}`).join('; ');
    console.log(`| ${row.fault} | ${w.produced} | ${w.stored} | ${w.duplicates} | ${w.lostWithReason}${reasons ? ` (${reasons})` : ''} | ${w.lostWithout} | ${row.recoveryMs === null ? '—' : `${(row.recoveryMs / 1000).toFixed(1)} s`} | ${row.note} |`);
    if (w.duplicates > 0) failures.push(`${row.fault}: ${w.duplicates} ticks stored twice, e.g. ${w.unexplained.join('; ')}`);
    if (w.lostWithout > 0) failures.push(`${row.fault}: ${w.lostWithout} ticks lost without a reason, e.g. ${w.unexplained.join('; ')}`);
  }
  const between = r.rows.get('between phases');
  if (between && between.produced > 0) console.log(`| (start-up, between phases) | ${between.produced} | ${between.stored} | ${between.duplicates} | ${between.lostWithReason} | ${between.lostWithout} | | |`);
  console.log(`| total | ${r.total.produced} | ${r.total.stored} (${r.storedRows} rows) | ${r.total.duplicates} | ${r.total.lostWithReason} | ${r.total.lostWithout} | | quarantined ${r.quarantined}; lost with a process but stored as the next one's quote-mode snapshot ${r.total.storedAsHead}; sim packets ${ledger.packets}, repeats ${ledger.repeats}; orders ${o.orders} ${JSON.stringify(o.byStatus)} (sent ${orderStats.sent}: ${orderStats.accepted} accepted, ${orderStats.refused} refused, ${orderStats.errors} errors) |\n`);
  for (const [why, n] of refusals) console.log(`orders refused ${n}x: ${why}`);
  const strays = r.total.unexplained.filter((u) => u.startsWith('stored row matching no sent tick'));
  if (strays.length > 0) failures.push(`stored rows matching no sent tick, e.g. ${strays.join('; ')}`);
  else if (r.total.duplicates > 0 && !failures.some((f) => f.includes('twice'))) failures.push(`${r.total.duplicates} duplicates: ${r.total.unexplained.join('; ')}`);
  // The simulator sends only valid ticks: a quarantined one is the service refusing a good tick.
  if (r.quarantined > 0) failures.push(`${r.quarantined} valid ticks quarantined (counted as lost with their reason above)`);
  if (o.problems.length > 0) failures.push(`orders inconsistent: ${o.problems.slice(0, 5).join('; ')}`);

  if (samples.length > 0) {
    // Slopes over the steady part: the first 20% (start-up, JIT, caches filling) left out.
    const steady = samples.filter((s) => s.s >= samples[samples.length - 1].s * 0.2);
    const xs = steady.map((s) => s.s / 60);
    const mb = (v: number) => (v / 2 ** 20).toFixed(2);
    const rssSlope = slope(xs, steady.map((s) => s.rss));
    const heapSlope = slope(xs, steady.map((s) => s.heap));
    const depthSlope = slope(xs, steady.map((s) => s.depth));
    const maxDepth = Math.max(...samples.map((s) => s.depth));
    console.log(`soak slopes over ${steady.length} samples (${xs[0].toFixed(1)}-${xs[xs.length - 1].toFixed(1)} min): RSS ${mb(rssSlope)} MB/min (${mb(steady[0].rss)} → ${mb(steady[steady.length - 1].rss)} MB), `
      + `heap ${mb(heapSlope)} MB/min (${mb(steady[0].heap)} → ${mb(steady[steady.length - 1].heap)} MB), ring depth ${depthSlope.toFixed(1)} slots/min (max ${maxDepth})`);
    // Flat: growth that would not reach 64 MB an hour for RSS, 32 MB for the heap. A window under
    // 2 minutes is warm-up (JIT, pools, caches filling) and too short to judge: printed only.
    const judged = xs[xs.length - 1] - xs[0] >= 2;
    if (!judged) console.log('soak slopes: the steady window is under 2 minutes; printed, not judged');
    if (judged && rssSlope > 64 / 60 * 2 ** 20 * 1) failures.push(`RSS grows ${mb(rssSlope)} MB/min`);
    if (judged && heapSlope > 32 / 60 * 2 ** 20) failures.push(`heap grows ${mb(heapSlope)} MB/min`);
    if (maxDepth > 8192) failures.push(`ring depth reached ${maxDepth}`);
  }
  return failures.length === 0 ? 0 : 1;
}

async function cleanup(): Promise<void> {
  sim?.setRate(0);
  for (const p of [svc, ...others]) if (p) await stop(p, 'SIGTERM', 15_000).catch(() => {});
  await sim?.close().catch(() => {});
  await redis.stop().catch(() => {});
  await sql?.end({ timeout: 1 }).catch(() => {});
  await admin.unsafe(`ALTER DATABASE "${dbName}" WITH ALLOW_CONNECTIONS true`).catch(() => {});
  // A failed run keeps its database beside its logs, to look at what was stored.
  if (failures.length === 0) await admin.unsafe(`DROP DATABASE IF EXISTS "${dbName}" WITH (FORCE)`).catch(() => {});
  else say(`database kept: ${dbUrl}`);
  await admin.end({ timeout: 1 }).catch(() => {});
  if (failures.length === 0) rmSync(dir, { recursive: true, force: true });
  else say(`logs kept in ${dir}`);
}

// The run bounds itself: past twice its planned length it stops, cleans up and fails.
const planned = (runSoak ? MINUTES * 60_000 : 0) + faults.length * 90_000 + 120_000;
const watchdog = setTimeout(() => {
  failures.push(`the run passed its bound of ${Math.round(planned * 2 / 1000)} s`);
  void cleanup().finally(() => process.exit(1));
}, planned * 2);
watchdog.unref();

let code = 1;
try {
  code = await main();
} catch (e) {
  failures.push(`run: ${(e as Error).stack ?? e}`);
}
await cleanup();
if (failures.length > 0) {
  console.log(`FAILED (${failures.length}):`);
  for (const f of failures) console.log(`- ${f}`);
  code = 1;
} else console.log('PASSED');
say(`done in ${elapsed()}`);
process.exit(code);
