/**
 * The schema migrator: applies the numbered files in `sql/` in order at start-up and records each
 * in `schema_migrations`. Safe to run twice (applied versions are skipped) and safe when two
 * processes start at once: everything runs in one transaction that first takes an advisory lock,
 * so the second process waits, then finds the work done.
 *
 * File names: `NNN_name.sql` is version NNN's shared part, run on every path; `NNN_name.<path>.sql`
 * is what one path adds to it, run right after it as the same migration (one checksum, one row in
 * schema_migrations). A version with path files only, none for this path, does not apply to it.
 * Paths:
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
  /** The shared file and/or the path's file, in the order they run. */
  files: string[];
  /** `files` for logs: `002_timeseries.sql + 002_timeseries.partitioned.sql`. */
  file: string;
  /** What runs: the shared file with this path's storage clauses in its slots, then the path's file. */
  sql: string;
  /** Of the statements only (see statementText), so correcting a comment changes nothing. */
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

// One definition of a table whose storage differs by path. The shared file declares the table once
// and leaves a slot where CREATE TABLE takes its trailing clause:
//     CREATE TABLE bars ( ...columns... ) /* @storage bars */;
// and a path's file fills it with a line of its own:
//     -- @storage bars: PARTITION BY RANGE (bucket_start)
// A path that gives no clause gets the plain table. Why a slot and not "create the table, then
// let the path's file convert it": native partitioning can only be declared by CREATE TABLE (no
// ALTER TABLE makes a table partitioned), and rebuilding a created table as a partitioned one
// (LIKE ... INCLUDING ALL, drop, rename) renames its indexes and constraints, so a new database
// would no longer get the catalog that databases migrated by the earlier per-path files have.
// TimescaleDB does convert an existing empty table (create_hypertable), so the timescale path
// fills no slot and converts instead.
const SLOT_RE = /\s*\/\* @storage ([a-z_][a-z0-9_]*) \*\//g;
const CLAUSE_RE = /^-- @storage ([a-z_][a-z0-9_]*): (.+)$/gm;

/** The shared file's slots filled with the path file's storage clauses. */
function composeMigration(shared: { file: string; sql: string } | undefined, own: { file: string; sql: string } | undefined): string {
  const clauses = new Map<string, string>();
  for (const [, table, clause] of own?.sql.matchAll(CLAUSE_RE) ?? []) {
    if (clauses.has(table)) {
      throw new AppError('MIGRATION_STORAGE_INVALID', `sql/${own!.file} gives two storage clauses for ${table}: keep one.`, { file: own!.file, table });
    }
    clauses.set(table, clause.trim());
  }
  if (shared === undefined) {
    if (clauses.size > 0) {
      throw new AppError('MIGRATION_STORAGE_INVALID', `sql/${own!.file} gives storage clauses but its version has no shared file to fill: add it or drop the @storage lines.`, { file: own!.file });
    }
    return own!.sql;
  }
  const filled = new Set<string>();
  const sql = shared.sql.replace(SLOT_RE, (_slot, table: string) => {
    const clause = clauses.get(table);
    if (clause === undefined) return '';
    filled.add(table);
    return ` ${clause}`;
  });
  for (const table of clauses.keys()) {
    if (!filled.has(table)) {
      throw new AppError('MIGRATION_STORAGE_INVALID', `sql/${own!.file} gives a storage clause for ${table}, but sql/${shared.file} has no /* @storage ${table} */ slot: add the slot after its CREATE TABLE column list, or fix the name.`,
        { file: own!.file, table });
    }
  }
  return own === undefined ? sql : `${sql}\n${own.sql}`;
}

/**
 * The SQL as PostgreSQL will run it: comments dropped, whitespace runs made one space, quoted text
 * ('...', "...", $tag$...$tag$) kept as it is. The checksum is taken of this, so that a migration
 * whose comments are corrected after it was applied is still the migration that was applied.
 */
export function statementText(sql: string): string {
  let out = '';
  let space = false;
  let i = 0;
  const n = sql.length;
  const keep = (end: number) => {
    if (space && out.length > 0) out += ' ';
    space = false;
    out += sql.slice(i, end);
    i = end;
  };
  while (i < n) {
    const c = sql[i];
    if (c === '-' && sql[i + 1] === '-') {
      const eol = sql.indexOf('\n', i);
      i = eol < 0 ? n : eol;
      space = true;
    } else if (c === '/' && sql[i + 1] === '*') {
      let depth = 0; // block comments nest in PostgreSQL
      do {
        if (sql.startsWith('/*', i)) { depth++; i += 2; } else if (sql.startsWith('*/', i)) { depth--; i += 2; } else i++;
      } while (depth > 0 && i < n);
      space = true;
    } else if (/\s/.test(c)) {
      i++;
      space = true;
    } else if (c === "'" || c === '"') {
      // E'...' strings escape with a backslash; all quoted text escapes its quote by doubling it.
      const backslash = c === "'" && /[eE]/.test(sql[i - 1] ?? '') && !/[A-Za-z0-9_]/.test(sql[i - 2] ?? '');
      let j = i + 1;
      while (j < n) {
        if (backslash && sql[j] === '\\') j += 2;
        else if (sql[j] === c && sql[j + 1] === c) j += 2;
        else if (sql[j] === c) break;
        else j++;
      }
      keep(Math.min(j + 1, n));
    } else if (dollarTag(sql, i) !== null) {
      const tag = dollarTag(sql, i)!;
      const close = sql.indexOf(tag, i + tag.length);
      keep(close < 0 ? n : close + tag.length);
    } else {
      let j = i + 1;
      while (j < n && !/[\s'"]/.test(sql[j]) && !sql.startsWith('--', j) && !sql.startsWith('/*', j) && dollarTag(sql, j) === null) j++;
      keep(j);
    }
  }
  return out;
}

/** The $tag$ opening a dollar-quoted string at i, or null ($ inside a name, or $1, opens none). */
function dollarTag(sql: string, i: number): string | null {
  if (sql[i] !== '$' || /[A-Za-z0-9_$]/.test(sql[i - 1] ?? '')) return null;
  return /^\$(?:[A-Za-z_][A-Za-z0-9_]*)?\$/.exec(sql.slice(i, i + 66))?.[0] ?? null;
}

function checksumOf(sql: string): string {
  return createHash('sha256').update(statementText(sql)).digest('hex').slice(0, 16);
}

/**
 * Checksums recorded for earlier texts of an applied migration that ran the same statements as
 * today's: a database migrated by one of them is up to date, not "changed", and keeps its record
 * of what ran. Those checksums were of the whole text, comments included. 001: its two earlier
 * texts, before their comments were corrected (moved files, the orders service). 002: the two
 * earlier texts of one self-contained file per path, each with its own copy of market_data and
 * bars; the partitioned and plain files ran the statements that 002_timeseries.sql and the path's
 * additions run now, in the same order (migrate.test.ts pins today's checksums, which equal theirs
 * taken without comments), the timescale file the same statements with CREATE EXTENSION and the
 * market_data index placed differently.
 */
const EARLIER_CHECKSUMS: Readonly<Record<number, Readonly<Record<SchemaPath, readonly string[]>>>> = {
  1: Object.fromEntries(SCHEMA_PATHS.map((p) => [p, ['75db24d8bdb7933b', '0122237ba1a499c3']])) as Record<SchemaPath, string[]>,
  2: {
    timescale: ['9c6ab720fa008052', '2aef9d216222f38a'],
    partitioned: ['0a3a06abae626c69', 'e5fcc22d57508ab2'],
    plain: ['6379753c55d48e37', '2b2d0a12fb3a179b'],
  },
};

/** The migrations that apply to `path`, in version order. */
export function loadMigrations(path: SchemaPath, dir = SQL_DIR): Migration[] {
  const byVersion = new Map<number, { shared?: string; variants: Map<string, string>; name: string }>();
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
    if (m[3] === undefined) e.shared = f;
    else e.variants.set(m[3], f);
    byVersion.set(v, e);
  }
  const read = (file: string | undefined) => (file === undefined ? undefined : { file, sql: readFileSync(`${dir}/${file}`, 'utf8') });
  const out: Migration[] = [];
  for (const v of [...byVersion.keys()].sort((a, b) => a - b)) {
    const e = byVersion.get(v)!;
    const shared = read(e.shared);
    const own = read(e.variants.get(path));
    if (shared === undefined && own === undefined) continue;
    const files = [shared?.file, own?.file].filter((f): f is string => f !== undefined);
    const sql = composeMigration(shared, own);
    out.push({ version: v, name: e.name, files, file: files.join(' + '), sql, checksum: checksumOf(sql) });
  }
  return out;
}

function sqlFiles(m: Migration): string {
  return m.files.map((f) => `sql/${f}`).join(' + ');
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
        if (prev.checksum !== m.checksum && !EARLIER_CHECKSUMS[m.version]?.[path].includes(prev.checksum)) {
          log?.warn({ code: 'MIGRATION_CHANGED', file: m.file, applied: prev.checksum, now: m.checksum },
            `${sqlFiles(m)} changed after it was applied; the change is NOT applied. Write a new numbered migration instead.`);
        }
        continue;
      }
      try {
        await tx.exec(m.sql);
      } catch (e) {
        const err = e as Error & { code?: string };
        throw new AppError('MIGRATION_FAILED', `migration ${sqlFiles(m)} failed: ${err.message}. Nothing was applied (one transaction); fix the file or the database and restart.`,
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
