/**
 * A worker thread for src/storage/supervised-thread.test.ts: speaks the supervised threads'
 * protocol (src/core/reader-protocol.ts) with no database behind it, and dies on command.
 *
 * A 'query' is answered by its text:
 *   'echo'       one row, { params }
 *   'fail'       an error with code 'TEST_FAILED'
 *   'hold'       no answer (a read in flight when the thread dies)
 *   'exit <n>'   the thread ends with exit code n, answering nothing
 *   'throw'      an uncaught error ends the thread
 * It says 'hello' (a message of its own) and logs one line at start; 'stop' ends it with code 0.
 */
import { parentPort } from 'node:worker_threads';

const port = parentPort!;

port.postMessage({ type: 'hello' });
port.postMessage({ type: 'log', level: 'info', obj: { started: true }, msg: 'test thread started' });

port.on('message', (m: { type: 'query'; id: number; text: string; params: unknown[] } | { type: 'stop' }) => {
  if (m.type === 'stop') process.exit(0);
  const [what, arg] = m.text.split(' ');
  if (what === 'echo') port.postMessage({ type: 'result', id: m.id, rows: [{ params: m.params }] });
  else if (what === 'fail') port.postMessage({ type: 'result', id: m.id, error: { message: 'failed on purpose', code: 'TEST_FAILED' } });
  else if (what === 'exit') process.exit(Number(arg));
  else if (what === 'throw') throw new Error('thrown on purpose');
  // 'hold': no answer
});
