/**
 * Replay bench (`npm run bench -- replay`): how fast the replay source (src/replay/source.ts)
 * reads stored ticks back as canonical records, against psql reading the same rows in the same run.
 *
 * 1. A scratch database (BENCH_PG_URL's server) gets BENCH_REPLAY_ROWS (2M) stored ticks over
 *    one 6¼-hour session, a third of them full mode with depth (test/support/replay-ticks.ts).
 * 2. PostgreSQL, the whole session, twice in turn: `psql -c "\copy (SELECT ...) TO '/dev/null'
 *    WITH (FORMAT binary)"` of the source's own SELECT (same columns, WHERE and ORDER BY) as the
 *    baseline, then the source at full speed; ticks/s, the ratio, peak RSS and heap growth.
 * 3. Alternatives on the first quarter of the session: the source's binary COPY; text COPY
 *    through the same driver stream with the bytes only counted (an upper bound for any text
 *    parser); the driver's cursor (FETCH 4096 rows as objects) with rows only counted; psql text.
 * 4. The embedded PGlite: BENCH_REPLAY_PGLITE_ROWS (200k; it is slower) filled the same way,
 *    read by the source (cursor pages, as the service reads its embedded store) against PGlite's own
 *    `COPY (SELECT ...) TO '/dev/blob'` of the same rows (the whole result in memory: its ceiling).
 *
 * 5. Delivery: a real service (src/service.ts, in this process, its simulator stopped so that no
 *    live tick mixes in) on the database of 1-3, and one replay session at speed 'max' to
 *    DELIVERY_CLIENTS WebSocket clients in CLIENT_PROCS child processes (bench/replay-clients.ts),
 *    each following every token in ltp mode on `/ws/replay/ID` (then on `/kite/replay/ID`) and
 *    counting ticks until it has all of them. Right before, psql and the source alone read the
 *    same rows. Rate per client = stored ticks ÷ (resume → the last client's last tick). CPU over
 *    that window: the service process (main thread, its busiest other thread, the rest), the
 *    clients' processes, the PostgreSQL backends of the bench database.
 *    Then the same on the embedded store (a second service, no DATABASE_URL) with
 *    BENCH_REPLAY_PGLITE_ROWS ticks, against 4's figures (same rows, same tokens).
 *
 * Stored ticks are of the tokens the service follows (its universe, from its simulator's master):
 * a replay hub drops ticks of any other token.
 *
 * Targets (issue 16): at least 1M ticks/s from PostgreSQL, and at least 50% of psql's rate.
 * REPLAY_BENCH_PART=source or =delivery runs only that part (both fill the database; for
 * development, with BENCH_REPLAY_ROWS=200000). Leaves nothing behind: databases, processes and
 * directories are removed at the end.
 */
import { execFileSync, fork, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import postgres from 'postgres';
import { PGlite } from '@electric-sql/pglite';
import { pgDb, pgliteDb, pgOptions } from '../src/core/db.ts';
import { migrate } from '../src/core/migrate.ts';
import { N_FIELDS } from '../src/core/tick.ts';
import {
  openTickSource, REPLAY_COLUMNS, replaySelect, replayWhere, type ReplayInstruments, type TickSourceOptions, type TickStore,
} from '../workers/replay/source.ts';
import { freshPgliteDir } from '../test/support/pglite.ts';
import { fillMarketData } from '../test/support/replay-ticks.ts';
import { loadConfig } from '../src/config.ts';
import { silentLogger } from '../src/log.ts';
import { startService, type Service } from '../src/service.ts';
import { until } from '../test/support/until.ts';
import { loadLine } from './support.ts';
import { QUICK, record } from './report.ts';
import { wallMs } from './engines-frames.ts';
import type { ReplayClientCommand, ReplayClientStats, ReplayProto } from './replay-clients.ts';

const ADMIN_URL = process.env.BENCH_PG_URL ?? 'postgres://root@127.0.0.1:5432/test';
// --quick: a small range, one round, no alternatives, /ws only: the bench runs, its figures say little.
const ROWS = Number(process.env.BENCH_REPLAY_ROWS ?? (QUICK ? 100_000 : 2_000_000));
const PGLITE_ROWS = Number(process.env.BENCH_REPLAY_PGLITE_ROWS ?? (QUICK ? 10_000 : 200_000));
const TARGET_TPS = 1_000_000;
const TARGET_OF_PSQL = 0.5;
const PART = process.env.REPLAY_BENCH_PART;
const DELIVERY_CLIENTS = 10;
const CLIENT_PROCS = 2;
/** Clock ticks per second in /proc/<pid>/stat. */
const USER_HZ = 100;

/** 09:15 IST, 2026-12-02, and a session of 6¼ hours. */
export const SESSION = { fromMs: Date.parse('2026-12-02T03:45:00Z'), spanMs: 6.25 * 3600_000 } as const;
/** 200 tokens: an option chain and the stocks, about what the service follows. */
export const BENCH_TOKENS = Array.from({ length: 200 }, (_, i) => 10_000 + i * 7);
const NO_INSTRUMENTS: ReplayInstruments = { instruments: [], rowOfToken: new Map() };

const mb = (b: number) => `${(b / 2 ** 20).toFixed(0)} MB`;
const rate = (n: number, ms: number) => (n * 1000) / ms;
const fmt = (tps: number) => (tps >= 1e6 ? `${(tps / 1e6).toFixed(2)}M` : `${(tps / 1e3).toFixed(0)}k`);
const pct = (x: number) => `${(x * 100).toFixed(0)}%`;

export interface ReplayBenchDb {
  url: string;
  rows: number;
  drop(): Promise<void>;
}

export interface EmptyReplayBenchDb extends ReplayBenchDb {
  name: string;
  /** Store `rows` ticks of `tokens` over SESSION (sets `rows`). */
  fill(rows: number, tokens: readonly number[]): Promise<void>;
  /** Pids of the server's backends on this database now. */
  backends(): Promise<number[]>;
}

/** A scratch database, migrated and empty; drop() removes it. */
export async function createReplayBenchDb(): Promise<EmptyReplayBenchDb> {
  const name = `bench_replay_${process.pid}`;
  const admin = postgres(ADMIN_URL, pgOptions({ max: 1 }));
  await admin.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  await admin.unsafe(`CREATE DATABASE ${name}`);
  const url = new URL(ADMIN_URL);
  url.pathname = `/${name}`;
  const sql = postgres(url.href, pgOptions({ max: 1 }));
  try {
    await migrate(pgDb(sql), { log: { info() {}, warn() {} } });
  } finally {
    await sql.end({ timeout: 1 });
  }
  const db: EmptyReplayBenchDb = {
    name,
    url: url.href,
    rows: 0,
    async fill(rows, tokens) {
      const s = postgres(url.href, pgOptions({ max: 1 }));
      try {
        await fillMarketData((t, p) => s.unsafe(t, p as never[]), { rows, fromMs: SESSION.fromMs, spanMs: SESSION.spanMs, tokens });
      } finally {
        await s.end({ timeout: 1 });
      }
      db.rows = rows;
    },
    async backends() {
      const rows = await admin.unsafe('SELECT pid FROM pg_stat_activity WHERE datname = $1', [name]);
      return rows.map((r) => Number(r.pid));
    },
    async drop() {
      await admin.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await admin.end({ timeout: 1 });
    },
  };
  return db;
}

/** A scratch database with `rows` stored ticks of `tokens` over SESSION; drop() removes it. */
export async function fillReplayBench(rows = ROWS, tokens: readonly number[] = BENCH_TOKENS): Promise<ReplayBenchDb> {
  const db = await createReplayBenchDb();
  await db.fill(rows, tokens);
  return db;
}

/** Wall ms of psql copying `select` out to /dev/null in `format`. */
export function psqlCopyMs(url: string, select: string, format: 'binary' | 'text' = 'binary'): number {
  const t0 = performance.now();
  execFileSync('psql', ['-X', '-q', '-d', url, '-v', 'ON_ERROR_STOP=1', '-c', `\\copy (${select}) TO '/dev/null' WITH (FORMAT ${format})`], { stdio: ['ignore', 'ignore', 'inherit'] });
  return performance.now() - t0;
}

export interface SourceMeasure {
  ticks: number;
  ms: number;
  tps: number;
  peakRss: number;
  /** Peak RSS above the RSS at open. */
  rssGrowth: number;
  heapGrowth: number;
}

/**
 * Read a whole range through the source at full speed. DELIVERY HOOK: `onBatch` gets every batch
 * as the source fills it (records 0..n-1 of `batch`, tick layout); the WebSocket half of the
 * bench hands them to the hub / fan-out to 10 clients here and awaits their backpressure.
 */
export async function measureSource(
  store: TickStore, opts: Omit<TickSourceOptions, 'instruments'> & { instruments?: ReplayInstruments },
  onBatch?: (batch: Float64Array, n: number) => void | Promise<void>,
): Promise<SourceMeasure> {
  global.gc?.();
  const rss0 = process.memoryUsage().rss;
  const heap0 = process.memoryUsage().heapUsed;
  let peakRss = rss0;
  let peakHeap = heap0;
  const t0 = performance.now();
  const src = await openTickSource(store, { instruments: NO_INSTRUMENTS, ...opts });
  let ticks = 0;
  let sink = 0;
  for (let n; (n = await src.next()) > 0; ) {
    if (onBatch) await onBatch(src.batch, n);
    else sink += src.batch[(n - 1) * N_FIELDS + 7];
    ticks += n;
    if ((ticks & 0xffff) < n) {
      const m = process.memoryUsage();
      if (m.rss > peakRss) peakRss = m.rss;
      if (m.heapUsed > peakHeap) peakHeap = m.heapUsed;
    }
  }
  await src.close();
  const ms = performance.now() - t0;
  if (sink === -1) console.log('');
  return { ticks, ms, tps: rate(ticks, ms), peakRss, rssGrowth: peakRss - rss0, heapGrowth: peakHeap - heap0 };
}

/** Bytes of a driver COPY stream, counted and dropped: what a reader gets before parsing anything. */
async function driverCopyMs(url: string, text: string): Promise<{ ms: number; bytes: number }> {
  const sql = postgres(url, pgOptions({ max: 1 }));
  const t0 = performance.now();
  const s = (await sql.unsafe(text).readable()) as Readable;
  let bytes = 0;
  for await (const c of s) bytes += (c as Buffer).length;
  const ms = performance.now() - t0;
  await sql.end({ timeout: 1 });
  return { ms, bytes };
}

/** Rows through the driver's cursor, counted. */
async function driverCursorMs(url: string, select: string): Promise<{ ms: number; rows: number }> {
  const sql = postgres(url, pgOptions({ max: 1 }));
  const t0 = performance.now();
  let rows = 0;
  await sql.begin(async (tx) => {
    for await (const page of tx.unsafe(select).cursor(4096)) rows += page.length;
  });
  const ms = performance.now() - t0;
  await sql.end({ timeout: 1 });
  return { ms, rows };
}

function line(label: string, tps: number, psqlTps: number, extra = ''): void {
  console.log(`  ${label.padEnd(58)} ${fmt(tps).padStart(6)} ticks/s  ${pct(tps / psqlTps).padStart(5)} of psql${extra}`);
}

/** psql's and the source's rates on the delivery database, from the rounds above or measured for it. */
interface Baselines {
  psqlTps: number;
  sourceTps: number;
  /** Where they come from, for the table. */
  note: string;
}

export default async function replayBench(): Promise<void> {
  console.log(loadLine());
  const range = { fromMs: SESSION.fromMs, toMs: SESSION.fromMs + SESSION.spanMs };
  const db = await createReplayBenchDb();
  const cleanUp = killClients;
  process.once('exit', cleanUp);
  let svc: BenchService | null = null;
  const delivered: DeliveryRow[] = [];
  let embedded: { copyTps: number; sourceTps: number; rows: DeliveryRow[] } | null = null;
  let base: Baselines | null = null;
  try {
    // The service first, on the empty database: the ticks stored next are of the tokens it follows.
    svc = await startBenchService(db.url);
    const tokens = svc.tokens;
    const t0 = performance.now();
    await db.fill(ROWS, tokens);
    console.log(`filled ${db.rows.toLocaleString()} stored ticks (${tokens.length} tokens the service follows, a third with depth) in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    const pgStore: TickStore = { kind: 'postgres', url: db.url };
    if (PART !== 'delivery') base = await sourcePart(db, pgStore, range);
    if (PART !== 'source') {
      if (base === null) {
        const psqlTps = rate(db.rows, psqlCopyMs(db.url, replaySelect(range)));
        const ours = await measureSource(pgStore, range);
        base = { psqlTps, sourceTps: ours.tps, note: 'measured just before' };
      }
      console.log(`\nDelivery from PostgreSQL (${db.rows.toLocaleString()} ticks), one session at speed 'max', ${DELIVERY_CLIENTS} clients:`);
      for (const proto of QUICK ? (['ws'] as const) : (['ws', 'kite'] as const)) {
        const row = await deliver(svc, db, proto, db.rows, range);
        delivered.push(row);
        record({
          bench: 'replay', name: `delivered from PostgreSQL to ${DELIVERY_CLIENTS} clients, ${proto === 'ws' ? '/ws/replay' : '/kite/replay'}`,
          value: row.perClientTps, unit: 'ticks/s per client', better: 'higher',
          baseline: { name: 'psql \\copy binary, same rows', value: base.psqlTps }, target: { op: '>=', value: TARGET_TPS },
        });
        console.log(`  done: ${row.label} (${(row.ms / 1000).toFixed(1)} s)`);
      }
    }
    await svc.close();
    svc = null;
    const lite = await pgliteBench(range, tokens);
    if (PART !== 'source') {
      svc = await startBenchService(null);
      const t1 = performance.now();
      await fillEmbedded(svc.service, PGLITE_ROWS, tokens);
      console.log(`\nDelivery from the embedded store (${PGLITE_ROWS.toLocaleString()} ticks, filled through the service's own PGlite in ${((performance.now() - t1) / 1000).toFixed(1)} s), ${DELIVERY_CLIENTS} clients:`);
      const row = await deliver(svc, null, 'ws', PGLITE_ROWS, range);
      console.log(`  done: ${row.label} (${(row.ms / 1000).toFixed(1)} s)`);
      embedded = { ...lite, rows: [row] };
      record({
        bench: 'replay', name: `delivered from the embedded store to ${DELIVERY_CLIENTS} clients, /ws/replay`,
        value: row.perClientTps, unit: 'ticks/s per client', better: 'higher', baseline: { name: "PGlite's own COPY, same rows", value: lite.copyTps },
      });
    }
  } finally {
    await svc?.close();
    killClients();
    process.removeListener('exit', cleanUp);
    await db.drop();
  }
  if (base !== null && delivered.length > 0) printDelivery('PostgreSQL', db.rows, base, delivered, true);
  if (embedded !== null) {
    printDelivery('the embedded store (PGlite)', PGLITE_ROWS, { psqlTps: embedded.copyTps, sourceTps: embedded.sourceTps, note: 'PGlite part above' }, embedded.rows, false);
  }
  console.log('\nBound: the server. psql reads the same rows no faster: PostgreSQL calls a send function per value ' +
    '(23 columns, 30 more in each depth array) and sorts the range; one COPY is one backend on one core.');
}

/** 1-3: psql against the source on PostgreSQL, and the alternatives. Returns the last round's rates. */
async function sourcePart(db: ReplayBenchDb, pgStore: TickStore, range: { fromMs: number; toMs: number }): Promise<Baselines> {
  console.log(`\nPostgreSQL, the whole session (${db.rows.toLocaleString()} ticks, ORDER BY time, token, recv_time, conn, seq):`);
  const results: { psql: number; ours: SourceMeasure }[] = [];
  for (let round = 1; round <= (QUICK ? 1 : 2); round++) {
    const psqlTps = rate(db.rows, psqlCopyMs(db.url, replaySelect(range)));
    const ours = await measureSource(pgStore, range);
    if (ours.ticks !== db.rows) throw new Error(`the source read ${ours.ticks} ticks of ${db.rows}`);
    results.push({ psql: psqlTps, ours });
    line(`round ${round}: psql \\copy binary (baseline)`, psqlTps, psqlTps);
    line(`round ${round}: replay source, binary COPY, 1024-tick batches`, ours.tps, psqlTps,
      `  RSS peak ${mb(ours.peakRss)} (+${mb(ours.rssGrowth)}), heap +${mb(ours.heapGrowth)}`);
  }
  const best = results.reduce((a, b) => (b.ours.tps > a.ours.tps ? b : a));
  console.log(`  target ≥ ${fmt(TARGET_TPS)} ticks/s: ${best.ours.tps >= TARGET_TPS ? 'met' : 'not met'} (best ${fmt(best.ours.tps)}); ` +
    `target ≥ ${pct(TARGET_OF_PSQL)} of psql: ${results.every((r) => r.ours.tps >= TARGET_OF_PSQL * r.psql) ? 'met' : 'not met'} ` +
    `(${results.map((r) => pct(r.ours.tps / r.psql)).join(', ')})`);
  record({
    bench: 'replay', name: 'source from PostgreSQL, binary COPY', value: best.ours.tps, unit: 'ticks/s', better: 'higher',
    baseline: { name: 'psql \\copy binary, same rows', value: best.psql }, target: { op: '>=', value: TARGET_TPS },
  });
  if (QUICK) {
    const last = results[results.length - 1];
    return { psqlTps: last.psql, sourceTps: last.ours.tps, note: 'round 1 above' };
  }

  const quarter = { fromMs: range.fromMs, toMs: range.fromMs + SESSION.spanMs / 4 };
  const qRows = Math.ceil(db.rows / 4);
  console.log(`\nAlternatives, the first quarter (${qRows.toLocaleString()} ticks), same SELECT:`);
  const qPsql = rate(qRows, psqlCopyMs(db.url, replaySelect(quarter)));
  line('psql \\copy binary (baseline)', qPsql, qPsql);
  line('psql \\copy text', rate(qRows, psqlCopyMs(db.url, replaySelect(quarter), 'text')), qPsql);
  const bin = await measureSource(pgStore, quarter);
  line('replay source: binary COPY, parsed into records', bin.tps, qPsql);
  const small = await measureSource(pgStore, { ...quarter, batchTicks: 64 });
  line('replay source: the same, 64-tick batches', small.tps, qPsql);
  const text = await driverCopyMs(db.url, `COPY (${replaySelect(quarter)}) TO STDOUT`);
  line('driver text COPY, bytes counted only (no parsing)', rate(qRows, text.ms), qPsql, `  ${mb(text.bytes)}`);
  const cur = await driverCursorMs(db.url, replaySelect(quarter));
  line('driver cursor, FETCH 4096 rows as objects, counted only', rate(cur.rows, cur.ms), qPsql);
  const last = results[results.length - 1];
  return { psqlTps: last.psql, sourceTps: last.ours.tps, note: 'round 2 above' };
}

/** 4: the source on PGlite against PGlite's own COPY of the same rows. */
async function pgliteBench(range: { fromMs: number; toMs: number }, tokens: readonly number[]): Promise<{ copyTps: number; sourceTps: number }> {
  const dir = join(mkdtempSync(join(tmpdir(), 'bench-replay-')), 'db');
  const lite = await PGlite.create(await freshPgliteDir(dir));
  try {
    await migrate(pgliteDb(lite), { log: { info() {}, warn() {} } });
    const t0 = performance.now();
    await fillMarketData(async (t, p) => (await lite.query(t, p)).rows, { rows: PGLITE_ROWS, fromMs: SESSION.fromMs, spanMs: SESSION.spanMs, tokens });
    console.log(`\nEmbedded PGlite (${PGLITE_ROWS.toLocaleString()} ticks, filled in ${((performance.now() - t0) / 1000).toFixed(1)} s):`);
    const t1 = performance.now();
    const blob = await lite.query(`COPY (SELECT ${REPLAY_COLUMNS.join(', ')} FROM market_data ${replayWhere(range)}) TO '/dev/blob' WITH (FORMAT binary)`);
    const copyMs = performance.now() - t1;
    const copyTps = rate(PGLITE_ROWS, copyMs);
    console.log(`  ${'PGlite COPY TO /dev/blob binary, all in memory (baseline)'.padEnd(58)} ${fmt(copyTps).padStart(6)} ticks/s  ${mb(blob.blob?.size ?? 0)} blob`);
    const ours = await measureSource({ kind: 'pglite', db: lite }, range);
    if (ours.ticks !== PGLITE_ROWS) throw new Error(`the source read ${ours.ticks} ticks of ${PGLITE_ROWS}`);
    console.log(`  ${'replay source: cursor pages of 4096 rows'.padEnd(58)} ${fmt(ours.tps).padStart(6)} ticks/s  ${pct(ours.tps / copyTps)} of PGlite's COPY; RSS +${mb(ours.rssGrowth)}`);
    record({ bench: 'replay', name: 'source from the embedded store', value: ours.tps, unit: 'ticks/s', better: 'higher', baseline: { name: "PGlite's own COPY, same rows", value: copyTps } });
    return { copyTps, sourceTps: ours.tps };
  } finally {
    await lite.close();
    rmSync(join(dir, '..'), { recursive: true, force: true });
  }
}

// --- 5. delivery: a real service, one session, clients in child processes -------------------------

const KEY = `bench-replay-${randomBytes(8).toString('hex')}`;

interface BenchService {
  service: Service;
  base: string;
  tokens: number[];
  close(): Promise<void>;
}

/**
 * The service in this process, as test/replay/replay.test.ts starts it: its own simulator (stopped
 * at once: the replay's ticks alone reach the clients), one shard, no analytics. `databaseUrl` null:
 * the embedded PGlite under a temporary DATA_DIR.
 */
async function startBenchService(databaseUrl: string | null): Promise<BenchService> {
  const dir = mkdtempSync(join(tmpdir(), 'bench-replay-svc-'));
  const config = loadConfig({
    ...(databaseUrl !== null ? { DATABASE_URL: databaseUrl } : {}),
    DATA_DIR: dir, PORT: '0', API_KEYS: `bench:${KEY}`, WORKERS: '1', ANALYTICS_REFRESH_MS: '0', SIM_RATE: '1',
  });
  const service = await startService(config, silentLogger);
  service.sim?.setRate(0);
  let closed = false;
  return {
    service,
    base: `http://127.0.0.1:${service.port}`,
    tokens: [...service.tokens],
    async close() {
      if (closed) return;
      closed = true;
      await service.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** `rows` ticks into the service's own embedded store, through its writer thread (storage.db()). */
async function fillEmbedded(service: Service, rows: number, tokens: readonly number[]): Promise<void> {
  const query = (t: string, p?: unknown[]) => service.storage.db().query(t, p);
  // The writer thread opens and migrates the database after start: STORAGE_STARTING until then.
  await until('the embedded store to open', () => query('SELECT 1 FROM market_data LIMIT 1').then(() => true, () => false), 60_000);
  await fillMarketData(query, { rows, fromMs: SESSION.fromMs, spanMs: SESSION.spanMs, tokens });
}

async function api(svc: BenchService, method: string, path: string, body?: unknown): Promise<any> {
  const res = await fetch(`${svc.base}${path}`, {
    method, headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const json = await res.json();
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(json)}`);
  return json;
}

/** Every client process this bench forks, killed on any way out. */
const clientProcs = new Set<ChildProcess>();

function killClients(): void {
  for (const c of clientProcs) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  clientProcs.clear();
}

/** A forked bench/replay-clients.ts, answering `{ id, cmd }` with `{ type: 'answer', id, v | error }`. */
class ClientProc {
  private nextId = 1;
  private readonly waiting = new Map<number, { res: (v: any) => void; rej: (e: Error) => void }>();

  private constructor(readonly child: ChildProcess) {
    child.on('message', (m: { type: string; id?: number; v?: unknown; error?: string }) => {
      if (m.type !== 'answer') return;
      const w = this.waiting.get(m.id!);
      this.waiting.delete(m.id!);
      if (m.error) w?.rej(new Error(`replay clients: ${m.error}`));
      else w?.res(m.v);
    });
    child.on('exit', (code, signal) => {
      for (const w of this.waiting.values()) w.rej(new Error(`replay clients exited (${code ?? signal})`));
      this.waiting.clear();
    });
  }

  static start(): Promise<ClientProc> {
    const child = fork(fileURLToPath(new URL('./replay-clients.ts', import.meta.url)), [], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    clientProcs.add(child);
    return new Promise((res, rej) => {
      child.once('message', () => res(new ClientProc(child)));
      child.once('exit', (code) => rej(new Error(`replay clients exited with ${code} before starting`)));
    });
  }

  ask<R>(c: ReplayClientCommand extends infer C ? (C extends unknown ? Omit<C, 'id'> : never) : never): Promise<R> {
    const id = this.nextId++;
    return new Promise<R>((res, rej) => {
      this.waiting.set(id, { res, rej });
      this.child.send({ ...c, id });
    });
  }

  async stop(): Promise<void> {
    await this.ask({ cmd: 'close' }).catch(() => {});
    this.child.kill('SIGTERM');
    clientProcs.delete(this.child);
  }
}

// --- CPU from /proc --------------------------------------------------------------------------------

function statCpuMs(path: string): number {
  try {
    const stat = readFileSync(path, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(f[11]) + Number(f[12])) * 1000) / USER_HZ; // utime, stime: fields 14 and 15
  } catch {
    return 0; // gone meanwhile
  }
}

/** CPU ms of each thread of this process, by thread id. */
function threadCpu(): Map<number, number> {
  const m = new Map<number, number>();
  for (const t of readdirSync('/proc/self/task')) m.set(Number(t), statCpuMs(`/proc/self/task/${t}/stat`));
  return m;
}

interface CpuSnap {
  threads: Map<number, number>;
  clients: number;
  pg: number;
  machine: { busy: number; total: number };
}

/**
 * CPU of the server's backends on the bench database over a run. The session's COPY connection
 * opens after the resume and its process is gone once the session ends, so backends are looked up
 * and read every SAMPLE_MS: a backend first seen after start() counts from 0 (a new process), one
 * already there from its reading at start(); each counts to its last reading (up to SAMPLE_MS
 * short at its end).
 */
const SAMPLE_MS = 50;
class PgCpu {
  private readonly first = new Map<number, number>();
  private readonly last = new Map<number, number>();
  private timer: NodeJS.Timeout | null = null;

  constructor(private readonly db: EmptyReplayBenchDb | null) {}

  async start(): Promise<void> {
    if (this.db === null) return;
    for (const pid of await this.db.backends()) this.first.set(pid, statCpuMs(`/proc/${pid}/stat`));
    const sample = async () => {
      for (const pid of await this.db!.backends().catch(() => [] as number[])) {
        const ms = statCpuMs(`/proc/${pid}/stat`);
        if (ms > 0) this.last.set(pid, ms);
        if (!this.first.has(pid)) this.first.set(pid, 0);
      }
    };
    this.timer = setInterval(() => void sample(), SAMPLE_MS);
  }

  /** CPU ms since start(). */
  stop(): number {
    if (this.timer !== null) clearInterval(this.timer);
    let ms = 0;
    for (const [pid, v] of this.last) ms += v - (this.first.get(pid) ?? 0);
    return ms;
  }
}

function machineJiffies(): { busy: number; total: number } {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  const total = f.reduce((a, b) => a + b, 0);
  return { busy: total - f[3] - f[4], total }; // idle, iowait
}

function cpuSnap(procs: ClientProc[], pgMs: number): CpuSnap {
  return {
    threads: threadCpu(),
    clients: procs.reduce((a, p) => a + statCpuMs(`/proc/${p.child.pid}/stat`), 0),
    pg: pgMs,
    machine: machineJiffies(),
  };
}

/** % of one core over `ms` of each part; the busiest thread other than the main one apart. */
function cpuOver(a: CpuSnap, b: CpuSnap, ms: number) {
  const pc = (x: number) => (x * 100) / ms;
  let main = 0;
  let busiest = 0;
  let rest = 0;
  for (const [tid, v] of b.threads) {
    const d = v - (a.threads.get(tid) ?? 0);
    if (tid === process.pid) main = d;
    else if (d > busiest) {
      rest += busiest;
      busiest = d;
    } else rest += d;
  }
  return {
    service: pc(main + busiest + rest), main: pc(main), busiest: pc(busiest), rest: pc(rest),
    clients: pc(b.clients - a.clients), pg: pc(b.pg - a.pg),
    machine: ((b.machine.busy - a.machine.busy) * 100 * cpus().length) / (b.machine.total - a.machine.total),
  };
}

// --- one delivery run ------------------------------------------------------------------------------

interface DeliveryRow {
  label: string;
  rows: number;
  /** Resume → the last client's last tick, ms. */
  ms: number;
  /** Resume → the first tick at any client, ms. */
  firstMs: number;
  perClientTps: number;
  frames: number;
  bytes: number;
  minTicks: number;
  maxTicks: number;
  conflatedFrames: number;
  sessionTicks: number;
  timedOut: boolean;
  cpu: ReturnType<typeof cpuOver>;
}

async function deliver(svc: BenchService, db: EmptyReplayBenchDb | null, proto: ReplayProto, rows: number, range: { fromMs: number; toMs: number }): Promise<DeliveryRow> {
  const perProc = DELIVERY_CLIENTS / CLIENT_PROCS;
  const procs = await Promise.all(Array.from({ length: CLIENT_PROCS }, () => ClientProc.start()));
  const made = await api(svc, 'POST', '/api/replays', { from: range.fromMs, to: range.toMs, speed: 'max', start: 'paused' });
  const id = made.id as string;
  try {
    const host = `ws://127.0.0.1:${svc.service.port}`;
    const url = proto === 'ws' ? `${host}${made.ws}?key=${KEY}` : `${host}${made.kite}?api_key=${KEY}&access_token=x`;
    await Promise.all(procs.map((p) => p.ask({ cmd: 'open', url, n: perProc, proto, tokens: svc.tokens })));
    // Kite's protocol acknowledges no subscribe: wait until the session follows every token in ltp.
    await until('every client to follow every token', async () => {
      const s = await api(svc, 'GET', `/api/replays/${id}`);
      return s.clients === DELIVERY_CLIENTS && s.following.ltp === svc.tokens.length;
    }, 20_000);
    await new Promise((r) => setTimeout(r, 200)); // the last socket's messages, read after the count moved
    const pg = new PgCpu(db);
    await pg.start();
    const timeoutMs = Math.max(120_000, rows / 20); // 20k ticks/s at the least
    const waits = procs.map((p) => p.ask<ReplayClientStats>({ cmd: 'wait', expect: rows, timeoutMs }));
    const cpu0 = cpuSnap(procs, 0);
    const t0 = wallMs();
    await api(svc, 'POST', `/api/replays/${id}/resume`);
    const stats = await Promise.all(waits);
    const t1 = wallMs();
    const cpu1 = cpuSnap(procs, pg.stop());
    const last = Math.max(...stats.flatMap((s) => s.lastTickAt));
    const first = Math.min(...stats.map((s) => s.firstTickAt).filter((x) => x > 0));
    const ticks = stats.flatMap((s) => s.ticks);
    const info = await until('the session to end', async () => {
      const s = await api(svc, 'GET', `/api/replays/${id}`);
      return s.state === 'ended' || s.state === 'failed' ? s : null;
    }, 10_000).catch(() => api(svc, 'GET', `/api/replays/${id}`));
    const ms = last - t0;
    return {
      label: proto === 'ws' ? '/ws/replay, msgpack, ltp' : '/kite/replay, Kite binary, ltp',
      rows, ms, firstMs: first - t0, perClientTps: rate(rows, ms),
      frames: stats.reduce((a, s) => a + s.frames, 0),
      bytes: stats.reduce((a, s) => a + s.bytes, 0),
      minTicks: Math.min(...ticks), maxTicks: Math.max(...ticks),
      conflatedFrames: stats.reduce((a, s) => a + s.conflatedFrames, 0),
      sessionTicks: Number(info.ticks),
      timedOut: stats.some((s) => s.timedOut),
      cpu: cpuOver(cpu0, cpu1, t1 - t0),
    };
  } finally {
    await Promise.all(procs.map((p) => p.stop()));
    await api(svc, 'DELETE', `/api/replays/${id}`).catch(() => {});
  }
}

function printDelivery(store: string, rows: number, base: Baselines, runs: DeliveryRow[], pg: boolean): void {
  const baseName = pg ? 'psql \\copy binary' : "PGlite's COPY";
  console.log(`\nReplay delivered from ${store}: ${rows.toLocaleString()} stored ticks, one session at speed 'max', ` +
    `${DELIVERY_CLIENTS} clients (${CLIENT_PROCS} processes × ${DELIVERY_CLIENTS / CLIENT_PROCS}), every followed token in ltp mode, ticks counted. ` +
    `Baselines: ${base.note}, same rows.`);
  const head = ['case', 'ticks/s per client', `of ${pg ? 'psql' : 'COPY'}`, 'of source', 'all clients', 'frames', 'every client got every tick',
    'first tick', 'service CPU: all (main / busiest thread / rest)', 'clients CPU', pg ? 'PG backends' : '', 'machine'];
  const rowsOut: string[][] = [
    [`${baseName} (baseline)`, fmt(base.psqlTps), '100%', '', '', '', '', '', '', '', '', ''],
    ['replay source alone, binary COPY', fmt(base.sourceTps), pct(base.sourceTps / base.psqlTps), '100%', '', '', '', '', '', '', '', ''],
  ];
  for (const r of runs) {
    const all = r.minTicks === r.rows && r.maxTicks === r.rows && r.conflatedFrames === 0 && !r.timedOut;
    const got = all ? `yes (${r.rows.toLocaleString()} each)` : `NO: ${r.minTicks.toLocaleString()}-${r.maxTicks.toLocaleString()} of ${r.rows.toLocaleString()}${r.conflatedFrames ? `, ${r.conflatedFrames} conflated frames` : ''}${r.timedOut ? ', timed out' : ''}`;
    const c = r.cpu;
    rowsOut.push([
      r.label, fmt(r.perClientTps), pct(r.perClientTps / base.psqlTps), pct(r.perClientTps / base.sourceTps),
      fmt(r.perClientTps * DELIVERY_CLIENTS), r.frames.toLocaleString(), got, `${r.firstMs.toFixed(0)} ms`,
      `${c.service.toFixed(0)}% (${c.main.toFixed(0)} / ${c.busiest.toFixed(0)} / ${c.rest.toFixed(0)})`,
      `${c.clients.toFixed(0)}%`, pg ? `${c.pg.toFixed(0)}%` : '', `${c.machine.toFixed(0)}%`,
    ]);
  }
  const keep = head.map((h, i) => h !== '' || rowsOut.some((r) => r[i] !== ''));
  const cols = head.map((_, i) => i).filter((i) => keep[i]);
  const width = cols.map((i) => Math.max(head[i].length, ...rowsOut.map((r) => r[i].length)));
  const fmtRow = (r: string[]) => `| ${cols.map((i, k) => r[i].padEnd(width[k])).join(' | ')} |`;
  console.log(fmtRow(head));
  console.log(`|${width.map((w) => '-'.repeat(w + 2)).join('|')}|`);
  for (const r of rowsOut) console.log(fmtRow(r));
  console.log('  CPU: % of one core over resume → last tick (the machine: every core, 200% = all of this one).');
  for (const r of runs) {
    // CPU per stored tick does not depend on how long each stage waited for a core: on a shared
    // machine it says which stage would bound the rate once the cores are free.
    const usPer = (pc: number) => ((pc / 100) * r.ms * 1000) / r.rows;
    const c = r.cpu;
    console.log(`  ${r.label}: ${(r.ms / 1000).toFixed(2)} s, ${(r.bytes / r.frames).toFixed(0)} B a frame, ` +
      `${(r.rows * DELIVERY_CLIENTS / r.frames).toFixed(0)} ticks a frame; session counted ${r.sessionTicks.toLocaleString()} ticks sent; ` +
      `CPU per stored tick: main thread ${usPer(c.main).toFixed(2)} µs, busiest thread ${usPer(c.busiest).toFixed(2)} µs` +
      `${pg ? `, PG backends ${usPer(c.pg).toFixed(2)} µs` : ''}, clients ${usPer(c.clients).toFixed(2)} µs`);
  }
  if (pg) {
    const best = Math.max(...runs.map((r) => r.perClientTps));
    console.log(`  target ≥ ${fmt(TARGET_TPS)} ticks/s per client: ${best >= TARGET_TPS ? 'met' : 'not met'} (best ${fmt(best)}); ` +
      `target ≥ ${pct(TARGET_OF_PSQL)} of psql: ${runs.every((r) => r.perClientTps >= TARGET_OF_PSQL * base.psqlTps) ? 'met' : 'not met'} ` +
      `(${runs.map((r) => pct(r.perClientTps / base.psqlTps)).join(', ')})`);
  }
}
