/**
 * The ingest lease: which one process owns the Kite connections (issue 15). Kite allows three
 * WebSocket connections per API key, and two ingests would store every tick twice, so of the
 * ingest processes (the StatefulSet's two pods, k8s/base/ingest.yaml) exactly one may take data;
 * the others stand by and take over when it dies.
 *
 * The lease is a PostgreSQL session-level advisory lock, held by one reserved connection:
 *
 * - The database is already a hard dependency of the ingest (the writer commits to it), so the
 *   lease adds no service that can fail on its own: no lease that outlives a database it cannot
 *   write to, none lost while writing goes on.
 * - PostgreSQL releases the lock the moment the holder's session ends. A process that dies, however
 *   it dies (kill -9, OOM, a crash in the driver), has its socket closed by its kernel, and the
 *   standby's next try (every `retryMs`) gets the lock. So there is no expiry clock to tune, and no
 *   expiry that runs out under a live owner: while the session lives nobody else can hold the lock.
 * - A host that vanishes (power, partition) sends no FIN. The server notices by TCP keepalive and
 *   tcp_user_timeout, which this connection sets for its own session (serverTimeoutMs below); the
 *   client side notices first, by its check every `checkMs` that must answer within
 *   `checkTimeoutMs`. The server waits at least three times the client's bound, so an owner cut off
 *   from the database has declared itself lost well before the server lets a standby in.
 * - The fencing token is a counter in `ingest_lease`, bumped in the same session right after the
 *   lock is taken: each owner's token is larger than every earlier owner's. Two owners at once are
 *   impossible while the lock is held; what remains is an old owner that was frozen (a paused VM)
 *   while its session was cut and a standby took over. Its lease connection is dead, so its next
 *   check reports 'lost' within `checkMs`; a database write that must come from the owner only can
 *   close even that gap by checking the token in its own transaction (LEASE_FENCE_SQL).
 *
 * The lease lives in the main thread with the `postgres` driver, which the storage keeps out of it
 * (src/storage/supervisor.ts db()): the driver's uncaught error that reason guards against is the
 * COPY path's (workers/writer/sink-pg.ts), and the lease runs only simple statements. An error that
 * escaped anyway would end the process, which ends the session: the safe way for a lease to fail.
 *
 * The connection must reach PostgreSQL itself, or a session-pooling proxy: behind a transaction
 * pooler (PgBouncer pool_mode=transaction) a session lock is taken on a server connection that
 * other clients then use.
 *
 * `ingest_lease` is created by the lease itself (CREATE TABLE IF NOT EXISTS, under the lock, so two
 * processes never race to create it), not by a migration in sql/: a standby takes the lease before
 * its writer thread runs the migrations, and the lease exists on a PostgreSQL server only, never on
 * the embedded database.
 *
 * | column      | meaning                                                                     |
 * |-------------|-----------------------------------------------------------------------------|
 * | name        | the lease (LeaseOptions.name); the advisory lock's key is derived from it     |
 * | token       | the fencing token: 1 for the first owner, one more for each owner after it    |
 * | holder      | the last owner's LeaseOptions.holder (host:pid)                               |
 * | acquired_at | when it took the lease                                                      |
 *
 * Who holds it now: `SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND classid = 1279607123
 * AND objid = <leaseKey(name)> AND objsubid = 2 AND granted` (status().owner.backendPid; the
 * session's application_name is `nifty50-lease <holder>`). `SELECT pg_terminate_backend(<pid>)`
 * forces a hand-over.
 */
import { EventEmitter } from 'node:events';
import { hostname } from 'node:os';
import type { Socket } from 'node:net';
import postgres from 'postgres';
import { AppError } from '../core/errors.ts';
import { pgOptions } from '../core/db.ts';
import type { Logger } from '../log.ts';

/** The advisory lock's first key, 'LEAS' as bytes: its own key space, apart from the migrator's. */
export const LEASE_LOCK_CLASS = 0x4c454153;
const DEFAULT_NAME = 'nifty50-ingest';
const DEFAULT_RETRY_MS = 500;
const DEFAULT_CHECK_MS = 1000;
const DEFAULT_CHECK_TIMEOUT_MS = 2000;
/** The server never gives up on a silent client sooner than this, however short the client's checks. */
const MIN_SERVER_TIMEOUT_MS = 10_000;
/** While standing by, a database that cannot be reached is logged again after this long. */
const STANDBY_WARN_EVERY_MS = 30_000;

/** In an owner-only write's transaction: see src/core/lease-fence.ts. */
export { LEASE_FENCE_SQL } from '../core/lease-fence.ts';

const CREATE_TABLE_SQL = `CREATE TABLE IF NOT EXISTS ingest_lease (
  name        text PRIMARY KEY,
  token       bigint NOT NULL,
  holder      text NOT NULL,
  acquired_at timestamptz NOT NULL
)`;

const BUMP_SQL = `INSERT INTO ingest_lease AS l (name, token, holder, acquired_at) VALUES ($1, 1, $2, now())
  ON CONFLICT (name) DO UPDATE SET token = l.token + 1, holder = EXCLUDED.holder, acquired_at = EXCLUDED.acquired_at
  RETURNING token::text AS token, acquired_at, pg_backend_pid() AS pid`;

export interface LeaseOptions {
  /** The PostgreSQL the ingest writes to (DATABASE_URL). */
  url: string;
  /** Who this is, for status() and the other processes' logs: e.g. defaultHolder(). */
  holder: string;
  /** The lease's name: processes contend only with those of the same name. 'nifty50-ingest' by default. */
  name?: string;
  /** How often a standby tries to take the lock, ms (500): the hand-over after an owner's death is about this. */
  retryMs?: number;
  /** How often the owner checks that its session still holds the lock, ms (1000). */
  checkMs?: number;
  /** A check unanswered this long loses the lease, ms (2000). */
  checkTimeoutMs?: number;
  log?: Logger;
}

export type LeaseState = 'idle' | 'standby' | 'owner' | 'lost' | 'released';

export interface LeaseGrant {
  /** The fencing token (a bigint, as text): larger than every earlier owner's. */
  token: string;
  /** From acquire() to holding the lock, ms. */
  waitedMs: number;
}

/** The current owner as last seen: the lock's holder (pg_locks) and the last acquisition (ingest_lease). */
export interface LeaseOwner {
  /** The owner's session, or null when nobody holds the lock (between owners). */
  backendPid: number | null;
  /** The last owner's holder and token (null before the first). */
  holder: string | null;
  token: string | null;
  acquiredAt: Date | null;
  /** When this was read. */
  seenAt: Date;
}

export interface LeaseStatus {
  name: string;
  holder: string;
  state: LeaseState;
  /** Since when in `state`. */
  since: Date;
  /** This process's fencing token while it owns the lease (kept after it is lost or released). */
  token: string | null;
  /** This process's session (owner only). */
  backendPid: number | null;
  owner: LeaseOwner | null;
  /** Why the lease was lost (state 'lost'). */
  lost: AppError | null;
}

/** `host:pid`: what a holder is unless given otherwise. */
export function defaultHolder(): string {
  return `${hostname()}:${process.pid}`;
}

/** The advisory lock's second key for a lease name: FNV-1a, 31 bits (positive, so pg_locks.objid shows it as is). */
export function leaseKey(name: string): number {
  let h = 0x811c9dc5;
  for (const b of Buffer.from(name, 'utf8')) h = Math.imul(h ^ b, 0x01000193) >>> 0;
  return h & 0x7fffffff;
}

/**
 * The server-side bound for a client that went silent (a vanished host): TCP keepalive probes and
 * tcp_user_timeout on the server's end of this session, at least three times the client's own
 * bound (checkMs + checkTimeoutMs) and at least MIN_SERVER_TIMEOUT_MS.
 */
export function serverTimeoutMs(checkMs: number, checkTimeoutMs: number): number {
  return Math.max(MIN_SERVER_TIMEOUT_MS, 3 * (checkMs + checkTimeoutMs));
}

/** SQLSTATEs that waiting will not cure: refused credentials, no such database, no privilege. */
function refusal(e: unknown): boolean {
  const code = (e as { code?: unknown }).code;
  return typeof code === 'string' && (code.startsWith('28') || code === '3D000' || code === '42501');
}

function why(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/**
 * One process's claim on the ingest lease. acquire() waits, as a standby, until this process holds
 * the lock; from then on holds() is true until release(), or until the lease is lost, which emits
 * 'lost' (an AppError, code LEASE_LOST) once: the owner must stop taking data at once. A lost or
 * released lease stays so; to stand by again, make a new IngestLease.
 */
export class IngestLease extends EventEmitter {
  readonly name: string;
  readonly holder: string;
  readonly key: number;
  private readonly retryMs: number;
  private readonly checkMs: number;
  private readonly checkTimeoutMs: number;
  private readonly log: Logger | undefined;
  private state: LeaseState = 'idle';
  private since = new Date();
  private token: string | null = null;
  private owner: LeaseOwner | null = null;
  private lostWith: AppError | null = null;
  private sql: postgres.Sql<any>;
  /** The client's current socket, and the session the lock was taken in. */
  private socket: Socket | null = null;
  private session: { socket: Socket; pid: number } | null = null;
  private checkTimer: NodeJS.Timeout | null = null;
  /** Ends a standby's wait between tries early (release()). */
  private wake: (() => void) | null = null;

  constructor(private readonly opts: LeaseOptions) {
    super();
    this.name = opts.name ?? DEFAULT_NAME;
    this.holder = opts.holder;
    this.key = leaseKey(this.name);
    this.retryMs = opts.retryMs ?? DEFAULT_RETRY_MS;
    this.checkMs = opts.checkMs ?? DEFAULT_CHECK_MS;
    this.checkTimeoutMs = opts.checkTimeoutMs ?? DEFAULT_CHECK_TIMEOUT_MS;
    this.log = opts.log;
    this.sql = this.client();
  }

  /**
   * One connection, never recycled (max_lifetime, idle_timeout off: a recycled connection would drop
   * the lock), on a socket of our own so a lost lease can cut it at once. Its session asks the server
   * to drop it when this host goes silent for serverTimeoutMs.
   */
  private client(): postgres.Sql<any> {
    const base = pgOptions() as { socket: (o: unknown) => Promise<Socket> };
    const serverMs = serverTimeoutMs(this.checkMs, this.checkTimeoutMs);
    const idleS = Math.ceil(serverMs / 2000);
    const intervalS = Math.max(1, Math.ceil(serverMs / 6000));
    return postgres(this.opts.url, pgOptions({
      max: 1,
      max_lifetime: null,
      idle_timeout: 0,
      connect_timeout: 10,
      keep_alive: idleS,
      connection: {
        application_name: `nifty50-lease ${this.holder}`.slice(0, 63),
        tcp_keepalives_idle: idleS,
        tcp_keepalives_interval: intervalS,
        tcp_keepalives_count: 3,
        tcp_user_timeout: serverMs,
      },
      socket: async (o: unknown) => {
        const s = await base.socket(o);
        this.socket = s;
        const gone = () => this.socketGone(s);
        s.once('end', gone);
        s.once('close', gone);
        return s;
      },
    } as postgres.Options<Record<string, postgres.PostgresType>>));
  }

  /** Read afresh after each await: release() may have come in meanwhile. */
  private standingBy(): boolean {
    return this.state === 'standby';
  }

  holds(): boolean {
    return this.state === 'owner';
  }

  status(): LeaseStatus {
    return {
      name: this.name,
      holder: this.holder,
      state: this.state,
      since: this.since,
      token: this.token,
      backendPid: this.state === 'owner' ? this.session?.pid ?? null : null,
      owner: this.owner,
      lost: this.lostWith,
    };
  }

  /**
   * Wait, as a standby, until this process holds the lease; then it is the owner until release() or
   * 'lost'. A database that cannot be reached is waited for (logged); one that refuses us (password,
   * database, privilege) rejects with LEASE_DB_REFUSED. Listen for 'lost' before calling this; a
   * lease lost before acquire() could resolve rejects it with that LEASE_LOST.
   */
  async acquire(): Promise<LeaseGrant> {
    if (this.state !== 'idle') {
      throw new AppError('LEASE_ALREADY_STARTED', `lease ${this.name} is ${this.state}: acquire() once per IngestLease; make a new one to stand by again.`, { state: this.state });
    }
    if (this.listenerCount('lost') === 0) {
      throw new AppError('LEASE_LOST_UNHANDLED', `listen for 'lost' on lease ${this.name} before acquire(): an owner that cannot be told it lost the lease must not take it.`);
    }
    const started = performance.now();
    this.enter('standby');
    let failing: { message: string; at: number } | null = null;
    for (;;) {
      if (!this.standingBy()) throw this.released();
      const previous = this.owner?.holder ?? null;
      try {
        const grant = await this.tryTake();
        if (failing !== null) this.log?.info({ lease: this.name }, `lease ${this.name}: database reachable again`);
        failing = null;
        if (grant !== null) {
          // The session may have closed already (the 'lost' listener has run): never hand out a lost lease.
          if (this.lostWith !== null) throw this.lostWith;
          const waitedMs = Math.round(performance.now() - started);
          this.log?.info({ lease: this.name, token: grant, waitedMs, previous },
            `lease ${this.name}: this process (${this.holder}) is the owner, token ${grant}, after ${waitedMs} ms`);
          this.scheduleCheck();
          return { token: grant, waitedMs };
        }
      } catch (e) {
        if (e === this.lostWith) throw e;
        if (!this.standingBy()) throw this.released();
        if (refusal(e)) {
          await this.close();
          this.enter('released');
          throw new AppError('LEASE_DB_REFUSED', `lease ${this.name}: PostgreSQL refused the lease connection (${why(e)}): fix DATABASE_URL's user, password or database, or grant this user CREATE on the schema, and restart.`,
            { sqlstate: (e as { code?: string }).code });
        }
        const message = why(e);
        const now = performance.now();
        if (failing === null || failing.message !== message || now - failing.at > STANDBY_WARN_EVERY_MS) {
          this.log?.warn({ lease: this.name, err: message }, `lease ${this.name}: could not try the lease (${message}); still standing by, trying again every ${this.retryMs} ms`);
          failing = { message, at: now };
        }
      }
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, this.retryMs);
        this.wake = () => { clearTimeout(t); resolve(); };
      });
      this.wake = null;
    }
  }

  /**
   * One try: the lock, then (in the same session) the table and the token bump. Returns the token,
   * or null when another session holds the lock (the owner as seen is then in status().owner).
   */
  private async tryTake(): Promise<string | null> {
    const [r] = await this.sql.unsafe<{ got: boolean; pid: number }[]>(
      `SELECT pg_try_advisory_lock(${LEASE_LOCK_CLASS}, ${this.key}) AS got, pg_backend_pid() AS pid`);
    const socket = this.socket;
    if (!r.got) {
      await this.readOwner();
      return null;
    }
    if (!this.standingBy() || socket === null) return null; // release() is closing the client
    let bumped: { token: string; acquired_at: Date; pid: number };
    try {
      [bumped] = await this.sql.begin(async (tx) => {
        await tx.unsafe(CREATE_TABLE_SQL);
        return tx.unsafe<{ token: string; acquired_at: Date; pid: number }[]>(BUMP_SQL, [this.name, this.holder]);
      });
    } catch (e) {
      // The lock is ours but the token is not: drop the session (and the lock with it), try anew.
      await this.reopen();
      throw e;
    }
    if (!this.standingBy()) return null; // release() came in between and closes the client
    if (bumped.pid !== r.pid || this.socket !== socket) {
      // The session that took the lock ended between the two statements (the lock went with it), and
      // the driver reconnected.
      this.log?.warn({ lease: this.name }, `lease ${this.name}: the session closed while taking the lease; trying again`);
      await this.reopen();
      return null;
    }
    this.session = { socket, pid: r.pid };
    this.token = bumped.token;
    this.owner = { backendPid: r.pid, holder: this.holder, token: bumped.token, acquiredAt: bumped.acquired_at, seenAt: new Date() };
    this.enter('owner');
    return bumped.token;
  }

  /** The lock's holder now, and the last acquisition (no table yet: nobody has owned the lease). */
  private async readOwner(): Promise<void> {
    const lockSql = `SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND classid = ${LEASE_LOCK_CLASS} AND objid = ${this.key} AND objsubid = 2 AND granted LIMIT 1`;
    let row: { pid: number | null; holder: string | null; token: string | null; acquired_at: Date | null };
    try {
      [row] = await this.sql.unsafe(
        `SELECT (${lockSql}) AS pid, l.holder, l.token::text AS token, l.acquired_at FROM (SELECT 1) one LEFT JOIN ingest_lease l ON l.name = $1`, [this.name]);
    } catch (e) {
      if ((e as { code?: string }).code !== '42P01') throw e;
      [row] = await this.sql.unsafe(`SELECT (${lockSql}) AS pid, NULL AS holder, NULL AS token, NULL AS acquired_at`);
    }
    const first = this.owner === null || this.owner.backendPid !== row.pid;
    this.owner = { backendPid: row.pid, holder: row.holder, token: row.token, acquiredAt: row.acquired_at, seenAt: new Date() };
    if (first && row.pid !== null) {
      this.log?.info({ lease: this.name, owner: row.holder, ownerToken: row.token, ownerBackendPid: row.pid },
        `lease ${this.name}: standing by; ${row.holder ?? 'another process'} owns it (backend ${row.pid})`);
    }
  }

  private scheduleCheck(): void {
    this.checkTimer = setTimeout(() => void this.check(), this.checkMs);
  }

  /** The owner's check: the session that took the lock answers, and still holds it. */
  private async check(): Promise<void> {
    this.checkTimer = null;
    if (this.state !== 'owner') return;
    let timer: NodeJS.Timeout | undefined;
    try {
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new AppError('LEASE_CHECK_TIMEOUT', `no answer in ${this.checkTimeoutMs} ms`)), this.checkTimeoutMs);
      });
      const [r] = await Promise.race([
        this.sql.unsafe<{ pid: number; held: boolean }[]>(
          `SELECT pg_backend_pid() AS pid, EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND classid = ${LEASE_LOCK_CLASS} AND objid = ${this.key} AND objsubid = 2 AND granted) AS held`),
        timeout,
      ]);
      if (this.state !== 'owner') return;
      if (r.pid !== this.session!.pid) return this.lose('session-changed', `the session that took it ended (backend ${this.session!.pid}, now ${r.pid})`);
      if (!r.held) return this.lose('not-held', `its session no longer holds the lock`);
      this.scheduleCheck();
    } catch (e) {
      if (this.state !== 'owner') return;
      const code = (e as { code?: string }).code;
      this.lose(code === 'LEASE_CHECK_TIMEOUT' ? 'check-timeout' : 'check-failed', `its check failed: ${why(e)}`);
    } finally {
      clearTimeout(timer);
    }
  }

  private socketGone(s: Socket): void {
    if (this.state === 'owner' && this.session?.socket === s) this.lose('session-closed', 'its database connection closed (the session, and the lock with it, ended)');
  }

  /** Once: state 'lost', the session cut (so the server lets the lock go if it still holds it), 'lost' emitted. */
  private lose(reason: string, detail: string): void {
    if (this.state !== 'owner') return;
    const err = new AppError('LEASE_LOST',
      `lease ${this.name} (token ${this.token}) was lost: ${detail}. Stop taking data now (close the Kite connections, stop publishing and writing): another process may own it already. Then stand by again with a new IngestLease, or exit and let the process be restarted.`,
      { lease: this.name, token: this.token, reason });
    this.lostWith = err;
    this.enter('lost');
    if (this.checkTimer !== null) clearTimeout(this.checkTimer);
    this.log?.error({ lease: this.name, token: this.token, reason, code: err.code }, err.message);
    void this.close();
    this.emit('lost', err);
  }

  private enter(state: LeaseState): void {
    this.state = state;
    this.since = new Date();
  }

  private released(): AppError {
    return new AppError('LEASE_RELEASED', `lease ${this.name} was released while standing by: make a new IngestLease to stand by again.`);
  }

  /** Cut the connection now: destroying the socket ends the session whatever the peer does. */
  private async close(): Promise<void> {
    this.socket?.destroy();
    await this.sql.end({ timeout: 0 }).catch(() => {});
  }

  /** A fresh client for the next try (standby only: after release() the client stays closed). */
  private async reopen(): Promise<void> {
    await this.close();
    if (!this.standingBy()) return;
    this.socket = null;
    this.sql = this.client();
  }

  /**
   * Give the lease up (the owner unlocks first, so a standby's next try gets it) and close the
   * connection; a standby stops waiting (its acquire() rejects with LEASE_RELEASED). Idempotent.
   */
  async release(): Promise<void> {
    const was = this.state;
    if (was === 'released') return;
    this.enter('released');
    if (this.checkTimer !== null) clearTimeout(this.checkTimer);
    this.wake?.();
    if (was === 'owner') {
      await this.sql.unsafe(`SELECT pg_advisory_unlock(${LEASE_LOCK_CLASS}, ${this.key})`).catch(() => {});
      this.log?.info({ lease: this.name, token: this.token }, `lease ${this.name}: released by ${this.holder}`);
    }
    await this.close();
  }
}
