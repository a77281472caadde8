/**
 * Scale-out as deployed, with real processes on loopback: what splitting the service into one
 * ROLE=ingest and one or two ROLE=gateway processes (fed through Redis pub/sub, src/scale/) costs
 * or gains against one ROLE=all process, and what the fan-out engine itself costs per message
 * against the engine not chosen (NATS).
 *
 * 1. Roles. Configurations, one after the other, each at every rate of RATES:
 *      (a) one ROLE=all process: the baseline;
 *      (b) one ROLE=ingest + one ROLE=gateway;
 *      (c) one ROLE=ingest + two ROLE=gateway.
 *    Every process is `node --import tsx src/main.ts` with WORKERS=1, as test/scale/roles.test.ts
 *    starts them. Each configuration has a throwaway PostgreSQL database of its own (ROLE=all
 *    too, so that storage costs the same everywhere; it keeps its in-process cache, no Redis);
 *    (b) and (c) a Redis prefix of their own; all are removed at the end.
 *    The Kite simulator runs in its own process (bench/scale-sim.ts: startSimulator, as
 *    `npm run sim`, with the rate set over IPC, so the services stay up across rates) and every
 *    Kite-connecting process has an api key of its own.
 *    CLIENTS FeedClients (src/client/index.ts) in another process (bench/scale-clients.ts),
 *    spread evenly over the fronts (the ROLE=all process, or the gateways), each following every
 *    instrument in full mode. Per rate: WARM after setting the rate, then WINDOW measured.
 *    - in: ticks/s out of the pipeline of the process that reads Kite (health pipeline.ticksOut);
 *    - delivered: ticks/s the clients received together (every client wants every tick, so at
 *      best clients × in);
 *    - tick → client latency: client clock at the 'ticks' event minus the tick's `rt` (the epoch
 *      µs at which the Kite-reading front stamped it), per tick; conflated frames counted;
 *    - CPU of each process over the window (/proc/<pid>/stat), % of one core; the machine has
 *      cpus().length cores shared by every process, the clients' and the simulator's included.
 * 2. Engines. The service publishes one message per hub drain (src/scale/drain-message.ts: 40 B
 *    head, 512 B a tick, 112 B a bar). Messages of exactly the size (b)'s ingest published at each
 *    rate (from its health: messages, ticks, bars) are sent through Redis pub/sub (what the
 *    service uses), NATS core and JetStream (memory stream, acked publishes), from this process
 *    to 2 subscriber processes (2 gateways, as in (c)), with the engines bench's own parts
 *    (bench/engines-transport.ts, bench/engines-sub.ts, EngineRun#maxRate of
 *    bench/engines.bench.ts): the maximum sustained rate (the slower subscriber's), and CPU per
 *    message of the engine's server, the publisher and the 2 subscribers at that rate. NATS refuses
 *    a message over its max_payload (1 MiB by default): those cells say so.
 *
 * What bounds the figures: the 2 cores, shared by every process above. The machine column says
 * how full they were; near 200 % every process waits for a core, the clients' included (their
 * event-loop delay is printed), and latency measures the machine more than the layout.
 *
 * `npm run bench -- scale` (about 3 minutes), `npm run bench -- scale --quick` (shorter windows,
 * about 1.5 minutes). Leaves nothing behind: processes, databases, Redis keys, JetStream streams
 * and temporary directories are removed at the end, and on SIGINT / SIGTERM. For development:
 * SCALE_BENCH_PART=roles or =engines runs one part (engines alone sizes its messages from a fixed
 * estimate of the drains), SCALE_BENCH_RATES=2000,60000 sets the rates.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { connect as natsConnect } from '@nats-io/transport-node';
import { BAR_BYTES, DRAIN_HEAD_BYTES, TICK_BYTES } from '../src/scale/drain-message.ts';
import { createTestDatabase, type TestDatabase } from '../test/support/pg.ts';
import { until } from '../test/support/until.ts';
import { sizedTemplate, wallMs, type FrameSource, type Template } from './engines-frames.ts';
import { createPublisher, NATS, REDIS, type Engine } from './engines-transport.ts';
import { EngineRun, machineJiffies, pidOf, procCpuMs, SubProc, type MaxRow } from './engines.bench.ts';
import type { ClientCommand, ClientStats } from './scale-clients.ts';
import type { SimCommand, SimCounts } from './scale-sim.ts';
import { QUICK, record } from './report.ts';
import { loadLine } from './support.ts';
import { children, exitedOf, Forked, killAll, stopChild } from './forked.ts';

const PART = process.env.SCALE_BENCH_PART;
const RATES = process.env.SCALE_BENCH_RATES ? process.env.SCALE_BENCH_RATES.split(',').map(Number) : QUICK ? [10_000] : [2_000, 10_000, 30_000, 60_000];
const CLIENTS = 4;
const T = QUICK ? { warm: 800, window: 1500 } : { warm: 2500, window: 8000 };
const READY_MS = 60_000;
const STOP_MS = 5000;
const SIM_SEED = 7;
const ENGINES_COMPARED: Engine[] = ['redis-pubsub', 'nats', 'jetstream'];
const SERVICE_ENGINE: Engine = 'redis-pubsub';
/**
 * Engines-only runs (development): drains per second and bars per tick, roughly as (b) measured
 * them here (20-50 drains/s; bars per tick from 5 at 2k ticks/s down to 1.1 at 60k).
 */
const ESTIMATE = { drainsPerS: 30, barsPerTick: 2 };
/** Clock ticks per second in /proc/<pid>/stat. */
const USER_HZ = 100;

const SECRET = `scale${randomBytes(8).toString('hex')}`;
const RUN_ID = randomBytes(3).toString('hex');

const sleep = (ms: number): Promise<void> => new Promise((res) => setTimeout(res, ms));

// --- processes ----------------------------------------------------------------------------------

/** What a configuration leaves until it is done (database, Redis keys, directories): removed on an interrupt too. */
const leftovers = new Map<symbol, () => Promise<void>>();

interface Service {
  name: string;
  role: 'all' | 'ingest' | 'gateway';
  url: string;
  child: ChildProcess;
  dir: string;
  /** The last 16 kB of its stdout and stderr, for the error when it does not come up. */
  tail(): string;
}

/** `node --import tsx src/main.ts` as test/scale/roles.test.ts starts it. */
function startService(name: string, role: Service['role'], port: number, env: Record<string, string>): Service {
  const dir = mkdtempSync(join(tmpdir(), `n50-scale-${name}-`));
  const entry = fileURLToPath(new URL('../src/main.ts', import.meta.url));
  const child = spawn(process.execPath, ['--import', 'tsx', entry], {
    env: {
      PATH: process.env.PATH ?? '', LOG_FORMAT: 'json', PORT: String(port), DATA_DIR: dir, WORKERS: '1',
      API_KEYS: `bench:${SECRET}`, KITE_ACCESS_TOKEN: 'tok', ROLE: role, ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  let out = '';
  const keep = (d: Buffer): void => {
    out += d.toString();
    if (out.length > 32_768) out = out.slice(-16_384);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  return { name, role, url: `http://127.0.0.1:${port}`, child, dir, tail: () => out.slice(-16_384) };
}

async function health(s: Service): Promise<Record<string, any> | null> {
  try {
    const r = await fetch(`${s.url}/health`, { signal: AbortSignal.timeout(3000) });
    return r.ok ? (await r.json()) as Record<string, any> : null;
  } catch {
    return null;
  }
}

async function ready(s: Service): Promise<void> {
  const ok = (h: Record<string, any> | null): boolean => {
    if (h === null) return false;
    if (s.role === 'gateway') return h.feed?.from?.state === 'live';
    if (s.role === 'ingest') return h.lease?.state === 'owner' && h.pipeline?.ticksOut > 0;
    return h.pipeline?.ticksOut > 0;
  };
  try {
    await until(`${s.name} to be ready`, async () => {
      if (s.child.exitCode !== null) throw new Error(`${s.name} exited with ${s.child.exitCode}`);
      return ok(await health(s));
    }, READY_MS);
  } catch (e) {
    throw new Error(`${(e as Error).message}\n--- ${s.name} output ---\n${s.tail()}`);
  }
}

// --- CPU from /proc -------------------------------------------------------------------------------

/** CPU ms of every process named `comm` (postgres: the postmaster and every backend). */
function commCpuMs(comm: string): number {
  let ms = 0;
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      if (readFileSync(`/proc/${d}/comm`, 'utf8').trim() !== comm) continue;
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      ms += ((Number(f[11]) + Number(f[12])) * 1000) / USER_HZ;
    } catch {
      // gone meanwhile
    }
  }
  return ms;
}

const REDIS_PID = pidOf('redis-server');

// --- one configuration ------------------------------------------------------------------------------

interface Config {
  id: 'a' | 'b' | 'c';
  label: string;
  gateways: number;
}

const CONFIGS: Config[] = [
  { id: 'a', label: '(a) all', gateways: 0 },
  { id: 'b', label: '(b) ingest + 1 gw', gateways: 1 },
  { id: 'c', label: '(c) ingest + 2 gw', gateways: 2 },
];

/** Counters at one instant, from /health and /proc. */
interface Snap {
  at: number;
  ticksOut: number;
  pub: { messages: number; ticks: number; bars: number; skipped: number } | null;
  gws: { messages: number; conflations: number; gaps: number; syncs: number; lagMs: number }[];
  feedConflations: number;
  slowCloses: number;
  simPackets: number;
  cpuMs: Map<string, number>;
  machine: { busy: number; total: number };
}

interface RoleRow {
  config: Config;
  rate: number;
  simPerS: number;
  inPerS: number;
  deliveredPerS: number;
  clients: ClientStats;
  /** (b), (c): the ingest's drain messages. */
  drains: { perS: number; ticks: number; bars: number; bytes: number; skipped: number } | null;
  gw: { lagMs: number; conflations: number; gaps: number; syncs: number } | null;
  feedConflations: number;
  slowCloses: number;
  /** % of one core, by process name; 'machine' is every core together. */
  cpu: Map<string, number>;
}

interface Ctx {
  sim: Forked<SimCommand>;
  simUrls: { wsUrl: string; apiUrl: string };
  clients: Forked<ClientCommand>;
  redis: Redis;
  nextPort: number;
}

async function snap(input: Service, gws: Service[], fronts: Service[], ctx: Ctx): Promise<Snap> {
  const cpuMs = new Map<string, number>();
  for (const s of [input, ...gws]) cpuMs.set(s.name, procCpuMs(s.child.pid ?? null));
  cpuMs.set('clients', procCpuMs(ctx.clients.child.pid ?? null));
  cpuMs.set('sim', procCpuMs(ctx.sim.child.pid ?? null));
  cpuMs.set('redis', procCpuMs(REDIS_PID));
  cpuMs.set('pg', commCpuMs('postgres'));
  const machine = machineJiffies();
  const at = wallMs();
  const [hi, ...hg] = await Promise.all([input, ...gws].map(health));
  const hf = fronts.map((f) => (f === input ? hi : hg[gws.indexOf(f)]));
  const sim = await ctx.sim.ask<SimCounts>({ cmd: 'stats' });
  return {
    at,
    ticksOut: hi?.pipeline?.ticksOut ?? NaN,
    pub: hi?.publisher ?? null,
    gws: hg.map((h) => h?.feed?.from ?? { messages: NaN, conflations: NaN, gaps: NaN, syncs: NaN, lagMs: NaN }),
    feedConflations: hf.reduce((a, h) => a + (h?.live?.feed?.conflations ?? NaN), 0),
    slowCloses: hf.reduce((a, h) => a + (h?.live?.feed?.slowCloses ?? NaN), 0),
    simPackets: sim.packets,
    cpuMs,
    machine,
  };
}

async function runConfig(cfg: Config, ctx: Ctx): Promise<RoleRow[]> {
  const t0 = wallMs();
  const db: TestDatabase = await createTestDatabase(`scale_${cfg.id}`);
  const prefix = `bscale${RUN_ID}${cfg.id}:`;
  const services: Service[] = [];
  const cleanUp = Symbol(cfg.id);
  leftovers.set(cleanUp, async () => {
    for (const s of services) rmSync(s.dir, { recursive: true, force: true });
    const keys = await ctx.redis.keys(`${prefix}*`);
    if (keys.length > 0) await ctx.redis.del(...keys);
    await db.drop();
  });
  const rows: RoleRow[] = [];
  try {
    await ctx.sim.ask({ cmd: 'rate', rate: RATES[0] });
    const kite = { KITE_WS_URL: ctx.simUrls.wsUrl, KITE_API_URL: ctx.simUrls.apiUrl };
    let input: Service;
    const gws: Service[] = [];
    if (cfg.gateways === 0) {
      input = startService('all', 'all', ctx.nextPort++, { ...kite, DATABASE_URL: db.url, KITE_API_KEY: `scale-${cfg.id}-all` });
      services.push(input);
    } else {
      const split = { ...kite, DATABASE_URL: db.url, REDIS_URL: `redis://${REDIS.host}:${REDIS.port}/0`, REDIS_PREFIX: prefix };
      input = startService('ingest', 'ingest', ctx.nextPort++, { ...split, KITE_API_KEY: `scale-${cfg.id}-ingest` });
      services.push(input);
      // Gateways wait for the ingest's universe in Redis; starting them together is what a deploy does.
      for (let g = 1; g <= cfg.gateways; g++) {
        const s = startService(`gw${g}`, 'gateway', ctx.nextPort++, { ...split, KITE_API_KEY: `scale-${cfg.id}-gw${g}` });
        gws.push(s);
        services.push(s);
      }
    }
    for (const s of services) await ready(s);
    const fronts = gws.length > 0 ? gws : [input];
    const list = (await (await fetch(`${fronts[0].url}/api/instruments`, { headers: { authorization: `Bearer ${SECRET}` } })).json()) as { instruments: { token: number }[] };
    const tokens = list.instruments.map((i) => i.token);
    await ctx.clients.ask({ cmd: 'open', urls: fronts.map((f) => f.url.replace('http', 'ws') + '/ws'), perUrl: CLIENTS / fronts.length, key: SECRET, tokens });
    const up = wallMs() - t0;

    for (const rate of RATES) {
      await ctx.sim.ask({ cmd: 'rate', rate });
      await sleep(T.warm);
      const a = await snap(input, gws, fronts, ctx);
      await ctx.clients.ask({ cmd: 'start' });
      await sleep(T.window);
      const st = await ctx.clients.ask<ClientStats>({ cmd: 'stop' });
      const b = await snap(input, gws, fronts, ctx);
      const s = (b.at - a.at) / 1000;
      const cpu = new Map<string, number>();
      for (const [k, v] of b.cpuMs) cpu.set(k, ((v - a.cpuMs.get(k)!) / (b.at - a.at)) * 100);
      cpu.set('machine', ((b.machine.busy - a.machine.busy) / (b.machine.total - a.machine.total)) * 100 * cpus().length);
      let drains: RoleRow['drains'] = null;
      if (a.pub && b.pub) {
        const msgs = b.pub.messages - a.pub.messages;
        const ticks = (b.pub.ticks - a.pub.ticks) / msgs;
        const bars = (b.pub.bars - a.pub.bars) / msgs;
        drains = { perS: msgs / s, ticks, bars, bytes: DRAIN_HEAD_BYTES + ticks * TICK_BYTES + bars * BAR_BYTES, skipped: b.pub.skipped - a.pub.skipped };
      }
      const gw = gws.length === 0 ? null : {
        lagMs: Math.max(...b.gws.map((g) => g.lagMs)),
        conflations: b.gws.reduce((x, g, i) => x + g.conflations - a.gws[i].conflations, 0),
        gaps: b.gws.reduce((x, g, i) => x + g.gaps - a.gws[i].gaps, 0),
        syncs: b.gws.reduce((x, g, i) => x + g.syncs - a.gws[i].syncs, 0),
      };
      rows.push({
        config: cfg, rate,
        simPerS: (b.simPackets - a.simPackets) / s,
        inPerS: (b.ticksOut - a.ticksOut) / s,
        deliveredPerS: (st.ticks / st.windowMs) * 1000,
        clients: st, drains, gw,
        feedConflations: b.feedConflations - a.feedConflations,
        slowCloses: b.slowCloses - a.slowCloses,
        cpu,
      });
    }
    await ctx.clients.ask({ cmd: 'close' });
    console.log(`  done: ${cfg.label} (up in ${(up / 1000).toFixed(1)} s, ${((wallMs() - t0) / 1000).toFixed(0)} s in all)`);
  } finally {
    await Promise.all(services.map((s) => stopChild(s.child, STOP_MS)));
    await leftovers.get(cleanUp)!();
    leftovers.delete(cleanUp);
  }
  return rows;
}

// --- engines ------------------------------------------------------------------------------------

interface Drain {
  rate: number;
  perS: number;
  ticks: number;
  bars: number;
  bytes: number;
  measured: boolean;
}

/** One message per drain size: batches(size) answers the drain whose ticks round to `size`. */
class DrainSized implements FrameSource {
  private readonly bySize = new Map<number, Template[]>();
  constructor(drains: readonly Drain[]) {
    for (const d of drains) this.bySize.set(Math.round(d.ticks), [sizedTemplate(Math.round(d.bytes), Math.round(d.ticks), Math.round(d.bars))]);
  }
  batches(size: number): Template[] {
    const t = this.bySize.get(size);
    if (!t) throw new RangeError(`DrainSized: no drain of ${size} ticks`);
    return t;
  }
  perInstrument(): Template[] {
    throw new Error('DrainSized: the drain messages are not per instrument');
  }
}

interface EngineCell {
  engine: Engine;
  drain: Drain;
  row: MaxRow | null;
  /** Why there is no row. */
  skipped: string | null;
}

async function runEngines(drains: Drain[]): Promise<{ cells: EngineCell[]; maxPayload: number }> {
  const nc = await natsConnect({ servers: NATS });
  const maxPayload = nc.info?.max_payload ?? 1 << 20;
  await nc.close();
  const source = new DrainSized(drains);
  const subs: SubProc[] = [];
  const cells: EngineCell[] = [];
  try {
    for (let i = 0; i < 2; i++) {
      const s = await SubProc.start(i + 1);
      children.add(s.child);
      subs.push(s);
    }
    for (const engine of ENGINES_COMPARED) {
      const pub = await createPublisher(engine, subs.length);
      try {
        await Promise.all(subs.map((s) => s.ask({ cmd: 'connect', ep: pub.endpoint })));
        await pub.ready();
        const run = new EngineRun(engine, pub, subs, source);
        for (const d of drains) {
          if (engine !== 'redis-pubsub' && d.bytes > maxPayload) {
            cells.push({ engine, drain: d, row: null, skipped: `over NATS max_payload (${fmt(maxPayload)}B)` });
            continue;
          }
          cells.push({ engine, drain: d, row: await run.maxRate(Math.round(d.ticks)), skipped: null });
        }
      } finally {
        await Promise.all(subs.map((s) => s.ask({ cmd: 'disconnect' }, 10_000).catch(() => undefined)));
        await pub.close();
      }
    }
  } finally {
    for (const s of subs) {
      s.kill();
      await exitedOf(s.child);
      children.delete(s.child);
    }
  }
  return { cells, maxPayload };
}

// --- printing -----------------------------------------------------------------------------------

const fmt = (x: number): string => (!Number.isFinite(x) ? '—' : x >= 1e6 ? `${(x / 1e6).toFixed(2)}M` : x >= 1e3 ? `${(x / 1e3).toFixed(1)}k` : x.toFixed(0));
const usStr = (x: number): string => (!Number.isFinite(x) ? '—' : x < 1000 ? `${x.toFixed(0)} µs` : x < 1e6 ? `${(x / 1000).toFixed(1)} ms` : `${(x / 1e6).toFixed(2)} s`);
const pct = (x: number | undefined): string => (x !== undefined && Number.isFinite(x) ? x.toFixed(0) : '—');
const ratio = (x: number, base: number | undefined): string => (base && Number.isFinite(x) && Number.isFinite(base) ? `${(x / base).toFixed(2)}x` : '—');

function printRoles(rows: RoleRow[]): void {
  const base = (rate: number): RoleRow | undefined => rows.find((r) => r.config.id === 'a' && r.rate === rate);
  console.log(`\n1. Roles: ${CLIENTS} FeedClients in another process, each following every instrument in full mode, spread evenly over the fronts; ` +
    `${T.window / 1000} s per rate after ${T.warm / 1000} s at that rate. in = ticks/s out of the pipeline of the Kite-reading process; ` +
    `delivered = ticks/s all clients received (at best ${CLIENTS} × in); latency = client clock at the 'ticks' event − the front's rt, every tick. ` +
    `CPU: % of one core (${cpus().length} cores for everything, so machine ${cpus().length * 100} = full); service = the ROLE processes together. In parentheses: (a), the baseline, at the same rate in this run.`);
  console.table(rows.map((r) => {
    const b = base(r.rate);
    const isBase = r.config.id === 'a';
    const c = r.cpu;
    const serviceOf = (x: RoleRow): number => [...x.cpu].filter(([k]) => k === 'all' || k === 'ingest' || k.startsWith('gw')).reduce((n, [, v]) => n + v, 0);
    const withBase = (mine: string, theirs: string): string => (isBase ? mine : `${mine} (${theirs})`);
    return {
      config: r.config.label,
      'sim rate': fmt(r.rate),
      'in /s': fmt(r.inPerS),
      'delivered /s (× a)': isBase ? fmt(r.deliveredPerS) : `${fmt(r.deliveredPerS)} (${ratio(r.deliveredPerS, b?.deliveredPerS)})`,
      'p50 (a)': withBase(usStr(r.clients.p50), usStr(b?.clients.p50 ?? NaN)),
      'p99 (a)': withBase(usStr(r.clients.p99), usStr(b?.clients.p99 ?? NaN)),
      'conflated frames (ticks)': `${r.clients.conflatedFrames} (${r.clients.conflatedTicks})`,
      'CPU service (a)': withBase(pct(serviceOf(r)), b ? pct(serviceOf(b)) : '—'),
      'CPU clients / sim / redis / pg / machine': `${pct(c.get('clients'))} / ${pct(c.get('sim'))} / ${pct(c.get('redis'))} / ${pct(c.get('pg'))} / ${pct(c.get('machine'))}`,
    };
  }));
  for (const r of rows) {
    const b = base(r.rate);
    if (r.config.id === 'a' || b === undefined) continue;
    record({
      bench: 'scale', name: `${r.config.label}, delivered at ${fmt(r.rate)} ticks/s`, unit: 'ticks/s', better: 'higher', value: r.deliveredPerS,
      baseline: { name: '(a) one ROLE=all process', value: b.deliveredPerS },
    });
    record({
      bench: 'scale', name: `${r.config.label}, p99 tick → client at ${fmt(r.rate)} ticks/s`, unit: 'µs', better: 'lower', value: r.clients.p99,
      baseline: { name: '(a) one ROLE=all process', value: b.clients.p99 },
    });
  }
  console.log('   detail: per process CPU %, the ingest\'s drain messages (per second, ticks and bars each, bytes each), the gateways\' lag behind the ingest, what conflated where');
  console.table(rows.map((r) => ({
    config: r.config.label,
    'sim ticks/s': fmt(r.rate),
    'sim sent/s': fmt(r.simPerS),
    'CPU by process': [...r.cpu].filter(([k]) => k === 'all' || k === 'ingest' || k.startsWith('gw')).map(([k, v]) => `${k} ${pct(v)}`).join(', '),
    'drains/s × ticks, bars → bytes': r.drains ? `${r.drains.perS.toFixed(1)} × ${r.drains.ticks.toFixed(0)}, ${r.drains.bars.toFixed(0)} → ${fmt(r.drains.bytes)}B` : '—',
    'gw lag at end': r.gw ? `${r.gw.lagMs.toFixed(0)} ms` : '—',
    'gw conflations / gaps / syncs': r.gw ? `${r.gw.conflations} / ${r.gw.gaps} / ${r.gw.syncs}` : '—',
    'front conflations / slow closes': `${r.feedConflations} / ${r.slowCloses}`,
    'client ticks min..max': `${fmt(r.clients.minClientTicks)}..${fmt(r.clients.maxClientTicks)}`,
    'latency max': usStr(r.clients.max),
    'clients loop p99': `${r.clients.loopP99.toFixed(1)} ms`,
    'client closes': r.clients.closes,
  })));
}

function printEngines(cells: EngineCell[], drains: Drain[], maxPayload: number): void {
  console.log(`\n2. Engines: the service's fan-out uses ${SERVICE_ENGINE} (src/scale/publisher.ts, src/scale/subscriber.ts); NATS is not wired into the service. ` +
    `Messages of the size of the service's drain messages (40 B head + 512 B a tick + 112 B a bar) at each rate, ${drains.some((d) => d.measured) ? 'as (b)\'s ingest published them' : 'estimated (not measured: SCALE_BENCH_PART=engines)'}, ` +
    'from this process to 2 subscriber processes (2 gateways), at the maximum sustained rate (the slower subscriber\'s; EngineRun#maxRate of bench/engines.bench.ts). ' +
    `Each engine's cell: frames/s, µs/frame (= 1 s / frames per second), CPU/frame (the engine's server + the publisher + both subscribers, per message). NATS max_payload ${fmt(maxPayload)}B.`);
  const cell = (d: Drain, e: Engine): EngineCell | undefined => cells.find((c) => c.drain === d && c.engine === e);
  const cpuPerFrame = (r: MaxRow): { server: number; pub: number; subs: number; total: number } => {
    const per = (p: number): number => ((p / 100) * 1e6) / r.msgsPerS;
    const server = per(r.cpuServer);
    const pub = per(r.cpuPub);
    const subs = per(r.cpuSubs);
    return { server, pub, subs, total: server + pub + subs };
  };
  const name = (e: Engine): string => (e === SERVICE_ENGINE ? `${e} (service)` : e);
  console.table(drains.map((d) => {
    const o: Record<string, string> = {
      'drain at sim rate': `${fmt(d.rate)} ticks/s`,
      'message': `${fmt(d.bytes)}B (${d.ticks.toFixed(0)} ticks, ${d.bars.toFixed(0)} bars)`,
      'service sends': `${d.perS.toFixed(1)}/s`,
    };
    for (const e of ENGINES_COMPARED) {
      const c = cell(d, e);
      o[name(e)] = !c ? '—' : c.row === null ? c.skipped ?? '—'
        : `${fmt(c.row.msgsPerS)}/s, ${usStr(1e6 / c.row.msgsPerS)}, ${usStr(cpuPerFrame(c.row).total)}`;
    }
    const base = cell(d, SERVICE_ENGINE)?.row;
    for (const e of ENGINES_COMPARED) {
      const row = cell(d, e)?.row;
      if (e === SERVICE_ENGINE || !row || !base) continue;
      record({
        bench: 'scale', name: `${e}, drain messages of ${fmt(d.rate)} ticks/s, max rate`, unit: 'msgs/s', better: 'higher', value: row.msgsPerS,
        baseline: { name: `${SERVICE_ENGINE} (the service's)`, value: base.msgsPerS },
      });
    }
    o[`frames/s vs ${SERVICE_ENGINE}`] = ENGINES_COMPARED.filter((e) => e !== SERVICE_ENGINE)
      .map((e) => `${e} ${ratio(cell(d, e)?.row?.msgsPerS ?? NaN, base?.msgsPerS)}`).join(', ');
    return o;
  }));
  console.log('   detail: CPU per message by side at the maximum rate, and that CPU per message times the rate the service sends (% of one core; messages come one by one there, so this is a floor)');
  console.table(cells.filter((c) => c.row !== null).map((c) => {
    const r = c.row!;
    const p = cpuPerFrame(r);
    return {
      engine: name(c.engine),
      message: `${fmt(c.drain.bytes)}B`,
      'frames/s': fmt(r.msgsPerS),
      'MB/s per sub': (r.bytesPerS / 2 ** 20).toFixed(0),
      'CPU/frame server / pub / 2 subs': `${usStr(p.server)} / ${usStr(p.pub)} / ${usStr(p.subs)}`,
      'at the service\'s rate': `${((p.total * c.drain.perS) / 1e4).toFixed(1)}% of a core (${c.drain.perS.toFixed(1)} msgs/s)`,
      'lost (by seq)': r.gaps,
      errors: r.errors,
    };
  }));
}

// --- main -----------------------------------------------------------------------------------------

export default async function run(): Promise<void> {
  const tStart = wallMs();
  console.log(`${loadLine()}; ${QUICK ? 'quick mode' : 'full mode (--quick for shorter windows)'}; rates ${RATES.map(fmt).join(', ')} ticks/s; ${CLIENTS} clients`);
  const onSignal = (sig: NodeJS.Signals): void => {
    killAll();
    // The services are gone (SIGKILL): their database can be dropped. Bounded, then out.
    const code = sig === 'SIGINT' ? 130 : 143;
    setTimeout(() => process.exit(code), 10_000).unref();
    void Promise.allSettled([...leftovers.values()].map((f) => f())).then(() => process.exit(code));
  };
  process.once('exit', killAll);
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const redis = new Redis({ ...REDIS, lazyConnect: true });
  await redis.connect();
  const rows: RoleRow[] = [];
  try {
    if (PART !== 'engines') {
      const sim = await Forked.start<SimCommand, { wsUrl: string; apiUrl: string }>('simulator', './scale-sim.ts', [String(SIM_SEED), String(RATES[0])]);
      const clients = await Forked.start<ClientCommand, unknown>('clients', './scale-clients.ts');
      try {
        let best = { off: NaN, rtt: Infinity };
        for (let i = 0; i < 20; i++) {
          const t1 = wallMs();
          const v = await clients.proc.ask<number>({ cmd: 'clock' });
          const t2 = wallMs();
          if (t2 - t1 < best.rtt) best = { off: v - (t1 + t2) / 2, rtt: t2 - t1 };
        }
        console.log(`clocks: clients − this process = ${(best.off * 1000).toFixed(0)} µs ± ${((best.rtt / 2) * 1000).toFixed(0)} µs (every process reads the same system clock); latencies are not corrected`);
        const ctx: Ctx = { sim: sim.proc, simUrls: sim.up, clients: clients.proc, redis, nextPort: 20_000 + Math.floor(Math.random() * 10_000) };
        // Quick mode: the baseline and one split, so both code paths run.
        for (const cfg of QUICK ? CONFIGS.slice(0, 2) : CONFIGS) rows.push(...await runConfig(cfg, ctx));
      } finally {
        await stopChild(clients.proc.child, STOP_MS);
        await stopChild(sim.proc.child, STOP_MS);
      }
    }
    let engines: { cells: EngineCell[]; maxPayload: number; drains: Drain[] } | null = null;
    if (PART !== 'roles') {
      const drains: Drain[] = RATES.map((rate) => {
        const r = rows.find((x) => x.rate === rate && x.drains !== null && x.config.id === 'b') ?? rows.find((x) => x.rate === rate && x.drains !== null);
        if (r?.drains) return { rate, ...r.drains, measured: true };
        const perS = ESTIMATE.drainsPerS;
        const ticks = rate / perS;
        const bars = ticks * ESTIMATE.barsPerTick;
        return { rate, perS, ticks, bars, bytes: DRAIN_HEAD_BYTES + ticks * TICK_BYTES + bars * BAR_BYTES, measured: false };
      });
      const t0 = wallMs();
      engines = { ...await runEngines(drains), drains };
      console.log(`  done: engines (${((wallMs() - t0) / 1000).toFixed(0)} s)`);
    }
    if (rows.length > 0) printRoles(rows);
    if (engines) printEngines(engines.cells, engines.drains, engines.maxPayload);
  } finally {
    killAll();
    await Promise.all([...children].map(exitedOf));
    await redis.quit();
    process.removeListener('exit', killAll);
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
  }
  console.log(`total ${((wallMs() - tStart) / 1000).toFixed(0)} s`);
}
