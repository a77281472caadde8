/**
 * The one database interface every storage module speaks (migrator, queries, writer control
 * statements), with adapters for the `postgres` driver (a PostgreSQL server) and for PGlite (the
 * embedded default). Both adapters return rows of the same shape: int8 columns come back as JS
 * numbers on both (token, volume and positions stay far below 2^53), timestamptz as Date.
 *
 * Bulk rows never go through here: the writer streams binary COPY itself (workers/writer/).
 */
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
 * Options for every `postgres` client this project opens: int8 parsed to number (the driver's
 * default is string, PGlite's is number), notices not printed, no prepared-statement cache surprises
 * across a pg_terminate_backend.
 */
export function pgOptions(extra: postgres.Options<Record<string, postgres.PostgresType>> = {}): postgres.Options<Record<string, postgres.PostgresType>> {
  return {
    onnotice: () => {},
    types: {
      int8: { to: 20, from: [20], serialize: (x: unknown) => String(x), parse: (x: string) => Number(x) },
    },
    connection: { application_name: 'nifty50' },
    ...extra,
  };
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
