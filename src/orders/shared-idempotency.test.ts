/**
 * Idempotency-Keys shared through idempotency_keys, as two gateways use them: on PostgreSQL (two
 * instances over two connections, as two gateway processes) and on the embedded PGlite (ROLE=all
 * may use it too). Every test uses its own (api key, Idempotency-Key).
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import postgres from 'postgres';
import { pgDb, pgliteDb, pgOptions, type Db } from '../core/db.ts';
import { migrate } from '../core/migrate.ts';
import { createTestDatabase } from '../../test/support/pg.ts';
import { freshPglite } from '../../test/support/pglite.ts';
import { until } from '../../test/support/until.ts';
import { IdempotencyConflict, IdempotencyInProgress } from './errors.ts';
import { PgIdempotency, type IdempotentAnswer } from './shared-idempotency.ts';
import { dbStore, OrderStore } from './store.ts';

const backends = [
  {
    name: 'PostgreSQL',
    open: async () => {
      const t = await createTestDatabase('shared_idem');
      await migrate(pgDb(t.sql));
      // A second pool: the other gateway.
      const other = postgres(t.url, pgOptions({ max: 2 }));
      return { a: pgDb(t.sql), b: pgDb(other), close: async () => { await other.end({ timeout: 1 }); await t.drop(); } };
    },
  },
  {
    name: 'the embedded PGlite',
    open: async () => {
      const p = await freshPglite();
      const db = pgliteDb(p.db);
      await migrate(db);
      return { a: db, b: db, close: p.close };
    },
  },
];

const SHA1 = 'a1'.repeat(32);
const SHA2 = 'b2'.repeat(32);
const fresh = () => `idem-${randomBytes(6).toString('hex')}`;

/** A Db that counts the reads of idempotency_keys a loser makes while it waits. */
function counting(db: Db): { db: Db; reads: () => number } {
  let reads = 0;
  return {
    db: { ...db, query: (text, params) => { if (text.startsWith('SELECT body_sha256')) reads++; return db.query(text, params); } },
    reads: () => reads,
  };
}

/** A request that answers when told to, counting its runs. */
function held(answer: IdempotentAnswer) {
  let release!: () => void;
  const gate = new Promise<void>((r) => { release = r; });
  const s = { runs: 0, release, fn: async () => { s.runs++; await gate; return answer; } };
  return s;
}

describe.each(backends)('shared Idempotency-Keys on $name', ({ open }) => {
  let a: Db;
  let b: Db;
  let close: () => Promise<void>;
  beforeAll(async () => { ({ a, b, close } = await open()); }, 60_000);
  afterAll(async () => { await close(); });

  it('runs a request sent to two gateways at once only once, and both get its answer', async () => {
    const idem = fresh();
    const loserDb = counting(b);
    const ga = new PgIdempotency({ db: a });
    const gb = new PgIdempotency({ db: loserDb.db });
    const req = held({ status: 201, body: { order_id: '260101000000001', status: 'OPEN' } });
    const first = ga.run('alice', idem, SHA1, req.fn);
    await until('the first gateway to start the request', () => req.runs === 1);
    const second = gb.run('alice', idem, SHA1, req.fn);
    await until('the second gateway to find the claim and wait', () => loserDb.reads() >= 1);
    req.release();
    const answers = await Promise.all([first, second]);
    expect(answers[0]).toEqual({ status: 201, body: { order_id: '260101000000001', status: 'OPEN' } });
    expect(answers[1]).toEqual(answers[0]);
    expect(req.runs).toBe(1);
    const [row] = await a.query<{ order_id: string; status: number }>('SELECT order_id, status FROM idempotency_keys WHERE api_key = $1 AND idem_key = $2', ['alice', idem]);
    expect(row).toEqual({ order_id: '260101000000001', status: 201 });
  });

  it('places once when many copies race over both gateways', async () => {
    const idem = fresh();
    const gws = [new PgIdempotency({ db: a }), new PgIdempotency({ db: b })];
    let runs = 0;
    const answers = await Promise.all(Array.from({ length: 12 }, (_, i) => gws[i % 2].run('alice', idem, SHA1, async () => {
      runs++;
      return { status: 201, body: { order_id: `ord-${runs}` } };
    })));
    expect(runs).toBe(1);
    expect(new Set(answers.map((x) => JSON.stringify(x)))).toEqual(new Set([JSON.stringify({ status: 201, body: { order_id: 'ord-1' } })]));
  });

  it('answers a retry on the other gateway with the first answer, refusals included, and places nothing', async () => {
    const idem = fresh();
    const refusal = { status: 400, body: { error: 'lot_multiple', message: 'quantity: 50 is not a multiple of the lot size 65' } };
    expect(await new PgIdempotency({ db: a }).run('bob', idem, SHA1, async () => refusal)).toEqual(refusal);
    let ran = false;
    expect(await new PgIdempotency({ db: b }).run('bob', idem, SHA1, async () => { ran = true; return { status: 201, body: {} }; })).toEqual(refusal);
    expect(ran).toBe(false);
  });

  it('refuses another body under the same key with IdempotencyConflict, while the first runs and after', async () => {
    const idem = fresh();
    const req = held({ status: 201, body: { order_id: 'x' } });
    const first = new PgIdempotency({ db: a }).run('alice', idem, SHA1, req.fn);
    await until('the first request to run', () => req.runs === 1);
    const other = new PgIdempotency({ db: b });
    await expect(other.run('alice', idem, SHA2, req.fn)).rejects.toBeInstanceOf(IdempotencyConflict);
    req.release();
    await first;
    const err = await other.run('alice', idem, SHA2, req.fn).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(IdempotencyConflict);
    expect(err).not.toBeInstanceOf(IdempotencyInProgress);
    expect((err as IdempotencyConflict).code).toBe('IDEMPOTENCY_CONFLICT');
  });

  it('keeps keys of different API keys apart', async () => {
    const idem = fresh();
    const g = new PgIdempotency({ db: a });
    expect(await g.run('alice', idem, SHA1, async () => ({ status: 201, body: { order_id: 'A' } }))).toEqual({ status: 201, body: { order_id: 'A' } });
    expect(await g.run('bob', idem, SHA2, async () => ({ status: 201, body: { order_id: 'B' } }))).toEqual({ status: 201, body: { order_id: 'B' } });
  });

  it('gives the claim back when the request fails or answers 5xx, so a retry runs again', async () => {
    const idem = fresh();
    const g = new PgIdempotency({ db: a });
    await expect(g.run('alice', idem, SHA1, async () => { throw new Error('store down'); })).rejects.toThrow('store down');
    expect(await g.run('alice', idem, SHA1, async () => ({ status: 503, body: { error: 'unavailable' } }))).toEqual({ status: 503, body: { error: 'unavailable' } });
    expect(await new PgIdempotency({ db: b }).run('alice', idem, SHA1, async () => ({ status: 201, body: { order_id: 'Z' } }))).toEqual({ status: 201, body: { order_id: 'Z' } });
  });

  it('tells a retry of a claim never answered that it is in progress, naming the gateway, and never runs it again', async () => {
    const idem = fresh();
    // A gateway that claimed and stopped before answering.
    await a.query("INSERT INTO idempotency_keys (api_key, idem_key, body_sha256, created_at, claimed_by) VALUES ('alice', $1, $2, now(), 'gw-7:1234')", [idem, SHA1]);
    let ran = false;
    const err = await new PgIdempotency({ db: b, waitMs: 50 }).run('alice', idem, SHA1, async () => { ran = true; return { status: 201, body: {} }; }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(IdempotencyInProgress);
    expect(err).toBeInstanceOf(IdempotencyConflict); // the gateway answers 409 for both
    expect(err).toMatchObject({ code: 'IDEMPOTENCY_IN_PROGRESS', claimedBy: 'gw-7:1234' });
    expect((err as Error).message).toMatch(/send the same request again in a few seconds/);
    expect(ran).toBe(false);
  });

  it('leaves claims out of what the order store loads: a claim is not an answer', async () => {
    const idem = fresh();
    const req = held({ status: 201, body: { order_id: 'L' } });
    const p = new PgIdempotency({ db: a }).run('carol', idem, SHA1, req.fn);
    await until('the request to run', () => req.runs === 1);
    const store = new OrderStore(dbStore(a));
    expect((await store.load()).idempotency.filter((r) => r.key === 'carol')).toEqual([]);
    req.release();
    await p;
    expect((await store.load()).idempotency.filter((r) => r.key === 'carol')).toMatchObject([{ idemKey: idem, status: 201, orderId: 'L', response: { order_id: 'L' } }]);
  });
});
