/**
 * `npm run bench [-- options] [filter...]`: runs every bench/*.bench.ts in turn (or those whose
 * name contains one of the filters), each in this one process, then prints one summary table of
 * every case recorded (bench/report.ts) and writes it, with the machine and the commit, to
 * bench/results/<time>-<commit>.json.
 *
 *   --quick         every case briefly (BENCH_QUICK=1 too): CI runs this so the benches cannot
 *                   rot; the figures then mean little and nothing is asserted about them
 *   --runs N        run each bench N times and report each case's median and spread
 *   --compare OLD   after the run, each case against the same case in results file OLD: the
 *                   change, the noise it is judged against, and REGRESSION beyond it
 *   --new NEW       with --compare: compare two results files, running nothing
 *
 * Each bench module default-exports an async function. A repetition imports the module afresh
 * (`?run=N`), so module-level state starts clean each time. A bench that throws is reported and
 * the rest still run; the exit code is then 1. Regressions never change the exit code.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { performance } from 'node:perf_hooks';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { QUICK, recorded, type BenchCase } from './report.ts';
import { compare, compareTable, merge, summaryTable, type Machine, type Results } from './summary.ts';

const here = dirname(fileURLToPath(import.meta.url));

interface Args { runs: number; compare: string | null; against: string | null; filters: string[] }

function parseArgs(argv: readonly string[]): Args {
  const a: Args = { runs: 1, compare: null, against: null, filters: [] };
  for (let i = 0; i < argv.length; i++) {
    const x = argv[i];
    const value = (): string => {
      const v = argv[++i];
      if (v === undefined || v.startsWith('--')) throw new RangeError(`${x} needs a value, e.g. ${x === '--runs' ? '--runs 3' : `${x} bench/results/FILE.json`}`);
      return v;
    };
    if (x === '--') continue;
    else if (x === '--quick') continue; // read by bench/report.ts as QUICK
    else if (x === '--runs') {
      a.runs = Number(value());
      if (!Number.isInteger(a.runs) || a.runs < 1) throw new RangeError(`--runs must be a whole number ≥ 1, e.g. --runs 3 (got ${argv[i]})`);
    } else if (x === '--compare') a.compare = value();
    else if (x === '--new') a.against = value();
    else if (x.startsWith('--')) throw new RangeError(`unknown option ${x}; options: --quick, --runs N, --compare OLD.json [--new NEW.json], then bench name filters`);
    else a.filters.push(x);
  }
  if (a.against !== null && a.compare === null) throw new RangeError('--new NEW.json compares against --compare OLD.json; give both');
  return a;
}

function git(...args: string[]): string {
  try {
    return execFileSync('git', args, { cwd: here, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return '';
  }
}

function readResults(file: string): Results {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as Results;
  } catch (e) {
    throw new Error(`--compare: cannot read results file ${file} (${(e as Error).message}); files are under bench/results/`, { cause: e });
  }
}

function printCompare(old: Results, now: Results): void {
  const m = (r: Results) => `${r.commit.slice(0, 12)}${r.dirty ? '+dirty' : ''} ${r.time}${r.quick ? ' (quick)' : ''}, runs ${r.runs}, load ${r.machine.loadBefore[0].toFixed(2)}→${r.machine.loadAfter[0].toFixed(2)}`;
  console.log(`\ncompare: old ${m(old)}\n         new ${m(now)}`);
  if (old.machine.cpu !== now.machine.cpu || old.machine.cores !== now.machine.cores) {
    console.log(`warning: different machines (${old.machine.cpu} × ${old.machine.cores} vs ${now.machine.cpu} × ${now.machine.cores}): changes include the machine`);
  }
  if (old.quick !== now.quick) console.log('warning: one of the two runs is --quick: its figures are from short windows');
  const changes = compare(old.cases, now.cases);
  console.log(compareTable(changes));
  const reg = changes.filter((x) => x.verdict === 'REGRESSION');
  const gone = old.cases.filter((o) => !now.cases.some((c) => c.bench === o.bench && c.name === o.name));
  console.log(`${reg.length} regression${reg.length === 1 ? '' : 's'} beyond the noise` +
    (reg.length ? `: ${reg.map((x) => `${x.c.bench} / ${x.c.name}`).join('; ')}` : '') +
    (gone.length ? `; ${gone.length} case(s) of the old file not measured now` : ''));
}

const args = parseArgs(process.argv.slice(2));

if (args.compare !== null && args.against !== null) {
  printCompare(readResults(args.compare), readResults(args.against));
  process.exit(0);
}
const old = args.compare === null ? null : readResults(args.compare); // fail before an hour of benches, not after

const all = readdirSync(here).filter((f) => f.endsWith('.bench.ts')).sort();
const files = all.filter((f) => args.filters.length === 0 || args.filters.some((q) => f.includes(q)));
if (files.length === 0) {
  console.error(`no bench matches ${JSON.stringify(args.filters)}; available: ${all.map((f) => f.replace('.bench.ts', '')).join(', ')}`);
  process.exit(1);
}

const cpu = cpus();
const loadBefore = loadavg();
const commit = git('rev-parse', 'HEAD') || 'unknown';
const dirty = git('status', '--porcelain', '--untracked-files=no') !== '';
console.log(`machine: ${cpu[0]?.model ?? 'unknown cpu'} × ${cpu.length}, ${(totalmem() / 2 ** 30).toFixed(1)} GiB, ` +
  `node ${process.version} (V8 ${process.versions.v8}), ${process.platform}/${process.arch}; load average ${loadBefore.map((l) => l.toFixed(2)).join(' ')}`);
console.log(`commit ${commit.slice(0, 12)}${dirty ? ' (uncommitted changes)' : ''}; ${QUICK ? 'quick' : 'full'} mode, ${args.runs} run${args.runs === 1 ? '' : 's'} per bench; ${files.length} bench${files.length === 1 ? '' : 'es'}: ${files.join(', ')}`);

const t0 = performance.now();
const benches: Results['benches'] = [];
const reps: BenchCase[][] = [];
for (const f of files) {
  const bench = f.replace('.bench.ts', '');
  for (let run = 1; run <= args.runs; run++) {
    console.log(`\n=== ${f}${args.runs > 1 ? ` (run ${run} of ${args.runs})` : ''} ===`);
    const from = recorded().length;
    const tb = performance.now();
    try {
      const url = pathToFileURL(join(here, f)).href + (run > 1 ? `?run=${run}` : '');
      const mod = (await import(url)) as { default?: () => Promise<void> | void };
      if (typeof mod.default !== 'function') throw new TypeError(`${f} must default-export a function that runs the bench`);
      await mod.default();
      benches.push({ bench, seconds: (performance.now() - tb) / 1000, ok: true });
    } catch (e) {
      const error = e instanceof Error ? (e.stack ?? e.message) : String(e);
      console.error(`${f} FAILED: ${error}`);
      benches.push({ bench, seconds: (performance.now() - tb) / 1000, ok: false, error: error.split('\n')[0] });
    }
    reps.push(recorded().slice(from));
    console.log(`--- ${f}: ${((performance.now() - tb) / 1000).toFixed(1)} s`);
  }
}
const totalSeconds = (performance.now() - t0) / 1000;

const cases = merge(reps);
const failed = benches.filter((b) => !b.ok);
console.log(`\n=== summary: ${cases.length} cases from ${files.length} bench${files.length === 1 ? '' : 'es'}, ${totalSeconds.toFixed(0)} s in all` +
  `${QUICK ? ' (quick: short windows, figures indicative only)' : ''} ===`);
console.log(summaryTable(cases));
const noCases = files.map((f) => f.replace('.bench.ts', '')).filter((b) => !cases.some((c) => c.bench === b) && !failed.some((x) => x.bench === b));
if (noCases.length) console.log(`recorded no case: ${noCases.join(', ')}`);
if (failed.length) console.log(`FAILED: ${failed.map((b) => `${b.bench} (${b.error})`).join('; ')}`);

const machine: Machine = {
  cpu: cpu[0]?.model ?? 'unknown', cores: cpu.length, memoryBytes: totalmem(), node: process.version, v8: process.versions.v8,
  platform: `${process.platform}/${process.arch}`, loadBefore, loadAfter: loadavg(),
};
const time = new Date().toISOString();
const results: Results = {
  time, commit, dirty, quick: QUICK, runs: args.runs, filters: args.filters, totalSeconds, machine, benches, cases,
};
const dir = join(here, 'results');
mkdirSync(dir, { recursive: true });
// Colons are awkward in file names on some systems: 2026-12-06T04-12-00Z-42dc098.json
const file = join(dir, `${time.replace(/:/g, '-').replace(/\.\d+Z$/, 'Z')}-${commit.slice(0, 7)}.json`);
writeFileSync(file, JSON.stringify(results, null, 2) + '\n');
console.log(`load average after: ${machine.loadAfter.map((l) => l.toFixed(2)).join(' ')}; results: ${relative(process.cwd(), file)}`);

if (old !== null) printCompare(old, results);
process.exitCode = failed.length > 0 ? 1 : 0;
