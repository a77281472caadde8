/**
 * The writer thread's entry (started by src/storage/supervisor.ts through startWorker): picks the
 * sink (a PostgreSQL server when DATABASE_URL is set, else the embedded PGlite), runs the writer,
 * answers reads for the query module and transactions (Storage.transact) on the embedded PGlite
 * (on a server both go to the reader thread, workers/reader/), and drains on 'stop'.
 *
 * On PGlite one connection serves the batches, the reads and the transactions. PGlite queues each
 * call, but a transaction here is several calls (BEGIN, its statements, COMMIT), and a batch or a
 * read run between them would run inside it (a read's error would abort it; a batch's COMMIT
 * would commit half of it). So everything that reaches the database goes through one FIFO gate
 * (`exclusive`), and a transaction holds it from BEGIN to COMMIT. PGlite serves one call at a
 * time anyway: the gate costs batches no parallelism they had.
 *
 * No 'uncaughtException' handler on purpose: an error thrown where no catch reaches (the
 * `postgres` driver's, sink-pg.ts) ends this thread only, and the supervisor starts another.
 */
import { parentPort, workerData } from 'node:worker_threads';
import type { Sink } from './sink.ts';
import { Writer, errInfo, type WriterLog } from './writer.ts';
import { serveTransactions } from '../../src/core/reader-protocol.ts';
import type { TxStatement, WriterControl, WriterData, WriterMessage } from '../../src/core/writer-protocol.ts';

const d = (workerData as { data: WriterData }).data;
const port = parentPort!;
const post = (m: WriterMessage): void => port.postMessage(m);
const log: WriterLog = (level, obj, msg) => post({ type: 'log', level, obj, msg });

// Each sink loads its own driver: PGlite's bundle is large, and a server sink never needs it.
const sink: Sink = d.databaseUrl !== null
  ? new (await import('./sink-pg.ts')).PgSink({
    url: d.databaseUrl,
    lanes: d.connections,
    marketDataRetentionDays: d.marketDataRetentionDays,
    barsRetentionDays: d.barsRetentionDays,
    instruments: d.instruments,
    fence: d.fence ?? null,
    log,
  })
  : new (await import('./sink-pglite.ts')).PgliteSink({ dir: d.pgliteDir, instruments: d.instruments, log });

let gate: Promise<unknown> = Promise.resolve();
/** `fn` once everything queued before it has settled (see the header). */
function exclusive<T>(fn: () => Promise<T>): Promise<T> {
  const run = gate.then(fn, fn);
  gate = run.catch(() => {});
  return run;
}

/** The embedded sink with every call through the gate. */
function gated(s: Sink): Sink {
  return {
    kind: s.kind,
    lanes: s.lanes,
    open: () => s.open(),
    commit: (b, via) => exclusive(() => s.commit(b, via)),
    maintenance: () => s.maintenance(),
    query: (text, params) => exclusive(() => s.query(text, params)),
    close: () => s.close(),
  };
}

/** `statements` in one transaction on the embedded database, holding the gate throughout. */
function transact(statements: readonly TxStatement[]): Promise<void> {
  if (statements.length === 0) return Promise.resolve();
  return exclusive(async () => {
    await sink.query('BEGIN', []);
    try {
      for (const st of statements) await sink.query(st.text, st.params);
      await sink.query('COMMIT', []);
    } catch (e) {
      await sink.query('ROLLBACK', []).catch(() => {});
      throw e;
    }
  });
}

const db: Sink = sink.kind === 'pglite' ? gated(sink) : sink;
if (sink.kind === 'pglite') serveTransactions(port, transact);
const writer = new Writer(d, db, log, (rows) => post({ type: 'instruments', rows }));

port.on('message', (m: WriterControl) => {
  if (m.type === 'stop') {
    writer.stop();
    // Past the deadline whatever is still in the rings is lost with the process anyway.
    setTimeout(() => process.exit(0), m.deadlineMs).unref();
  } else if (m.type === 'query') {
    db.query(m.text, m.params).then(
      (rows) => post({ type: 'result', id: m.id, rows }),
      (e) => post({ type: 'result', id: m.id, error: errInfo(e) as { message: string; code?: string } }),
    );
  }
});

await writer.run();
await writer.flushSpill(5000);
await writer.close();
post({ type: 'stopped', spillPending: writer.spill.pending() });
// Exit now rather than when the event loop empties: a first start's PGlite initdb (seconds of
// WASM) may still be running, and what it builds is renamed into place only when complete
// (sink-pglite.ts), so ending it here leaves nothing half-made. The message above is delivered.
process.exit(0);
