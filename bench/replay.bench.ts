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
 *    read by the source (sorted temp table, binary COPY pages) against PGlite's own
 *    `COPY (SELECT ...) TO '/dev/blob'` of the same rows (the whole result in memory: its ceiling).
 *
 * Targets (issue 16): at least 1M ticks/s from PostgreSQL, and at least 50% of psql's rate.
 * `fillReplayBench`, `measureSource` and `psqlCopyRate` are exported for the delivery half of the
 * bench (to 10 WebSocket clients): see DELIVERY HOOK below.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
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
import { loadLine } from './support.ts';

const ADMIN_URL = process.env.BENCH_PG_URL ?? 'postgres://root@127.0.0.1:5432/test';
const ROWS = Number(process.env.BENCH_REPLAY_ROWS ?? 2_000_000);
const PGLITE_ROWS = Number(process.env.BENCH_REPLAY_PGLITE_ROWS ?? 200_000);
const TARGET_TPS = 1_000_000;
const TARGET_OF_PSQL = 0.5;

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

/** A scratch database with `rows` stored ticks over SESSION; drop() removes it. */
export async function fillReplayBench(rows = ROWS): Promise<ReplayBenchDb> {
  const name = `bench_replay_${process.pid}`;
  const admin = postgres(ADMIN_URL, pgOptions({ max: 1 }));
  await admin.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  await admin.unsafe(`CREATE DATABASE ${name}`);
  const url = new URL(ADMIN_URL);
  url.pathname = `/${name}`;
  const sql = postgres(url.href, pgOptions({ max: 1 }));
  try {
    await migrate(pgDb(sql), { log: { info() {}, warn() {} } });
    await fillMarketData((t, p) => sql.unsafe(t, p as never[]), { rows, fromMs: SESSION.fromMs, spanMs: SESSION.spanMs, tokens: BENCH_TOKENS });
  } finally {
    await sql.end({ timeout: 1 });
  }
  return {
    url: url.href,
    rows,
    async drop() {
      await admin.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await admin.end({ timeout: 1 });
    },
  };
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

export default async function replayBench(): Promise<void> {
  console.log(loadLine());
  const t0 = performance.now();
  const db = await fillReplayBench();
  console.log(`filled ${db.rows.toLocaleString()} stored ticks (${BENCH_TOKENS.length} tokens, a third with depth) in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  const range = { fromMs: SESSION.fromMs, toMs: SESSION.fromMs + SESSION.spanMs };
  const pgStore: TickStore = { kind: 'postgres', url: db.url };
  try {
    console.log(`\nPostgreSQL, the whole session (${db.rows.toLocaleString()} ticks, ORDER BY time, token, recv_time, conn, seq):`);
    const results: { psql: number; ours: SourceMeasure }[] = [];
    for (let round = 1; round <= 2; round++) {
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

    await pgliteBench(range);
  } finally {
    await db.drop();
  }
  console.log('\nBound: the server. psql reads the same rows no faster: PostgreSQL calls a send function per value ' +
    '(23 columns, 30 more in each depth array) and sorts the range; one COPY is one backend on one core.');
}

async function pgliteBench(range: { fromMs: number; toMs: number }): Promise<void> {
  const dir = join(mkdtempSync(join(tmpdir(), 'bench-replay-')), 'db');
  const lite = await PGlite.create(await freshPgliteDir(dir));
  try {
    await migrate(pgliteDb(lite), { log: { info() {}, warn() {} } });
    const t0 = performance.now();
    await fillMarketData(async (t, p) => (await lite.query(t, p)).rows, { rows: PGLITE_ROWS, fromMs: SESSION.fromMs, spanMs: SESSION.spanMs, tokens: BENCH_TOKENS });
    console.log(`\nEmbedded PGlite (${PGLITE_ROWS.toLocaleString()} ticks, filled in ${((performance.now() - t0) / 1000).toFixed(1)} s):`);
    const t1 = performance.now();
    const blob = await lite.query(`COPY (SELECT ${REPLAY_COLUMNS.join(', ')} FROM market_data ${replayWhere(range)}) TO '/dev/blob' WITH (FORMAT binary)`);
    const copyMs = performance.now() - t1;
    const copyTps = rate(PGLITE_ROWS, copyMs);
    console.log(`  ${'PGlite COPY TO /dev/blob binary, all in memory (baseline)'.padEnd(58)} ${fmt(copyTps).padStart(6)} ticks/s  ${mb(blob.blob?.size ?? 0)} blob`);
    const ours = await measureSource({ kind: 'pglite', db: lite }, range);
    if (ours.ticks !== PGLITE_ROWS) throw new Error(`the source read ${ours.ticks} ticks of ${PGLITE_ROWS}`);
    console.log(`  ${'replay source: sorted temp table, 4096-row COPY pages'.padEnd(58)} ${fmt(ours.tps).padStart(6)} ticks/s  ${pct(ours.tps / copyTps)} of PGlite's COPY; RSS +${mb(ours.rssGrowth)}`);
  } finally {
    await lite.close();
    rmSync(join(dir, '..'), { recursive: true, force: true });
  }
}
