/**
 * The one database interface every storage module speaks (migrator, queries, writer control
 * statements), with adapters for the `postgres` driver (a PostgreSQL server) and for PGlite (the
 * embedded default). Both adapters return rows of the same shape: int8 columns come back as JS
 * numbers on both (token, volume and positions stay far below 2^53), timestamptz as Date.
 *
 * Bulk rows never go through here: the writer streams binary COPY itself (workers/writer/).
 */
import net from 'node:net';
import postgres from 'postgres';
import type { PGlite, Transaction } from '@electric-sql/pglite';

export type Row = Record<string, unknown>;

export interface Db {
  readonly kind: 'postgres' | 'pglite';
  /** One statement, `$1`-style parameters. */
  query<T extends object = Row>(text: string, params?: readonly unknown[]): Promise<T[]>;
  /** Several statements, no parameters (simple query protocol). */
  exec(text: string): Promise<void>;
  /** Run `fn` in one transaction: committed when it resolves, rolled back when it throws. */
  begin<T>(fn: (tx: Db) => Promise<T>): Promise<T>;
}

/**
 * The driver's connection, with TCP_NODELAY. Without it Nagle's algorithm holds the small message
 * that follows a large write (CopyDone after the COPY data, Sync after Bind) until the server's
 * delayed ACK: about 40 ms per batch, which capped 1k-row batches at 22k rows/s
 * (bench/storage.bench.ts). The driver has no option for it, only this hook for a socket of one's
 * own, which must be connected when returned. It connects to the first host of the URL (or its
 * Unix socket), within connect_timeout.
 */
function noDelaySocket(o: { host: string[]; port: number[]; path?: string; connect_timeout?: number }): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = o.path ? net.connect(o.path) : net.connect({ host: o.host[0], port: o.port[0] });
    const timer = setTimeout(() => {
      s.destroy();
      reject(Object.assign(new Error(`connect to ${o.path ?? `${o.host[0]}:${o.port[0]}`} timed out`), { code: 'CONNECT_TIMEOUT' }));
    }, (o.connect_timeout ?? 30) * 1000);
    s.once('connect', () => {
      clearTimeout(timer);
      s.off('error', fail);
      s.setNoDelay(true);
      resolve(s);
    });
    const fail = (e: Error) => {
      clearTimeout(timer);
      reject(e);
    };
    s.once('error', fail);
  });
}

/**
 * Options for every `postgres` client this project opens: int8 parsed to number (the driver's
 * default is string, PGlite's is number), notices not printed, TCP_NODELAY (noDelaySocket).
 */
export function pgOptions(extra: postgres.Options<Record<string, postgres.PostgresType>> = {}): postgres.Options<Record<string, postgres.PostgresType>> {
  // `socket` is a documented option the driver's type definitions do not list.
  return {
    onnotice: () => {},
    types: {
      int8: { to: 20, from: [20], serialize: (x: unknown) => String(x), parse: (x: string) => Number(x) },
    },
    connection: { application_name: 'nifty50' },
    socket: noDelaySocket,
    ...extra,
  } as postgres.Options<Record<string, postgres.PostgresType>>;
}

export function pgDb(sql: postgres.Sql<any> | postgres.TransactionSql<any>): Db {
  return {
    kind: 'postgres',
    async query<T extends object = Row>(text: string, params: readonly unknown[] = []): Promise<T[]> {
      const rows = await sql.unsafe(text, params as postgres.ParameterOrJSON<never>[]);
      return rows as unknown as T[];
    },
    async exec(text: string): Promise<void> {
      await sql.unsafe(text);
    },
    begin<T>(fn: (tx: Db) => Promise<T>): Promise<T> {
      const s = sql as postgres.Sql<any>;
      if (typeof s.begin !== 'function') throw new Error('nested transactions are not supported');
      return s.begin((tx) => fn(pgDb(tx))) as Promise<T>;
    },
  };
}

export function pgliteDb(pg: PGlite | Transaction): Db {
  return {
    kind: 'pglite',
    async query<T extends object = Row>(text: string, params: readonly unknown[] = []): Promise<T[]> {
      return (await pg.query<T>(text, params as unknown[])).rows;
    },
    async exec(text: string): Promise<void> {
      await pg.exec(text);
    },
    begin<T>(fn: (tx: Db) => Promise<T>): Promise<T> {
      const p = pg as PGlite;
      if (typeof p.transaction !== 'function') throw new Error('nested transactions are not supported');
      return p.transaction((tx) => fn(pgliteDb(tx)));
    },
  };
}
