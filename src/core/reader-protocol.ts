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
 *
 * Transactions (Storage.transact: the order path's writes) go on a port of their own, which the
 * thread makes when it starts and hands over in its first message ('txPort'): each 'tx' on it
 * carries its statements, run in one transaction, and exactly one 'result' (no rows) answers it.
 * The thread that owns the database serves them: this reader on a PostgreSQL server, the writer
 * thread on the embedded PGlite (writer-protocol.ts). A port of their own, not the thread's
 * parentPort with the reads, because a transaction is no read: the port closes when its thread
 * ends, and what was in flight on it fails as of unknown outcome, not as "retry the read".
 */
import { MessageChannel, type MessagePort } from 'node:worker_threads';

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
  | { type: 'result'; id: number; rows?: unknown[]; error?: { message: string; code?: string } }
  | TxPortMessage;

/** Exit codes a reader thread ends with on purpose. */
export const ReaderExit = { OK: 0, STALLED: 75 } as const;

/** The reader's connections call themselves this (pg_stat_activity.application_name). */
export const READER_APPLICATION_NAME = 'nifty50-reader';

// --- transactions ----------------------------------------------------------------------------------

/** One statement of a transaction, `$1`-style parameters. */
export interface TxStatement {
  readonly text: string;
  readonly params: readonly unknown[];
}

/** The control message on a thread's transaction port: `statements` in one transaction. */
export interface TxRequest { type: 'tx'; id: number; statements: TxStatement[] }

/** The database's refusal, as the main thread gets it: message, SQLSTATE, and the constraint broken. */
export interface TxError { message: string; code?: string; constraint?: string }

/** The one answer to a TxRequest: committed (no error), or rolled back with the error. */
export interface TxAnswer { type: 'result'; id: number; error?: TxError }

/** A thread's first message when it serves transactions: the port to send them on. */
export interface TxPortMessage { type: 'txPort'; port: MessagePort }

/** What the main thread gets of an error (the `postgres` driver names the constraint `constraint_name`, PGlite `constraint`). */
export function txError(e: unknown): TxError {
  const x = e as { message?: unknown; code?: unknown; constraint?: unknown; constraint_name?: unknown } | null;
  const constraint = x?.constraint_name ?? x?.constraint;
  return {
    message: typeof x?.message === 'string' ? x.message : String(e),
    code: typeof x?.code === 'string' ? x.code : undefined,
    constraint: typeof constraint === 'string' ? constraint : undefined,
  };
}

/**
 * In a storage thread: make its transaction port, hand it to the main thread through `parent`,
 * and answer each TxRequest on it by `run`. The port lives as long as the thread.
 */
export function serveTransactions(parent: MessagePort, run: (statements: readonly TxStatement[]) => Promise<void>): void {
  const { port1, port2 } = new MessageChannel();
  port1.on('message', (m: TxRequest) => {
    if (m.type !== 'tx') return;
    run(m.statements).then(
      () => port1.postMessage({ type: 'result', id: m.id } satisfies TxAnswer),
      (e) => port1.postMessage({ type: 'result', id: m.id, error: txError(e) } satisfies TxAnswer),
    );
  });
  // The thread ends by process.exit (or dies): its port must not be what keeps it alive.
  port1.unref();
  parent.postMessage({ type: 'txPort', port: port2 } satisfies TxPortMessage, [port2]);
}
