import { once } from 'node:events';
import { createServer } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocketServer } from 'ws';
import { CollectingSink, decodeFrame, DecodeStats } from './codec.ts';
import { assignSlots, KiteIngest, MAX_TOKENS_PER_CONNECTION, type ReconnectPlan } from './ingest.ts';
import { Kind } from '../core/packet-slot.ts';
import { startSimulator, type Simulator } from './sim/server.ts';
import { KiteAuthError } from '../core/errors.ts';
import { createLogger } from '../log.ts';
import { until } from '../../test/support/until.ts';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

describe('assignSlots', () => {
  it('puts each token on exactly one connection, at most 3,000 per connection', () => {
    const tokens = Array.from({ length: 7001 }, (_, i) => i * 256 + 2);
    const groups = assignSlots([...tokens, ...tokens.slice(0, 10)], 3);
    expect(groups).toHaveLength(3);
    for (const g of groups) expect(g.length).toBeLessThanOrEqual(MAX_TOKENS_PER_CONNECTION);
    expect(groups.flat().sort((a, b) => a - b)).toEqual(tokens);
  });

  it('uses one connection when one is enough', () => {
    expect(assignSlots([1, 2, 3], 3)).toEqual([[1, 2, 3]]);
  });

  it('refuses more instruments than the connections can carry, saying what to change', () => {
    const tokens = Array.from({ length: 9001 }, (_, i) => i);
    expect(() => assignSlots(tokens, 3)).toThrow(/KITE_INSTRUMENTS/);
  });
});

describe('KiteIngest against the simulator', () => {
  async function sim(): Promise<Simulator> {
    const s = await startSimulator({ port: 0, host: '127.0.0.1', apiKey: 'k', accessToken: 't', rate: 5000, seed: 7 });
    cleanups.push(() => s.close());
    return s;
  }

  it('recovers from killed sockets with the same subscriptions and mode', async () => {
    const s = await sim();
    const tokens = s.instruments.slice(0, 120).map((i) => i.instrumentToken);
    const sink = new CollectingSink();
    const stats = new DecodeStats();
    const seen = new Set<number>();
    const ingest = new KiteIngest({
      wsUrl: s.wsUrl, apiKey: 'k', accessToken: 't', tokens, mode: 'full', connections: 2, maxTokensPerConnection: 60,
      backoffInitialMs: 20, backoffMaxMs: 200, silenceMs: 2000,
      onBinary: (msg, slot, seq) => {
        sink.clear();
        decodeFrame(msg, { recvTimeUs: 0, seq, conn: slot }, sink, stats);
        for (let i = 0; i < sink.count; i++) {
          const t = sink.tick(i);
          seen.add(t.token);
          expect(t.kind === Kind.FULL || t.kind === Kind.INDEX_FULL).toBe(true);
        }
      },
    });
    cleanups.push(() => ingest.stop());
    ingest.start();
    await until('every token to tick in full mode', () => ingest.connected() && seen.size === tokens.length);
    expect(ingest.assignment()).toHaveLength(2);

    for (let round = 1; round <= 2; round++) {
      s.dropAllConnections();
      await until(`disconnect ${round} to be noticed`, () => ingest.stats().every((st) => st.disconnects === round));
      seen.clear();
      await until(`resubscription after drop ${round}`, () => ingest.connected() && seen.size === tokens.length);
      expect(ingest.stats().every((st) => st.connects === round + 1)).toBe(true);
    }
    expect([...seen].sort((a, b) => a - b)).toEqual([...tokens].sort((a, b) => a - b));
    expect(s.connections()).toBe(2);
    await until('gaps to be counted', () => ingest.stats().every((st) => st.gaps === 2));
    expect(stats.totalErrors()).toBe(0);
  });

  it('treats refused credentials as fatal and does not retry', async () => {
    const s = await sim();
    const lines: string[] = [];
    const ingest = new KiteIngest({
      wsUrl: s.wsUrl, apiKey: 'k', accessToken: 'wrong', tokens: [256265], mode: 'full',
      backoffInitialMs: 10, onBinary: () => {}, log: createLogger('warn', 'ingest', { write: (line: string) => { lines.push(line); } }),
    });
    cleanups.push(() => ingest.stop());
    const fatal = once(ingest, 'fatal') as Promise<[Error]>;
    const gone = once(ingest, 'disconnect');
    ingest.start();
    const [err] = await fatal;
    expect(err).toBeInstanceOf(KiteAuthError);
    expect(err.message).toMatch(/access token/);
    // The refused socket's close is where a retry is decided: the ingest announces the disconnect,
    // then in the same call schedules the next attempt and logs it. Once the event is handled, a
    // retry would be on the log.
    await gone;
    expect(lines.map((l) => JSON.parse(l)).filter((l) => 'retryInMs' in l)).toEqual([]);
    expect(ingest.stats()[0].connects).toBe(0);
  });
});

describe('KiteIngest silence watchdog', () => {
  it('cuts a connection that goes silent and reconnects', async () => {
    const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    await new Promise((r) => wss.once('listening', r));
    cleanups.push(() => new Promise<void>((r) => { for (const c of wss.clients) c.terminate(); wss.close(() => r()); }));
    let accepted = 0;
    wss.on('connection', () => { accepted++; });
    const port = (wss.address() as { port: number }).port;
    const ingest = new KiteIngest({
      wsUrl: `ws://127.0.0.1:${port}/`, apiKey: 'k', accessToken: 't', tokens: [256265], mode: 'full',
      silenceMs: 300, backoffInitialMs: 10, backoffMaxMs: 50, onBinary: () => {},
    });
    cleanups.push(() => ingest.stop());
    ingest.start();
    await until('two reconnects after silence', () => accepted >= 3);
    expect(ingest.stats()[0].silences).toBeGreaterThanOrEqual(2);
  });
});

describe('KiteIngest reconnect back-off', () => {
  /** A local port nothing listens on: every connection attempt is refused at once. */
  async function refusingPort(): Promise<number> {
    const srv = createServer();
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
    const port = (srv.address() as { port: number }).port;
    await new Promise<void>((r) => srv.close(() => r()));
    return port;
  }

  it('doubles the delay per refused attempt and never waits longer than backoffMaxMs', async () => {
    const port = await refusingPort();
    const plans: ReconnectPlan[] = [];
    const ingest = new KiteIngest({
      wsUrl: `ws://127.0.0.1:${port}/`, apiKey: 'k', accessToken: 't', tokens: [256265], mode: 'full',
      // The jitter at its top: each delay is the whole cap of its attempt.
      backoffInitialMs: 10, backoffMaxMs: 80, random: () => 0.999_999, onBinary: () => {},
    });
    cleanups.push(() => ingest.stop());
    ingest.on('reconnecting', (p: ReconnectPlan) => plans.push(p));
    ingest.start();
    await until('ten refused attempts', () => plans.length >= 10);
    await ingest.stop();
    expect(plans.slice(0, 10).map((p) => p.delayMs)).toEqual([10, 20, 40, 80, 80, 80, 80, 80, 80, 80]);
    expect(plans.map((p) => p.attempt).slice(0, 10)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(Math.max(...plans.map((p) => p.delayMs))).toBeLessThanOrEqual(80);
  });

  it('keeps the jittered delay within half the cap and the cap', async () => {
    const port = await refusingPort();
    const plans: ReconnectPlan[] = [];
    let k = 0;
    const ingest = new KiteIngest({
      wsUrl: `ws://127.0.0.1:${port}/`, apiKey: 'k', accessToken: 't', tokens: [256265], mode: 'full',
      backoffInitialMs: 5, backoffMaxMs: 40, random: () => [0, 0.5, 0.999_999][k++ % 3], onBinary: () => {},
    });
    cleanups.push(() => ingest.stop());
    ingest.on('reconnecting', (p: ReconnectPlan) => plans.push(p));
    ingest.start();
    await until('twelve refused attempts', () => plans.length >= 12);
    await ingest.stop();
    for (const p of plans.slice(4)) {
      expect(p.delayMs).toBeGreaterThanOrEqual(20);
      expect(p.delayMs).toBeLessThanOrEqual(40);
    }
  });
});
