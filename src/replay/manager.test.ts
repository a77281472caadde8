/**
 * The session registry: limits, ownership, and the idle sweep that closes forgotten sessions.
 * Sessions here read an empty store (every query answers no rows), so each ends at once.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGateway, type Gateway } from '../gateway/server.ts';
import { silentLogger } from '../log.ts';
import type { Instrument } from '../core/instrument.ts';
import { ReplayLimitError, ReplayManager } from './manager.ts';
import type { ReplaySpec } from './session.ts';
import { until } from '../../test/support/until.ts';

const INFY: Instrument = {
  instrumentToken: 408065, exchangeToken: 1594, tradingsymbol: 'INFY', name: 'INFOSYS', lastPrice: 0, expiry: '', strike: 0,
  tickSize: 0.05, lotSize: 1, instrumentType: 'EQ', segment: 'NSE', exchange: 'NSE',
};
const SPEC: ReplaySpec = { fromMs: 0, toMs: 60_000, tokens: null, speed: 0, start: 'running', idleSkipMs: 60_000 };

let gateway: Gateway;
let replays!: ReplayManager;
beforeAll(async () => {
  gateway = await startGateway({
    host: '127.0.0.1', port: 0, health: () => ({}),
    routes: (app) => {
      replays = new ReplayManager({
        app, instruments: [INFY], timeframesMs: [60_000], graceMs: 500, log: silentLogger,
        auth: { verify: (s) => (s === 'k' ? { name: 'alice' } : null) },
        source: { kind: 'proxy' }, query: async () => [], maxSessions: 2,
      });
    },
  });
});
afterAll(async () => {
  await replays.closeAll();
  gateway.close();
});

describe('replay sessions', () => {
  it('refuses a session past the limit, and sees only the owner\'s', async () => {
    const a = replays.create('alice', SPEC);
    const b = replays.create('bob', SPEC);
    expect(() => replays.create('alice', SPEC)).toThrow(ReplayLimitError);
    expect(replays.list('alice').map((s) => s.id)).toEqual([a.id]);
    expect(replays.get('alice', b.id)).toBeUndefined();
    expect(await replays.delete('alice', b.id)).toBe(false);
    expect(await replays.delete('bob', b.id)).toBe(true);
    expect(await replays.delete('alice', a.id)).toBe(true);
  });

  it('closes a session idle with no client once the idle time has passed, not before', async () => {
    const s = replays.create('alice', SPEC);
    await until('the session to end (nothing stored)', () => s.info().state === 'ended');
    expect(await replays.sweep(s.createdAt + 1000, 60_000)).toEqual([]);
    expect(await replays.sweep(s.createdAt + 61_000, 60_000)).toEqual([s.id]);
    expect(replays.get('alice', s.id)).toBeUndefined();
    expect(s.info().state).toBe('closed');
  });
});
