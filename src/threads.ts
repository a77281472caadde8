/**
 * How worker threads load TypeScript: one mechanism for `npm start`, vitest and the benches.
 *
 * Every worker (plain `worker_threads` or piscina) is started with `--import tsx` in its execArgv,
 * added here when the parent does not already run under it (vitest's forks do not). Node 20 cannot
 * load a `.ts` file as a worker's entry point even with the hook registered (the entry is resolved
 * before `--import` runs), so each worker entry is this directory's `worker-entry.mjs`, which
 * imports the real `.ts` module named in `workerData`. Piscina does the same with its own entry.
 * There is no build step and no second path: the code a test runs is the code production runs.
 */
import { Worker, type WorkerOptions } from 'node:worker_threads';

export function workerExecArgv(): string[] {
  const argv = process.execArgv.filter((a) => !a.startsWith('--inspect'));
  const hasTsx = argv.some((a, i) => (a === '--import' || a === '--loader') && argv[i + 1]?.startsWith('tsx'))
    || argv.some((a) => a.startsWith('--import=tsx'));
  return hasTsx ? argv : [...argv, '--import', 'tsx'];
}

const ENTRY = new URL('./worker-entry.mjs', import.meta.url);

/** Start a worker running the TypeScript module at `moduleUrl` (a file: URL). */
export function startWorker(moduleUrl: URL, options: Omit<WorkerOptions, 'execArgv'> = {}): Worker {
  return new Worker(ENTRY, {
    ...options,
    execArgv: workerExecArgv(),
    workerData: { __module: moduleUrl.href, data: options.workerData },
  });
}
