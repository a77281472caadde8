/**
 * Kite's postbacks end to end: the simulator, as Kite, POSTs each order change of a live order to
 * the URL the user registered, our `POST /kite/postback`, with its checksum; the service verifies
 * every one (none refused) and takes it as an update, beside the same change from Kite's ticker,
 * without recording anything twice.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KiteConnect } from 'kiteconnect';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KeyStore, keysFilePath } from '../../src/auth/keys.ts';
import { loadConfig } from '../../src/config.ts';
import { silentLogger } from '../../src/log.ts';
import { startSimulator, type Simulator } from '../../src/kite/sim/server.ts';
import { startService, type Service } from '../../src/service.ts';
import { createTestDatabase, type TestDatabase } from '../support/pg.ts';
import { until } from '../support/until.ts';

const SECRET = 'postback-secret-for-tests';
let sim: Simulator;
let db: TestDatabase;
let dataDir: string;
let service: Service;
let live: InstanceType<typeof KiteConnect>;

/** A port free right now, for the service: the simulator must know the postback URL before it starts. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

beforeAll(async () => {
  const port = await freePort();
  sim = await startSimulator({
    apiKey: 'sim-key', accessToken: 'sim-token', rate: 2000, seed: 9,
    postbackUrl: `http://127.0.0.1:${port}/kite/postback`, apiSecret: SECRET,
  });
  db = await createTestDatabase('live_postback');
  dataDir = mkdtempSync(join(tmpdir(), 'live-postback-'));
  const keys = await KeyStore.load({ configured: [], file: keysFilePath(dataDir) });
  const secret = (await keys.create('trader', 'live')).secret;
  service = await startService(loadConfig({
    KITE_API_KEY: 'sim-key', KITE_ACCESS_TOKEN: 'sim-token', KITE_WS_URL: sim.wsUrl, KITE_API_URL: sim.apiUrl, KITE_API_SECRET: SECRET,
    KITE_INSTRUMENTS: 'NSE:INFY', MARKET_HOURS: 'always', DATABASE_URL: db.url, DATA_DIR: dataDir, PORT: String(port), WORKERS: '1',
  }), silentLogger);
  live = new KiteConnect({ api_key: secret, access_token: secret, root: `http://127.0.0.1:${service.port}/kite` });
  await until('INFY to tick', () => service.tokens.every((t) => service.orders.mark(t) !== null));
});

afterAll(async () => {
  await service?.close();
  await sim?.close();
  await db?.drop();
  rmSync(dataDir, { recursive: true, force: true });
});

describe('Kite postbacks to POST /kite/postback', () => {
  it('are verified and taken beside the ticker\'s updates, each change recorded once', async () => {
    const { order_id: id } = await live.placeOrder('regular', {
      exchange: 'NSE', tradingsymbol: 'INFY', transaction_type: 'BUY', quantity: 3, product: 'MIS', order_type: 'MARKET', market_protection: -1,
    } as never);
    await until('the order to complete', () => service.orders.orderById(id)?.status === 'COMPLETE', 20_000);
    await until('Kite\'s COMPLETE postback to be delivered', () => sim.stats.postbacks > 0, 20_000);
    expect(sim.stats.postbackFailures).toBe(0);
    // Ticker and postback both told of COMPLETE: it is in the history once.
    const history = await live.getOrderHistory(id);
    expect(history.filter((r: any) => r.status === 'COMPLETE')).toHaveLength(1);
    const trades = await live.getOrderTrades(id);
    expect(trades.reduce((a: number, t: any) => a + t.quantity, 0)).toBe(3);
  });
});
