import { once } from 'node:events';
import type { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PGlite } from '@electric-sql/pglite';
import { pgDb, pgliteDb } from '../../src/core/db.ts';
import { migrate } from '../../src/core/migrate.ts';
import { InstrumentKind, expiryMsOf, type Instrument } from '../../src/core/instrument.ts';
import { N, N_FIELDS, NType } from '../../src/core/tick.ts';
import { COPY_HEADER, COPY_TRAILER, CopyBuffer, MARKET_COLUMNS, writeMarketRow } from '../writer/copy.ts';
import { makeTick } from '../../test/support/canonical-fixtures.ts';
import { createTestDatabase, type TestDatabase } from '../../test/support/pg.ts';
import { freshPglite } from '../../test/support/pglite.ts';
import { fillMarketData } from '../../test/support/replay-ticks.ts';
import { until } from '../../test/support/until.ts';
import { openTickSource, type ReplayInstruments, type ReplayPosition, type TickSource, type TickStore, type TickSourceOptions } from './source.ts';

const quiet = { log: { info() {}, warn() {} } };
const BASE_MS = Date.parse('2026-12-02T03:45:00Z'); // 09:15 IST

const INDEX = 256265;
const EQ = 408065;
const CE = 12_345_602;
const UNLISTED = 999_001; // stored, but not in the instrument list
const TOKENS = [CE, EQ, INDEX, UNLISTED];

const inst = (token: number, over: Partial<Instrument>): Instrument => ({
  instrumentToken: token, exchangeToken: token >> 8, tradingsymbol: `T${token}`, name: 'X', lastPrice: 0, expiry: '', strike: 0,
  tickSize: 0.05, lotSize: 1, instrumentType: 'EQ', segment: 'NSE', exchange: 'NSE', ...over,
});
const INSTRUMENTS: Instrument[] = [
  inst(INDEX, { segment: 'INDICES', tradingsymbol: 'NIFTY 50' }),
  inst(EQ, { tradingsymbol: 'INFY' }),
  inst(CE, { tradingsymbol: 'NIFTY26DEC26000CE', instrumentType: 'CE', segment: 'NFO-OPT', exchange: 'NFO', strike: 26_000, expiry: '2026-12-29', lotSize: 75 }),
];
const TABLE: ReplayInstruments = { instruments: INSTRUMENTS, rowOfToken: new Map(INSTRUMENTS.map((i, r) => [i.instrumentToken, r])) };

/**
 * 600 canonical ticks as the pipeline emits them: two ticks per token per exchange second (same
 * exchange time, rising receive time), the option full with depth, the others without, a tenth
 * with no last-trade time.
 */
function pipelineTicks(): Float64Array[] {
  const out: Float64Array[] = [];
  for (let i = 0; i < 600; i++) {
    const token = TOKENS[i % TOKENS.length];
    const sec = Math.floor(i / (2 * TOKENS.length));
    const t = BASE_MS + sec * 1000;
    const f = makeTick(token, 100 + (i % 37) * 0.05, i + 1, {
      EXCH_TIME_MS: t, RECV_TIME_US: t * 1000 + 300 + i * 17, LAST_TRADE_MS: i % 10 === 3 ? 0 : t - 500,
      CONN: i % 3, SEQ: 10_000 + i, VOLUME: 3_000_000_000 + i, CONSUMERS: 3, SHARD: 1, PROC_TIME_US: t * 1000 + 900, DAY_VWAP: 101.5,
    });
    if (token !== CE) {
      f[N.KIND] = token === INDEX ? 3 : 4;
      f[N.DEPTH_LEVELS] = 0;
      f.fill(0, N.DEPTH, N.DEPTH + 30);
    }
    out.push(f);
  }
  return out;
}

/** What the source must give back for a stored tick: the stored fields, the rest as documented. */
function expected(f: Float64Array): number[] {
  const e = Float64Array.from(f);
  e[N.TYPE] = NType.TICK;
  e[N.CONSUMERS] = 0;
  e[N.REASON] = 0;
  e[N.PROC_TIME_US] = 0;
  e[N.SHARD] = -1;
  e[N.DAY_VWAP] = NaN;
  const row = TABLE.rowOfToken.get(e[N.TOKEN]);
  e[N.INSTR] = row ?? -1;
  e[N.INSTR_TYPE] = row === undefined ? -1 : [InstrumentKind.INDEX, InstrumentKind.EQ, InstrumentKind.CE][row];
  e[N.STRIKE] = row === undefined ? 0 : INSTRUMENTS[row].strike;
  e[N.EXPIRY_MS] = row === undefined ? 0 : expiryMsOf(INSTRUMENTS[row]);
  return Array.from(e);
}

const byReplayOrder = (a: Float64Array, b: Float64Array): number =>
  a[N.EXCH_TIME_MS] - b[N.EXCH_TIME_MS] || a[N.RECV_TIME_US] - b[N.RECV_TIME_US] || a[N.TOKEN] - b[N.TOKEN] || a[N.CONN] - b[N.CONN] || a[N.SEQ] - b[N.SEQ];

/** The ticks as the writer's binary COPY stream (workers/writer/copy.ts), in the order given. */
function copyBytes(ticks: readonly Float64Array[]): Uint8Array {
  const buf = new CopyBuffer();
  for (const t of ticks) writeMarketRow(buf, t, 0);
  const out = new Uint8Array(COPY_HEADER.length + buf.length + COPY_TRAILER.length);
  out.set(COPY_HEADER, 0);
  out.set(buf.bytes.subarray(0, buf.length), COPY_HEADER.length);
  out.set(COPY_TRAILER, COPY_HEADER.length + buf.length);
  return out;
}

/** Every record of a source, as arrays, and the batch sizes it came in. */
async function drain(src: TickSource, max = Infinity): Promise<{ records: number[][]; batches: number[] }> {
  const records: number[][] = [];
  const batches: number[] = [];
  while (records.length < max) {
    const n = await src.next();
    if (n === 0) break;
    batches.push(n);
    for (let i = 0; i < n; i++) records.push(Array.from(src.batch.subarray(i * N_FIELDS, (i + 1) * N_FIELDS)));
  }
  return { records, batches };
}

async function readAll(store: TickStore, o: Partial<TickSourceOptions> = {}): Promise<number[][]> {
  const src = await openTickSource(store, { fromMs: BASE_MS, toMs: BASE_MS + 3600_000, instruments: TABLE, ...o });
  try {
    return (await drain(src)).records;
  } finally {
    await src.close();
  }
}

const TICKS = pipelineTicks();
const IN_ORDER = [...TICKS].sort(byReplayOrder);

let db: TestDatabase;
let pg: TickStore;
let lite: { db: PGlite; close: () => Promise<void> };
let embedded: TickStore;

beforeAll(async () => {
  db = await createTestDatabase('replay_source');
  await migrate(pgDb(db.sql), quiet);
  await db.sql.unsafe('SELECT storage_ensure_partitions($1, $2)', [new Date(BASE_MS - 86_400_000), new Date(BASE_MS + 86_400_000)]);
  // Stored in reverse, so the order read back is the query's, not the insertion's.
  const w = (await db.sql.unsafe(`COPY market_data (${MARKET_COLUMNS.join(', ')}) FROM STDIN (FORMAT binary)`).writable()) as Writable;
  w.end(copyBytes([...TICKS].reverse()));
  await once(w, 'finish');
  pg = { kind: 'postgres', url: db.url };

  lite = await freshPglite();
  await migrate(pgliteDb(lite.db), quiet);
  await lite.db.query(`COPY market_data (${MARKET_COLUMNS.join(', ')}) FROM '/dev/blob' WITH (FORMAT binary)`, [], { blob: new Blob([copyBytes([...TICKS].reverse()) as Uint8Array<ArrayBuffer>]) });
  embedded = { kind: 'pglite', db: lite.db };
});

afterAll(async () => {
  await lite?.close();
  await db?.drop();
});

describe('replay source on PostgreSQL', () => {
  it("gives back the writer's rows field by field, in (time, recv_time, token, conn, seq) order", async () => {
    const src = await openTickSource(pg, { fromMs: BASE_MS, toMs: BASE_MS + 3600_000, instruments: TABLE, batchTicks: 64 });
    const batch = src.batch;
    const { records, batches } = await drain(src);
    expect(src.batch).toBe(batch); // one buffer, reused
    expect(batches.slice(0, -1).every((n) => n === 64)).toBe(true);
    expect(records).toHaveLength(TICKS.length);
    expect(records).toEqual(IN_ORDER.map(expected));
    expect(await src.next()).toBe(0);
    expect(src.delivered).toBe(TICKS.length);
    await src.close();
  });

  it('keeps to the token filter and the half-open time range', async () => {
    const from = BASE_MS + 10_000;
    const to = BASE_MS + 40_000;
    const got = await readAll(pg, { fromMs: from, toMs: to, tokens: [CE, UNLISTED] });
    const want = IN_ORDER.filter((t) => (t[N.TOKEN] === CE || t[N.TOKEN] === UNLISTED) && t[N.EXCH_TIME_MS] >= from && t[N.EXCH_TIME_MS] < to);
    expect(want.length).toBeGreaterThan(0);
    expect(want.some((t) => t[N.EXCH_TIME_MS] === from)).toBe(true);
    expect(IN_ORDER.some((t) => t[N.EXCH_TIME_MS] === to)).toBe(true); // the end is excluded, not absent
    expect(got).toEqual(want.map(expected));
    expect(await readAll(pg, { tokens: [] })).toEqual([]);
  });

  it('continues after a position exactly where an unbroken read goes on', async () => {
    const first = await openTickSource(pg, { fromMs: BASE_MS, toMs: BASE_MS + 3600_000, instruments: TABLE, batchTicks: 7 });
    expect(first.position()).toBeNull();
    const head = (await drain(first, 3 * 7)).records;
    const at: ReplayPosition = first.position()!;
    await first.close(); // mid-stream
    expect(at).toEqual({
      timeUs: IN_ORDER[20][N.EXCH_TIME_MS] * 1000, token: IN_ORDER[20][N.TOKEN], recvUs: IN_ORDER[20][N.RECV_TIME_US],
      conn: IN_ORDER[20][N.CONN], seq: IN_ORDER[20][N.SEQ],
    });
    // Position 20 shares its exchange time with the ticks around it: the tie-break must hold.
    expect(IN_ORDER[21][N.EXCH_TIME_MS]).toBe(IN_ORDER[20][N.EXCH_TIME_MS]);
    const rest = await readAll(pg, { after: at });
    expect([...head, ...rest]).toEqual(IN_ORDER.map(expected));
  });

  it('lets go of its connection when closed mid-stream', async () => {
    const app = `replay-close-${process.pid}`;
    const url = `${db.url}?application_name=${app}`;
    const src = await openTickSource({ kind: 'postgres', url }, { fromMs: BASE_MS, toMs: BASE_MS + 3600_000, instruments: TABLE, batchTicks: 8 });
    expect(await src.next()).toBe(8);
    await src.close();
    await src.close();
    expect(await src.next()).toBe(0);
    await until('the replay backend to go', async () => (await db.sql`SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = ${app}`)[0].n === 0);
  });

  it('refuses options it cannot honour, naming them', async () => {
    const o = { fromMs: BASE_MS, toMs: BASE_MS + 1, instruments: TABLE };
    await expect(openTickSource(pg, { ...o, toMs: BASE_MS - 1 })).rejects.toThrow(/toMs/);
    await expect(openTickSource(pg, { ...o, tokens: [1.5] })).rejects.toThrow(/tokens/);
    await expect(openTickSource(pg, { ...o, batchTicks: 0 })).rejects.toThrow(/batchTicks/);
    await expect(openTickSource(pg, { ...o, after: { timeUs: 1, token: 1, recvUs: 1, conn: 0, seq: Number.NaN } })).rejects.toThrow(/after\.seq/);
  });
});

describe('replay source on the embedded PGlite', () => {
  it('gives back the same records as PostgreSQL, whatever the batch and page sizes', async () => {
    const want = IN_ORDER.map(expected);
    expect(await readAll(embedded, { batchTicks: 50, pageTicks: 33 })).toEqual(want);
    expect(await readAll(embedded, { batchTicks: 1024 })).toEqual(want);
  });

  it('filters, bounds and resumes as on PostgreSQL', async () => {
    const o = { fromMs: BASE_MS + 5_000, toMs: BASE_MS + 50_000, tokens: [EQ, INDEX] };
    const onPg = await readAll(pg, o);
    expect(onPg.length).toBeGreaterThan(20);
    expect(await readAll(embedded, o)).toEqual(onPg);
    const first = await openTickSource(embedded, { ...o, instruments: TABLE, batchTicks: 10, pageTicks: 4 });
    const head = (await drain(first, 10)).records;
    const at = first.position()!;
    await first.close();
    expect([...head, ...(await readAll(embedded, { ...o, after: at }))]).toEqual(onPg);
    // Its sorted copy of the range is gone, closed mid-stream or read to the end.
    expect((await lite.db.query(`SELECT relname FROM pg_class WHERE relpersistence = 't' AND relname LIKE 'replay%'`)).rows).toEqual([]);
  });
});

describe('replay source memory', () => {
  it('reads 300k stored ticks (110 MB of COPY tuples) with a 64-tick batch in bounded memory', async () => {
    const big = await createTestDatabase('replay_big');
    try {
      await migrate(pgDb(big.sql), quiet);
      const rows = 300_000;
      await fillMarketData((t, p) => big.sql.unsafe(t, p as never[]), { rows, fromMs: BASE_MS, spanMs: 3600_000, tokens: Array.from({ length: 60 }, (_, i) => 10_000 + i * 7) });
      // Bytes of the binary COPY tuples: 258 a row, the depth array 388 more, a NULL last-trade time 8 fewer.
      const wire = (await big.sql`SELECT sum(258 + CASE WHEN depth IS NULL THEN 0 ELSE 388 END - CASE WHEN last_trade_time IS NULL THEN 8 ELSE 0 END)::float8 AS b FROM market_data`)[0].b as number;
      global.gc?.();
      const rss0 = process.memoryUsage().rss;
      let peak = rss0;
      let warm = 0; // RSS once the first 50k ticks are through: driver, socket and V8 young-generation buffers grown
      const src = await openTickSource({ kind: 'postgres', url: big.url }, { fromMs: BASE_MS, toMs: BASE_MS + 3600_000, instruments: TABLE, batchTicks: 64 });
      let n = 0;
      let prevTime = -Infinity;
      let prevRecv = -Infinity;
      let ordered = true;
      for (let k; (k = await src.next()) > 0; ) {
        for (let i = 0; i < k; i++) {
          const o = i * N_FIELDS;
          const t = src.batch[o + N.EXCH_TIME_MS];
          const recv = src.batch[o + N.RECV_TIME_US];
          if (t < prevTime || (t === prevTime && recv < prevRecv)) ordered = false;
          prevTime = t;
          prevRecv = recv;
        }
        n += k;
        if ((n & 0x3fff) < k) {
          const rss = process.memoryUsage().rss;
          peak = Math.max(peak, rss);
          if (warm === 0 && n >= 50_000) warm = rss;
        }
      }
      await src.close();
      expect(n).toBe(rows);
      expect(ordered).toBe(true);
      expect(wire).toBeGreaterThan(100 * 2 ** 20);
      const mb = (x: number) => (x / 2 ** 20).toFixed(1);
      console.log(`replay memory: ${mb(wire)} MB read; RSS grew ${mb(peak - rss0)} MB at most, ${mb(peak - Math.max(warm, rss0))} MB after the first 50k ticks`);
      // A read that loaded the range would hold the bytes themselves; this holds a batch, a staging
      // buffer and socket buffers, plus the garbage of the driver's chunks until a scavenge: it
      // grows while those fill, then stays.
      expect(peak - rss0).toBeLessThan(wire / 2);
      // Growth after the warm-up, from whichever is higher: RSS can also fall meanwhile (the fork
      // returning an earlier test's pages), and growth from a fallen sample is not growth.
      expect(peak - Math.max(warm, rss0)).toBeLessThan(16 * 2 ** 20);
    } finally {
      await big.drop();
    }
  });
});
