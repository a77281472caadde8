/**
 * `npm run bench [-- filter...]`: runs every bench/*.bench.ts in turn (or those whose name contains
 * one of the filters), each in this one process, after printing the machine it runs on.
 * Each bench module default-exports an async function.
 */

import { readdirSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const filters = process.argv.slice(2).filter((a) => a !== '--');
const files = readdirSync(here)
  .filter((f) => f.endsWith('.bench.ts'))
  .filter((f) => filters.length === 0 || filters.some((q) => f.includes(q)))
  .sort();

const cpu = cpus();
console.log(`machine: ${cpu[0]?.model ?? 'unknown cpu'} × ${cpu.length}, ${(totalmem() / 2 ** 30).toFixed(1)} GiB, ` +
  `node ${process.version} (V8 ${process.versions.v8}), ${process.platform}/${process.arch}`);
if (files.length === 0) {
  console.error(`no bench matches ${JSON.stringify(filters)}; available: ${readdirSync(here).filter((f) => f.endsWith('.bench.ts')).join(', ')}`);
  process.exit(1);
}

for (const f of files) {
  console.log(`\n=== ${f} ===`);
  const mod = (await import(pathToFileURL(join(here, f)).href)) as { default?: () => Promise<void> | void };
  if (typeof mod.default !== 'function') throw new TypeError(`${f} must default-export a function that runs the bench`);
  await mod.default();
}
