/**
 * How worker threads load TypeScript: one mechanism for `npm start`, vitest and the benches.
 *
 * Every worker starts at `worker-entry.mjs`, which registers tsx's loader in that thread and then
 * imports the real `.ts` module named in `workerData`. The parent's own loader does not matter
 * (vitest transforms with vite, `npm start` and the benches run under `--import tsx`), so the same
 * worker code runs the same way under all three, with no build step and no second path.
 */
import { Worker, type WorkerOptions } from 'node:worker_threads';

const ENTRY = new URL('./worker-entry.mjs', import.meta.url);

/** Start a worker running the TypeScript module at `moduleUrl`; it reads `workerData.data`. */
export function startWorker(moduleUrl: URL, options: WorkerOptions = {}): Worker {
  return new Worker(ENTRY, {
    ...options,
    workerData: { __module: moduleUrl.href, data: options.workerData },
  });
}
