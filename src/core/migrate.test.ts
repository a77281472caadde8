import { readFileSync } from 'node:fs';
import postgres from 'postgres';
import { parse } from 'libpg-query';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../test/support/pg.ts';
import { freshPglite } from '../../test/support/pglite.ts';
import { pgDb, pgliteDb, pgOptions } from './db.ts';
import { loadMigrations, migrate, SQL_DIR, timescalePolicySql, type SchemaPath } from './migrate.ts';

function logSink() {
  const lines: string[] = [];
  return { lines, info: (_o: object, m: string) => lines.push(m), warn: (_o: object, m: string) => lines.push(`WARN ${m}`) };
}

async function columns(db: ReturnType<typeof pgDb>, table: string) {
  return db.query<{ column_name: string; data_type: string; is_nullable: string }>(
    `SELECT column_name, data_type, is_nullable FROM information_schema.columns
     WHERE table_name = $1 AND table_schema = current_schema() ORDER BY ordinal_position`, [table]);
}

describe('migrator on PostgreSQL (no TimescaleDB here)', () => {
  let t: TestDatabase;
  beforeAll(async () => { t = await createTestDatabase('migrate'); });
  afterAll(async () => { await t.drop(); });

  it('applies every migration on the partitioned path, says why, and records what it applied', async () => {
    const log = logSink();
    const r = await migrate(pgDb(t.sql), { log });
    expect(r.path).toBe('partitioned');
    expect(r.applied).toEqual(['001_core.sql', '002_timeseries.partitioned.sql']);
    expect(log.lines.join('\n')).toMatch(/schema: partitioned path \(TimescaleDB not available/);
    const rows = await t.sql`SELECT version, name, path FROM schema_migrations ORDER BY version`;
    expect(rows.map((x) => [x.version, x.name, x.path])).toEqual([[1, 'core', 'partitioned'], [2, 'timeseries', 'partitioned']]);
    const kinds = await t.sql`SELECT relname, relkind FROM pg_class WHERE relname IN ('market_data', 'bars', 'orders', 'order_events', 'positions', 'instruments', 'quarantined_ticks', 'writer_batches', 'writer_progress') ORDER BY relname`;
    expect(Object.fromEntries(kinds.map((k) => [k.relname, k.relkind]))).toEqual({
      bars: 'p', instruments: 'r', market_data: 'p', order_events: 'r', orders: 'r', positions: 'r',
      quarantined_ticks: 'r', writer_batches: 'r', writer_progress: 'r',
    });
  });

  it('is a no-op the second time', async () => {
    const log = logSink();
    const r = await migrate(pgDb(t.sql), { log });
    expect(r.applied).toEqual([]);
    expect(log.lines.join('\n')).toMatch(/up to date/);
  });

  it('lets two processes start at once: one applies, the other waits on the lock and finds it done', async () => {
    const t2 = await createTestDatabase('migrate2');
    const a = postgres(t2.url, pgOptions({ max: 1 }));
    const b = postgres(t2.url, pgOptions({ max: 1 }));
    try {
      const [ra, rb] = await Promise.all([migrate(pgDb(a)), migrate(pgDb(b))]);
      expect([ra.applied.length, rb.applied.length].sort()).toEqual([0, 2]);
      const n = await t2.sql`SELECT count(*)::int AS n FROM schema_migrations`;
      expect(n[0].n).toBe(2);
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
      expect(r.applied).toEqual(['001_core.sql', '002_timeseries.plain.sql']);
      expect((await migrate(pgliteDb(pg))).applied).toEqual([]);
      await migrate(pgDb(t.sql));
      for (const table of ['market_data', 'bars', 'instruments', 'quarantined_ticks', 'orders', 'order_events', 'positions']) {
        expect(await columns(pgliteDb(pg), table), table).toEqual(await columns(pgDb(t.sql), table));
      }
    } finally {
      await close();
      await t.drop();
    }
  });
});

describe('the TimescaleDB variant (not installed here: parsed, not run)', () => {
  type Stmt = { stmt: Record<string, any> };
  const parseFile = async (file: string): Promise<Stmt[]> => (await parse(readFileSync(`${SQL_DIR}/${file}`, 'utf8'))).stmts as Stmt[];
  const createdColumns = (stmts: Stmt[], table: string) => {
    const s = stmts.find((x) => x.stmt.CreateStmt?.relation.relname === table)!.stmt.CreateStmt;
    return s.tableElts.filter((e: any) => e.ColumnDef).map((e: any) => ({
      name: e.ColumnDef.colname,
      type: e.ColumnDef.typeName.names.map((n: any) => n.String.sval).join('.') + (e.ColumnDef.typeName.arrayBounds ? '[]' : ''),
      notNull: (e.ColumnDef.constraints ?? []).some((c: any) => c.Constraint.contype === 'CONSTR_NOTNULL'),
    }));
  };

  it('is valid SQL to PostgreSQL\'s own parser (libpg_query), as are the retention policy statements', async () => {
    const stmts = await parseFile('002_timeseries.timescale.sql');
    const kinds = stmts.map((s) => Object.keys(s.stmt)[0]);
    expect(kinds.filter((k) => k === 'CreateStmt')).toHaveLength(2);
    expect(kinds).toContain('CreateTableAsStmt'); // the continuous aggregate
    const calls = JSON.stringify(stmts).match(/"sval":"(create_hypertable|add_compression_policy|add_retention_policy|add_continuous_aggregate_policy)"/g);
    expect(calls).toHaveLength(7);
    const policy = await parse(timescalePolicySql(30, 0));
    expect(policy.stmts).toHaveLength(3);
    await expect(parse('CREATE TABL market_data ()')).rejects.toThrow(/syntax error/); // the check can fail
  });

  it('declares market_data and bars with exactly the columns of the other two paths', async () => {
    const files: Record<SchemaPath, string> = {
      timescale: '002_timeseries.timescale.sql', partitioned: '002_timeseries.partitioned.sql', plain: '002_timeseries.plain.sql',
    };
    const parsed = Object.fromEntries(await Promise.all(Object.entries(files).map(async ([k, f]) => [k, await parseFile(f)] as const)));
    for (const table of ['market_data', 'bars']) {
      expect(createdColumns(parsed.timescale, table)).toEqual(createdColumns(parsed.partitioned, table));
      expect(createdColumns(parsed.plain, table)).toEqual(createdColumns(parsed.partitioned, table));
    }
  });

  it('is the variant the timescale path loads', () => {
    expect(loadMigrations('timescale').map((m) => m.file)).toEqual(['001_core.sql', '002_timeseries.timescale.sql']);
  });
});
