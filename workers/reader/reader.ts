/**
 * The read pool: one `postgres` client of READER_CONNECTIONS connections, answering the query
 * module's reads (src/storage/queries.ts, src/gateway/history.ts, /ready) apart from the batch
 * writer's connections, so a stalled commit or a writer restart does not hold them up.
 *
 * Reads are single statements. Transactions (the order path's writes, transact()) take one of the
 * pool's connections from BEGIN to COMMIT; they are short (a few statements) and rare beside the
 * reads. The driver's edges that shape the writer (workers/writer/sink-pg.ts) reach this pool
 * less than the writer's COPY transactions; two still can:
 *
 * - a connection lost under a read (backend terminated, server restarted) may leave the client
 *   unanswering (sink-pg.ts edge 2): after any error that is not the statement's own, the next
 *   reads go to a fresh client, and the old one is ended once the reads it holds have settled
 *   (they are not cut short: they may be on healthy connections);
 * - a read that never settles: stalledFor() tells the thread's watchdog (main.ts), which ends the
 *   thread, and the supervisor (src/storage/reads.ts) starts another.
 *
 * A statement's own error (bad input, a missing table, a duplicate key) passes straight back: the
 * connection is fine.
 */
import postgres from 'postgres';
import { pgOptions } from '../../src/core/db.ts';
import { READER_APPLICATION_NAME, type ReaderData, type TxStatement } from '../../src/core/reader-protocol.ts';

type Sql = postgres.Sql<Record<string, postgres.PostgresType>>;

/** Seconds an old client is given to finish its reads before its connections are cut. */
const RETIRE_TIMEOUT_S = 30;

export class Reader {
  private sql: Sql | null = null;
  /** performance.now() at which each read in flight started. */
  private readonly inflight = new Set<{ t0: number }>();

  constructor(private readonly d: ReaderData) {}

  private client(): Sql {
    // No idle timeout: the connections stay warm between requests. connect_timeout: a database
    // host that drops packets fails a read in seconds (the caller answers 503), not minutes.
    return (this.sql ??= postgres(this.d.databaseUrl, pgOptions({
      max: this.d.connections,
      connect_timeout: 5,
      idle_timeout: 0,
      prepare: true,
      connection: { application_name: READER_APPLICATION_NAME },
    })) as Sql);
  }

  query(text: string, params: readonly unknown[]): Promise<unknown[]> {
    return this.run(async (sql) => [...(await sql.unsafe(text, params as postgres.ParameterOrJSON<never>[]))]);
  }

  /**
   * `statements` in one transaction: all committed, or none (the first error rolls it back and is
   * thrown). They are pipelined: sent at once, answered in order, one round trip for the lot.
   */
  async transact(statements: readonly TxStatement[]): Promise<void> {
    if (statements.length === 0) return;
    // One statement is its own transaction: no BEGIN and COMMIT round trips around it.
    if (statements.length === 1) {
      await this.run(async (sql) => { await sql.unsafe(statements[0].text, statements[0].params as postgres.ParameterOrJSON<never>[]); });
      return;
    }
    await this.run((sql) => sql.begin((tx) => statements.map((s) => tx.unsafe(s.text, s.params as postgres.ParameterOrJSON<never>[]))));
  }

  /** `fn` on the current client, watched by the stall watchdog; a client that failed is retired. */
  private async run<T>(fn: (sql: Sql) => Promise<T>): Promise<T> {
    const sql = this.client();
    const t = { t0: performance.now() };
    this.inflight.add(t);
    try {
      return await fn(sql);
    } catch (e) {
      if (!statementError(e) && this.sql === sql) {
        this.sql = null;
        void sql.end({ timeout: RETIRE_TIMEOUT_S }).catch(() => {});
      }
      throw e;
    } finally {
      this.inflight.delete(t);
    }
  }

  /** ms the oldest read in flight has waited (0: none). */
  stalledFor(now: number): number {
    let oldest = 0;
    for (const t of this.inflight) oldest = Math.max(oldest, now - t.t0);
    return oldest;
  }

  async close(): Promise<void> {
    const s = this.sql;
    this.sql = null;
    await s?.end({ timeout: 2 }).catch(() => {});
  }
}

/**
 * The server refused this statement (bad input, a missing relation), not the connection. Classes
 * 08 (connection), 53 (resources), 57 (operator intervention: the backend was terminated, the
 * server is shutting down) and 58 / XX (system) may speak of the connection, and so may any error
 * the driver raised itself (CONNECTION_CLOSED, CONNECT_TIMEOUT, ECONNREFUSED): after those the
 * next reads take a fresh client, which costs a reconnect at most.
 */
export function statementError(e: unknown): boolean {
  if (!(e instanceof postgres.PostgresError)) return false;
  const code = (e as { code?: unknown }).code;
  return typeof code === 'string' && code.length === 5 && !/^(08|53|57|58|XX)/.test(code);
}
