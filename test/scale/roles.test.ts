/**
 * Scale-out as a team runs it, on loopback with real processes: the Kite simulator on its own
 * (`npm run sim`), two ROLE=ingest processes contending for the lease (one owner, one standby),
 * two ROLE=gateway processes fed through Redis, and one ROLE=all process on the same simulator as
 * the reference. PostgreSQL is a throwaway database of this file's; Redis keys carry a prefix of
 * this file's.
 *
 * - A client of each gateway receives, instrument by instrument, exactly the ticks a client of the
 *   ROLE=all process receives (field by field, except the receive time `rt`).
 * - An order placed with an Idempotency-Key on one gateway and retried on the other is one order;
 *   a burst of orders over both gateways stays within the account's budget (shared in Redis).
 * - A gateway SIGSTOPped for 5 s: the other gateway's client and the store keep the full rate; the
 *   stopped one delivers live ticks again soon after SIGCONT (the figures are printed).
 * - SIGKILL of the owning ingest: the standby takes over (the time is printed), and market_data
 *   holds no tick twice; what the gap lost is counted and printed.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FeedClient, type FeedTick } from '../../src/client/index.ts';
import { createTestDatabase, type TestDatabase } from '../support/pg.ts';
import { until } from '../support/until.ts';

const WAIT_MS = 60_000;
const SECRET = 'roles0123456789abcdef';
const KEY = `cli:${SECRET}`;
const AUTH = { authorization: `Bearer ${SECRET}` };
const ORDERS_PER_MIN = 20;
const SIM_RATE = 400;

interface Proc {
  name: string;
  child: ChildProcess;
  output(): string;
  exited: Promise<number | null>;
}

const procs: Proc[] = [];
const dirs: string[] = [];

function start(name: string, args: string[], env: Record<string, string>): Proc {
  const child = spawn(process.execPath, ['--import', 'tsx', ...args], {
    env: { PATH: process.env.PATH ?? '', LOG_FORMAT: 'json', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => { out += d.toString(); });
  child.stderr!.on('data', (d: Buffer) => { out += d.toString(); });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const p = { name, child, output: () => out, exited };
  procs.push(p);
  return p;
}

/** The service on a fixed port: the lease's standby answers there before its service does. */
let nextPort = 0;
function service(name: string, env: Record<string, string>): Proc & { url: string } {
  const port = nextPort++;
  const dir = mkdtempSync(join(tmpdir(), `n50-roles-${name}-`));
  dirs.push(dir);
  const p = start(name, ['src/main.ts'], { PORT: String(port), DATA_DIR: dir, WORKERS: '1', API_KEYS: KEY, ...env });
  return Object.assign(p, { url: `http://127.0.0.1:${port}` });
}

async function health(url: string): Promise<Record<string, any> | null> {
  try {
    const r = await fetch(`${url}/health`);
    return r.ok ? (await r.json()) as Record<string, any> : null;
  } catch {
    return null;
  }
}

/** What a tick is, without the receiving process's own clock. */
function content(t: FeedTick): string {
  const { rt: _rt, ...rest } = t as FeedTick & { rt?: number };
  return JSON.stringify(rest);
}

class Recorder {
  readonly byToken = new Map<number, string[]>();
  conflated = 0;
  count = 0;
  constructor(readonly client: FeedClient) {
    client.on('ticks', (ticks, meta) => {
      if (meta.conflated) this.conflated++;
      for (const t of ticks) {
        let list = this.byToken.get(t.t);
        if (list === undefined) this.byToken.set(t.t, (list = []));
        list.push(content(t));
        this.count++;
      }
    });
  }
}

async function record(url: string, tokens: number[]): Promise<Recorder> {
  const client = new FeedClient({ url: url.replace('http', 'ws') + '/ws', key: SECRET, reconnect: false });
  const r = new Recorder(client);
  await client.connect();
  await client.subscribe(tokens, { mode: 'full' });
  return r;
}

/**
 * For each token, `b`'s ticks must be a run of `a`'s: aligned on b's first tick that a has, equal
 * one by one until either ends. A tick's content can recur (the index back at a value within the
 * same second), so every place in `a` holding b's first shared tick is tried, in order, and the
 * first that lines up is taken. Returns how many ticks were compared, and the first difference.
 */
function compare(a: Recorder, b: Recorder): { compared: number; tokens: number; diff: string | null } {
  let compared = 0;
  let tokens = 0;
  for (const [token, bs] of b.byToken) {
    const as = a.byToken.get(token) ?? [];
    const known = new Set(as);
    const j0 = bs.findIndex((s) => known.has(s));
    if (j0 < 0) continue;
    let best: { i: number; n: number; diff: string | null } | null = null;
    for (let i0 = as.indexOf(bs[j0]); i0 >= 0; i0 = as.indexOf(bs[j0], i0 + 1)) {
      let i = i0;
      let j = j0;
      let diff: string | null = null;
      for (; i < as.length && j < bs.length; i++, j++) {
        if (as[i] !== bs[j]) {
          diff = `token ${token}, tick ${j}:\n  all:     ${as[i]}\n  gateway: ${bs[j]}`;
          break;
        }
      }
      if (best === null || (best.diff !== null && diff === null)) best = { i: i0, n: j - j0, diff };
      if (diff === null) break;
    }
    // Ticks before the alignment point came before the other client subscribed.
    if (j0 > 2 && best!.i > 2) return { compared, tokens, diff: `token ${token}: ${j0} ticks before the first shared one` };
    tokens++;
    compared += best!.n;
    if (best!.diff !== null) return { compared, tokens, diff: best!.diff };
  }
  return { compared, tokens, diff: null };
}

let db: TestDatabase;
let redis: Redis;
const prefix = `troles${randomBytes(3).toString('hex')}:`;
let sim: Proc;
let simEnv: Record<string, string>;
let ingestA: Proc & { url: string };
let ingestB: Proc & { url: string };
let gw1: Proc & { url: string };
let gw2: Proc & { url: string };
let all: Proc & { url: string };
let tokens: number[];

beforeAll(async () => {
  // Ports: a free block from the kernel's ephemeral range is not guaranteed; pick one at random
  // in a range the kernel does not hand out (below 32768) and let a clash fail loudly.
  nextPort = 20_000 + Math.floor(Math.random() * 10_000);
  db = await createTestDatabase('roles');
  redis = new Redis('redis://127.0.0.1:6379/0');
  sim = start('sim', ['src/kite/sim/main.ts'], { SIM_PORT: String(nextPort++), SIM_RATE: String(SIM_RATE), SIM_SEED: '15', LOG_LEVEL: 'info' });
  const wsUrl = await until('the simulator to listen', () => /KITE_WS_URL=(\S+) KITE_API_URL=(\S+?)"/.exec(sim.output()), WAIT_MS);
  simEnv = { KITE_WS_URL: wsUrl[1], KITE_API_URL: wsUrl[2] };
  const split = { ...simEnv, DATABASE_URL: db.url, REDIS_URL: 'redis://127.0.0.1:6379/0', REDIS_PREFIX: prefix };
  ingestA = service('ingest-a', { ...split, ROLE: 'ingest', KITE_API_KEY: 'ingest', KITE_ACCESS_TOKEN: 'tok' });
  await until('ingest A to own the lease', async () => (await health(ingestA.url))?.lease?.state === 'owner', WAIT_MS);
  ingestB = service('ingest-b', { ...split, ROLE: 'ingest', KITE_API_KEY: 'ingest', KITE_ACCESS_TOKEN: 'tok' });
  // The account's order budget, low enough that one burst crosses it: 20 a minute.
  const gwEnv = { ...split, ROLE: 'gateway', KITE_ORDER_RATE_PER_MIN: String(ORDERS_PER_MIN) };
  gw1 = service('gateway-1', gwEnv);
  gw2 = service('gateway-2', gwEnv);
  // The reference: one process, its own embedded database and in-process cache, the same simulator.
  all = service('all', { ...simEnv, ROLE: 'all', KITE_API_KEY: 'all', KITE_ACCESS_TOKEN: 'tok' });
  await until('ingest B to stand by', async () => (await health(ingestB.url))?.lease === 'standby', WAIT_MS);
  for (const p of [gw1, gw2]) await until(`${p.name} to be live`, async () => (await health(p.url))?.feed?.from?.state === 'live', WAIT_MS);
  await until('the ROLE=all process to take ticks', async () => (await health(all.url))?.pipeline?.ticksOut > 0, WAIT_MS);
  const list = (await (await fetch(`${gw1.url}/api/instruments`, { headers: AUTH })).json()) as { instruments: { token: number }[] };
  tokens = list.instruments.map((i) => i.token);
}, 180_000);

afterAll(async () => {
  for (const p of procs) p.child.kill('SIGKILL');
  await Promise.all(procs.map((p) => p.exited));
  await redis?.keys(`${prefix}*`).then((keys) => (keys.length > 0 ? redis.del(...keys) : 0)).catch(() => {});
  await redis?.quit();
  await db?.drop();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
}, 60_000);

describe('one ingest and two gateways', () => {
  it('give a client on each gateway exactly the ticks a client of a ROLE=all process gets', async () => {
    const ref = await record(all.url, tokens);
    const a = await record(gw1.url, tokens);
    const b = await record(gw2.url, tokens);
    // Enough of the stream on every client for most instruments to tick several times.
    await until('2000 ticks on every client', () => [ref, a, b].every((r) => r.count >= 2000), WAIT_MS);
    for (const r of [ref, a, b]) r.client.close();
    for (const [name, r] of [['gateway 1', a], ['gateway 2', b]] as const) {
      const c = compare(ref, r);
      console.log(`${name}: ${c.compared} ticks of ${c.tokens} instruments equal to the ROLE=all client's`);
      expect(c.diff, name).toBeNull();
      expect(c.compared, name).toBeGreaterThan(1000);
      expect(r.conflated, `${name}: conflated frames at ${SIM_RATE} ticks/s`).toBe(0);
    }
  }, 120_000);

  it('answer an Idempotency-Key retried on the other gateway with the same order', async () => {
    const body = JSON.stringify({ exchange: 'NSE', tradingsymbol: 'INFY', transaction_type: 'BUY', quantity: 1, product: 'CNC', order_type: 'MARKET', variety: 'regular', market_protection: -1 });
    const headers = { ...AUTH, 'content-type': 'application/json', 'idempotency-key': `roles-${randomBytes(4).toString('hex')}` };
    const first = await fetch(`${gw1.url}/api/orders`, { method: 'POST', headers, body });
    const firstBody = await first.json() as Record<string, any>;
    expect(first.status, JSON.stringify(firstBody)).toBeLessThan(300);
    const again = await fetch(`${gw2.url}/api/orders`, { method: 'POST', headers, body });
    const againBody = await again.json() as Record<string, any>;
    expect(again.status).toBe(first.status);
    expect(againBody).toEqual(firstBody);
    const [{ n }] = await db.sql`SELECT count(*)::int AS n FROM orders`;
    expect(n).toBe(1);
    // Filled once, by the gateway that placed it: neither the other gateway nor the ingest works it.
    await until('the order to complete', async () => (await db.sql`SELECT status FROM orders`)[0].status === 'COMPLETE', WAIT_MS);
    const [{ trades }] = await db.sql`SELECT count(*)::int AS trades FROM trades`;
    expect(trades).toBe(1);
  }, 60_000);
});

describe('replay on a gateway', () => {
  it('replays what the ingest stored, through the gateway\'s own /ws/replay endpoint', async () => {
    const [{ from, to, n }] = await db.sql`SELECT (extract(epoch FROM min(time)) * 1000)::float8 AS from,
      (extract(epoch FROM max(time)) * 1000 + 1)::float8 AS to, count(*)::int AS n FROM market_data`;
    const made = await fetch(`${gw1.url}/api/replays`, {
      method: 'POST', headers: { ...AUTH, 'content-type': 'application/json' },
      body: JSON.stringify({ from, to, speed: 'max', start: 'subscribe' }),
    });
    const session = await made.json() as Record<string, any>;
    expect(made.status, JSON.stringify(session)).toBe(201);
    const client = new FeedClient({ url: `${gw1.url.replace('http', 'ws')}${session.ws}`, key: SECRET, reconnect: false });
    let got = 0;
    client.on('ticks', (ts) => { got += ts.length; });
    await client.connect();
    await client.subscribe(tokens, { mode: 'ltp' });
    const done = await until('the replay to end', async () => {
      const s = await (await fetch(`${gw1.url}/api/replays/${session.id}`, { headers: AUTH })).json() as Record<string, any>;
      return s.state === 'ended' && got === s.ticks ? s : null;
    }, WAIT_MS);
    client.close();
    // (Ticks of the range still in flight to the store when it was read may come on top of n.)
    console.log(`gateway replay: ${done.ticks} ticks sent and received; ${n} were stored in the range when it was opened`);
    expect(done.ticks).toBeGreaterThanOrEqual(n);
    await fetch(`${gw1.url}/api/replays/${session.id}`, { method: 'DELETE', headers: AUTH });
  }, 60_000);
});

describe('orders across gateways', () => {
  it('keep a burst spread over both gateways within the account\'s budget', async () => {
    const body = (i: number) => JSON.stringify({ exchange: 'NSE', tradingsymbol: i % 2 ? 'TCS' : 'INFY', transaction_type: 'BUY', quantity: 1, product: 'CNC', order_type: 'MARKET', variety: 'regular', market_protection: -1 });
    const headers = { ...AUTH, 'content-type': 'application/json' };
    const answers = await Promise.all(Array.from({ length: 3 * ORDERS_PER_MIN }, (_, i) =>
      fetch(`${(i % 2 ? gw2 : gw1).url}/api/orders`, { method: 'POST', headers, body: body(i) }).then(async (r) => ({ status: r.status, body: await r.text() }))));
    const placed = answers.filter((a) => a.status < 300).length;
    const limited = answers.filter((a) => a.status === 429).length;
    const [{ n }] = await db.sql`SELECT count(*)::int AS n FROM orders`;
    console.log(`order burst: ${answers.length} requests over 2 gateways, ${placed} placed, ${limited} refused with 429; ${n} orders stored (budget ${ORDERS_PER_MIN} a minute)`);
    expect(placed + limited, JSON.stringify(answers.find((a) => a.status >= 300 && a.status !== 429))).toBe(answers.length);
    // The earlier test placed one order in this minute too.
    expect(n).toBeLessThanOrEqual(ORDERS_PER_MIN);
    expect(placed).toBeGreaterThan(0);
    expect(placed).toBeLessThanOrEqual(ORDERS_PER_MIN);
  }, 60_000);
});

describe('a gateway SIGSTOPped for 5 s', () => {
  it('holds up neither the ingest, the store nor the other gateway, and catches up to live values when resumed', async () => {
    const c1 = await record(gw1.url, tokens);
    const c2 = await record(gw2.url, tokens);
    await until('ticks on both clients', () => c1.count > 100 && c2.count > 100, WAIT_MS);
    const rows = async () => (await db.sql`SELECT count(*)::int AS n FROM market_data`)[0].n as number;
    const rows0 = await rows();
    const c1Before = c1.count;
    // Gateway 1's conflations from here on: those of earlier tests' load are not this stop's.
    const h1Conflations = (await health(gw1.url))?.feed?.from?.conflations as number;
    const stoppedAt = Date.now();
    gw2.child.kill('SIGSTOP');
    try {
      // The stop lasts 5 s by the issue's terms: this waits for that time and for gateway 1's client to keep receiving.
      await until('5 s of the stop', () => Date.now() - stoppedAt >= 5000, 10_000);
    } finally {
      gw2.child.kill('SIGCONT');
    }
    const stopMs = Date.now() - stoppedAt;
    const c1During = c1.count - c1Before;
    await until('the writer to commit what came during the stop', async () => (await db.sql`SELECT count(*)::int AS n FROM market_data WHERE recv_time > ${new Date(stoppedAt + stopMs)}`)[0].n > 0, WAIT_MS);
    const stored = (await db.sql`SELECT count(*)::int AS n FROM market_data WHERE recv_time > ${new Date(stoppedAt)} AND recv_time <= ${new Date(stoppedAt + stopMs)}`)[0].n as number;
    // Caught up: a tick the front received after the resume reaches gateway 2's client.
    const resumedUs = (stoppedAt + stopMs) * 1000;
    let latest = 0;
    c2.client.on('ticks', (ticks) => {
      for (const t of ticks as (FeedTick & { rt: number })[]) latest = Math.max(latest, t.rt);
    });
    await until('gateway 2 to deliver live ticks again', () => latest > resumedUs, WAIT_MS);
    const catchUpMs = Date.now() - (stoppedAt + stopMs);
    const h2 = await health(gw2.url);
    const h1 = await health(gw1.url);
    console.log(`SIGSTOP of gateway 2 for ${stopMs} ms: gateway 1's client received ${c1During} ticks (${Math.round(c1During / (stopMs / 1000))}/s, simulator ${SIM_RATE}/s), `
      + `market_data took ${stored} rows (${Math.round(stored / (stopMs / 1000))}/s); gateway 2 live again ${catchUpMs} ms after SIGCONT, `
      + `conflations ${h2?.feed?.from?.conflations}, gaps ${h2?.feed?.from?.gaps}, resyncs ${h2?.feed?.from?.syncs}; rows in market_data ${rows0} → ${await rows()}`);
    c1.client.close();
    c2.client.close();
    // Full rate elsewhere: within a fifth of the simulator's rate (a 2-core machine running 6 processes).
    expect(c1During / (stopMs / 1000)).toBeGreaterThan(0.8 * SIM_RATE);
    expect(stored / (stopMs / 1000)).toBeGreaterThan(0.8 * SIM_RATE);
    expect(h1?.feed?.from?.conflations - h1Conflations, 'gateway 1 conflated while gateway 2 was stopped').toBe(0);
    expect(h2?.feed?.from?.state).toBe('live');
  }, 120_000);
});

describe('the ingest lease', () => {
  it('hands over to the standby when the owner is SIGKILLed, with no tick stored twice and the gap counted', async () => {
    await until('rows in market_data', async () => (await db.sql`SELECT count(*)::int AS n FROM market_data`)[0].n > 500, WAIT_MS);
    // The reference process keeps taking the feed through the gap: what it received and the
    // store lacks is what the gap lost.
    const keyOf = (token: number, tsMs: number, price: number, volume: number) => `${token}|${Math.floor(tsMs / 1000)}|${price}|${volume}`;
    const seen = new Map<string, number>();
    const ref = new FeedClient({ url: all.url.replace('http', 'ws') + '/ws', key: SECRET, reconnect: false });
    ref.on('ticks', (ticks) => {
      for (const t of ticks as (FeedTick & { v: number })[]) seen.set(keyOf(t.t, t.ts, t.p, t.v), t.t);
    });
    await ref.connect();
    await ref.subscribe(tokens, { mode: 'full' });
    await until('the reference to receive ticks', () => seen.size > 200, WAIT_MS);

    const killedAt = Date.now();
    ingestA.child.kill('SIGKILL');
    await ingestA.exited;
    const owner = await until('ingest B to own the lease', async () => {
      const h = await health(ingestB.url);
      return h?.lease?.state === 'owner' && h.pipeline?.ticksOut > 0 ? h : null;
    }, WAIT_MS);
    const healthMs = Date.now() - killedAt;
    await until('rows from the new owner', async () => (await db.sql`SELECT count(*)::int AS n FROM market_data WHERE recv_time > ${new Date(killedAt)}`)[0].n > 200, WAIT_MS);
    const stoppedAt = Date.now();
    ref.close();
    // Everything the reference saw is stored by now unless the gap lost it: wait for the writer to
    // commit past the end of the recording.
    await until('the store to pass the recording', async () => (await db.sql`SELECT count(*)::int AS n FROM market_data WHERE recv_time > ${new Date(stoppedAt + 500)}`)[0].n > 0, WAIT_MS);

    // A tick stored twice across the hand-over: a row of the new owner's equal, field by field, to
    // the row stored just before it for the same token (Kite's snapshot on the new owner's
    // subscribe, repeating the old owner's last tick). Within one process equal consecutive
    // packets are dropped by the shard's filter, so the store never holds two equal neighbours.
    // A row equal to an older, not adjacent, row is a new tick: the index back at a value within
    // the same exchange second (A -> B -> A) is stored three times, rightly, and a hand-over that
    // takes 300 ms can land the new owner's ticks in the old owner's last second.
    const fields = db.sql`(time, kind, price, last_qty, avg_price, volume, buy_qty, sell_qty, oi, high, low, last_trade_time, depth)`;
    const [{ total, twice, recurring }] = await db.sql`
      SELECT (SELECT count(*)::int FROM market_data) AS total,
             count(*) FILTER (WHERE k IS NOT DISTINCT FROM prev)::int AS twice,
             count(*) FILTER (WHERE EXISTS (
               SELECT 1 FROM market_data a WHERE a.token = x.token AND a.recv_time <= ${new Date(killedAt)}
                 AND (a.time, a.kind, a.price, a.last_qty, a.avg_price, a.volume, a.buy_qty, a.sell_qty, a.oi, a.high, a.low, a.last_trade_time, a.depth) IS NOT DISTINCT FROM x.k))::int AS recurring
      FROM (SELECT token, recv_time, ${fields} AS k, lag(${fields}) OVER (PARTITION BY token ORDER BY recv_time, seq) AS prev
            FROM market_data) x
      WHERE x.recv_time > ${new Date(killedAt)}`;
    const [{ first }] = await db.sql`SELECT min(recv_time) AS first FROM market_data WHERE recv_time > ${new Date(killedAt)}`;
    const stored = new Set((await db.sql`SELECT token::int AS token, time, price, volume::float8 AS volume FROM market_data WHERE recv_time > ${new Date(killedAt - 30_000)}`)
      .map((r) => keyOf(r.token, (r.time as Date).getTime(), r.price, r.volume)));
    let lost = 0;
    for (const k of seen.keys()) if (!stored.has(k)) lost++;
    const dataGapMs = (first as Date).getTime() - killedAt;
    console.log(`ingest hand-over: the standby's first stored tick ${dataGapMs} ms after SIGKILL of the owner (its /health said owner after ${healthMs} ms; `
      + `lease token ${owner.lease.token}); ticks the reference received and the store lacks: ${lost} of ${seen.size}; `
      + `${total} rows in market_data, ${twice} stored twice (equal to the token's previous row), ${recurring} equal to an older row of the old owner's (a value recurring)`);
    expect(owner.lease.token).toBe('2');
    expect(twice).toBe(0);
    // Lost ticks are those of the gap only: at 400 ticks/s, not more than the gap's worth.
    expect(lost).toBeLessThanOrEqual(Math.ceil(((dataGapMs + 2000) / 1000) * SIM_RATE));
    // The hand-over is listed as a feed gap, for every instrument.
    const gap = await until('the hand-over in /api/gaps', async () => {
      const b = (await (await fetch(`${gw1.url}/api/gaps`, { headers: AUTH })).json()) as { gaps: { cause: string; conn: number | null; instruments: number[]; durationMs: number }[] };
      return b.gaps.find((g) => g.cause.startsWith('ingest hand-over'));
    }, WAIT_MS);
    console.log(`hand-over gap recorded: ${gap.cause}, ${gap.durationMs} ms, ${gap.instruments.length} instruments`);
    expect(gap.conn).toBeNull();
    expect(gap.instruments.length).toBe(tokens.length);
    // The gateways follow the new owner.
    for (const p of [gw1, gw2]) {
      await until(`${p.name} live on the new owner`, async () => {
        const h = await health(p.url);
        return h?.feed?.from?.state === 'live' && h.feed.from.epoch === owner.publisher.epoch;
      }, WAIT_MS);
    }
  }, 120_000);
});
