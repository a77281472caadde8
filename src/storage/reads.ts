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
 *
 * Transactions (transact(), the order path's writes) run in the reader thread too, on a connection
 * of its pool from BEGIN to COMMIT, sent on the thread's transaction port (TxPort below, which
 * the writer thread's transactions on the embedded PGlite use as well).
 */
import type { MessagePort } from 'node:worker_threads';
import { AppError } from '../core/errors.ts';
import type { Db, Row } from '../core/db.ts';
import { ReaderExit, type ReaderControl, type ReaderData, type ReaderMessage, type TxAnswer, type TxRequest, type TxStatement } from '../core/reader-protocol.ts';
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

/**
 * The main thread's end of a storage thread's transaction port (src/core/reader-protocol.ts): each
 * thread started hands over a port of its own ('txPort'), which replaces the last one. Every
 * transaction sent gets exactly one answer:
 *
 * - committed: resolves;
 * - refused by the database: rejects with its message, `code` (SQLSTATE) and `constraint`;
 * - no thread to send it to (restarting, or not yet started): rejects STORAGE_RESTARTING;
 *   nothing was sent, so nothing was written;
 * - the thread ended while it ran (its port closed): rejects STORAGE_TX_OUTCOME_UNKNOWN. It may
 *   have committed just before: read back before doing it again.
 */
export class TxPort {
  private current: { port: MessagePort; pending: Map<number, { resolve: () => void; reject: (e: Error) => void }> } | null = null;
  private nextId = 1;
  private closed = false;

  /** `name`: the thread's, for error messages. */
  constructor(private readonly name: string) {}

  /** A newly started thread's port. */
  attach(port: MessagePort): void {
    const link = { port, pending: new Map<number, { resolve: () => void; reject: (e: Error) => void }>() };
    this.current = link;
    port.on('message', (m: TxAnswer) => {
      const p = link.pending.get(m.id);
      if (p === undefined) return;
      link.pending.delete(m.id);
      if (m.error === undefined) p.resolve();
      else p.reject(Object.assign(new Error(m.error.message), { code: m.error.code, constraint: m.error.constraint }));
    });
    port.on('close', () => {
      if (this.current === link) this.current = null;
      for (const p of link.pending.values()) {
        p.reject(new AppError('STORAGE_TX_OUTCOME_UNKNOWN',
          `the ${this.name} thread ended while a transaction was in flight: it may or may not have committed. Read back what it wrote before writing it again.`));
      }
      link.pending.clear();
    });
    // The thread keeps the process up while it runs; its port need not.
    port.unref();
  }

  /** Transactions sent and not yet answered. */
  get inFlight(): number {
    return this.current?.pending.size ?? 0;
  }

  transact(statements: readonly TxStatement[]): Promise<void> {
    const link = this.current;
    if (link === null) {
      return Promise.reject(new AppError('STORAGE_RESTARTING', this.closed
        ? 'storage is shutting down; nothing was written'
        : `the ${this.name} thread is restarting; nothing was written, retry the transaction in a moment`));
    }
    const id = this.nextId++;
    return new Promise<void>((resolve, reject) => {
      link.pending.set(id, { resolve, reject });
      const m: TxRequest = { type: 'tx', id, statements: statements.map((s) => ({ text: s.text, params: [...s.params] })) };
      link.port.postMessage(m);
    });
  }

  /** No transaction is sent from now on (the owner is stopping its thread). */
  close(): void {
    this.closed = true;
    this.current = null;
  }
}

export class Reads {
  private readonly thread: SupervisedThread<ReaderControl, ReaderMessage>;
  private readonly tx = new TxPort('reader');

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
      onMessage: (m) => {
        if (m.type === 'txPort') this.tx.attach(m.port);
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

  /** `statements` in one transaction, by the reader thread (TxPort says how it answers). */
  transact(statements: readonly TxStatement[]): Promise<void> {
    return this.tx.transact(statements);
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
    return { connections: this.opts.connections, inFlight: this.thread.inFlight + this.tx.inFlight, restarts: this.restarts, lastExit: this.lastExit };
  }

  /**
   * End the reader thread; reads still in flight fail with STORAGE_RESTARTING, transactions with
   * STORAGE_TX_OUTCOME_UNKNOWN.
   */
  async close(deadlineMs = 3000): Promise<void> {
    this.tx.close();
    await this.thread.end({ type: 'stop' }, deadlineMs);
  }
}
