/**
 * Storage bench (`npm run bench -- storage`), in one run against this machine's PostgreSQL
 * (BENCH_PG_URL, default postgres://root@127.0.0.1:5432/test; a scratch database is created and
 * dropped):
 *
 * 1. The same market_data rows (canonical ticks captured from the real pipeline) written four
 *    ways into the same table: the writer's binary COPY (its own encoder and commit transaction,
 *    through `postgres`), text COPY through `postgres`, multi-row INSERT through `postgres`, and
 *    psql's own `\copy` from a file (binary and text), the practical limit of this PostgreSQL.
 *    Batch sizes for the writer's default are timed here too.
 * 2. The writer behind the running pipeline (front → shard workers → writer thread → PostgreSQL):
 *    saturated (rows/s it sustains, as a share of psql's), then paced at 70% of psql's rate for
 *    write latency, tick received → row committed, p50/p99.
 * 3. Rows/s into the embedded PGlite through the same writer sink.
 *
 * Wall-clock figures on a 2-core machine that also runs the database server: the pipeline's
 * threads, the writer and PostgreSQL share the cores, which is the point of part 2.
 */
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import postgres from 'postgres';
import { Front } from '../src/front.ts';
import { silentLogger } from '../src/log.ts';
import { OutputPump, Pipeline } from '../src/pipeline.ts';
import { pgDb, pgOptions } from '../src/core/db.ts';
import { migrate } from '../src/core/migrate.ts';
import { Storage } from '../src/storage/supervisor.ts';
import { N, N_FIELDS, NType, TickConsumer } from '../src/core/tick.ts';
import { DEFAULT_TIMEFRAMES, parseTimeframe } from '../src/core/ist.ts';
import { BatchBuilder, tickStream } from '../workers/writer/batch.ts';
import { COPY_HEADER, COPY_TRAILER, MARKET_COLUMNS } from '../workers/writer/copy.ts';
import { LATENCY_BUCKETS, latencyQuantile, WC } from '../src/core/writer-protocol.ts';
import { PgSink } from '../workers/writer/sink-pg.ts';
import { PgliteSink } from '../workers/writer/sink-pglite.ts';
import { defaultUniverse, FrameSet } from './pipeline-frames.ts';
import { QUICK, record } from './report.ts';
import { K, loadLine } from './support.ts';

const ADMIN_URL = process.env.BENCH_PG_URL ?? 'postgres://root@127.0.0.1:5432/test';
const ROWS = Number(process.env.BENCH_STORAGE_ROWS ?? (QUICK ? 10_000 : 200_000));
const SATURATED_MS = QUICK ? 1500 : 8000;
const PACED_MS = QUICK ? 1500 : 8000;
/** The pipeline runs' first part, not counted: JIT warm-up, first partitions. */
const WARM_MS = QUICK ? 500 : 2000;
const BATCH_MS = QUICK ? [100] : [50, 100, 200];

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const rate = (rows: number, ms: number) => (rows * 1000) / ms;
const pct = (x: number) => `${(x * 100).toFixed(0)}%`;

/** Canonical ticks (market_data rows) from the real pipeline fed with the simulator's frames. */
async function captureTicks(frames: FrameSet, want: number): Promise<Float64Array[]> {
  const front = new Front({ shards: 2, ringCapacity: 1 << 14 });
  const pipeline = new Pipeline({
    rings: front.rings, instruments: defaultUniverse(), mode: 'full', timeframesMs: DEFAULT_TIMEFRAMES.map(parseTimeframe),
    onError: (s, e) => { throw new Error(`shard ${s}: ${e.message}`); },
  });
  const out: Float64Array[] = [];
  const store = new OutputPump(pipeline.reader(TickConsumer.STORE), {
    tick(v, b) {
      const o = b >> 1;
      if (out.length < want && v.f64[o + N.TYPE] === NType.TICK) out.push(v.f64.slice(o, o + N_FIELDS));
    },
    bar() {},
  });
  const feed = new OutputPump(pipeline.reader(TickConsumer.FEED), { tick() {}, bar() {} });
  let seq = 0;
  for (let pass = 0; out.length < want; pass++) {
    for (let f = 0; f < frames.length && out.length < want; f++) {
      frames.prepare(f, pass, Math.floor(Date.now() / 1000));
      front.onBinary(frames.frames[f], 0, ++seq);
      if (front.pendingCount() > 0 || seq % 64 === 0) await new Promise((r) => setImmediate(r));
    }
  }
  await front.close();
  await pipeline.stop();
  await Promise.all([store.done, feed.done]);
  return out;
}

/** The captured rows as writer batches of `size` rows on `streams` streams. */
function batches(rows: Float64Array[], size: number, streams = 1): BatchBuilder[][] {
  const epoch = randomUUID();
  const per: BatchBuilder[][] = Array.from({ length: streams }, () => []);
  const pos = new Array<number>(streams).fill(0);
  for (let i = 0, k = 0; i < rows.length; i += size, k++) {
    const s = k % streams;
    const b = new BatchBuilder(epoch, tickStream(s));
    b.begin(pos[s]);
    for (let j = i; j < Math.min(rows.length, i + size); j++) b.addTick(rows[j], 0);
    pos[s] = b.end;
    per[s].push(b);
  }
  return per;
}

function textRow(f: Float64Array): string {
  const ts = (ms: number) => new Date(ms).toISOString();
  const hasDepth = f[N.DEPTH_LEVELS] > 0;
  let depth = '\\N';
  if (hasDepth) {
    const rows: string[] = [];
    for (let i = 0; i < 10; i++) rows.push(`{${f[N.DEPTH + 3 * i]},${f[N.DEPTH + 3 * i + 1]},${f[N.DEPTH + 3 * i + 2]}}`);
    depth = `{${rows.join(',')}}`;
  }
  return [
    f[N.TOKEN], ts(f[N.EXCH_TIME_MS]), ts(f[N.RECV_TIME_US] / 1000), f[N.KIND], f[N.PRICE], f[N.LAST_QTY], f[N.AVG_PRICE], f[N.VOLUME],
    f[N.VOLUME_DELTA], f[N.BUY_QTY], f[N.SELL_QTY], f[N.OPEN], f[N.HIGH], f[N.LOW], f[N.CLOSE], f[N.CHANGE_PCT], f[N.OI], f[N.OI_HIGH],
    f[N.OI_LOW], f[N.LAST_TRADE_MS] > 0 ? ts(f[N.LAST_TRADE_MS]) : '\\N',
    hasDepth ? f[N.DEPTH + 1] : '\\N', hasDepth ? f[N.DEPTH] : '\\N', hasDepth ? f[N.DEPTH + 16] : '\\N', hasDepth ? f[N.DEPTH + 15] : '\\N',
    depth, f[N.CONN], f[N.SEQ],
  ].join('\t');
}

function insertRow(f: Float64Array): unknown[] {
  const hasDepth = f[N.DEPTH_LEVELS] > 0;
  const depth: number[][] = [];
  if (hasDepth) for (let i = 0; i < 10; i++) depth.push([f[N.DEPTH + 3 * i], f[N.DEPTH + 3 * i + 1], f[N.DEPTH + 3 * i + 2]]);
  return [
    f[N.TOKEN], new Date(f[N.EXCH_TIME_MS]), new Date(f[N.RECV_TIME_US] / 1000), f[N.KIND], f[N.PRICE], f[N.LAST_QTY], f[N.AVG_PRICE],
    f[N.VOLUME], f[N.VOLUME_DELTA], f[N.BUY_QTY], f[N.SELL_QTY], f[N.OPEN], f[N.HIGH], f[N.LOW], f[N.CLOSE], f[N.CHANGE_PCT],
    f[N.OI], f[N.OI_HIGH], f[N.OI_LOW], f[N.LAST_TRADE_MS] > 0 ? new Date(f[N.LAST_TRADE_MS]) : null,
    hasDepth ? f[N.DEPTH + 1] : null, hasDepth ? f[N.DEPTH] : null, hasDepth ? f[N.DEPTH + 16] : null, hasDepth ? f[N.DEPTH + 15] : null,
    hasDepth ? depth : null, f[N.CONN], f[N.SEQ],
  ];
}

async function timed(label: string, rows: number, fn: () => Promise<void>, sql: postgres.Sql<any>, results: Map<string, number>): Promise<number> {
  await sql`TRUNCATE market_data, writer_progress, writer_batches`;
  const t0 = performance.now();
  await fn();
  const ms = performance.now() - t0;
  const [{ n }] = await sql`SELECT count(*)::int AS n FROM market_data`;
  if (n !== rows) throw new Error(`${label}: ${n} rows stored, ${rows} expected`);
  const r = rate(rows, ms);
  results.set(label, r);
  return r;
}

/** The pipeline and the writer thread, fed `frames` for `ms`: as fast as the front takes them, or paced at `tps` ticks/s. */
export async function pipelineRun(url: string, frames: FrameSet, ms: number, tps: number | null, batchRows: number, batchMs: number) {
  const dataDir = mkdtempSync(join(tmpdir(), 'bench-storage-'));
  const front = new Front({ shards: 2, ringCapacity: 1 << 16 });
  const pipeline = new Pipeline({
    rings: front.rings, instruments: defaultUniverse(), mode: 'full', timeframesMs: DEFAULT_TIMEFRAMES.map(parseTimeframe),
    onError: (s, e) => { throw new Error(`shard ${s}: ${e.message}`); },
  });
  const storage = new Storage({
    databaseUrl: url, dataDir, batchRows, batchMs, connections: 4, stallMs: 30_000, spillMaxBytes: 2 ** 34,
    marketDataRetentionDays: 0, barsRetentionDays: 0, ticks: pipeline.shards.map((s) => s.ticksOut), bars: pipeline.shards.map((s) => s.barsOut),
    doorbells: pipeline.doorbells, instruments: null, log: silentLogger,
  });
  const feed = new OutputPump(pipeline.reader(TickConsumer.FEED), { tick() {}, bar() {} });
  const c = storage.counters;
  while (c[WC.STATE] !== 1) await sleep(20);
  let seq = 0;
  let f = 0;
  let pass = 0;
  let sent = 0;
  const t0 = performance.now();
  let rows0 = 0;
  let tWarm = 0;
  const busy: number[] = [];
  for (;;) {
    const now = performance.now();
    if (now - t0 >= ms) break;
    if (tWarm === 0 && now - t0 >= WARM_MS) {
      // Steady state only: the first WARM_MS are not counted.
      tWarm = now;
      rows0 = c[WC.ROWS];
      c.fill(0, WC.LATENCY, WC.LATENCY + LATENCY_BUCKETS);
    }
    if (tWarm !== 0) busy.push(c[WC.BUSY]);
    const due = tps === null ? Infinity : (tps * (now - t0)) / 1000;
    let pushed = 0;
    while (sent < due && front.pendingCount() === 0 && pushed < 256) {
      frames.prepare(f, pass, Math.floor(Date.now() / 1000));
      front.onBinary(frames.frames[f], 0, ++seq);
      sent += frames.counts[f];
      pushed++;
      if (++f === frames.length) {
        f = 0;
        pass++;
      }
    }
    await (tps === null && pushed > 0 ? new Promise((r) => setImmediate(r)) : sleep(2));
  }
  const tEnd = performance.now();
  const steady = rate(c[WC.ROWS] - rows0, tEnd - tWarm);
  const lag = storage.lag();
  const p50 = latencyQuantile(c, 0.5);
  const p99 = latencyQuantile(c, 0.99);
  await front.close();
  await pipeline.stop();
  await feed.done;
  await storage.close(60_000);
  rmSync(dataDir, { recursive: true, force: true });
  return { offered: rate(sent, tEnd - t0), steady, writerBusy: busy.reduce((a, b) => a + b, 0) / Math.max(1, busy.length), p50, p99, lagTicks: lag.ticks, rows: c[WC.ROWS], spilled: c[WC.SPILLED], ticksOut: pipeline.counters().ticksOut };
}

/**
 * Why depth is one float8[10][3] column: the same rows with depth as jsonb instead, loaded the same
 * way (psql \\copy of a text file), timed, and sized on disk.
 */
async function depthFormats(sql: postgres.Sql<any>, url: string, rows: Float64Array[], tmp: string, cols: string): Promise<void> {
  const jsonRow = (f: Float64Array) => {
    const t = textRow(f).split('\t');
    const i = MARKET_COLUMNS.indexOf('depth');
    if (t[i] !== '\\N') {
      const d: number[][] = [];
      for (let k = 0; k < 10; k++) d.push([f[N.DEPTH + 3 * k], f[N.DEPTH + 3 * k + 1], f[N.DEPTH + 3 * k + 2]]);
      t[i] = JSON.stringify(d);
    }
    return t.join('\t');
  };
  await sql.unsafe('DROP TABLE IF EXISTS bench_md_jsonb, bench_md_array');
  await sql.unsafe('CREATE TABLE bench_md_array (LIKE market_data INCLUDING ALL)');
  await sql.unsafe('CREATE TABLE bench_md_jsonb (LIKE market_data INCLUDING ALL)');
  await sql.unsafe('ALTER TABLE bench_md_jsonb ALTER COLUMN depth TYPE jsonb USING NULL');
  const line = (fn: (f: Float64Array) => string) => rows.map(fn).join('\n') + '\n';
  const out: string[] = [];
  for (const [table, file, text] of [['bench_md_array', 'array.txt', line(textRow)], ['bench_md_jsonb', 'jsonb.txt', line(jsonRow)]] as const) {
    writeFileSync(join(tmp, file), text);
    const t0 = performance.now();
    execFileSync('psql', [url, '-v', 'ON_ERROR_STOP=1', '-q', '-c', `\\copy ${table} (${cols}) from '${join(tmp, file)}' with (format text)`]);
    const ms = performance.now() - t0;
    const [{ bytes }] = await sql.unsafe(`SELECT pg_total_relation_size('${table}')::float8 AS bytes`);
    out.push(`${table === 'bench_md_array' ? 'float8[10][3]' : 'jsonb        '}: ${K(rate(rows.length, ms))}k rows/s, ${(Number(bytes) / rows.length).toFixed(0)} bytes/row on disk`);
  }
  await sql.unsafe('DROP TABLE bench_md_jsonb, bench_md_array');
  console.log(`   depth column, same rows by psql \\copy text: ${out.join('; ')}`);
}

export default async function run(): Promise<void> {
  console.log(loadLine());
  const admin = postgres(ADMIN_URL, pgOptions({ max: 1 }));
  const name = `bench_storage_${process.pid}`;
  await admin.unsafe(`DROP DATABASE IF EXISTS ${name}`);
  await admin.unsafe(`CREATE DATABASE ${name}`);
  const url = ADMIN_URL.replace(/\/[^/]*$/, `/${name}`);
  const sql = postgres(url, pgOptions({ max: 1 }));
  const tmp = mkdtempSync(join(tmpdir(), 'bench-storage-'));
  try {
    await migrate(pgDb(sql));
    await sql`SELECT storage_ensure_partitions(now() - interval '2 days', now() + interval '2 days')`;

    const frames = new FrameSet(defaultUniverse(), 60_000, 40);
    const rows = await captureTicks(frames, ROWS);
    const withDepth = rows.filter((f) => f[N.DEPTH_LEVELS] > 0).length;
    console.log(`\n1. The same ${K(rows.length)}k market_data rows (${pct(withDepth / rows.length)} with depth), written four ways into the partitioned table:`);
    const results = new Map<string, number>();

    // psql's own \copy: the same rows from a file, one COPY. Binary = the bytes the writer sends.
    const one = batches(rows, rows.length)[0][0];
    const binFile = join(tmp, 'rows.bin');
    writeFileSync(binFile, Buffer.concat([COPY_HEADER, one.sections[0].bytes, COPY_TRAILER]));
    const txtFile = join(tmp, 'rows.txt');
    writeFileSync(txtFile, rows.map(textRow).join('\n') + '\n');
    const cols = MARKET_COLUMNS.join(', ');
    const psql = (file: string, format: string) => async () => {
      execFileSync('psql', [url, '-v', 'ON_ERROR_STOP=1', '-q', '-c', `\\copy market_data (${cols}) from '${file}' with (format ${format})`]);
    };
    await timed('psql \\copy binary', rows.length, psql(binFile, 'binary'), sql, results);
    await timed('psql \\copy text', rows.length, psql(txtFile, 'text'), sql, results);
    const limit = Math.max(results.get('psql \\copy binary')!, results.get('psql \\copy text')!);

    for (const size of QUICK ? [5000] : [1000, 5000, 20_000]) {
      const sink = new PgSink({ url, lanes: 1, marketDataRetentionDays: 0, barsRetentionDays: 0, instruments: null, log: () => {} });
      await sink.open();
      const bs = batches(rows, size)[0];
      await timed(`writer binary COPY, batches of ${K(size)}k, 1 connection`, rows.length, async () => {
        for (const b of bs) await sink.commit(b, 'direct');
      }, sql, results);
      await sink.close();
    }
    {
      const sink = new PgSink({ url, lanes: 4, marketDataRetentionDays: 0, barsRetentionDays: 0, instruments: null, log: () => {} });
      await sink.open();
      const streams = batches(rows, 5000, 4);
      await timed('writer binary COPY, batches of 5k, 4 connections', rows.length, async () => {
        await Promise.all(streams.map(async (bs) => { for (const b of bs) await sink.commit(b, 'direct'); }));
      }, sql, results);
      await sink.close();
    }
    if (!QUICK) {
      // Encoding included, as the writer's figure includes its encoder.
      const c1 = postgres(url, pgOptions({ max: 1 }));
      await timed('postgres text COPY, batches of 5k', rows.length, async () => {
        for (let i = 0; i < rows.length; i += 5000) {
          const text = rows.slice(i, i + 5000).map(textRow).join('\n') + '\n';
          await c1.begin(async (tx) => {
            const w = await tx.unsafe(`COPY market_data (${cols}) FROM STDIN`).writable();
            await new Promise<void>((res, rej) => { w.on('error', rej); w.end(text, () => res()); });
          });
        }
      }, sql, results);
      await timed('postgres multi-row INSERT, 1k rows per statement', rows.length, async () => {
        for (let i = 0; i < rows.length; i += 1000) {
          const values = rows.slice(i, i + 1000).map(insertRow);
          const ph = values.map((v, r) => `(${v.map((_, k) => `$${r * v.length + k + 1}`).join(', ')})`).join(', ');
          await c1.unsafe(`INSERT INTO market_data (${cols}) VALUES ${ph}`, values.flat() as postgres.ParameterOrJSON<never>[]);
        }
      }, sql, results);
      await c1.end();
    }
    console.log('   method                                               rows/s    vs psql \\copy (best)');
    for (const [label, r] of results) console.log(`   ${label.padEnd(52)} ${K(r).padStart(5)}k    ${pct(r / limit)}`);
    const writer = results.get('writer binary COPY, batches of 5k, 1 connection')!;
    if (!QUICK) console.log(`   writer binary COPY / text COPY: ${(writer / results.get('postgres text COPY, batches of 5k')!).toFixed(2)}x; ` +
      `/ multi-row INSERT: ${(writer / results.get('postgres multi-row INSERT, 1k rows per statement')!).toFixed(2)}x`);
    record({
      bench: 'storage', name: 'writer binary COPY, 5k batches, 1 connection', unit: 'rows/s', better: 'higher', value: writer,
      baseline: { name: 'psql \\copy (best format)', value: limit },
    });
    record({
      bench: 'storage', name: 'writer binary COPY, 5k batches, 4 connections', unit: 'rows/s', better: 'higher',
      value: results.get('writer binary COPY, batches of 5k, 4 connections')!, baseline: { name: 'psql \\copy (best format)', value: limit },
    });
    if (!QUICK) await depthFormats(sql, url, rows, tmp, cols);

    console.log('\n2. The writer behind the running pipeline (2 shard workers, writer thread, 4 connections, batches of 5k rows or 100 ms):');
    const sat = await pipelineRun(url, frames, SATURATED_MS, null, 5000, 100);
    console.log(`   saturated: offered ${K(sat.offered)}k ticks/s, stored ${K(sat.steady)}k rows/s steady = ${pct(sat.steady / limit)} of psql \\copy` +
      ` (target >= 70%); lag at end ${K(sat.lagTicks)}k ticks; p99 latency ${sat.p99} ms (queueing at saturation); writer thread busy ${pct(sat.writerBusy)}`);
    record({
      bench: 'storage', name: 'writer behind the pipeline, saturated', unit: 'rows/s', better: 'higher', value: sat.steady,
      baseline: { name: 'psql \\copy (best format)', value: limit }, target: { op: '>=', value: 0.7 * limit },
    });
    const target = 0.7 * limit;
    console.log(`   paced at 70% of psql \\copy (${K(target)}k ticks/s); write latency = tick received by the front -> row committed (target p99 < 500 ms):`);
    for (const batchMs of BATCH_MS) {
      const r = await pipelineRun(url, frames, PACED_MS, target, 5000, batchMs);
      record({
        bench: 'storage', name: `write latency p99, paced at 70 % of psql, WRITER_BATCH_MS=${batchMs}`, unit: 'ms', better: 'lower', value: r.p99,
        target: { op: '<=', value: 500 },
      });
      console.log(`     WRITER_BATCH_MS=${String(batchMs).padEnd(3)}: stored ${K(r.steady)}k rows/s of ${K(r.offered)}k offered, p50 ${r.p50} ms, p99 ${r.p99} ms, ` +
        `lag at end ${r.lagTicks} ticks, writer thread busy ${pct(r.writerBusy)}`);
    }
    for (const tps of QUICK ? [] : [20_000]) {
      const r = await pipelineRun(url, frames, PACED_MS, tps, 5000, 100);
      console.log(`   paced at ${K(tps)}k ticks/s (a busy live feed), WRITER_BATCH_MS=100: stored ${K(r.steady)}k rows/s, p50 ${r.p50} ms, p99 ${r.p99} ms, writer thread busy ${pct(r.writerBusy)}`);
    }

    console.log('\n3. The embedded PGlite (same writer sink, binary COPY through /dev/blob):');
    const pgliteRows = rows.slice(0, Math.min(rows.length, 50_000));
    const sink = new PgliteSink({ dir: join(tmp, 'pglite'), instruments: null, log: () => {} });
    const tOpen = performance.now();
    await sink.open();
    const openMs = performance.now() - tOpen;
    const t0 = performance.now();
    for (const b of batches(pgliteRows, 5000)[0]) await sink.commit(b, 'direct');
    const ms = performance.now() - t0;
    const [{ n }] = (await sink.query('SELECT count(*)::int AS n FROM market_data', [])) as { n: number }[];
    if (n !== pgliteRows.length) throw new Error(`PGlite: ${n} rows stored, ${pgliteRows.length} expected`);
    await sink.close();
    record({ bench: 'storage', name: 'embedded PGlite, 5k batches', unit: 'rows/s', better: 'higher', value: rate(pgliteRows.length, ms), baseline: { name: 'psql \\copy (best format)', value: limit } });
    console.log(`   ${K(pgliteRows.length)}k rows in batches of 5k: ${K(rate(pgliteRows.length, ms))}k rows/s = ${pct(rate(pgliteRows.length, ms) / limit)} of PostgreSQL's psql \\copy` +
      ` (first open, initdb included: ${(openMs / 1000).toFixed(1)} s)`);
  } finally {
    await sql.end();
    await admin.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await admin.end();
    rmSync(tmp, { recursive: true, force: true });
  }
}
