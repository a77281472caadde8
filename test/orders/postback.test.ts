/**
 * POST /kite/postback: Kite's postback is taken only with a checksum that proves it came from Kite
 * (SHA-256 of order_id + order_timestamp + KITE_API_SECRET), without an API key (Kite cannot send
 * ours), and refused, saying why, otherwise.
 */
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pgliteDb } from '../../src/core/db.ts';
import { migrate } from '../../src/core/migrate.ts';
import { freshPglite } from '../support/pglite.ts';
import { startRestServer, type RestServer } from '../gateway/rest-fixture.ts';

const SECRET = 'kite-api-secret-for-tests';
let pg: Awaited<ReturnType<typeof freshPglite>>;
let withSecret: RestServer;
let without: RestServer;

beforeAll(async () => {
  pg = await freshPglite();
  const db = pgliteDb(pg.db);
  await migrate(db);
  withSecret = await startRestServer({ db: null, orders: db, postbackSecret: SECRET });
  without = await startRestServer({ db: null, orders: db });
});
afterAll(async () => {
  withSecret?.close();
  without?.close();
  await pg?.close();
});

const row = { order_id: '220303000308932', order_timestamp: '2026-12-04 10:15:02', status: 'COMPLETE', filled_quantity: 1, tag: 'x' };
const checksum = (secret: string) => createHash('sha256').update(row.order_id + row.order_timestamp + secret).digest('hex');
const post = (srv: RestServer, body: unknown) => fetch(`${srv.base}/kite/postback`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });

describe('Kite postbacks', () => {
  it('takes a postback whose checksum verifies, without an API key, and takes it again as the same', async () => {
    for (let i = 0; i < 2; i++) {
      const r = await post(withSecret, { ...row, checksum: checksum(SECRET) });
      expect(r.status).toBe(200);
      expect(((await r.json()) as { status: string }).status).toBe('success');
    }
  });

  it('refuses a checksum made with another secret, in Kite\'s error shape', async () => {
    const r = await post(withSecret, { ...row, checksum: checksum('not-the-secret') });
    expect(r.status).toBe(403);
    const j = (await r.json()) as { status: string; message: string };
    expect(j.status).toBe('error');
    expect(j.message).toContain('checksum');
  });

  it('refuses a postback without order_id, order_timestamp or a well-formed checksum, naming the field', async () => {
    for (const [body, field] of [[{ ...row, order_id: undefined, checksum: checksum(SECRET) }, 'order_id'], [{ ...row, checksum: 'zz' }, 'checksum'], [{ ...row, order_timestamp: 5, checksum: checksum(SECRET) }, 'order_timestamp']] as const) {
      const r = await post(withSecret, body);
      expect(r.status).toBe(400);
      expect(((await r.json()) as { message: string }).message).toContain(field);
    }
  });

  it('refuses every postback while KITE_API_SECRET is not set, saying to set it', async () => {
    const r = await post(without, { ...row, checksum: checksum(SECRET) });
    expect(r.status).toBe(503);
    expect(((await r.json()) as { message: string }).message).toContain('KITE_API_SECRET');
  });
});
