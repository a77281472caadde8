/**
 * The whole service, as `npm start` composes it (src/service.ts: ingest → front → shard workers →
 * batch writer into the real PostgreSQL), against the Kite simulator standing in for Kite: every
 * tick the simulator sent is in market_data exactly once, in ltp, quote and full mode (KITE_MODE).
 *
 * The simulator tells what it sent through its `onFrame` hook (test/support/sim-ledger.ts). The
 * expected count per token is the packets sent less those that repeat the token's previous packet
 * byte for byte, which the shards drop as duplicates; the simulator sends such repeats (in ltp mode
 * a book change or a trade at the last price, and the snapshot on subscribe after a reconnect).
 *
 * To compare without racing the feed, each run stops the simulator's trading (rate 0: nothing
 * more is sent but heartbeats) and then waits for the store to catch up with what was sent.
 *
 * Kite answers a subscribe in quote mode and takes the mode message a while later; the simulator
 * does so with `modeDelayMs`. Then a repeat is also a quote packet and a full one of the same trade
 * (the ledger's rule, test/support/sim-ledger.ts), and quote ticks are ticks, not quarantined.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.ts';
import type { TickMode } from '../../src/core/instrument.ts';
import { silentLogger } from '../../src/log.ts';
import { startService, type Service } from '../../src/service.ts';
import { startSimulator, type Simulator, type SimulatorOptions } from '../../src/kite/sim/server.ts';
import { createTestDatabase, type TestDatabase } from '../support/pg.ts';
import { SimLedger } from '../support/sim-ledger.ts';
import { until } from '../support/until.ts';

const RATE = 5000;

interface Run {
  sim: Simulator;
  service: Service;
  ledger: SimLedger;
  db: TestDatabase;
  health(): Promise<Record<string, any>>;
}

const cleanups: (() => Promise<unknown> | unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function start(mode: TickMode, simOptions: SimulatorOptions = {}): Promise<Run> {
  const ledger = new SimLedger();
  const sim = await startSimulator({ apiKey: 'sim-key', accessToken: 'sim-token', rate: RATE, seed: 17, onFrame: ledger.onFrame, ...simOptions });
  cleanups.push(() => sim.close());
  const db = await createTestDatabase(`once_${mode}`);
  cleanups.push(() => db.drop());
  const dataDir = mkdtempSync(join(tmpdir(), 'exactly-once-'));
  cleanups.push(() => rmSync(dataDir, { recursive: true, force: true }));
  const config = loadConfig({
    KITE_API_KEY: 'sim-key', KITE_ACCESS_TOKEN: 'sim-token', KITE_WS_URL: sim.wsUrl, KITE_API_URL: sim.apiUrl, KITE_MODE: mode,
    DATABASE_URL: db.url, DATA_DIR: dataDir, PORT: '0', API_KEYS: 'ci:abcdefghijklmnop0123', WORKERS: '2', WRITER_BATCH_MS: '20',
  });
  const service = await startService(config, silentLogger);
  cleanups.push(() => service.close());
  const health = async () => (await (await fetch(`http://127.0.0.1:${service.port}/health`)).json()) as Record<string, any>;
  return { sim, service, ledger, db, health };
}

/** Let the simulator trade until it has sent `n` more packets, then stop it. */
async function trade(r: Run, n: number): Promise<void> {
  const target = r.ledger.packets + n;
  r.sim.setRate(RATE);
  await until(`the simulator to send ${target} packets`, () => r.ledger.packets >= target);
  r.sim.setRate(0);
}

async function storedCount(r: Run): Promise<number> {
  return (await r.db.sql`SELECT count(*)::int AS n FROM market_data`.catch(() => [{ n: -1 }]))[0].n as number;
}

/**
 * Wait until the shards have taken every packet the simulator sent and market_data holds every
 * tick they passed on; what that is, is for expectStoredOnce to judge (so a lost tick fails there,
 * with a diff, not here with a timeout).
 */
async function caughtUp(r: Run): Promise<void> {
  let last = 0;
  await until(() => `market_data to catch up (it holds ${last} rows; ${JSON.stringify(r.service.pipeline.counters())})`, async () => {
    const c = r.service.pipeline.counters();
    if (c.ticksIn !== r.ledger.packets) return false;
    last = await storedCount(r);
    return last === c.ticksOut;
  }, 30_000);
}

/** market_data holds each tick the simulator sent exactly once, per token in the order sent. */
async function expectStoredOnce(r: Run): Promise<void> {
  const rows = await r.db.sql`SELECT token, price FROM market_data ORDER BY token, recv_time, seq`;
  const stored = new Map<number, number[]>();
  for (const row of rows) {
    const t = Number(row.token);
    if (!stored.has(t)) stored.set(t, []);
    stored.get(t)!.push(row.price as number);
  }
  const sorted = (m: Map<number, number[]>) => [...m.entries()].sort((a, b) => a[0] - b[0]);
  // Counts first, per token (the readable failure), then the prices in the order sent.
  const counts = (m: Map<number, number[]>) => Object.fromEntries(sorted(m).map(([token, prices]) => [token, prices.length]));
  expect(counts(stored)).toEqual(counts(r.ledger.kept));
  expect(sorted(stored)).toEqual(sorted(r.ledger.kept));
  const [q] = await r.db.sql`SELECT count(*)::int AS n FROM quarantined_ticks`;
  expect(q.n).toBe(0);
  const c = r.service.pipeline.counters();
  expect(c.ticksIn).toBe(r.ledger.packets);
  expect(c.duplicates).toBe(r.ledger.repeats);
  expect(c.ticksOut).toBe(r.ledger.ticks());
  expect(c.quarantined).toBe(0);
}

describe('the service against the simulator: every tick stored exactly once', () => {
  for (const mode of ['ltp', 'quote', 'full'] as const) {
    it(`stores every tick the simulator sent once, in ${mode} mode, returns to earlier prices included`, async () => {
      const r = await start(mode);
      await trade(r, 4000);
      await caughtUp(r);
      await expectStoredOnce(r);
      // The feed held what the old dedupe lost: prices back at the value before the previous one.
      expect(r.ledger.returns()).toBeGreaterThan(100);
      if (mode === 'ltp') expect(r.ledger.repeats).toBeGreaterThan(100);
      expect(r.sim.stats.droppedByUws).toBe(0);
    });
  }

  it('drops the snapshot Kite re-sends after a reconnect, counts it in /health, records the outage as a gap, and stores each tick once', async () => {
    const r = await start('full');
    await trade(r, 1500);
    await caughtUp(r);
    const before = await r.health();
    const stored = await storedCount(r);
    const tokens = r.service.tokens.length;
    expect(before.pipeline.duplicates).toBe(r.ledger.repeats);

    // Nothing trades while the connection is down, so the snapshot of every token on resubscribe
    // is the very packet the service last had: all of them duplicates.
    const repeats = r.ledger.repeats;
    r.sim.dropAllConnections();
    await until('the snapshot after the reconnect', () => r.ledger.repeats >= repeats + tokens);
    const after = await until('/health to count the snapshot as duplicates', async () => {
      const h = await r.health();
      return h.pipeline.ticksIn === r.ledger.packets ? h : undefined;
    });
    expect(r.ledger.repeats).toBe(repeats + tokens);
    expect(after.pipeline.duplicates).toBe(before.pipeline.duplicates + tokens);
    expect(after.pipeline.ticksOut).toBe(before.pipeline.ticksOut);
    expect(after.feed.connections[0].disconnects).toBe(1);
    expect(after.feed.connected).toBe(true);
    expect(await storedCount(r)).toBe(stored);

    // The outage is a gap, one per connection, listed at /api/gaps with the instruments it cost.
    const slots = after.feed.connections.length as number;
    const list = await until('the gaps to be recorded', async () => {
      const res = await fetch(`http://127.0.0.1:${r.service.port}/api/gaps`, { headers: { authorization: 'Bearer abcdefghijklmnop0123' } });
      const b = (await res.json()) as { count: number; gaps: { conn: number; instruments: number[]; ticksRecoverable: boolean; cause: string; durationMs: number }[] };
      return b.count >= slots ? b : undefined;
    });
    expect(list.gaps.map((g) => g.conn).sort()).toEqual([...Array(slots).keys()]);
    expect(list.gaps.flatMap((g) => g.instruments).sort((a, b) => a - b)).toEqual([...r.service.tokens].sort((a, b) => a - b));
    for (const g of list.gaps) {
      expect(g.ticksRecoverable).toBe(false);
      expect(g.cause).toMatch(/^close /);
      expect(g.durationMs).toBeGreaterThanOrEqual(0);
    }

    // Trading again after the reconnect: still every tick once.
    await trade(r, 1500);
    await caughtUp(r);
    await expectStoredOnce(r);
    expect((await r.health()).pipeline.duplicates).toBe(r.ledger.repeats);
  });

  it('stores the quote ticks Kite sends after a reconnect until full mode takes effect, and a trade sent in both modes once', async () => {
    // Long enough that trading 500 packets fits inside the quote window after the reconnect.
    const MODE_DELAY_MS = 3000;
    const FULL = [184, 32];
    const r = await start('full', { modeDelayMs: MODE_DELAY_MS });
    const tokens = r.service.tokens;
    // Start-up: quote ticks while the subscribe's mode message is pending, then full mode.
    await trade(r, 1000);
    await until('full mode to take effect for every token', () => r.ledger.lastSentAll(tokens, FULL), 30_000);
    await caughtUp(r);
    await expectStoredOnce(r);
    expect(r.ledger.quoteTicks).toBeGreaterThan(0);

    // Reconnect with nothing trading: each token's quote snapshot is its last stored full tick,
    // seen in quote mode (full, then quote: a repeat).
    const quoteTicks = r.ledger.quoteTicks;
    const cross = r.ledger.crossModeRepeats;
    r.sim.dropAllConnections();
    await until('the quote snapshot of every token after the reconnect', () => r.ledger.crossModeRepeats >= cross + tokens.length);
    expect(r.ledger.quoteTicks).toBe(quoteTicks);
    // Trading in the quote window: quote ticks, stored. Then the switch to full sends each token's
    // snapshot, for a token that traded the full packet of its last quote tick (quote, then full).
    await trade(r, 500);
    expect(r.ledger.quoteTicks).toBeGreaterThan(quoteTicks);
    await until('full mode to take effect again for every token', () => r.ledger.lastSentAll(tokens, FULL), 30_000);
    expect(r.ledger.crossModeRepeats).toBeGreaterThan(cross + tokens.length);
    await caughtUp(r);
    await expectStoredOnce(r);
    expect((await r.health()).pipeline.duplicates).toBe(r.ledger.repeats);
  });
});
