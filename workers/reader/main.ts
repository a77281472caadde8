/**
 * The reader thread's entry (started by src/storage/reads.ts through startWorker, only when
 * DATABASE_URL is set): answers each 'query' with one 'result', each transaction on its port
 * (src/core/reader-protocol.ts serveTransactions) with one 'result', and ends on 'stop'.
 *
 * No 'uncaughtException' handler on purpose: an error thrown where no catch reaches (the
 * `postgres` driver's, workers/writer/sink-pg.ts) ends this thread only, and the supervisor
 * starts another. Neither does a read or transaction that never settles hold the others behind it
 * for good: the watchdog ends the thread past ReaderData.stallMs.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { Reader } from './reader.ts';
import { ReaderExit, serveTransactions, type ReaderControl, type ReaderData, type ReaderMessage } from '../../src/core/reader-protocol.ts';

const d = (workerData as { data: ReaderData }).data;
const port = parentPort!;
const post = (m: ReaderMessage): void => port.postMessage(m);
const reader = new Reader(d);
serveTransactions(port, (statements) => reader.transact(statements));

const watchdog = setInterval(() => {
  const waited = reader.stalledFor(performance.now());
  if (waited <= d.stallMs) return;
  post({ type: 'log', level: 'error', obj: { code: 'READER_STALLED', stallMs: d.stallMs, waitedMs: Math.round(waited) }, msg: 'a read has not settled within WRITER_STALL_MS; restarting the reader thread (reads in flight fail with STORAGE_RESTARTING)' });
  // The log line above is posted before the thread goes: messages already sent are delivered.
  process.exit(ReaderExit.STALLED);
}, Math.min(1000, d.stallMs));
watchdog.unref();

port.on('message', (m: ReaderControl) => {
  if (m.type === 'query') {
    reader.query(m.text, m.params).then(
      (rows) => post({ type: 'result', id: m.id, rows }),
      (e) => {
        const x = e as { message?: string; code?: unknown };
        post({ type: 'result', id: m.id, error: { message: x?.message ?? String(e), code: typeof x?.code === 'string' ? x.code : undefined } });
      },
    );
  } else if (m.type === 'stop') {
    clearInterval(watchdog);
    void reader.close().finally(() => process.exit(ReaderExit.OK));
  }
});
