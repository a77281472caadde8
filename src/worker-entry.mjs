// Worker entry point: loads the TypeScript module named by startWorker (see threads.ts).
import { workerData } from 'node:worker_threads';

await import(workerData.__module);
