/**
 * A replay session's thread (started by src/replay/session.ts): opens the session's stored ticks
 * (source.ts) and runs its Replayer (replayer.ts) under the main thread's commands
 * (src/core/replay-protocol.ts).
 */
import { parentPort, workerData } from 'node:worker_threads';
import type { PGlite } from '@electric-sql/pglite';
import { Replayer } from './replayer.ts';
import { openTickSource, type TickStore } from './source.ts';
import type { ReplayControl, ReplayData, ReplayMessage } from '../../src/core/replay-protocol.ts';

const data = (workerData as { data: ReplayData }).data;
const port = parentPort!;
const post = (m: ReplayMessage) => port.postMessage(m);

/** The embedded database through the main thread: each query asked for and answered by message. */
const asked = new Map<number, { resolve: (rows: Record<string, unknown>[]) => void; reject: (e: Error) => void }>();
let nextQuery = 1;
function proxyQuery(text: string, params: unknown[] = []): Promise<{ rows: Record<string, unknown>[] }> {
  return new Promise((resolve, reject) => {
    const id = nextQuery++;
    asked.set(id, { resolve: (rows) => resolve({ rows }), reject });
    post({ type: 'query', id, text, params });
  });
}

/**
 * The embedded database answers through the writer thread with rows as objects; the source's
 * PGlite path asks for arrays (rowMode 'array'): the columns' values in their order.
 */
const viaMainThread = {
  async query(text: string, params: unknown[] = []) {
    return { rows: (await proxyQuery(text, params)).rows.map((r) => Object.values(r)) };
  },
  async exec(text: string) {
    await proxyQuery(text, []);
  },
} as unknown as PGlite;

const store: TickStore = data.source.kind === 'postgres'
  ? { kind: 'postgres', url: data.source.url }
  : { kind: 'pglite', db: viaMainThread };
const rowOfToken = new Map(data.instruments.map((i, row) => [i.instrumentToken, row]));

let resetWaiter: (() => void) | null = null;
const replayer = new Replayer(
  data,
  (fromMs) => openTickSource(store, { fromMs, toMs: data.toMs, tokens: data.tokens, instruments: { instruments: data.instruments, rowOfToken } }),
  post,
  () => new Promise<void>((resolve) => { resetWaiter = resolve; }),
);

port.on('message', (m: ReplayControl) => {
  switch (m.type) {
    case 'resume': replayer.resume(m.speed); break;
    case 'pause': replayer.pause(); break;
    case 'seek': replayer.seek(m.toMs); break;
    case 'stop': replayer.stop(); break;
    case 'reset-done': {
      const w = resetWaiter;
      resetWaiter = null;
      w?.();
      break;
    }
    case 'answer': {
      const a = asked.get(m.id);
      asked.delete(m.id);
      if (a === undefined) break;
      if (m.error !== undefined) a.reject(new Error(m.error));
      else a.resolve(m.rows ?? []);
      break;
    }
  }
});

await replayer.run();
replayer.closeRings();
post({ type: 'stopped' });
port.close();
