/**
 * The ingest lease on the machine's PostgreSQL: one owner at a time, a standby that takes over when
 * the owner releases, when its session is killed, when its process is killed (a child process,
 * SIGKILL), and an owner cut off from the database that declares itself lost before the server
 * lets the standby in. Hand-over times are measured and printed.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../test/support/pg.ts';
import { AppError } from '../core/errors.ts';
import { IngestLease, LEASE_FENCE_SQL, LEASE_LOCK_CLASS, leaseKey, type LeaseOptions } from './lease.ts';

let db: TestDatabase;
beforeAll(async () => { db = await createTestDatabase('lease'); });
afterAll(async () => { await db?.drop(); });

const leases: IngestLease[] = [];
afterAll(async () => { await Promise.all(leases.map((l) => l.release())); });

/** A lease that records its 'lost' errors, released after the file. */
function lease(name: string, holder: string, extra: Partial<LeaseOptions> = {}): IngestLease & { losses: AppError[]; lossAt: number[] } {
  const l = Object.assign(new IngestLease({ url: db.url, name, holder, retryMs: 50, ...extra }), { losses: [] as AppError[], lossAt: [] as number[] });
  l.on('lost', (e: AppError) => { l.losses.push(e); l.lossAt.push(performance.now()); });
  leases.push(l);
  return l;
}

async function until(what: string, cond: () => boolean | Promise<boolean>, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** The sessions PostgreSQL says hold the lease's lock. */
async function lockHolders(name: string): Promise<number[]> {
  const rows = await db.admin.unsafe(
    `SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND classid = ${LEASE_LOCK_CLASS} AND objid = ${leaseKey(name)} AND objsubid = 2 AND granted`);
  return rows.map((r) => Number(r.pid));
}

function exclusive(...ls: IngestLease[]): void {
  expect(ls.filter((l) => l.holds()).length).toBeLessThanOrEqual(1);
}

describe('the ingest lease (a PostgreSQL session advisory lock)', () => {
  it('has one owner; the standby waits, and owns with a higher token once the owner releases', async () => {
    const a = lease('release', 'a:1');
    const b = lease('release', 'b:2');
    const ga = await a.acquire();
    expect(a.holds()).toBe(true);
    expect(a.status()).toMatchObject({ state: 'owner', token: ga.token, holder: 'a:1' });
    const bOwns = b.acquire();
    await until('b standing by, seeing a as the owner', () => b.status().state === 'standby' && b.status().owner?.holder === 'a:1');
    expect(b.status().owner).toMatchObject({ holder: 'a:1', token: ga.token, backendPid: a.status().backendPid });
    exclusive(a, b);
    expect(await lockHolders('release')).toEqual([a.status().backendPid]);

    const t0 = performance.now();
    await a.release();
    const gb = await bOwns;
    const handOverMs = performance.now() - t0;
    console.log(`lease hand-over after release (retryMs 50): ${handOverMs.toFixed(1)} ms`);
    expect(a.holds()).toBe(false);
    expect(b.holds()).toBe(true);
    expect(BigInt(gb.token)).toBeGreaterThan(BigInt(ga.token));
    expect(await lockHolders('release')).toEqual([b.status().backendPid]);
    expect(a.losses).toEqual([]); // a release is not a loss
    expect(handOverMs).toBeLessThan(1000);
  });

  it('hands over when the owner\'s session is killed: the owner reports lost, the standby owns with a higher token', async () => {
    const a = lease('terminate', 'a:1');
    const b = lease('terminate', 'b:2');
    const ga = await a.acquire();
    let aHeldWhenBOwned: boolean | null = null;
    const bOwns = b.acquire().then((g) => { aHeldWhenBOwned = a.holds(); return { ...g, at: performance.now() }; });
    await until('b standing by', () => b.status().owner?.holder === 'a:1');
    exclusive(a, b);

    const t0 = performance.now();
    await db.admin.unsafe('SELECT pg_terminate_backend($1)', [a.status().backendPid]);
    const gb = await bOwns;
    await until('a reporting lost', () => a.losses.length > 0);
    console.log(`lease hand-over after pg_terminate_backend (retryMs 50): ${(gb.at - t0).toFixed(1)} ms; owner reported lost after ${(a.lossAt[0] - t0).toFixed(1)} ms; the old owner still believed it held when the standby took over: ${aHeldWhenBOwned}`);
    expect(a.losses).toHaveLength(1);
    expect(a.losses[0]).toMatchObject({ code: 'LEASE_LOST', details: { reason: 'session-closed', token: ga.token } });
    expect(a.losses[0].message).toMatch(/Stop taking data now/);
    expect(a.status().state).toBe('lost');
    expect(a.holds()).toBe(false);
    expect(b.holds()).toBe(true);
    expect(BigInt(gb.token)).toBeGreaterThan(BigInt(ga.token));
    expect(await lockHolders('terminate')).toEqual([b.status().backendPid]);
    expect(gb.at - t0).toBeLessThan(1000);

    // The fencing token: an owner-only write checked against the old token finds no row, the new one does.
    expect(await db.sql.unsafe(LEASE_FENCE_SQL, ['terminate', ga.token])).toHaveLength(0);
    expect(await db.sql.unsafe(LEASE_FENCE_SQL, ['terminate', gb.token])).toHaveLength(1);
  });

  it('hands over when the owner\'s process is killed with SIGKILL (a child process)', async () => {
    const name = 'sigkill';
    const child = spawnOwner(name);
    try {
      const childToken = await ownerLine(child);
      const b = lease(name, 'b:standby', { retryMs: 500 }); // the default retry interval
      const bOwns = b.acquire().then((g) => ({ ...g, at: performance.now() }));
      await until('b standing by, seeing the child as the owner', () => b.status().owner?.holder === `child:${child.pid}`);
      expect(b.holds()).toBe(false);
      const t0 = performance.now();
      child.kill('SIGKILL');
      const gb = await bOwns;
      const handOverMs = gb.at - t0;
      console.log(`lease hand-over after SIGKILL of the owner's process (retryMs 500): ${handOverMs.toFixed(1)} ms`);
      expect(b.holds()).toBe(true);
      expect(BigInt(gb.token)).toBeGreaterThan(BigInt(childToken));
      expect(handOverMs).toBeLessThan(500 + 1000);
    } finally {
      child.kill('SIGKILL');
    }
  });

  it('an owner cut off from the database declares itself lost before the server lets the standby in', async () => {
    const proxy = await blackholeProxy();
    try {
      const viaProxy = db.url.replace('127.0.0.1:5432', `127.0.0.1:${proxy.port}`);
      const a = lease('partition', 'a:1', { url: viaProxy, checkMs: 100, checkTimeoutMs: 300 });
      const b = lease('partition', 'b:2');
      const ga = await a.acquire();
      const bOwns = b.acquire().then((g) => ({ ...g, at: performance.now() }));
      await until('b standing by', () => b.status().owner?.holder === 'a:1');

      const t0 = performance.now();
      proxy.freeze(); // the owner's packets go nowhere; the server's end of its session stays open
      await until('a reporting lost', () => a.losses.length > 0);
      const lostMs = a.lossAt[0] - t0;
      expect(a.losses[0]).toMatchObject({ code: 'LEASE_LOST', details: { reason: 'check-timeout' } });
      expect(lostMs).toBeLessThan(100 + 300 + 500);
      // The server still holds a's session, so the lock is still a's: nobody owns it twice.
      expect(b.holds()).toBe(false);
      expect(await lockHolders('partition')).toHaveLength(1);

      const t1 = performance.now();
      proxy.cutUpstream(); // the server's end goes too (what its keepalive does for a vanished host)
      const gb = await bOwns;
      console.log(`lease: owner behind a frozen link reported lost after ${lostMs.toFixed(1)} ms (checkMs 100, checkTimeoutMs 300); the standby owned ${(gb.at - t1).toFixed(1)} ms after the server's session ended`);
      expect(b.holds()).toBe(true);
      expect(a.holds()).toBe(false);
      expect(a.lossAt[0]).toBeLessThan(gb.at);
      expect(BigInt(gb.token)).toBeGreaterThan(BigInt(ga.token));
    } finally {
      proxy.close();
    }
  });

  it('asks the server to drop a silent session within three times its own check bound', async () => {
    const a = lease('keepalive', 'a:1', { checkMs: 1000, checkTimeoutMs: 4000 });
    await a.acquire();
    const [s] = await db.admin.unsafe('SELECT application_name FROM pg_stat_activity WHERE pid = $1', [a.status().backendPid]);
    expect(s.application_name).toBe('nifty50-lease a:1');
    // Another session cannot read a session's settings: ask a's own connection (a private field).
    const settings = await (a as unknown as { sql: { unsafe(q: string): Promise<Record<string, string>[]> } }).sql.unsafe(
      "SELECT current_setting('tcp_keepalives_idle') AS idle, current_setting('tcp_keepalives_interval') AS intv, current_setting('tcp_keepalives_count') AS cnt, current_setting('tcp_user_timeout') AS user_timeout");
    expect(settings[0]).toEqual({ idle: '8', intv: '3', cnt: '3', user_timeout: '15000' });
  });

  it('refuses to start without a \'lost\' listener, and a released standby stops waiting', async () => {
    const bare = new IngestLease({ url: db.url, name: 'rules', holder: 'x' });
    leases.push(bare);
    await expect(bare.acquire()).rejects.toMatchObject({ code: 'LEASE_LOST_UNHANDLED' });

    const a = lease('rules', 'a:1');
    const b = lease('rules', 'b:2');
    await a.acquire();
    const bOwns = b.acquire();
    await until('b standing by', () => b.status().state === 'standby' && b.status().owner !== null);
    await b.release();
    await expect(bOwns).rejects.toMatchObject({ code: 'LEASE_RELEASED' });
    expect(b.status().state).toBe('released');
    expect(a.holds()).toBe(true);
    await expect(a.acquire()).rejects.toMatchObject({ code: 'LEASE_ALREADY_STARTED' });
  });

  it('rejects a database that refuses the connection instead of waiting on it', async () => {
    const l = lease('refused', 'a:1', { url: db.url.replace(/\/[^/]+$/, '/no_such_database_here') });
    await expect(l.acquire()).rejects.toMatchObject({ code: 'LEASE_DB_REFUSED' });
  });
});

const LEASE_MODULE = new URL('./lease.ts', import.meta.url).href;
const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** A node process that takes the lease and prints `OWNER <token>`. */
function spawnOwner(name: string): ChildProcess {
  const code = `
    import { IngestLease } from ${JSON.stringify(LEASE_MODULE)};
    const lease = new IngestLease({ url: ${JSON.stringify(db.url)}, name: ${JSON.stringify(name)}, holder: 'child:' + process.pid, retryMs: 50 });
    lease.on('lost', () => process.exit(3));
    const g = await lease.acquire();
    process.stdout.write('OWNER ' + g.token + '\\n');
    setInterval(() => {}, 60_000);
  `;
  return spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
}

function ownerLine(child: ChildProcess): Promise<string> {
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /OWNER (\d+)\n/.exec(out);
      if (m) resolve(m[1]);
    });
    child.once('exit', (c) => reject(new Error(`the owner process exited (${c}) before it owned the lease: ${out}`)));
  });
}

/**
 * A TCP proxy to the PostgreSQL that can stop forwarding without closing anything (a link that
 * silently drops packets), then close its server side.
 */
async function blackholeProxy(): Promise<{ port: number; freeze(): void; cutUpstream(): void; close(): void }> {
  const pairs: { client: net.Socket; upstream: net.Socket }[] = [];
  const server = net.createServer((client) => {
    const upstream = net.connect(5432, '127.0.0.1');
    client.pipe(upstream);
    upstream.pipe(client);
    client.on('error', () => {});
    upstream.on('error', () => {});
    pairs.push({ client, upstream });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as net.AddressInfo).port,
    freeze() {
      for (const { client, upstream } of pairs) {
        client.unpipe(upstream);
        upstream.unpipe(client);
        client.pause();
        upstream.pause();
      }
    },
    cutUpstream() {
      for (const { upstream } of pairs) upstream.destroy();
    },
    close() {
      for (const { client, upstream } of pairs) { client.destroy(); upstream.destroy(); }
      server.close();
    },
  };
}
