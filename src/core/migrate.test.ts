import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import postgres from 'postgres';
import { parse } from 'libpg-query';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../test/support/pg.ts';
import { freshPglite } from '../../test/support/pglite.ts';
import { pgDb, pgliteDb, pgOptions } from './db.ts';
import { loadMigrations, migrate, SCHEMA_PATHS, SQL_DIR, statementText, timescalePolicySql, type SchemaPath } from './migrate.ts';

function logSink() {
  const lines: string[] = [];
  return { lines, info: (_o: object, m: string) => lines.push(m), warn: (_o: object, m: string) => lines.push(`WARN ${m}`) };
}

async function columns(db: ReturnType<typeof pgDb>, table: string) {
  return db.query<{ column_name: string; data_type: string; is_nullable: string; column_default: string | null }>(
    `SELECT column_name, data_type, is_nullable, column_default FROM information_schema.columns
     WHERE table_name = $1 AND table_schema = current_schema() ORDER BY ordinal_position`, [table]);
}

/**
 * Keys, checks and indexes of a table, as PostgreSQL prints them back. NOT NULL is in columns()
 * (PGlite's newer PostgreSQL also lists it here); a partitioned table's index prints as ON ONLY.
 */
async function keysAndIndexes(db: ReturnType<typeof pgDb>, table: string) {
  return db.query<{ def: string }>(
    `SELECT conname || ' ' || pg_get_constraintdef(oid) AS def FROM pg_constraint
     WHERE conrelid = to_regclass($1::text) AND contype IN ('p', 'u', 'c', 'f', 'x')
     UNION ALL SELECT replace(indexdef, ' ON ONLY ', ' ON ') FROM pg_indexes WHERE tablename = $1::text AND schemaname = current_schema()
     ORDER BY 1`, [table]);
}

/** loadMigrations on a scratch sql/ directory holding `files`. */
function loadFrom(files: Record<string, string>, path: SchemaPath) {
  const dir = mkdtempSync(join(tmpdir(), 'migrate-test-'));
  try {
    for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
    return loadMigrations(path, dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('migrator on PostgreSQL (no TimescaleDB here)', () => {
  let t: TestDatabase;
  beforeAll(async () => { t = await createTestDatabase('migrate'); });
  afterAll(async () => { await t.drop(); });

  it('applies every migration on the partitioned path, says why, and records what it applied', async () => {
    const log = logSink();
    const r = await migrate(pgDb(t.sql), { log });
    expect(r.path).toBe('partitioned');
    expect(r.applied).toEqual(['001_core.sql', '002_timeseries.sql + 002_timeseries.partitioned.sql', '003_orders.sql', '004_live_orders.sql', '005_chain_analytics.sql', '006_idempotency_claims.sql', '007_feed_gaps.sql', '008_feed_sessions.sql']);
    expect(log.lines.join('\n')).toMatch(/schema: partitioned path \(TimescaleDB not available/);
    const rows = await t.sql`SELECT version, name, path FROM schema_migrations ORDER BY version`;
    expect(rows.map((x) => [x.version, x.name, x.path])).toEqual([[1, 'core', 'partitioned'], [2, 'timeseries', 'partitioned'], [3, 'orders', 'partitioned'], [4, 'live_orders', 'partitioned'], [5, 'chain_analytics', 'partitioned'], [6, 'idempotency_claims', 'partitioned'], [7, 'feed_gaps', 'partitioned'], [8, 'feed_sessions', 'partitioned']]);
    const kinds = await t.sql`SELECT relname, relkind FROM pg_class WHERE relname IN ('market_data', 'bars', 'orders', 'order_events', 'positions', 'instruments', 'quarantined_ticks', 'writer_batches', 'writer_progress') ORDER BY relname`;
    expect(Object.fromEntries(kinds.map((k) => [k.relname, k.relkind]))).toEqual({
      bars: 'p', instruments: 'r', market_data: 'p', order_events: 'r', orders: 'r', positions: 'r',
      quarantined_ticks: 'r', writer_batches: 'r', writer_progress: 'r',
    });
    // The clauses of 002_timeseries.partitioned.sql went into the shared definition's slots.
    const keys = await t.sql`SELECT relname, pg_get_partkeydef(oid) AS key FROM pg_class WHERE relname IN ('market_data', 'bars') ORDER BY relname`;
    expect(keys.map((k) => [k.relname, k.key])).toEqual([['bars', 'RANGE (bucket_start)'], ['market_data', 'RANGE ("time")']]);
  });

  it('is a no-op the second time', async () => {
    const log = logSink();
    const r = await migrate(pgDb(t.sql), { log });
    expect(r.applied).toEqual([]);
    expect(log.lines.join('\n')).toMatch(/up to date/);
  });

  it('finds a database migrated by the earlier files up to date, without calling them changed', async () => {
    // What such a database recorded: checksums of the whole earlier texts (001_core.sql before its
    // comments were corrected, and the self-contained 002_timeseries.partitioned.sql of the time
    // when each path's file had its own copy of market_data and bars).
    await t.sql`UPDATE schema_migrations SET checksum = '0122237ba1a499c3' WHERE version = 1`;
    await t.sql`UPDATE schema_migrations SET checksum = 'e5fcc22d57508ab2' WHERE version = 2`;
    const log = logSink();
    const r = await migrate(pgDb(t.sql), { log });
    expect(r.applied).toEqual([]);
    expect(log.lines.filter((l) => l.startsWith('WARN'))).toEqual([]);
    const rows = await t.sql`SELECT checksum FROM schema_migrations ORDER BY version`;
    expect(rows.map((x) => x.checksum)).toEqual(['0122237ba1a499c3', 'e5fcc22d57508ab2', '875aab4b9274fb62', 'ecc682df43c9052e', '2398bdbe4224fad4', '0821d0be0ccfe6e4', '1b8c75eadb1973dc', '4ba298b3e1e9a5ab']); // the record of what ran is kept

    // A checksum it does not know is still a changed migration: said, and not applied.
    await t.sql`UPDATE schema_migrations SET checksum = '0000000000000000' WHERE version = 2`;
    const log2 = logSink();
    expect((await migrate(pgDb(t.sql), { log: log2 })).applied).toEqual([]);
    expect(log2.lines.filter((l) => l.startsWith('WARN'))).toEqual([
      'WARN sql/002_timeseries.sql + sql/002_timeseries.partitioned.sql changed after it was applied; the change is NOT applied. Write a new numbered migration instead.',
    ]);
    const [m] = loadMigrations('partitioned').filter((x) => x.version === 2);
    await t.sql`UPDATE schema_migrations SET checksum = ${m.checksum} WHERE version = 2`;
  });

  it('lets two processes start at once: one applies, the other waits on the lock and finds it done', async () => {
    const t2 = await createTestDatabase('migrate2');
    const a = postgres(t2.url, pgOptions({ max: 1 }));
    const b = postgres(t2.url, pgOptions({ max: 1 }));
    try {
      const [ra, rb] = await Promise.all([migrate(pgDb(a)), migrate(pgDb(b))]);
      expect([ra.applied.length, rb.applied.length].sort()).toEqual([0, 8]);
      const n = await t2.sql`SELECT count(*)::int AS n FROM schema_migrations`;
      expect(n[0].n).toBe(8);
    } finally {
      await a.end();
      await b.end();
      await t2.drop();
    }
  });

  it('creates IST-day partitions on demand and lists expired ones for the retention job', async () => {
    // 2025-12-03 00:10 IST is still 2025-12-02 in UTC: the partition follows the IST day.
    const created = await t.sql`SELECT storage_ensure_partitions('2025-12-02T18:40:00Z', '2025-12-04T10:00:00Z') AS n`;
    expect(created[0].n).toBe(4); // 3 and 4 December, market_data and bars
    const again = await t.sql`SELECT storage_ensure_partitions('2025-12-03T04:00:00Z', '2025-12-03T05:00:00Z') AS n`;
    expect(again[0].n).toBe(0);
    await t.sql`INSERT INTO market_data (token, time, recv_time, kind, price, last_qty, avg_price, volume, volume_delta, buy_qty, sell_qty,
      open, high, low, close, change_pct, oi, oi_high, oi_low, conn, seq)
      VALUES (256265, '2025-12-02T18:40:00Z', now(), 3, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1)`;
    const where = await t.sql`SELECT tableoid::regclass::text AS part FROM market_data`;
    expect(where[0].part).toBe('market_data_p20251203');
    const expired = await t.sql`SELECT partition_name FROM storage_expired_partitions('market_data', 0) ORDER BY 1`;
    expect(expired.map((e) => e.partition_name)).toEqual(['market_data_p20251203', 'market_data_p20251204']);
  });

  it('refuses a row with no partition rather than hiding it in a default partition', async () => {
    await expect(t.sql`INSERT INTO bars (token, timeframe, bucket_start, bucket_end, open, high, low, close, volume, trades, oi, ticks, partial, flags)
      VALUES (1, '1m', '1999-01-01T00:00:00Z', '1999-01-01T00:01:00Z', 1, 1, 1, 1, 0, 0, 0, 1, false, 1)`).rejects.toThrow(/no partition/);
  });
});

describe('migrator on the embedded PGlite', () => {
  it('takes the plain path: same tables and the same columns as the server path', async () => {
    const { db: pg, close } = await freshPglite();
    const t = await createTestDatabase('migrate3');
    try {
      const log = logSink();
      const r = await migrate(pgliteDb(pg), { log });
      expect(r.path).toBe('plain');
      expect(r.applied).toEqual(['001_core.sql', '002_timeseries.sql', '003_orders.sql', '004_live_orders.sql', '005_chain_analytics.sql', '006_idempotency_claims.sql', '007_feed_gaps.sql', '008_feed_sessions.sql']);
      expect((await migrate(pgliteDb(pg))).applied).toEqual([]);
      await migrate(pgDb(t.sql));
      for (const table of ['market_data', 'bars', 'instruments', 'quarantined_ticks', 'orders', 'order_events', 'trades', 'positions', 'idempotency_keys']) {
        expect(await columns(pgliteDb(pg), table), table).toEqual(await columns(pgDb(t.sql), table));
        expect(await keysAndIndexes(pgliteDb(pg), table), table).toEqual(await keysAndIndexes(pgDb(t.sql), table));
      }
      expect(await keysAndIndexes(pgliteDb(pg), 'bars')).toContainEqual({ def: 'bars_pkey PRIMARY KEY (token, timeframe, bucket_start)' });
      const kinds = await pg.query<{ relname: string; relkind: string }>("SELECT relname, relkind FROM pg_class WHERE relname IN ('market_data', 'bars') ORDER BY relname");
      expect(kinds.rows).toEqual([{ relname: 'bars', relkind: 'r' }, { relname: 'market_data', relkind: 'r' }]);
    } finally {
      await close();
      await t.drop();
    }
  });
});

describe('one definition of the time-series tables, composed per path', () => {
  const SHARED = 'CREATE TABLE t (a int NOT NULL, b text) /* @storage t */;\nCREATE INDEX t_a ON t (a);\n';

  it('fills the shared definition\'s storage slot with the path\'s clause, and leaves it empty where the path gives none', () => {
    const files = { '001_t.sql': SHARED, '001_t.partitioned.sql': '-- @storage t: PARTITION BY RANGE (a)\nCREATE FUNCTION f() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$;\n' };
    const [part] = loadFrom(files, 'partitioned');
    expect(part.files).toEqual(['001_t.sql', '001_t.partitioned.sql']);
    expect(statementText(part.sql)).toBe('CREATE TABLE t (a int NOT NULL, b text) PARTITION BY RANGE (a); CREATE INDEX t_a ON t (a); CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$;');
    const [plain] = loadFrom(files, 'plain');
    expect(plain.files).toEqual(['001_t.sql']);
    expect(statementText(plain.sql)).toBe('CREATE TABLE t (a int NOT NULL, b text); CREATE INDEX t_a ON t (a);');
  });

  it('refuses a storage clause for a table the shared file has no slot for, or with no shared file at all', () => {
    expect(() => loadFrom({ '001_t.sql': SHARED, '001_t.partitioned.sql': '-- @storage u: PARTITION BY RANGE (a)\n' }, 'partitioned'))
      .toThrow(expect.objectContaining({ code: 'MIGRATION_STORAGE_INVALID', message: expect.stringMatching(/clause for u, but sql\/001_t\.sql has no/) }));
    expect(() => loadFrom({ '001_t.partitioned.sql': '-- @storage t: PARTITION BY RANGE (a)\n' }, 'partitioned'))
      .toThrow(expect.objectContaining({ code: 'MIGRATION_STORAGE_INVALID' }));
    expect(() => loadFrom({ '001_t.sql': SHARED, '001_t.partitioned.sql': '-- @storage t: PARTITION BY RANGE (a)\n-- @storage t: PARTITION BY LIST (a)\n' }, 'partitioned'))
      .toThrow(expect.objectContaining({ code: 'MIGRATION_STORAGE_INVALID' }));
  });

  it('checksums the statements only: a corrected comment is the same migration, a changed statement is not', () => {
    const base = loadFrom({ '001_t.sql': SHARED }, 'plain')[0].checksum;
    expect(loadFrom({ '001_t.sql': `-- the table\n${SHARED.replace('NOT NULL, ', 'NOT NULL,  -- a note\n  ')}` }, 'plain')[0].checksum).toBe(base);
    expect(loadFrom({ '001_t.sql': SHARED.replace('b text', 'b varchar') }, 'plain')[0].checksum).not.toBe(base);
    // What is quoted is the statement's, comment markers included.
    expect(statementText("SELECT '-- kept', \"/* kept */\" /* gone /* nested */ gone */ , $f$ -- kept $f$, E'\\' -- kept', $1 -- gone\n;"))
      .toBe("SELECT '-- kept', \"/* kept */\" , $f$ -- kept $f$, E'\\' -- kept', $1 ;");
  });

  it('runs, on every path, the statements an existing database already ran', () => {
    // An applied migration's statements never change (write a new numbered one instead). 001 and the
    // partitioned and plain 002 are the statements of the files before the tables were defined once,
    // in the same order; the timescale 002 has the same statements in another order.
    const pinned: Record<SchemaPath, string[]> = {
      partitioned: ['182a6c2d65078b94', '628ad65d05835b68', '875aab4b9274fb62', 'ecc682df43c9052e', '2398bdbe4224fad4', '0821d0be0ccfe6e4', '1b8c75eadb1973dc', '4ba298b3e1e9a5ab'],
      plain: ['182a6c2d65078b94', 'b784a3f6352769b5', '875aab4b9274fb62', 'ecc682df43c9052e', '2398bdbe4224fad4', '0821d0be0ccfe6e4', '1b8c75eadb1973dc', '4ba298b3e1e9a5ab'],
      timescale: ['182a6c2d65078b94', 'ceb6932c827de6b9', '875aab4b9274fb62', 'ecc682df43c9052e', '2398bdbe4224fad4', '0821d0be0ccfe6e4', '1b8c75eadb1973dc', '4ba298b3e1e9a5ab'],
    };
    for (const path of SCHEMA_PATHS) expect(loadMigrations(path).map((m) => m.checksum), path).toEqual(pinned[path]);
  });
});

describe('the TimescaleDB variant (not installed here: parsed, not run)', () => {
  type Stmt = { stmt: Record<string, any> };
  const parseSql = async (sql: string): Promise<Stmt[]> => (await parse(sql)).stmts as Stmt[];
  const timeseries = (path: SchemaPath) => loadMigrations(path).find((m) => m.name === 'timeseries')!;
  const createStmts = (stmts: Stmt[], table: string) => stmts.filter((x) => x.stmt.CreateStmt?.relation.relname === table).map((x) => x.stmt.CreateStmt);
  const createdColumns = (s: any) => s.tableElts.map((e: any) => (e.ColumnDef ? {
    name: e.ColumnDef.colname,
    type: e.ColumnDef.typeName.names.map((n: any) => n.String.sval).join('.') + (e.ColumnDef.typeName.arrayBounds ? '[]' : ''),
    notNull: (e.ColumnDef.constraints ?? []).some((c: any) => c.Constraint.contype === 'CONSTR_NOTNULL'),
  } : { constraint: e.Constraint.contype, keys: e.Constraint.keys?.map((k: any) => k.String.sval) }));

  it('is valid SQL to PostgreSQL\'s own parser (libpg_query), as are the retention policy statements', async () => {
    const stmts = await parseSql(timeseries('timescale').sql);
    const kinds = stmts.map((s) => Object.keys(s.stmt)[0]);
    expect(kinds.filter((k) => k === 'CreateStmt')).toHaveLength(2);
    expect(kinds).toContain('CreateTableAsStmt'); // the continuous aggregate
    const calls = JSON.stringify(stmts).match(/"sval":"(create_hypertable|add_compression_policy|add_retention_policy|add_continuous_aggregate_policy)"/g);
    expect(calls).toHaveLength(7);
    const policy = await parse(timescalePolicySql(30, 0));
    expect(policy.stmts).toHaveLength(3);
    await expect(parse('CREATE TABL market_data ()')).rejects.toThrow(/syntax error/); // the check can fail
  });

  it('declares market_data and bars once, with exactly the columns and keys of the other two paths', async () => {
    const parsed = Object.fromEntries(await Promise.all(SCHEMA_PATHS.map(async (p) => [p, await parseSql(timeseries(p).sql)] as const)));
    for (const table of ['market_data', 'bars']) {
      const [ts, part, plain] = [createStmts(parsed.timescale, table), createStmts(parsed.partitioned, table), createStmts(parsed.plain, table)];
      expect([ts.length, part.length, plain.length]).toEqual([1, 1, 1]);
      expect(createdColumns(ts[0])).toEqual(createdColumns(part[0]));
      expect(createdColumns(plain[0])).toEqual(createdColumns(part[0]));
      expect(createdColumns(part[0]).filter((c: any) => c.name !== undefined).length).toBe(table === 'bars' ? 15 : 27);
      expect([ts[0].partspec, part[0].partspec?.strategy, plain[0].partspec]).toEqual([undefined, 'PARTITION_STRATEGY_RANGE', undefined]);
    }
  });

  it('lets no path\'s own file declare a table or touch a column: the path files only add storage', async () => {
    for (const path of SCHEMA_PATHS) {
      for (const file of timeseries(path).files.filter((f) => f !== '002_timeseries.sql')) {
        const stmts = await parseSql(readFileSync(`${SQL_DIR}/${file}`, 'utf8'));
        expect(stmts.filter((s) => s.stmt.CreateStmt !== undefined), file).toEqual([]);
        const alters = stmts.flatMap((s) => s.stmt.AlterTableStmt?.cmds ?? []).map((c: any) => c.AlterTableCmd.subtype);
        expect(alters.filter((k: string) => k !== 'AT_SetRelOptions'), file).toEqual([]); // timescaledb.compress settings only
      }
    }
  });

  it('is the variant the timescale path loads', () => {
    expect(loadMigrations('timescale').map((m) => m.file)).toEqual(['001_core.sql', '002_timeseries.sql + 002_timeseries.timescale.sql', '003_orders.sql', '004_live_orders.sql', '005_chain_analytics.sql', '006_idempotency_claims.sql', '007_feed_gaps.sql', '008_feed_sessions.sql']);
  });
});
