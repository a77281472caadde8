/**
 * What the main thread (src/storage/reads.ts) and the reader thread (workers/reader/) share: the
 * start-up data and the messages.
 *
 * The reader thread exists so that reads of stored data (REST history, the Kite historical API,
 * /ready) on a PostgreSQL server neither wait behind the batch writer nor fail while it restarts,
 * and still keep the `postgres` driver out of the main thread: the driver can throw where no
 * catch reaches (workers/writer/sink-pg.ts), which in a worker thread ends that thread only.
 *
 * Every query carries an id; exactly one 'result' answers it, with rows or with an error. A
 * reader thread that dies answers nothing more: the main thread fails whatever it still waited
 * for (STORAGE_RESTARTING) and starts another.
 */

export interface ReaderData {
  databaseUrl: string;
  /** Connections in the read pool (READER_CONNECTIONS). */
  connections: number;
  /** A read that has not settled after this long ends the thread (ReaderExit.STALLED), ms. */
  stallMs: number;
}

/** Messages from the main thread. */
export type ReaderControl =
  | { type: 'query'; id: number; text: string; params: unknown[] }
  | { type: 'stop' };

/** Messages to the main thread. */
export type ReaderMessage =
  | { type: 'log'; level: 'debug' | 'info' | 'warn' | 'error'; obj: Record<string, unknown>; msg: string }
  | { type: 'result'; id: number; rows?: unknown[]; error?: { message: string; code?: string } };

/** Exit codes a reader thread ends with on purpose. */
export const ReaderExit = { OK: 0, STALLED: 75 } as const;

/** The reader's connections call themselves this (pg_stat_activity.application_name). */
export const READER_APPLICATION_NAME = 'nifty50-reader';
