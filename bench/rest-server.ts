/**
 * The server under test of bench/rest.bench.ts, run as a child process so the load generator does
 * not share its event loop: the gateway with mountRest (rate limit off), quotes from the in-process
 * quote cache, bars in a throwaway PostgreSQL database on 127.0.0.1:5432 (embedded PGlite when that
 * is not reachable), seeded with 30 sessions of 1-minute and 15-minute bars for 11 symbols.
 *
 * Prints one line `READY {"port":..,"db":..,"rows":..}` on stdout, then serves until stdin closes,
 * when it drops the database and exits.
 */
import { PGlite } from '@electric-sql/pglite';
import { pgDb, pgliteDb, type Db } from '../src/core/db.ts';
import { migrate } from '../src/core/migrate.ts';
import { createTestDatabase, type TestDatabase } from '../test/support/pg.ts';
import { bySymbol, ensurePartitions, insertBars, minuteBars, reference, sessionOpen, startRestServer } from '../test/gateway/rest-fixture.ts';
import { MINUTE_MS } from '../src/core/ist.ts';

export const BENCH_SYMBOLS = ['INFY', 'RELIANCE', 'TCS', 'HDFCBANK', 'ICICIBANK', 'SBIN', 'ITC', 'LT', 'AXISBANK', 'KOTAKBANK', 'BHARTIARTL'];

/** The 30 weekdays up to 2025-12-03. */
function sessions(): string[] {
  const out: string[] = [];
  for (let t = Date.parse('2025-12-03T00:00:00Z'); out.length < 30; t -= 86_400_000) {
    const wd = new Date(t).getUTCDay();
    if (wd !== 0 && wd !== 6) out.unshift(new Date(t).toISOString().slice(0, 10));
  }
  return out;
}

async function openDb(): Promise<{ db: Db; kind: string; drop: () => Promise<void> }> {
  let tdb: TestDatabase | null = null;
  try {
    tdb = await createTestDatabase('rest_bench');
    return { db: pgDb(tdb.sql), kind: 'postgres 127.0.0.1:5432', drop: () => tdb!.drop() };
  } catch {
    const pg = new PGlite();
    return { db: pgliteDb(pg), kind: 'pglite (embedded)', drop: () => pg.close() };
  }
}

const { db, kind, drop } = await openDb();
let rows = 0;
try {
  await migrate(db);
  const dates = sessions();
  await ensurePartitions(db, sessionOpen(dates[0]) - 86_400_000, sessionOpen(dates[dates.length - 1]) + 86_400_000);
  for (const [k, s] of BENCH_SYMBOLS.entries()) {
    const bars = minuteBars(bySymbol(s).instrumentToken, dates, 100 + k, false);
    const all = [...bars, ...reference(bars, 15 * MINUTE_MS)];
    await insertBars(db, all);
    rows += all.length;
  }
  await db.exec('ANALYZE bars');
} catch (e) {
  await drop();
  throw e;
}

const srv = await startRestServer({ db, ratePerSec: 0 });
process.stdout.write(`READY ${JSON.stringify({ port: srv.port, db: kind, rows })}\n`);

let closing = false;
const shutdown = async () => {
  if (closing) return;
  closing = true;
  srv.close();
  await drop();
  process.exit(0);
};
process.stdin.on('end', shutdown);
process.stdin.on('close', shutdown);
process.stdin.resume();
process.on('SIGTERM', shutdown);
