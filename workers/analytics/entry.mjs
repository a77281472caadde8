// The analytics pool's worker module (piscina loads it by file name): registers the TypeScript
// loader in the pool thread, then hands piscina the task function of main.ts. The same reason as
// src/worker-entry.mjs: on Node 20 a worker does not inherit an --import hook in time.
import { register } from 'tsx/esm/api';

register();
const { default: run } = await import('./main.ts');
export default run;
