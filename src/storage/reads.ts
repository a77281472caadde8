/**
 * Reads of stored data on a PostgreSQL server: a reader thread (workers/reader/) with a pool of
 * its own (READER_CONNECTIONS), supervised from here like the writer (supervisor.ts): restarted
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
import type { Worker } from 'node:worker_threads';
import { AppError } from '../core/errors.ts';
import type { Db, Row } from '../core/db.ts';
import { ReaderExit, type ReaderControl, type ReaderData, type ReaderMessage } from '../core/reader-protocol.ts';
import type { Logger } from '../log.ts';
import { startWorker } from '../threads.ts';

const READER_MODULE = new URL('../../workers/reader/main.ts', import.meta.url);
const RESTART_MIN_MS = 100;
const RESTART_MAX_MS = 5000;
/** A thread that ran this long before dying resets the back-off. */
const HEALTHY_AFTER_MS = 30_000;

export interface ReadsOptions {
  databaseUrl: string;
  /** Connections in the read pool. */
  connections: number;
  /** A read that has not settled after this long restarts the reader thread, ms. */
  stallMs: number;
  log: Logger;
}

interface Pending {
  resolve: (rows: unknown[]) => void;
  reject: (e: Error) => void;
}

export class Reads {
  restarts = 0;
  lastExit: { code: number | null; error?: string; at: string } | null = null;
  private readonly data: ReaderData;
  private worker: Worker | null = null;
  private stopping = false;
  private exited: Promise<void> = Promise.resolve();
  private failures = 0;
  private restartTimer: NodeJS.Timeout | null = null;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;

  constructor(private readonly opts: ReadsOptions) {
    this.data = { databaseUrl: opts.databaseUrl, connections: opts.connections, stallMs: opts.stallMs };
    this.spawn();
  }

  private spawn(): void {
    const w = startWorker(READER_MODULE, { workerData: this.data, name: 'reader' });
    this.worker = w;
    const started = Date.now();
    let error: Error | undefined;
    w.on('message', (m: ReaderMessage) => this.onMessage(m));
    w.on('error', (e) => { error = e; });
    this.exited = new Promise<void>((resolve) => {
      w.on('exit', (code) => {
        this.worker = null;
        for (const p of this.pending.values()) p.reject(new AppError('STORAGE_RESTARTING', 'the reader thread restarted while answering; retry the read'));
        this.pending.clear();
        resolve();
        if (this.stopping) return;
        this.restarts++;
        this.lastExit = { code, error: error?.message, at: new Date().toISOString() };
        this.failures = Date.now() - started > HEALTHY_AFTER_MS ? 1 : this.failures + 1;
        const delay = Math.min(RESTART_MAX_MS, RESTART_MIN_MS * 2 ** (this.failures - 1));
        this.opts.log.error({
          code: 'READER_THREAD_DIED',
          exitCode: code,
          reason: code === ReaderExit.STALLED ? 'a read stalled past WRITER_STALL_MS' : undefined,
          err: error ? { message: error.message, stack: error.stack } : undefined,
          restartInMs: delay,
          restarts: this.restarts,
        }, 'the reader thread died; restarting it (reads meanwhile answer STORAGE_RESTARTING)');
        this.restartTimer = setTimeout(() => { this.restartTimer = null; if (!this.stopping) this.spawn(); }, delay);
      });
    });
  }

  private onMessage(m: ReaderMessage): void {
    if (m.type === 'log') {
      this.opts.log[m.level]({ component: 'reader', ...m.obj }, m.msg);
    } else if (m.type === 'result') {
      const p = this.pending.get(m.id);
      if (p === undefined) return;
      this.pending.delete(m.id);
      if (m.error) p.reject(Object.assign(new Error(m.error.message), { code: m.error.code }));
      else p.resolve(m.rows ?? []);
    }
  }

  query<T extends object = Row>(text: string, params: readonly unknown[] = []): Promise<T[]> {
    const w = this.worker;
    if (w === null) {
      return Promise.reject(new AppError('STORAGE_RESTARTING', this.stopping
        ? 'storage is shutting down'
        : 'the reader thread is restarting; retry the read in a moment'));
    }
    const id = this.nextId++;
    return new Promise<T[]>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (rows: unknown[]) => void, reject });
      w.postMessage({ type: 'query', id, text, params: [...params] } satisfies ReaderControl);
    });
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
    return { connections: this.opts.connections, inFlight: this.pending.size, restarts: this.restarts, lastExit: this.lastExit };
  }

  /** End the reader thread; reads still in flight fail with STORAGE_RESTARTING. */
  async close(deadlineMs = 3000): Promise<void> {
    this.stopping = true;
    if (this.restartTimer !== null) {
      clearTimeout(this.restartTimer);
      this.restartTimer = null;
    }
    const w = this.worker;
    if (w === null) return;
    w.postMessage({ type: 'stop' } satisfies ReaderControl);
    const timer = setTimeout(() => void w.terminate(), deadlineMs);
    await this.exited;
    clearTimeout(timer);
  }
}
