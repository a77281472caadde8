/**
 * The schema migrator: applies the numbered files in `sql/` in order at start-up and records each
 * in `schema_migrations`. Safe to run twice (applied versions are skipped) and safe when two
 * processes start at once: everything runs in one transaction that first takes an advisory lock,
 * so the second process waits, then finds the work done.
 *
 * File names: `NNN_name.sql` runs on every path; `NNN_name.<path>.sql` is the variant of version
 * NNN for one path. A version with variants but none for this path (and no plain file) does not
 * apply to it. Paths:
 *
 * | path        | chosen when                                                           | time series tables          |
 * |-------------|-----------------------------------------------------------------------|-----------------------------|
 * | timescale   | server lists timescaledb in pg_available_extensions and can load it   | hypertables, compression, retention, 1m continuous aggregate |
 * | partitioned | any other PostgreSQL server                                           | native range partitions by IST day, retention job |
 * | plain       | the embedded PGlite (DATABASE_URL unset)                              | plain tables                |
 *
 * The path is chosen once, when the schema is created, and remembered in schema_migrations: a
 * server that gains TimescaleDB later keeps its partitioned tables (converting them is a manual
 * job, not something to do silently at start-up).
 */
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { AppError } from './errors.ts';
import type { Db } from './db.ts';

export type SchemaPath = 'timescale' | 'partitioned' | 'plain';
export const SCHEMA_PATHS: readonly SchemaPath[] = ['timescale', 'partitioned', 'plain'];

export const SQL_DIR = fileURLToPath(new URL('../../sql/', import.meta.url));

/** pg_advisory_xact_lock(key1, key2) of the migrator: 'NIFT', 1. */
const LOCK_KEY = [0x4e494654, 1] as const;

export interface Migration {
  version: number;
  name: string;
  file: string;
  sql: string;
  checksum: string;
}

export interface MigrateLog {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

export interface MigrateResult {
  path: SchemaPath;
  /** Why this path (for the start-up log). */
  reason: string;
  applied: string[];
}

const FILE_RE = /^(\d{3})_([a-z0-9_]+)(?:\.(timescale|partitioned|plain))?\.sql$/;

/** The migrations that apply to `path`, in version order. */
export function loadMigrations(path: SchemaPath, dir = SQL_DIR): Migration[] {
  const byVersion = new Map<number, { generic?: string; variants: Map<string, string>; name: string }>();
  for (const f of readdirSync(dir).sort()) {
    if (!f.endsWith('.sql')) continue;
    const m = FILE_RE.exec(f);
    if (m === null) {
      throw new AppError('MIGRATION_NAME_INVALID', `sql/${f} is not a migration name: use NNN_name.sql or NNN_name.<timescale|partitioned|plain>.sql.`, { file: f });
    }
    const v = Number(m[1]);
    const e = byVersion.get(v) ?? { variants: new Map<string, string>(), name: m[2] };
    if (e.name !== m[2]) {
      throw new AppError('MIGRATION_VERSION_CLASH', `sql/ has two migrations numbered ${m[1]} (${e.name}, ${m[2]}): renumber one.`, { version: v });
    }
    if (m[3] === undefined) e.generic = f;
    else e.variants.set(m[3], f);
    byVersion.set(v, e);
  }
  const out: Migration[] = [];
  for (const v of [...byVersion.keys()].sort((a, b) => a - b)) {
    const e = byVersion.get(v)!;
    const file = e.variants.get(path) ?? e.generic;
    if (file === undefined) continue;
    const sql = readFileSync(`${dir}/${file}`, 'utf8');
    out.push({ version: v, name: e.name, file, sql, checksum: createHash('sha256').update(sql).digest('hex').slice(0, 16) });
  }
  return out;
}

/** Which server path this database can take, and why. */
export async function detectPath(db: Db): Promise<{ path: SchemaPath; reason: string }> {
  if (db.kind === 'pglite') return { path: 'plain', reason: 'embedded PGlite: no partitioning, no TimescaleDB' };
  const rows = await db.query<{ available: boolean; installed: boolean; preload: string }>(
    `SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb') AS available,
            EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb') AS installed,
            current_setting('shared_preload_libraries') AS preload`,
  );
  const r = rows[0];
  if (r.installed) return { path: 'timescale', reason: 'TimescaleDB extension installed' };
  if (r.available && /\btimescaledb\b/.test(r.preload)) return { path: 'timescale', reason: 'TimescaleDB available and preloaded' };
  if (r.available) {
    return { path: 'partitioned', reason: 'TimescaleDB is available but not in shared_preload_libraries: native partitioning instead' };
  }
  return { path: 'partitioned', reason: 'TimescaleDB not available (pg_available_extensions has no timescaledb): native partitioning by day' };
}

/**
 * Apply every pending migration in one transaction under the migrator's advisory lock. Logs the
 * path it took and what it applied.
 */
export async function migrate(db: Db, opts: { log?: MigrateLog; dir?: string; path?: SchemaPath } = {}): Promise<MigrateResult> {
  const log = opts.log;
  const result = await db.begin(async (tx) => {
    if (tx.kind === 'postgres') await tx.query('SELECT pg_advisory_xact_lock($1, $2)', [...LOCK_KEY]);
    await tx.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
      version     integer PRIMARY KEY,
      name        text NOT NULL,
      path        text NOT NULL,
      checksum    text NOT NULL,
      applied_at  timestamptz NOT NULL DEFAULT now()
    )`);
    const done = await tx.query<{ version: number; name: string; path: string; checksum: string }>(
      'SELECT version, name, path, checksum FROM schema_migrations ORDER BY version',
    );
    let path: SchemaPath;
    let reason: string;
    if (done.length > 0) {
      path = done[0].path as SchemaPath;
      reason = `schema created on the ${path} path (recorded in schema_migrations)`;
    } else if (opts.path !== undefined) {
      path = opts.path;
      reason = `path ${path} requested`;
    } else {
      ({ path, reason } = await detectPath(tx));
    }
    const doneBy = new Map(done.map((d) => [d.version, d]));
    const applied: string[] = [];
    for (const m of loadMigrations(path, opts.dir)) {
      const prev = doneBy.get(m.version);
      if (prev !== undefined) {
        if (prev.checksum !== m.checksum) {
          log?.warn({ code: 'MIGRATION_CHANGED', file: m.file, applied: prev.checksum, now: m.checksum },
            `sql/${m.file} changed after it was applied; the change is NOT applied. Write a new numbered migration instead.`);
        }
        continue;
      }
      try {
        await tx.exec(m.sql);
      } catch (e) {
        const err = e as Error & { code?: string };
        throw new AppError('MIGRATION_FAILED', `migration sql/${m.file} failed: ${err.message}. Nothing was applied (one transaction); fix the file or the database and restart.`,
          { file: m.file, sqlstate: err.code });
      }
      await tx.query('INSERT INTO schema_migrations (version, name, path, checksum) VALUES ($1, $2, $3, $4)', [m.version, m.name, path, m.checksum]);
      applied.push(m.file);
    }
    return { path, reason, applied };
  });
  log?.info({ schemaPath: result.path, applied: result.applied }, `schema: ${result.path} path (${result.reason}); ${result.applied.length === 0 ? 'up to date' : `applied ${result.applied.join(', ')}`}`);
  return result;
}

/** The schema path recorded by an earlier migrate(), or null before the first. */
export async function schemaPath(db: Db): Promise<SchemaPath | null> {
  const r = await db.query<{ path: string }>(
    "SELECT path FROM schema_migrations WHERE to_regclass('schema_migrations') IS NOT NULL LIMIT 1",
  ).catch(() => []);
  return (r[0]?.path as SchemaPath | undefined) ?? null;
}

/**
 * TimescaleDB path: set the retention windows from the config (the migration's defaults are 30 and
 * 365 days). Days = 0 removes the policy (keep forever).
 */
export function timescalePolicySql(marketDataDays: number, barsDays: number): string {
  const one = (table: string, days: number) =>
    `SELECT remove_retention_policy('${table}', if_exists => true);` +
    (days > 0 ? `\nSELECT add_retention_policy('${table}', INTERVAL '${Math.floor(days)} days');` : '');
  return `${one('market_data', marketDataDays)}\n${one('bars', barsDays)}`;
}
