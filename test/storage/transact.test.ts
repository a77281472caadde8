/**
 * Storage.transact through the real threads, while the real pipeline's batches are being
 * committed: on PostgreSQL the reader thread runs each transaction on a connection of its pool;
 * on the embedded PGlite the writer thread runs it between its batches. Either way all of a
 * transaction's statements commit together or none does, the database's refusal comes back with
 * its code and constraint, and the order store (src/orders/store.ts) works over Storage as it is.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WC } from '../../src/core/writer-protocol.ts';
import { Status, type Order } from '../../src/orders/model.ts';
import { OrderStore } from '../../src/orders/store.ts';
import type { Storage } from '../../src/storage/supervisor.ts';
import { stream, universe } from '../pipeline/harness.ts';
import { createTestDatabase, type TestDatabase } from '../support/pg.ts';
import { freshPgliteDir } from '../support/pglite.ts';
import { expectStoredExactlyOnce, storeRun } from '../support/store-run.ts';
import { until } from '../support/until.ts';

const instruments = universe();
const T0 = Date.UTC(2025, 0, 6, 4, 0, 0);

const insertTrade = (id: string) => ({
  text: `INSERT INTO trades (trade_id, order_id, api_key, mode, exchange, tradingsymbol, instrument_token, product, transaction_type, quantity, price_paise, time)
    VALUES ($1, 'o1', 'alice', 'paper', 'NSE', 'INFY', 408065, 'CNC', 'BUY', 1, $2, now())`,
  params: [id, 150_005],
});
const tradeIds = async (s: Storage) => (await s.query<{ trade_id: string }>('SELECT trade_id FROM trades ORDER BY trade_id')).map((r) => r.trade_id);

function order(over: Partial<Order> = {}): Order {
  return {
    id: '1736136000000001', key: 'alice', mode: 'paper', parentId: null, variety: 'regular', exchange: 'NSE', symbol: 'INFY',
    token: 408065, side: 'BUY', product: 'CNC', orderType: 'LIMIT', validity: 'DAY', validityTtl: 0, quantity: 10,
    disclosedQuantity: 0, pricePaise: 150_005, triggerPaise: 0, marketProtection: null, tag: null, guid: null,
    status: Status.OPEN, statusMessage: null, filledQuantity: 0, filledValuePaise: 0, cancelledQuantity: 0, modifications: 0,
    createdMs: T0, updatedMs: T0, exchangeMs: null, meta: null, ...over,
  };
}

/** What both paths must do, run while the pipeline's batches commit beside it. */
async function transactions(s: Storage): Promise<void> {
  // The writer thread migrates the schema as it starts: the first transaction that finds the
  // order tables marks a storage ready for them.
  await until('a first transaction', () => s.transact([{ text: 'SELECT 1 FROM trades LIMIT 1', params: [] }]).then(() => true, () => false));

  await s.transact([insertTrade('t1'), insertTrade('t2')]);
  expect(await tradeIds(s)).toEqual(['t1', 't2']);

  // One refused statement rolls back the ones before it; the refusal keeps its code and constraint.
  await expect(s.transact([insertTrade('t3'), insertTrade('t4'), insertTrade('t1')]))
    .rejects.toMatchObject({ code: '23505', constraint: 'trades_pkey', message: expect.stringMatching(/duplicate key/) });
  await expect(s.transact([insertTrade('t5'), { text: 'SELECT * FROM no_such_table', params: [] }])).rejects.toMatchObject({ code: '42P01' });
  expect(await tradeIds(s)).toEqual(['t1', 't2']);

  // Many at once, beside the batches: each commits whole.
  await Promise.all(Array.from({ length: 40 }, (_, i) => s.transact([insertTrade(`u${String(i).padStart(2, '0')}a`), insertTrade(`u${String(i).padStart(2, '0')}b`)])));
  expect(await tradeIds(s)).toHaveLength(82);

  // The order store over Storage itself, as the service builds it.
  const store = new OrderStore(s);
  const fills = Array.from({ length: 50 }, (_, i) => store.write({
    orders: [order({ filledQuantity: i + 1, filledValuePaise: (i + 1) * 150_005, updatedMs: T0 + i })],
  }));
  await Promise.all(fills);
  await expect(store.write({ trades: [{ tradeId: 't1', orderId: 'o1', key: 'alice', mode: 'paper', exchange: 'NSE', symbol: 'INFY', token: 408065, product: 'CNC', side: 'BUY', quantity: 1, pricePaise: 1, timeMs: T0 }] }))
    .rejects.toMatchObject({ code: 'DUPLICATE_TRADE' });
  const loaded = await store.load();
  expect(loaded.orders).toEqual([order({ filledQuantity: 50, filledValuePaise: 50 * 150_005, updatedMs: T0 + 49 })]);
  expect(loaded.trades).toHaveLength(82);
}

describe('Storage.transact on PostgreSQL (the reader thread)', () => {
  let t: TestDatabase;
  beforeAll(async () => { t = await createTestDatabase('transact'); });
  afterAll(async () => { await t.drop(); });

  it('commits all of a transaction or none, beside the batch writer, and the order store works over it', async () => {
    const r = await storeRun({
      frames: stream(instruments, 1000, 41), instruments, databaseUrl: t.url, pace: { frames: 5, ms: 5 },
      during: async (s) => {
        await until('a first batch committed', () => s.counters[WC.BATCHES] > 0);
        await transactions(s);
        expect(s.stats().reader).toMatchObject({ restarts: 0 });
      },
    });
    await expectStoredExactlyOnce((text) => t.sql.unsafe(text), r);
  });

  it('says the outcome is unknown when the reader thread ends under a transaction, which then never commits', async () => {
    await storeRun({
      frames: stream(instruments, 100, 42), instruments, databaseUrl: t.url,
      // A transaction slower than two seconds ends the reader thread.
      storage: { stallMs: 2000 },
      during: async (s) => {
        await until('a first transaction', () => s.transact([{ text: 'SELECT 1 FROM trades LIMIT 1', params: [] }]).then(() => true, () => false));
        await expect(s.transact([insertTrade('stalled'), { text: 'SELECT pg_sleep(10)', params: [] }])).rejects.toMatchObject({ code: 'STORAGE_TX_OUTCOME_UNKNOWN' });
        await until('the reader thread restarted', () => s.readerRestarts >= 1);
        await until('a transaction on the new reader thread', () => s.transact([insertTrade('after')]).then(() => true, () => false));
        expect(await tradeIds(s)).not.toContain('stalled');
        expect(await tradeIds(s)).toContain('after');
      },
    });
  });
});

describe('Storage.transact on the embedded PGlite (the writer thread)', () => {
  it('commits all of a transaction or none, between the batches, and the order store works over it', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'transact-pglite-'));
    await freshPgliteDir(join(dataDir, 'pglite'));
    try {
      const r = await storeRun({
        frames: stream(instruments, 1000, 43), instruments, databaseUrl: null, dataDir, pace: { frames: 5, ms: 5 },
        during: async (s) => {
          await until('a first batch committed', () => s.counters[WC.BATCHES] > 0);
          await transactions(s);
        },
      });
      expect(r.storage.restarts).toBe(0);
      expect(r.storage.counters[WC.REJECTED]).toBe(0);
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
