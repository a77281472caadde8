/**
 * The writer thread's entry (started by src/storage/supervisor.ts through startWorker): picks the
 * sink (a PostgreSQL server when DATABASE_URL is set, else the embedded PGlite), runs the writer,
 * answers reads for the query module on the embedded PGlite (on a server they go to the reader
 * thread, workers/reader/), and drains on 'stop'.
 *
 * No 'uncaughtException' handler on purpose: an error thrown where no catch reaches (the
 * `postgres` driver's, sink-pg.ts) ends this thread only, and the supervisor starts another.
 */
import { parentPort, workerData } from 'node:worker_threads';
import type { Sink } from './sink.ts';
import { Writer, errInfo, type WriterLog } from './writer.ts';
import type { WriterControl, WriterData, WriterMessage } from '../../src/core/writer-protocol.ts';

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
    log,
  })
  : new (await import('./sink-pglite.ts')).PgliteSink({ dir: d.pgliteDir, instruments: d.instruments, log });

const writer = new Writer(d, sink, log, (rows) => post({ type: 'instruments', rows }));

port.on('message', (m: WriterControl) => {
  if (m.type === 'stop') {
    writer.stop();
    // Past the deadline whatever is still in the rings is lost with the process anyway.
    setTimeout(() => process.exit(0), m.deadlineMs).unref();
  } else if (m.type === 'query') {
    sink.query(m.text, m.params).then(
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
