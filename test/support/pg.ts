/**
 * A throwaway database on the machine's PostgreSQL (127.0.0.1:5432) for one test file: created
 * with a unique name, dropped (connections terminated first) when the file is done. Test files run
 * in parallel forks, so none shares a database with another.
 */
import { randomBytes } from 'node:crypto';
import postgres from 'postgres';
import { pgOptions } from '../../src/core/db.ts';

export const PG_ADMIN_URL = 'postgres://root@127.0.0.1:5432/test';

export interface TestDatabase {
  readonly name: string;
  readonly url: string;
  /** A client on the test database (closed by drop()). */
  readonly sql: postgres.Sql<any>;
  /** A client on the admin database, for pg_terminate_backend and ALTER DATABASE. */
  readonly admin: postgres.Sql<any>;
  drop(): Promise<void>;
}

export async function createTestDatabase(prefix: string): Promise<TestDatabase> {
  const name = `t_${prefix}_${process.pid}_${randomBytes(3).toString('hex')}`.toLowerCase();
  const admin = postgres(PG_ADMIN_URL, pgOptions({ max: 2 }));
  await admin.unsafe(`CREATE DATABASE "${name}"`);
  const url = `postgres://root@127.0.0.1:5432/${name}`;
  const sql = postgres(url, pgOptions({ max: 4 }));
  return {
    name,
    url,
    sql,
    admin,
    async drop() {
      await sql.end({ timeout: 1 }).catch(() => {});
      await admin.unsafe(`ALTER DATABASE "${name}" WITH ALLOW_CONNECTIONS true`).catch(() => {});
      await admin.unsafe('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()', [name]);
      await admin.unsafe(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
      await admin.end({ timeout: 1 });
    },
  };
}
