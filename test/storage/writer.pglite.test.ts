/**
 * The embedded default: with no DATABASE_URL the same writer stores into PGlite under DATA_DIR,
 * through the same migrations (the plain path) and the same commit transaction.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { describe, expect, it } from 'vitest';
import { WC } from '../../src/core/writer-protocol.ts';
import { stream, universe } from '../pipeline/harness.ts';
import { freshPgliteDir } from '../support/pglite.ts';
import { expectStoredExactlyOnce, storeRun } from '../support/store-run.ts';

describe('batch writer on the embedded PGlite', () => {
  it('stores every accepted tick once and every closed bar, under DATA_DIR/pglite', async () => {
    const instruments = universe();
    const dataDir = mkdtempSync(join(tmpdir(), 'writer-pglite-'));
    await freshPgliteDir(join(dataDir, 'pglite')); // an initialised database: the test is about the writer, not initdb
    const r = await storeRun({ frames: stream(instruments, 300, 21), instruments, databaseUrl: null, dataDir });
    try {
      expect(r.storage.where).toContain(join(r.dataDir, 'pglite'));
      // A first open slower than the writer's hold (initdb on a loaded machine) sends the first
      // batches through the spill; all of them are replayed.
      expect(r.storage.counters[WC.REPLAYED]).toBe(r.storage.counters[WC.SPILLED]);
      const pg = await PGlite.create(join(r.dataDir, 'pglite'));
      try {
        await expectStoredExactlyOnce(async (text) => (await pg.query<Record<string, any>>(text)).rows, r);
        const m = await pg.query<{ path: string }>('SELECT DISTINCT path FROM schema_migrations');
        expect(m.rows).toEqual([{ path: 'plain' }]);
        const i = await pg.query<{ n: number }>('SELECT count(*)::int AS n FROM instruments');
        expect(i.rows[0].n).toBe(instruments.length);
      } finally {
        await pg.close();
      }
    } finally {
      rmSync(r.dataDir, { recursive: true, force: true });
    }
  });
});
