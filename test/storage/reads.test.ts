/**
 * Reads of stored data through Storage.db(), fed by the real pipeline. On the real PostgreSQL at
 * 127.0.0.1:5432 they go to the reader thread's own pool (src/storage/reads.ts): they keep
 * answering while the writer's commit is blocked and its thread restarts, and they survive the
 * reader's connections being cut and the reader thread itself dying. On the embedded PGlite they
 * go through the writer thread, the one thread that may open its files.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { READER_APPLICATION_NAME, ReaderExit } from '../../src/core/reader-protocol.ts';
import { WC, WriterExit } from '../../src/core/writer-protocol.ts';
import type { Storage } from '../../src/storage/supervisor.ts';
import { bars, instruments as instrumentsOf } from '../../src/storage/queries.ts';
import { stream, universe } from '../pipeline/harness.ts';
import { createTestDatabase, type TestDatabase } from '../support/pg.ts';
import { freshPgliteDir } from '../support/pglite.ts';
import { expectStoredExactlyOnce, storeRun } from '../support/store-run.ts';
import { until } from '../support/until.ts';

const instruments = universe();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A read that answers: true; one that fails (the reader restarting, a cut connection): false. */
const answers = (read: () => Promise<unknown[]>) => read().then((rows) => rows.length > 0, () => false);

describe('reads on PostgreSQL', () => {
  let t: TestDatabase;
  beforeAll(async () => { t = await createTestDatabase('reads'); });
  afterAll(async () => { await t.drop(); });
  beforeEach(async () => {
    await t.sql`TRUNCATE market_data, quarantined_ticks, bars, writer_batches, writer_progress`.catch(() => {});
  });

  it("answer bars while the writer's commit is blocked and its thread restarts", async () => {
    let answered = 0;
    const failed: unknown[] = [];
    const r = await storeRun({
      frames: stream(instruments, 1500, 31), instruments, databaseUrl: t.url, pace: { frames: 5, ms: 10 },
      // A commit blocked past a second restarts the writer thread.
      storage: { stallMs: 1000 },
      during: async (s: Storage) => {
        await until('a closed bar committed', () => s.counters[WC.BARS] > 0);
        const [stored] = await t.sql`SELECT token, timeframe FROM bars LIMIT 1`;
        const read = () => bars(s.db(), { token: Number(stored.token), timeframe: String(stored.timeframe), from: '2000-01-01', to: '2100-01-01', fill: false });
        expect((await read()).length).toBeGreaterThan(0);
        // The writer's COPY into market_data waits for this lock; its commit stalls, its thread is
        // ended and started again, and stalls again, with back-off between (the thread is gone then).
        const lock = await t.sql.reserve();
        try {
          await lock`BEGIN`;
          await lock`LOCK TABLE market_data IN ACCESS EXCLUSIVE MODE`;
          const deadline = Date.now() + 40_000;
          while (s.restarts < 2) {
            if (Date.now() > deadline) throw new Error('timed out waiting for the writer to stall twice');
            try {
              expect((await read()).length).toBeGreaterThan(0);
              answered++;
            } catch (e) {
              failed.push(e);
            }
            await sleep(5); // pacing, so reads land in every restart's gap
          }
        } finally {
          await lock`ROLLBACK`;
          lock.release();
        }
      },
    });
    expect(failed).toEqual([]);
    expect(answered).toBeGreaterThan(10);
    expect(r.storage.restarts).toBeGreaterThanOrEqual(2);
    expect(r.storage.lastExit?.code).toBe(WriterExit.STALLED);
    // Nothing the writer held while it stalled was lost or doubled.
    await expectStoredExactlyOnce((text) => t.sql.unsafe(text), r);
  });

  it("answer again after the reader's connections are cut and after the reader thread dies", async () => {
    const r = await storeRun({
      frames: stream(instruments, 600, 32), instruments, databaseUrl: t.url, pace: { frames: 5, ms: 10 },
      // A read slower than two seconds ends the reader thread.
      storage: { stallMs: 2000, readConnections: 3 },
      during: async (s: Storage) => {
        const db = s.db();
        const read = () => instrumentsOf(db, { type: 'FUT' });
        await until('a first read', () => answers(read));
        expect(s.stats().reader).toMatchObject({ connections: 3, restarts: 0 });

        const cut = await t.admin`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = ${t.name} AND application_name = ${READER_APPLICATION_NAME}`;
        expect(cut.length).toBeGreaterThan(0);
        await until('a read after the cut', () => answers(read));

        // The watchdog ends the thread under this read; the supervisor starts another.
        await expect(db.query('SELECT pg_sleep(10)')).rejects.toMatchObject({ code: 'STORAGE_RESTARTING' });
        await until('the reader thread restarted', () => s.readerRestarts >= 1);
        await until('a read on the new reader thread', () => answers(read));
        expect(s.stats().reader).toMatchObject({ restarts: 1, lastExit: expect.objectContaining({ code: ReaderExit.STALLED }) });
      },
    });
    await expectStoredExactlyOnce((text) => t.sql.unsafe(text), r);
  });
});

describe('reads on the embedded PGlite', () => {
  it('are answered by the writer thread, the one that opened the database', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'reads-pglite-'));
    await freshPgliteDir(join(dataDir, 'pglite'));
    try {
      let read: unknown;
      const r = await storeRun({
        frames: stream(instruments, 200, 33), instruments, databaseUrl: null, dataDir,
        during: async (s: Storage) => {
          await until('the first commit', () => s.counters[WC.BATCHES] > 0);
          const db = s.db();
          expect(db.kind).toBe('pglite');
          read = await instrumentsOf(db, { type: 'FUT' });
        },
      });
      expect(read).toEqual(expect.arrayContaining([expect.objectContaining({ type: 'FUT', exchange: 'NFO' })]));
      expect(r.storage.stats().reader).toBeNull();
      expect(r.storage.readerRestarts).toBe(0);
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
