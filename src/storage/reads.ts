/**
 * Reads of stored data on a PostgreSQL server: a reader thread (workers/reader/) with a pool of
 * its own (READER_CONNECTIONS), supervised like the writer (supervised-thread.ts): restarted
 * with back-off whenever it dies. So a read neither waits behind a stalled commit nor fails while
 * the writer thread restarts, and the main thread still never loads the `postgres` driver, whose
 * uncaught exception would take the process down (workers/writer/sink-pg.ts).
 *
 * Reads are single statements and idempotent, but are not retried here: a read in flight when the
 * reader thread dies, or sent while it is restarting, fails at once with STORAGE_RESTARTING, and
 * its caller answers 503 (retry in a moment) rather than hold a request open for an unknown time.
 *
 * The embedded PGlite has no reader thread: see Storage.db().
 */
import { AppError } from '../core/errors.ts';
import type { Db, Row } from '../core/db.ts';
import { ReaderExit, type ReaderControl, type ReaderData, type ReaderMessage } from '../core/reader-protocol.ts';
import type { Logger } from '../log.ts';
import { SupervisedThread, type ExitRecord } from './supervised-thread.ts';

const READER_MODULE = new URL('../../workers/reader/main.ts', import.meta.url);

export interface ReadsOptions {
  databaseUrl: string;
  /** Connections in the read pool. */
  connections: number;
  /** A read that has not settled after this long restarts the reader thread, ms. */
  stallMs: number;
  log: Logger;
}

export class Reads {
  private readonly thread: SupervisedThread<ReaderControl, ReaderMessage>;

  constructor(private readonly opts: ReadsOptions) {
    const data: ReaderData = { databaseUrl: opts.databaseUrl, connections: opts.connections, stallMs: opts.stallMs };
    this.thread = new SupervisedThread<ReaderControl, ReaderMessage>({
      name: 'reader',
      module: READER_MODULE,
      data,
      log: opts.log,
      died: {
        code: 'READER_THREAD_DIED',
        msg: 'the reader thread died; restarting it (reads meanwhile answer STORAGE_RESTARTING)',
        reason: (code) => code === ReaderExit.STALLED ? 'a read stalled past WRITER_STALL_MS' : undefined,
      },
    });
    this.thread.start();
  }

  get restarts(): number {
    return this.thread.restarts;
  }

  get lastExit(): ExitRecord | null {
    return this.thread.lastExit;
  }

  query<T extends object = Row>(text: string, params: readonly unknown[] = []): Promise<T[]> {
    return this.thread.request<T>(text, params);
  }

  /** The read interface (src/storage/queries.ts): single statements, no transactions. */
  db(): Db {
    const query = <T extends object = Row>(text: string, params?: readonly unknown[]): Promise<T[]> => this.query<T>(text, params);
    return {
      kind: 'postgres',
      query,
      exec: async (text: string) => { await query(text); },
      begin: () => Promise.reject(new AppError('STORAGE_READ_ONLY', 'the storage read interface has no transactions')),
    };
  }

  /** For /health. */
  stats(): Record<string, unknown> {
    return { connections: this.opts.connections, inFlight: this.thread.inFlight, restarts: this.restarts, lastExit: this.lastExit };
  }

  /** End the reader thread; reads still in flight fail with STORAGE_RESTARTING. */
  async close(deadlineMs = 3000): Promise<void> {
    await this.thread.end({ type: 'stop' }, deadlineMs);
  }
}
