// Worker entry point: registers the TypeScript loader, then imports the module named by
// startWorker (see threads.ts). Registering here, rather than through `--import tsx` in execArgv,
// is what works on Node 20: there the worker's entry runs before an --import hook is ready.
import { workerData } from 'node:worker_threads';
import { register } from 'tsx/esm/api';

register();
await import(workerData.__module);
