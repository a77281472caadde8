/**
 * Idempotency-Keys shared by the gateways, through PostgreSQL's idempotency_keys (sql/003, claims
 * by sql/006): the same (api key, Idempotency-Key) sent to two gateways at the same time, or
 * retried on another after a lost answer, places its order once, and every sender gets the one
 * answer.
 *
 * | step    | what                                                                                   |
 * |---------|----------------------------------------------------------------------------------------|
 * | claim   | INSERT the row with status NULL, ON CONFLICT DO NOTHING: the primary key lets exactly  |
 * |         | one insert win, whichever gateway sends it; only the winner runs the request           |
 * | answer  | the winner UPDATEs status, response and order_id (an answer below 500: refusals too,   |
 * |         | as in memory); a 5xx or a throw DELETEs the claim, so a retry runs again               |
 * | wait    | a loser reads the row: another body → IdempotencyConflict (409) at once; an answer →   |
 * |         | that answer; still a claim → read again (5 ms, doubling to 100 ms) until `waitMs`,     |
 * |         | then IdempotencyInProgress (409, "send it again in a few seconds"); the row gone (the  |
 * |         | winner failed) → claim again                                                           |
 *
 * Why PostgreSQL and not Redis SET NX: the answers are already kept there (the order store loads
 * them at start, ROLE=all), the claim and the answer then live in one row with one lifetime, and
 * the order the answer names is in the same database; a Redis flush cannot lose a claim and let an
 * order be placed twice. The cost is one INSERT round trip before each order that carries a key
 * (no write waits for another: the claim is a single-row insert).
 *
 * Why polling and not LISTEN/NOTIFY: a loser exists only when a client sends the same key twice
 * before the first answer, which is rare; polling needs no dedicated connection (the main thread
 * reaches the database through Storage's threads, which keep no session for LISTEN), and its
 * bound is explicit.
 *
 * A claim never answered (its gateway stopped between claim and answer) stays: the order may have
 * been placed, so it is never re-run. Every retry gets IdempotencyInProgress; claimed_by names the
 * gateway, for an operator who deletes the row once the order book is checked.
 */
import os from 'node:os';
import type { Logger } from '../log.ts';
import { IdempotencyConflict, IdempotencyInProgress, SharedStateUnavailable } from './errors.ts';
import type { OrderStoreDb } from './store.ts';

/** An answer given to an Idempotency-Key (the order service's Remembered). */
export interface IdempotentAnswer {
  status: number;
  body: unknown;
}

/** What the order service needs of a shared Idempotency-Key table. */
export interface SharedIdempotency {
  /**
   * Run `fn` once per (key, idemKey) across every gateway; the same answer to everyone else.
   * `bodySha256` (hex) tells a retry from another request under the same key.
   */
  run(key: string, idemKey: string, bodySha256: string, fn: () => Promise<IdempotentAnswer>): Promise<IdempotentAnswer>;
}

export interface PgIdempotencyOptions {
  /** Single statements, auto-committed: Storage (ROLE=all) or a pool of the gateway's own. */
  db: Pick<OrderStoreDb, 'query'>;
  /** How long a second request waits for the first one's answer, ms; default 20 000 (above KITE_TIMEOUT_MS). */
  waitMs?: number;
  /** Stored with each claim; default host:pid. */
  owner?: string;
  log?: Pick<Logger, 'error'>;
}

const POLL_MIN_MS = 5;
const POLL_MAX_MS = 100;
const COMPLETE_TRIES = 3;

const CLAIM = `INSERT INTO idempotency_keys (api_key, idem_key, body_sha256, order_id, status, response, created_at, claimed_by)
VALUES ($1, $2, $3, NULL, NULL, NULL, now(), $4)
ON CONFLICT (api_key, idem_key) DO NOTHING
RETURNING 1 AS won`;
const READ = `SELECT body_sha256, status, response::text AS response, (extract(epoch from created_at) * 1000)::bigint AS created_ms, claimed_by
FROM idempotency_keys WHERE api_key = $1 AND idem_key = $2`;
const COMPLETE = `UPDATE idempotency_keys SET status = $3, response = $4::text::jsonb, order_id = $5
WHERE api_key = $1 AND idem_key = $2 AND status IS NULL`;
const RELEASE = 'DELETE FROM idempotency_keys WHERE api_key = $1 AND idem_key = $2 AND status IS NULL';

interface Row {
  body_sha256: string;
  status: number | null;
  response: string | null;
  created_ms: number | string;
  claimed_by: string | null;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export class PgIdempotency implements SharedIdempotency {
  private readonly waitMs: number;
  private readonly owner: string;

  constructor(private readonly opts: PgIdempotencyOptions) {
    this.waitMs = opts.waitMs ?? 20_000;
    this.owner = opts.owner ?? `${os.hostname()}:${process.pid}`;
  }

  async run(key: string, idemKey: string, bodySha256: string, fn: () => Promise<IdempotentAnswer>): Promise<IdempotentAnswer> {
    const deadline = Date.now() + this.waitMs;
    for (let poll = POLL_MIN_MS; ;) {
      if (await this.claim(key, idemKey, bodySha256)) return this.answer(key, idemKey, fn);
      const row = await this.read(key, idemKey);
      // Gone: the first request failed and released its claim (or it was not yet visible): claim again.
      if (row === null) {
        if (Date.now() >= deadline) throw new IdempotencyInProgress(idemKey, Date.now(), null);
        continue;
      }
      if (row.body_sha256 !== bodySha256) throw new IdempotencyConflict(idemKey);
      if (row.status !== null) return { status: Number(row.status), body: row.response === null ? null : JSON.parse(row.response) };
      if (Date.now() >= deadline) throw new IdempotencyInProgress(idemKey, Number(row.created_ms), row.claimed_by);
      await sleep(Math.min(poll, Math.max(1, deadline - Date.now())));
      poll = Math.min(POLL_MAX_MS, poll * 2);
    }
  }

  private async claim(key: string, idemKey: string, sha: string): Promise<boolean> {
    try {
      return (await this.opts.db.query<{ won: number }>(CLAIM, [key, idemKey, sha, this.owner])).length === 1;
    } catch (e) {
      throw new SharedStateUnavailable('PostgreSQL', 'claiming the Idempotency-Key', String((e as Error).message));
    }
  }

  private async read(key: string, idemKey: string): Promise<Row | null> {
    try {
      return (await this.opts.db.query<Row>(READ, [key, idemKey]))[0] ?? null;
    } catch (e) {
      throw new SharedStateUnavailable('PostgreSQL', 'reading the Idempotency-Key', String((e as Error).message));
    }
  }

  /** The winner: run, then store the answer, or give the claim back when there is none to keep. */
  private async answer(key: string, idemKey: string, fn: () => Promise<IdempotentAnswer>): Promise<IdempotentAnswer> {
    let r: IdempotentAnswer;
    try {
      r = await fn();
    } catch (e) {
      await this.release(key, idemKey);
      throw e;
    }
    if (r.status >= 500) {
      await this.release(key, idemKey);
      return r;
    }
    const orderId = (r.body as { order_id?: unknown } | null)?.order_id;
    const params = [key, idemKey, r.status, JSON.stringify(r.body ?? null), typeof orderId === 'string' ? orderId : null];
    for (let i = 1; ; i++) {
      try {
        await this.opts.db.query(COMPLETE, params);
        break;
      } catch (err) {
        if (i < COMPLETE_TRIES) {
          await sleep(50 * i);
          continue;
        }
        // The order stands and this caller gets its answer; a retry will get IdempotencyInProgress
        // (never a second order) until an operator clears the claim.
        this.opts.log?.error({ err, key, idemKey }, 'the answer to an Idempotency-Key could not be stored: retries of it will be told it is in progress');
        break;
      }
    }
    return r;
  }

  private async release(key: string, idemKey: string): Promise<void> {
    try {
      await this.opts.db.query(RELEASE, [key, idemKey]);
    } catch (err) {
      this.opts.log?.error({ err, key, idemKey }, 'an Idempotency-Key claim could not be released: retries of it will be told it is in progress');
    }
  }
}
