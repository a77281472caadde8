/**
 * PGlite's first open runs initdb: 3-10 s of WASM on these machines, every time, for every test
 * that opens a fresh database. So tests open copies of one initialised data directory, made once
 * per machine and PGlite version in the temp directory (scratch directory + rename, so parallel
 * test files never see a half-made one).
 */
import { cpSync, existsSync, mkdtempSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PGlite } from '@electric-sql/pglite';

const VERSION = (JSON.parse(readFileSync(new URL('../../node_modules/@electric-sql/pglite/package.json', import.meta.url), 'utf8')) as { version: string }).version;
const TEMPLATE = join(tmpdir(), `nifty50-pglite-template-${VERSION}`);

async function template(): Promise<string> {
  if (existsSync(join(TEMPLATE, 'PG_VERSION'))) return TEMPLATE;
  const scratch = mkdtempSync(`${TEMPLATE}.init-`);
  const db = await PGlite.create(scratch);
  await db.close();
  try {
    renameSync(scratch, TEMPLATE);
  } catch {
    rmSync(scratch, { recursive: true, force: true }); // another test file made it first
  }
  return TEMPLATE;
}

/** Put an initialised, empty PGlite data directory at `dir` (which must not exist yet). */
export async function freshPgliteDir(dir: string): Promise<string> {
  cpSync(await template(), dir, { recursive: true });
  return dir;
}

/** Open a fresh PGlite database in a temp directory; `close()` closes it and removes the directory. */
export async function freshPglite(): Promise<{ db: PGlite; close: () => Promise<void> }> {
  const dir = join(mkdtempSync(join(tmpdir(), 'pglite-test-')), 'db');
  const db = await PGlite.create(await freshPgliteDir(dir));
  return {
    db,
    close: async () => {
      await db.close();
      rmSync(join(dir, '..'), { recursive: true, force: true });
    },
  };
}
