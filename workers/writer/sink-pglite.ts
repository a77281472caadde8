/**
 * The embedded sink: PGlite (PostgreSQL compiled to WASM) in this thread, its files under
 * `${DATA_DIR}/pglite`. Same migrations (the plain path: no partitioning, no TimescaleDB), same
 * commit transaction as the server sink (sink.ts); binary COPY reads from PGlite's `/dev/blob`
 * device, which takes the bytes as a Blob.
 *
 * PGlite is one connection in one thread: one lane, and reads for the query module are served
 * between batches by the same instance (the main thread asks over the worker's message port).
 * Only one process may open the directory; the supervisor's DATA_DIR lock makes sure of that.
 */
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { threadId } from 'node:worker_threads';
import { PGlite, type Transaction } from '@electric-sql/pglite';
import { migrate } from '../../src/core/migrate.ts';
import { pgliteDb } from '../../src/core/db.ts';
import type { BatchData } from './batch.ts';
import type { InstrumentRow } from '../../src/core/writer-protocol.ts';
import { upsertInstruments } from './sink-pg.ts';
import { commitBatch, type CommitResult, type Sink, type SinkTx, type Via } from './sink.ts';

export interface PgliteSinkOptions {
  dir: string;
  instruments: InstrumentRow[] | null;
  log: (level: 'info' | 'warn' | 'error', obj: Record<string, unknown>, msg: string) => void;
}

export class PgliteSink implements Sink {
  readonly kind = 'pglite';
  readonly lanes = 1;
  private db: PGlite | null = null;
  private instrumentsDone = false;
  private path = 'plain';

  constructor(private readonly opts: PgliteSinkOptions) {}

  async open(): Promise<{ schemaPath: string; instruments: number | null }> {
    if (this.db !== null) {
      await this.db.query('SELECT 1');
      return { schemaPath: this.path, instruments: null };
    }
    await initOnce(this.opts.dir);
    const db = await PGlite.create(this.opts.dir);
    try {
      const r = await migrate(pgliteDb(db), { log: { info: (o, m) => this.opts.log('info', o as Record<string, unknown>, m), warn: (o, m) => this.opts.log('warn', o as Record<string, unknown>, m) } });
      this.path = r.path;
      let instruments: number | null = null;
      if (!this.instrumentsDone && this.opts.instruments !== null) {
        instruments = await upsertInstruments((text, params) => db.query(text, params), this.opts.instruments);
        this.instrumentsDone = true;
      }
      this.db = db;
      return { schemaPath: r.path, instruments };
    } catch (e) {
      await db.close().catch(() => {});
      throw e;
    }
  }

  async commit(b: BatchData, via: Via): Promise<CommitResult> {
    const db = this.db;
    if (db === null) throw new Error('PGlite is not open');
    return db.transaction((tx) => commitBatch(pgliteTx(tx), b, via));
  }

  async maintenance(): Promise<void> {}

  async query(text: string, params: readonly unknown[]): Promise<unknown[]> {
    if (this.db === null) throw Object.assign(new Error('the embedded database is still opening; retry in a moment'), { code: 'STORAGE_STARTING' });
    return (await this.db.query(text, params as unknown[])).rows;
  }

  async close(): Promise<void> {
    const db = this.db;
    this.db = null;
    await db?.close();
  }
}

/**
 * Create the database directory once, atomically: PGlite's first start runs initdb (seconds of
 * WASM), and a process killed half-way must not leave a directory that looks like a database.
 * So initdb runs in a scratch directory that is renamed into place when complete; scratch left by
 * a killed start is removed.
 */
async function initOnce(dir: string): Promise<void> {
  if (existsSync(join(dir, 'PG_VERSION'))) return;
  const parent = dirname(dir);
  mkdirSync(parent, { recursive: true });
  const prefix = `${basename(dir)}.init-`;
  for (const f of readdirSync(parent)) if (f.startsWith(prefix)) rmSync(join(parent, f), { recursive: true, force: true });
  const scratch = join(parent, `${prefix}${process.pid}-${threadId}`);
  const db = await PGlite.create(scratch);
  await db.close();
  rmSync(dir, { recursive: true, force: true }); // no PG_VERSION: not a database (an interrupted older start)
  renameSync(scratch, dir);
}

function pgliteTx(tx: Transaction): SinkTx {
  return {
    async query<T extends object>(text: string, params: readonly unknown[] = []): Promise<T[]> {
      return (await tx.query<T>(text, params as unknown[])).rows;
    },
    async copyIn(table: string, columns: string, chunks: readonly Uint8Array[]): Promise<void> {
      await tx.query(`COPY ${table} (${columns}) FROM '/dev/blob' WITH (FORMAT binary)`, [], { blob: new Blob(chunks as Uint8Array<ArrayBuffer>[]) });
    },
  };
}
