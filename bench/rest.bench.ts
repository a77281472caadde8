/**
 * REST throughput and latency, `npm run bench -- rest`: autocannon with 50 connections on loopback
 * against the server in a child process (bench/rest-server.ts: the gateway with mountRest, quotes
 * from the in-process quote cache, bars from PostgreSQL), one run per endpoint:
 *
 * | row                        | request                                                              |
 * |----------------------------|----------------------------------------------------------------------|
 * | GET /health (baseline)     | server.ts's liveness route: uWS and one JSON answer, no key, no router |
 * | GET /api/quote             | 5 symbols from the quote cache                                       |
 * | GET /api/bars              | one session of 1m bars (375) of one symbol, from the database        |
 * | GET /kite/quote            | the same 5 instruments in Kite's shape                               |
 * | GET /kite/instruments/historical | one session of minute candles of one instrument, from the database |
 *
 * The ratio column is each row's requests/s over the baseline's. "server CPU" is the child
 * process's CPU time per request (from /proc; PostgreSQL's own processes are not in it). On a
 * machine with few cores the load generator, the server and PostgreSQL share them: figures are
 * for this machine, printed beside its core count and load.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { QUICK, record } from './report.ts';
import { loadLine } from './support.ts';
import { KEY } from '../test/gateway/rest-fixture.ts';

interface AutocannonResult {
  requests: { average: number; total: number };
  latency: { p50: number; p99: number; average: number };
  non2xx: number;
  errors: number;
  timeouts: number;
  duration: number;
}
type Autocannon = (opts: {
  url: string; connections: number; duration: number; headers?: Record<string, string>; pipelining?: number;
}) => Promise<AutocannonResult>;

const autocannon = createRequire(import.meta.url)('autocannon') as Autocannon;

const CONNECTIONS = 50;
const DURATION_S = QUICK ? 1 : 5;
const WARMUP_S = QUICK ? 0 : 1;

const QUOTE_SYMBOLS = 'NSE:INFY,NSE:RELIANCE,NSE:TCS,NSE:HDFCBANK,NSE:NIFTY 50';
const INFY_TOKEN = 408065;

interface Target {
  label: string;
  path: string;
  headers: Record<string, string>;
}

const bearer = { Authorization: `Bearer ${KEY}` };
const kite = { Authorization: `token ${KEY}:${KEY}`, 'X-Kite-Version': '3' };
const TARGETS: Target[] = [
  { label: 'GET /health (baseline)', path: '/health', headers: {} },
  { label: 'GET /api/quote (5 symbols, cache)', path: `/api/quote?symbols=${encodeURIComponent(QUOTE_SYMBOLS)}`, headers: bearer },
  { label: 'GET /api/bars (375 x 1m, db)', path: '/api/bars?symbol=NSE:INFY&tf=1m&from=2025-12-02&to=2025-12-03', headers: bearer },
  {
    label: 'GET /kite/quote (5, cache)',
    path: `/kite/quote?${QUOTE_SYMBOLS.split(',').map((s) => `i=${encodeURIComponent(s)}`).join('&')}`,
    headers: kite,
  },
  {
    label: 'GET /kite/.../historical (375 minute, db)',
    path: `/kite/instruments/historical/${INFY_TOKEN}/minute?from=${encodeURIComponent('2025-12-02 09:15:00')}&to=${encodeURIComponent('2025-12-02 15:30:00')}&continuous=0&oi=0`,
    headers: kite,
  },
];

/** utime + stime of a process, ms (Linux /proc; clock ticks assumed 100 Hz, as on every Linux here). */
function cpuOf(pid: number): number {
  try {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return (Number(f[11]) + Number(f[12])) * 10;
  } catch {
    return NaN;
  }
}

export default async function main(): Promise<void> {
  const script = fileURLToPath(new URL('./rest-server.ts', import.meta.url));
  const child = spawn(process.execPath, ['--import', 'tsx', script], { stdio: ['pipe', 'pipe', 'inherit'] });
  const exited = new Promise<void>((r) => child.on('exit', () => r()));
  try {
    const ready = await new Promise<{ port: number; db: string; rows: number }>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('bench server did not start within 60 s')), 60_000);
      child.on('exit', (code) => reject(new Error(`bench server exited (${code}) before it was ready`)));
      createInterface({ input: child.stdout! }).on('line', (line) => {
        if (!line.startsWith('READY ')) return;
        clearTimeout(timer);
        resolve(JSON.parse(line.slice(6)));
      });
    });
    const base = `http://127.0.0.1:${ready.port}`;
    console.log(`server: child process ${child.pid} (node ${process.version}), database ${ready.db} with ${ready.rows} bars; ` +
      `autocannon in this process, ${CONNECTIONS} connections, ${DURATION_S} s per row after ${WARMUP_S} s warm-up`);
    console.log(loadLine());

    // Each target answers as expected before it is timed.
    for (const t of TARGETS) {
      const r = await fetch(base + t.path, { headers: t.headers });
      const body = await r.text();
      if (r.status !== 200) throw new Error(`${t.label}: HTTP ${r.status} ${body.slice(0, 200)}`);
    }

    const rows: { label: string; rps: number; p50: number; p99: number; bad: number; cpuUs: number }[] = [];
    for (const t of TARGETS) {
      if (WARMUP_S > 0) await autocannon({ url: base + t.path, connections: CONNECTIONS, duration: WARMUP_S, headers: t.headers });
      const cpu0 = cpuOf(child.pid!);
      const r = await autocannon({ url: base + t.path, connections: CONNECTIONS, duration: DURATION_S, headers: t.headers });
      const cpu1 = cpuOf(child.pid!);
      rows.push({
        label: t.label, rps: r.requests.average, p50: r.latency.p50, p99: r.latency.p99,
        bad: r.non2xx + r.errors + r.timeouts, cpuUs: ((cpu1 - cpu0) * 1000) / Math.max(1, r.requests.total),
      });
    }

    const base0 = rows[0].rps;
    const head = ['endpoint', 'req/s', 'ratio', 'p50 ms', 'p99 ms', 'server CPU µs/req', 'non-2xx+errors'];
    const lines = rows.map((r) => [r.label, r.rps.toFixed(0), (r.rps / base0).toFixed(2), r.p50.toFixed(2), r.p99.toFixed(2), r.cpuUs.toFixed(0), String(r.bad)]);
    const widths = head.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i].length)));
    const fmt = (l: string[]) => l.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
    console.log('\n' + fmt(head));
    for (const l of lines) console.log(fmt(l));
    for (const r of rows.slice(1)) {
      const name = r.label.replace(/ \(.*$/, '');
      record({ bench: 'rest', name: `${name} req/s`, unit: 'req/s', better: 'higher', value: r.rps, baseline: { name: 'GET /health', value: base0 } });
      record({ bench: 'rest', name: `${name} p99`, unit: 'ms', better: 'lower', value: r.p99, baseline: { name: 'GET /health', value: rows[0].p99 } });
    }
  } finally {
    child.stdin!.end();
    await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
    if (child.exitCode === null) child.kill('SIGKILL');
  }
}
