/**
 * Runs harness frames through the real pipeline (front → shard workers → output rings) with the
 * real storage (supervisor + writer thread) on the STORE slot, and a FEED pump that keeps every
 * canonical tick the pipeline emitted: the reference the database is checked against.
 */
import { mkdtempSync } from 'node:fs';
import { expect } from 'vitest';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Front } from '../../src/front.ts';
import type { Instrument } from '../../src/core/instrument.ts';
import { silentLogger, type Logger } from '../../src/log.ts';
import { OutputPump, Pipeline } from '../../src/pipeline.ts';
import { Storage, type StorageOptions } from '../../src/storage/supervisor.ts';
import { N, NType, TickConsumer } from '../../src/core/tick.ts';
import { B, BarFlag } from '../../src/core/bar.ts';
import { DEFAULT_TIMEFRAMES, parseTimeframe } from '../../src/core/ist.ts';
import type { Frame } from '../pipeline/harness.ts';

export interface StoreRunOptions {
  frames: readonly Frame[];
  instruments: Instrument[];
  workers?: number;
  databaseUrl: string | null;
  dataDir?: string;
  /** Frames between pauses, and the pause (ms): spreads the stream over time. */
  pace?: { frames: number; ms: number };
  storage?: Partial<StorageOptions>;
  log?: Logger;
  /** Called once the storage has started, before the frames; awaited at the end. */
  during?: (storage: Storage) => Promise<void>;
}

export interface StoreRunResult {
  storage: Storage;
  /** Keys (token, exchange ms, recv µs, conn, seq) of every accepted tick, from the FEED slot. */
  ticks: string[];
  quarantined: number;
  barsClosed: number;
  pipeline: ReturnType<Pipeline['counters']>;
  dataDir: string;
}

export const tickKey = (token: number, timeMs: number, recvUs: number, conn: number, seq: number): string =>
  `${token}/${timeMs}/${recvUs}/${conn}/${seq}`;

export async function storeRun(o: StoreRunOptions): Promise<StoreRunResult> {
  const dataDir = o.dataDir ?? mkdtempSync(join(tmpdir(), 'store-run-'));
  const clock = new SharedArrayBuffer(8);
  const front = new Front({ shards: o.workers ?? 2, ringCapacity: 1 << 12 });
  const pipeline = new Pipeline({
    rings: front.rings,
    instruments: o.instruments,
    mode: 'full',
    timeframesMs: DEFAULT_TIMEFRAMES.map(parseTimeframe),
    outCapacity: 1 << 12,
    clock,
    onError: (shard, err) => { throw new Error(`shard ${shard}: ${err.message}`); },
  });
  const storage = new Storage({
    databaseUrl: o.databaseUrl,
    dataDir,
    batchRows: 500,
    batchMs: 20,
    connections: 2,
    stallMs: 5000,
    spillMaxBytes: 256 * 1024 * 1024,
    marketDataRetentionDays: 0,
    barsRetentionDays: 0,
    ticks: pipeline.shards.map((s) => s.ticksOut),
    bars: pipeline.shards.map((s) => s.barsOut),
    doorbells: pipeline.doorbells,
    instruments: o.instruments,
    log: o.log ?? silentLogger,
    ...o.storage,
  });
  const ticks: string[] = [];
  let quarantined = 0;
  let barsClosed = 0;
  const feed = new OutputPump(pipeline.reader(TickConsumer.FEED), {
    tick(v, b) {
      const f = v.f64;
      const x = b >> 1;
      if (f[x + N.TYPE] === NType.QUARANTINE) quarantined++;
      else ticks.push(tickKey(f[x + N.TOKEN], f[x + N.EXCH_TIME_MS], f[x + N.RECV_TIME_US], f[x + N.CONN], f[x + N.SEQ]));
    },
    bar(v, b) {
      if ((v.f64[(b >> 1) + B.FLAGS] & BarFlag.CLOSED) !== 0) barsClosed++;
    },
  });
  const during = o.during?.(storage);
  let seq = 0;
  for (const f of o.frames) {
    front.onBinary(f.bytes, 0, ++seq, f.recvUs);
    if (o.pace && seq % o.pace.frames === 0) await new Promise((r) => setTimeout(r, o.pace!.ms));
    else if (seq % 50 === 0) await new Promise((r) => setImmediate(r));
  }
  await during;
  await front.close(60_000);
  await pipeline.stop(60_000);
  await feed.done;
  await storage.close(30_000);
  return { storage, ticks, quarantined, barsClosed, pipeline: pipeline.counters(), dataDir };
}

/**
 * The database holds exactly the accepted ticks the FEED slot saw (the same keys, none twice),
 * every quarantined tick and every closed bar.
 */
export async function expectStoredExactlyOnce(q: (text: string) => Promise<readonly Record<string, any>[]>, r: StoreRunResult): Promise<void> {
  const rows = await q(`SELECT token, (extract(epoch from time) * 1000)::float8 AS ms, (extract(epoch from recv_time) * 1000000)::float8 AS us, conn, seq
    FROM market_data`);
  const db = rows.map((x) => tickKey(Number(x.token), Math.round(x.ms), Math.round(x.us), Number(x.conn), Number(x.seq))).sort();
  const fed = [...r.ticks].sort();
  expect(db.length).toBe(fed.length);
  expect(new Set(db).size).toBe(db.length); // no duplicates (the keys of the fed ticks are distinct)
  expect(db).toEqual(fed);
  const qt = await q('SELECT count(*)::int AS n FROM quarantined_ticks');
  expect(qt[0].n).toBe(r.quarantined);
  const b = await q('SELECT count(*)::int AS n FROM bars');
  expect(b[0].n).toBe(r.barsClosed);
}
